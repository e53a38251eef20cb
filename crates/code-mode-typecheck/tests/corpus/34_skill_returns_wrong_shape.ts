// returns: {"type": "object", "properties": {"total": {"type": "number"}, "skus": {"type": "array", "items": {"type": "string"}}}, "required": ["total", "skus"]}
// expect: 2322@5
const products = await external_listProducts({ category: 'mice' });
const total = products.reduce((s, p) => s + p.price, 0);
return { total: String(total), skus: products.map((p) => p.sku) };
