// expect: ok
const results = await Promise.allSettled(['KB-101', 'NOPE'].map((sku) => external_getStock({ sku })));
return results.map((r) => (r.status === 'fulfilled' ? r.value.units : null));
