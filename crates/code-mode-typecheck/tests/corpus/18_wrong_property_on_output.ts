// expect: 2339@3
const s = await external_getStock({ sku: 'KB-101' });
return s.quantity;
