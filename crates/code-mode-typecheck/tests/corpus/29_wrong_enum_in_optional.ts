// expect: 2322@4
const { orders } = await external_searchOrders({
  customerId: 'c-1',
  status: 'pending',
});
return orders.length;
