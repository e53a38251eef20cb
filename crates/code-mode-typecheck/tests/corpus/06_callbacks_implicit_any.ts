// expect: ok
const products = await external_listProducts({ category: 'monitors' });
const byPrice = products.sort((a, b) => a.price - b.price);
const names = byPrice.map(function (p) { return p.name; });
const pick = (list, n) => list.slice(0, n);
return pick(names, 2);
