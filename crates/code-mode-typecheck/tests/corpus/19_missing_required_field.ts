// expect: 2741@2
const r = await external_createReorder({ sku: 'KB-202' });
return r;
