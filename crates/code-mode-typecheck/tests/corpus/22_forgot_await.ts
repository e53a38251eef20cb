// expect: 2339@3
const stock = external_getStock({ sku: 'KB-101' });
if (stock.units < 5) console.log('low');
return 1;
