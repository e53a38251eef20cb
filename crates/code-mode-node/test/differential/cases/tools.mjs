// Differential cases: calls of the application's tools from the program.
const BOTH = ['quickjs', 'node']
const call = (name, code, same = BOTH, extra = {}) => ({ name: `tools: ${name}`, code, same, ...extra })

export const tools = [
  call('nested input', "return await external_echo({ a: { b: [1, { c: 'd' }] }, e: null })"),
  call('unicode input', "return await external_echo({ s: 'ü 🚀 \\u2028' })"),
  call('a large input', "const r = await external_echo({ s: 'y'.repeat(50000) }); return r.s.length"),
  call('numbers that JSON cannot hold', 'return await external_echo({ a: NaN, b: Infinity, c: -0 })'),
  call('input that fails the schema', "return await external_add({ a: 'one', b: 2 })"),
  call('input that fails the schema, caught', "try { await external_add({ a: 'one' } as any) } catch (e) { return (e as Error).name }"),
  call('a tool that does not exist', 'return await external_nope({})', ['node']),
  call('calls in sequence in a map', 'const out: number[] = []; for (const i of [1, 2, 3]) out.push(await external_add({ a: i, b: i })); return out'),
  call('Promise.all with one failure', 'return await Promise.all([external_add({ a: 1, b: 1 }), external_fail({})])'),
  call('Promise.allSettled of tool calls', 'const r = await Promise.allSettled([external_add({ a: 1, b: 1 }), external_fail({})]); return r.map((x) => x.status)'),
  call('a result used in arithmetic', 'const a = await external_add({ a: 2, b: 3 }); const b = await external_add({ a, b: a }); return a * b'),
  call('a failing call in a loop with try/catch', 'let ok = 0, bad = 0; for (let i = 0; i < 3; i++) { try { await external_fail({}); ok++ } catch { bad++ } } return { ok, bad }'),
  call('a tool called without await, then awaited', 'const p = external_add({ a: 1, b: 2 }); const q = external_add({ a: 3, b: 4 }); return (await p) + (await q)'),
  call('a tool passed around as a value', 'const f = external_add; return await f({ a: 20, b: 22 })'),
  call('typeof a tool', 'return typeof external_echo'),
  call('20 calls in Promise.all keep their order', 'return await Promise.all(Array.from({ length: 20 }, (_, i) => external_add({ a: i, b: 0 })))', BOTH, { unordered: true }),
  call('a call after a caught failure', 'try { await external_fail({}) } catch {} return await external_add({ a: 1, b: 1 })'),
  call('the echo of an empty object', 'return await external_echo({})'),
  call('an array result from a tool', 'const r = await external_echo({ list: [3, 2, 1] }); return r.list.sort()'),
  {
    name: 'tools: a tool that returns undefined',
    code: 'return typeof (await external_nothing({}))',
    deliberate: "tool values cross as JSON: a tool's undefined arrives as null",
    ours: { success: true, value: 'object' },
  },
  call('a tool result spread into another call', 'const a = await external_echo({ x: 1 }); return await external_echo({ ...a, y: 2 })'),
]
