// expect: ok
const order = await external_createReorder({ sku: 'KB-202', quantity: 20 });
return order.orderId;
