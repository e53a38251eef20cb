// expect: 2551@4
const products = await external_listProducts({ category: 'mice' });
const first = products[0];
return first.prise * 2;
