// expect: ok
const text = JSON.stringify({ a: [1, 2, 3] });
const parsed = JSON.parse(text);
const m = new Map<string, number>();
m.set('x', Math.max(...parsed.a));
const d = new Date(0).toISOString();
return { x: m.get('x'), d, keys: Object.keys(parsed), sum: [1, 2].reduce((s, n) => s + n, 0) };
