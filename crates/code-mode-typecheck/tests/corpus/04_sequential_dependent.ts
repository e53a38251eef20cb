// expect: ok
const { orders } = await external_searchOrders({ customerId: 'c-1', status: 'open' });
let total = 0;
for (const o of orders) {
  total += o.total;
  for (const item of o.items) {
    const s = await external_getStock({ sku: item.sku });
    if (s.units < item.qty) console.log(`short on ${item.sku}`);
  }
}
return { count: orders.length, total };
