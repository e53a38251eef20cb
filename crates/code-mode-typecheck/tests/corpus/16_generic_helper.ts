// expect: ok
async function retry<T>(f: () => Promise<T>, times: number): Promise<T> {
  let last: unknown;
  for (let i = 0; i < times; i++) {
    try { return await f(); } catch (e) { last = e; }
  }
  throw last;
}
const s = await retry(() => external_getStock({ sku: 'KB-101' }), 3);
return s.units;
