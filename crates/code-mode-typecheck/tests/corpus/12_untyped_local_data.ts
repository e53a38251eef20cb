// expect: ok
const data: any = await external_searchOrders({ customerId: 'c-2' });
const first = data.orders[0];
let label;
label = first ? first.id : 'none';
return label;
