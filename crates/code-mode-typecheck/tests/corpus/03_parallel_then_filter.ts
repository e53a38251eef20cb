// expect: ok
const lists = await Promise.all((['keyboards', 'mice'] as const).map((category) => external_listProducts({ category })));
const cheap = lists.flat().filter((p) => p.price < 100).map((p) => p.sku);
return cheap;
