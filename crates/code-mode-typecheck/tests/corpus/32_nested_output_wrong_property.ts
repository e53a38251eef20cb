// expect: 2339@4
const { orders } = await external_searchOrders({ customerId: 'c-1' });
const skus = orders.flatMap((o) => o.items.map((i) => i.sku));
const qty = orders[0].items[0].quantity;
return { skus, qty };
