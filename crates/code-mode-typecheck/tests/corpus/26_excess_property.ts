// expect: 2353@2
const s = await external_getStock({ sku: 'KB-101', warehouse: 'north' });
return s.units;
