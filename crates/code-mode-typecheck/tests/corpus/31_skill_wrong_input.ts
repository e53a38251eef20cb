// expect: 2322@2
const top = await skill_top_products({ category: 'mice', limit: 'three' });
return top;
