// expect: 2322@2
const r = await external_createReorder({ sku: 'KB-202', quantity: '20' });
return r;
