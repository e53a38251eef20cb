// expect: ok
const top = await skill_top_products({ category: 'mice', limit: 3 });
return top.items.map((i) => i.sku);
