// expect: 2552@2
const w = await external_getWether({ city: 'Oslo' });
return w;
