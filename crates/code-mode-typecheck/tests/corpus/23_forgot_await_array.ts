// expect: 2339@3
const products = external_listProducts({ category: 'mice' });
return products.map((p) => p.sku);
