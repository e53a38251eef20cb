// expect: ok
interface Product { sku: string; name: string; price: number }

// 1. All categories in parallel.
const categories = ["keyboards", "mice", "monitors"] as const;
const lists = await Promise.all(categories.map((category) => external_listProducts({ category })));
const products: Product[] = lists.flat();

// 2. Stock of every product, in parallel too.
const stock = await Promise.all(products.map((p) => external_getStock({ sku: p.sku })));
const low = products.filter((p, i) => stock[i].units < 5);
console.log(`${low.length} of ${products.length} products are low on stock`);

// 3. One reorder per low product, one after the other.
const orders: string[] = [];
for (const p of low) {
  const order = await external_createReorder({ sku: p.sku, quantity: 20 });
  orders.push(order.orderId);
}

const value = products.reduce((sum, p, i) => sum + p.price * stock[i].units, 0);
return { products: products.length, lowStock: low.map((p) => p.name), orders, stockValueEur: Math.round(value) };
