// returns: {"type": "object", "properties": {"total": {"type": "number"}, "skus": {"type": "array", "items": {"type": "string"}}}, "required": ["total", "skus"]}
// expect: 2741@4
const products = await external_listProducts({ category: 'mice' });
return { total: products.length };
