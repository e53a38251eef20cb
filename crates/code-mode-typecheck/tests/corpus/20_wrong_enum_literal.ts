// expect: 2322@2
const list = await external_listProducts({ category: 'laptops' });
return list.length;
