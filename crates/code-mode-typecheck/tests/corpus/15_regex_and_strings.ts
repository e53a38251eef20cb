// expect: ok
const products = await external_listProducts({ category: 'keyboards' });
const re = /board/i;
return products.filter((p) => re.test(p.name)).map((p) => p.name.toUpperCase().padEnd(30, '.'));
