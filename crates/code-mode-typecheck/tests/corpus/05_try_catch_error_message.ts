// expect: ok
try {
  await external_getStock({ sku: 'NOPE' });
} catch (e) {
  console.error('lookup failed:', e.message);
  return { ok: false, reason: e.message };
}
return { ok: true };
