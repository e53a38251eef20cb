// expect: ok
interface Row { sku: string; units: number }
type Level = 'low' | 'ok';
const rows: Row[] = [];
for (const sku of ['KB-101', 'MS-310']) rows.push(await external_getStock({ sku }));
const level = (r: Row): Level => (r.units < 5 ? 'low' : 'ok');
return rows.map((r) => ({ ...r, level: level(r) }));
