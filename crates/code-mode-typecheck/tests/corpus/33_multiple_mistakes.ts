// expect: 2339@3 2322@4
const s = await external_getStock({ sku: 'KB-101' });
console.log(s.count);
await external_listProducts({ category: 'phones' });
return s.units;
