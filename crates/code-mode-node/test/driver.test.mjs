// The addon against TanStack's `IsolateDriver` contract, and inside TanStack's own
// `createCodeModeTool`. Run by `cargo xtask node` (which builds the addon first) on every
// Node version it verifies; `CODE_MODE_NODE_ADDON` may point at a built addon.
import test from 'node:test'
import assert from 'node:assert/strict'
import { z } from 'zod'
import { toolDefinition } from '@tanstack/ai'
import { createCodeMode, createCodeModeTool } from '@tanstack/ai-code-mode'
import { createNativeQuickJSIsolateDriver } from '../index.mjs'

const binding = (execute) => ({ name: 'x', description: '', inputSchema: { type: 'object' }, execute })
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

test('values, logs with TanStack prefixes, globals kept per context, contexts isolated', async () => {
  const driver = createNativeQuickJSIsolateDriver()
  const a = await driver.createContext({ bindings: {} })
  const b = await driver.createContext({ bindings: {} })
  const r = await a.execute("console.log('a', 1, { k: [2] }); console.info('i'); console.warn('w'); console.error('e'); return { n: 1, s: 'x', l: [true, null] }")
  assert.deepEqual(r, { success: true, value: { n: 1, s: 'x', l: [true, null] }, logs: ['a 1 {"k":[2]}', 'INFO: i', 'WARN: w', 'ERROR: e'] })
  assert.deepEqual(await a.execute('globalThis.kept = 7'), { success: true, logs: [] })
  assert.equal((await a.execute('return globalThis.kept')).value, 7)
  assert.equal((await b.execute('return typeof globalThis.kept')).value, 'undefined')
  const thrown = await a.execute("throw new TypeError('bad')")
  assert.equal(thrown.success, false)
  assert.deepEqual(thrown.error, { name: 'TypeError', message: 'bad' })
  assert.equal((await a.execute('return (')).error.name, 'SyntaxError')
  await a.dispose()
  await a.dispose()
  assert.deepEqual(await a.execute('return 1'), { success: false, error: { name: 'DisposedError', message: 'Context has been disposed' }, logs: [] })
  await b.dispose()
})

test('tool calls: concurrent in Promise.all, errors catchable, rejections too', async () => {
  let inFlight = 0
  let most = 0
  const driver = createNativeQuickJSIsolateDriver()
  const ctx = await driver.createContext({
    bindings: {
      external_wait: binding(async ({ ms }) => {
        inFlight++
        most = Math.max(most, inFlight)
        await sleep(ms)
        inFlight--
        return { waited: ms }
      }),
      external_throws: binding(async () => { throw new Error('tool failed') }),
      external_rejects: binding(() => Promise.reject(new RangeError('rejected'))),
      external_nothing: binding(async () => undefined),
    },
  })
  const r = await ctx.execute('return await Promise.all([1, 2, 3].map((i) => external_wait({ ms: 100 })))')
  assert.deepEqual(r.value, [{ waited: 100 }, { waited: 100 }, { waited: 100 }])
  assert.equal(most, 3, 'the three calls ran at once')
  const caught = await ctx.execute("const out = []; for (const f of [external_throws, external_rejects]) { try { await f({}) } catch (e) { out.push([e instanceof Error, e.message]) } } return out")
  assert.deepEqual(caught.value, [[true, 'tool failed'], [true, 'rejected']])
  assert.deepEqual((await ctx.execute('return await external_nothing()')).value, null)
  const uncaught = await ctx.execute('await external_throws({})')
  assert.deepEqual(uncaught.error, { name: 'Error', message: 'tool failed' })
  await ctx.dispose()
})

test('a call the program does not await still runs, as in TanStack\'s drivers', async () => {
  const seen = []
  const driver = createNativeQuickJSIsolateDriver()
  const ctx = await driver.createContext({
    bindings: { external_log: binding(async (input) => { seen.push(input) }) },
  })
  const r = await ctx.execute("external_log({ m: 1 }); external_log({ m: 2 }); return 'done'")
  assert.deepEqual(r, { success: true, value: 'done', logs: [] })
  for (let i = 0; i < 50 && seen.length < 2; i++) await sleep(10)
  assert.deepEqual(seen, [{ m: 1 }, { m: 2 }])
  await ctx.dispose()
})

test('the limits TanStack\'s drivers do not have are options: result size, console lines and bytes; bad values are refused', async () => {
  const driver = createNativeQuickJSIsolateDriver({ maxResultBytes: 1000, maxLogEntries: 2, maxLogBytes: 4096 })
  const ctx = await driver.createContext({ bindings: {} })
  const big = await ctx.execute("return 'x'.repeat(2000)")
  assert.equal(big.success, false)
  assert.equal(big.error.name, 'ResultTooLargeError')
  assert.equal((await ctx.execute("return 'x'.repeat(900)")).success, true)
  const logged = await ctx.execute("for (let i = 0; i < 5; i++) console.log('line ' + i); return 1")
  assert.equal(logged.success, true)
  assert.deepEqual(logged.logs.slice(0, 2), ['line 0', 'line 1'])
  assert.ok(logged.logs.length <= 3, JSON.stringify(logged.logs))
  await ctx.dispose()
  // The defaults hold a 3 MiB result.
  const roomy = await createNativeQuickJSIsolateDriver().createContext({ bindings: {} })
  assert.equal((await roomy.execute("return 'x'.repeat(3 * 1024 * 1024)")).value.length, 3 * 1024 * 1024)
  await roomy.dispose()
  for (const bad of [{ maxResultBytes: -1 }, { maxResultBytes: 1.5 }, { maxLogBytes: Number.NaN }]) {
    await assert.rejects(createNativeQuickJSIsolateDriver(bad).createContext({ bindings: {} }), /maxResultBytes|maxLogBytes/, JSON.stringify(bad))
  }
})

test('limits: timeout (event loop free meanwhile, terminal), awaited calls, memory, stack, tool-call cap', async () => {
  const driver = createNativeQuickJSIsolateDriver({ timeout: 300, maxToolCalls: 5 })
  const ctx = await driver.createContext({ bindings: { external_never: binding(() => new Promise(() => {})), external_ok: binding(async () => 1) } })
  let ticks = 0
  const timer = setInterval(() => ticks++, 10)
  const spin = await ctx.execute('while (true) {}')
  clearInterval(timer)
  assert.equal(spin.error.name, 'TimeoutError')
  assert.ok(ticks >= 5, `Node's event loop ran during the loop (${ticks} ticks)`)
  assert.equal((await ctx.execute('return 1')).error.name, 'DisposedError')
  await ctx.dispose()
  const fresh = () => driver.createContext({ bindings: { external_never: binding(() => new Promise(() => {})), external_ok: binding(async () => 1) } })
  let c = await fresh()
  assert.equal((await c.execute('await external_never({})')).error.name, 'TimeoutError')
  await c.dispose()
  c = await fresh()
  const capped = await c.execute("let n = 0; try { for (let i = 0; i < 10; i++) { await external_ok({}); n++ } } catch (e) { return [n, e.name] }")
  assert.deepEqual(capped.value, [5, 'ToolCallLimitError'])
  await c.dispose()
  const small = createNativeQuickJSIsolateDriver({ memoryLimit: 16, maxStackSize: 65536 })
  c = await small.createContext({ bindings: {} })
  assert.equal((await c.execute("const a = []; while (true) a.push('x'.repeat(1e5) + a.length)")).error.name, 'MemoryLimitError')
  await c.dispose()
  c = await small.createContext({ bindings: {} })
  assert.equal((await c.execute('const f = (n) => f(n + 1) + 1; return f(0)')).error.name, 'StackOverflowError')
  await c.dispose()
  await assert.rejects(driver.createContext({ bindings: {}, memoryLimit: 0 }), /memory/)
})

test('limits are decided by the engine, never by text: every limit phrase and limit error name thrown by the program or a tool stays its own error, on a context that lives on', async () => {
  const phrases = ['out of memory', 'Maximum call stack size exceeded', 'stack overflow', 'memory limit', 'interrupted', 'Script execution timed out.', 'exceeded CPU']
  const names = ['MemoryLimitError', 'TimeoutError', 'StackOverflowError', 'DisposedError', 'DeadlockError']
  const driver = createNativeQuickJSIsolateDriver()
  const ctx = await driver.createContext({ bindings: { external_fail: binding(async ({ m }) => { throw new Error(m) }) } })
  for (const p of phrases) {
    for (const [code, name] of [
      [`throw new Error('cache ' + ${JSON.stringify(p)})`, 'Error'],
      [`throw new RangeError(${JSON.stringify(p)} + ' (cache)')`, 'RangeError'],
      [`await external_fail({ m: 'upstream: ' + ${JSON.stringify(p)} })`, 'Error'],
    ]) {
      const r = await ctx.execute(code)
      assert.equal(r.error.name, name, `${code}: ${r.error.name}: ${r.error.message}`)
      assert.ok(r.error.message.includes(p), r.error.message)
      assert.equal((await ctx.execute('return 1 + 1')).value, 2, `the context died after ${code}`)
    }
  }
  for (const n of names) {
    const r = await ctx.execute(`const e = new Error('mine'); e.name = '${n}'; throw e`)
    assert.equal(r.error.name, n)
    assert.equal((await ctx.execute('return 1 + 1')).value, 2, `the context died after an error named ${n}`)
  }
  await ctx.dispose()
})

test('spinMicros: 0 always answers through a promise, the default answers a quick program at once, absurd values are refused', async () => {
  for (const spinMicros of [0, undefined, 10000]) {
    const driver = createNativeQuickJSIsolateDriver({ spinMicros })
    const ctx = await driver.createContext({ bindings: { external_twice: binding(async ({ n }) => n * 2) } })
    assert.equal((await ctx.execute('return 1 + 1')).value, 2)
    assert.equal((await ctx.execute('return await external_twice({ n: 21 })')).value, 42)
    const slow = await ctx.execute('let s = 0; for (let i = 0; i < 3e6; i++) s += i; return s > 0')
    assert.equal(slow.value, true)
    await ctx.dispose()
  }
  const absurd = createNativeQuickJSIsolateDriver({ spinMicros: 10001 })
  await assert.rejects(absurd.createContext({ bindings: {} }), /spinMicros must be at most 10000/)
})

test('contexts of one driver share its dispatcher: each reaches its own bindings, a disposed one none', async () => {
  const driver = createNativeQuickJSIsolateDriver()
  const a = await driver.createContext({ bindings: { external_who: binding(async () => 'a') } })
  const b = await driver.createContext({ bindings: { external_who: binding(async () => 'b') } })
  const [ra, rb] = await Promise.all([a.execute('return await external_who({})'), b.execute('return await external_who({})')])
  assert.deepEqual([ra.value, rb.value], ['a', 'b'])
  await a.dispose()
  assert.equal((await b.execute('return await external_who({})')).value, 'b')
  await b.dispose()
})

test('dispose while calls are pending settles the execution and leaks nothing', async () => {
  const driver = createNativeQuickJSIsolateDriver({ timeout: 10000 })
  let started = 0
  const ctx = await driver.createContext({ bindings: { external_never: binding(() => { started++; return new Promise(() => {}) }) } })
  const running = ctx.execute('return await Promise.all([external_never({}), external_never({})])')
  while (started < 2) await sleep(5)
  await ctx.dispose()
  const r = await running
  assert.equal(r.success, false)
  assert.equal((await ctx.execute('return 1')).error.name, 'DisposedError')
})

test("inside TanStack's createCodeModeTool, switched by one import", async () => {
  const getWeather = toolDefinition({
    name: 'getWeather',
    description: 'Weather of a city.',
    inputSchema: z.object({ city: z.string() }),
  }).server(async ({ city }) => ({ city, tempC: city.length * 3 }))
  const tool = createCodeModeTool({ driver: createNativeQuickJSIsolateDriver(), tools: [getWeather] })
  const events = []
  const result = await tool.execute(
    { typescriptCode: "const cities: string[] = ['Oslo', 'Lima'];\nconst w = await Promise.all(cities.map((city) => external_getWeather({ city })));\nconsole.log('got', w.length);\nreturn w.map((x) => x.tempC);" },
    { emitCustomEvent: (name, value) => events.push(name) },
  )
  assert.deepEqual(result, { success: true, result: [12, 12], logs: ['got 2'] })
  assert.ok(events.includes('code_mode:external_call'), events.join(','))
  const failed = await tool.execute({ typescriptCode: 'const x: number = 1;\nthrow new Error(`line ${x}`)' }, {})
  assert.equal(failed.success, false)
  assert.equal(failed.error.message, 'line 1')
})

test("inside TanStack's createCodeMode: the system prompt, the execute tool and a lazy tool's discovery", async () => {
  const add = toolDefinition({
    name: 'add',
    description: 'Adds two numbers.',
    inputSchema: z.object({ a: z.number(), b: z.number() }),
  }).server(async ({ a, b }) => a + b)
  const rare = toolDefinition({
    name: 'rareLookup',
    description: 'Looks something rare up.',
    inputSchema: z.object({ key: z.string() }),
    lazy: true,
  }).server(async ({ key }) => ({ key, found: true }))
  const { tool, tools, systemPrompt, discoveryTool } = createCodeMode({ driver: createNativeQuickJSIsolateDriver(), tools: [add, rare] })
  assert.ok(systemPrompt.includes('external_add'), systemPrompt)
  assert.equal(tools.length, discoveryTool ? 2 : 1)
  const events = []
  const result = await tool.execute(
    { typescriptCode: "const s: number = await external_add({ a: 2, b: 3 });\nconst r = await external_rareLookup({ key: 'k' });\nconsole.info('sum', s);\nreturn { s, r };" },
    { emitCustomEvent: (name, value) => events.push([name, value]) },
  )
  assert.deepEqual(result, { success: true, result: { s: 5, r: { key: 'k', found: true } }, logs: ['INFO: sum 5'] })
  assert.deepEqual(events.filter(([n]) => n === 'code_mode:external_call').map(([, v]) => v.function), ['external_add', 'external_rareLookup'])
  assert.deepEqual(events.filter(([n]) => n === 'code_mode:console').map(([, v]) => [v.level, v.message]), [['info', 'sum 5']])
})

test('sequential and parallel calls: 8 and 50 awaited in turn, 100 in Promise.all overlapping', async () => {
  let inFlight = 0
  let most = 0
  const driver = createNativeQuickJSIsolateDriver()
  const ctx = await driver.createContext({
    bindings: {
      external_add: binding(async ({ a, b }) => a + b),
      external_slow: binding(async ({ i }) => {
        inFlight++
        most = Math.max(most, inFlight)
        await sleep(20)
        inFlight--
        return i
      }),
    },
  })
  for (const n of [8, 50]) {
    const r = await ctx.execute(`let s = 0; for (let i = 0; i < ${n}; i++) s = await external_add({ a: s, b: i }); return s`)
    assert.equal(r.value, (n * (n - 1)) / 2)
  }
  const r = await ctx.execute('const all = await Promise.all(Array.from({ length: 100 }, (_, i) => external_slow({ i }))); return all.length')
  assert.equal(r.value, 100)
  assert.ok(most >= 50, `the 100 calls overlapped (${most} at once)`)
  await ctx.dispose()
})

test('an infinite loop after an await times out too; a throwing binding never crashes Node', async () => {
  const driver = createNativeQuickJSIsolateDriver({ timeout: 200 })
  const ctx = await driver.createContext({ bindings: { external_ok: binding(async () => 1), external_bad: binding(() => { throw new TypeError('sync throw') }) } })
  assert.equal((await ctx.execute('await external_ok({}); while (true) {}')).error.name, 'TimeoutError')
  const other = await driver.createContext({ bindings: { external_bad: binding(() => { throw new TypeError('sync throw') }) } })
  const r = await other.execute('try { await external_bad({}) } catch (e) { return e.message }')
  assert.equal(r.value, 'sync throw')
  await ctx.dispose()
  await other.dispose()
})

test('1,000 create/execute/dispose cycles keep memory flat', async () => {
  const driver = createNativeQuickJSIsolateDriver()
  const cycle = async () => {
    const ctx = await driver.createContext({ bindings: { external_echo: binding(async (x) => x) } })
    const r = await ctx.execute("const v = await external_echo({ s: 'x'.repeat(1000) }); return v.s.length")
    assert.equal(r.value, 1000)
    await ctx.dispose()
  }
  for (let i = 0; i < 100; i++) await cycle()
  globalThis.gc?.()
  const before = process.memoryUsage().rss
  for (let i = 0; i < 1000; i++) await cycle()
  globalThis.gc?.()
  const after = process.memoryUsage().rss
  const grownMiB = (after - before) / 1048576
  console.log(`rss over 1,000 cycles: ${(before / 1048576).toFixed(1)} MiB -> ${(after / 1048576).toFixed(1)} MiB`)
  assert.ok(grownMiB < 32, `RSS grew ${grownMiB.toFixed(1)} MiB over 1,000 cycles`)
})

test('100,000 tool calls keep memory flat (a fresh context per execution, as createCodeModeTool does)', async () => {
  const { spawnSync } = await import('node:child_process')
  // In a child process with --expose-gc, so the RSS is this workload's alone. 10,000
  // executions of 10 calls each; RSS sampled every 1,000 executions after a GC. The first
  // half is the allocators' warm-up; from there RSS must not keep growing. The allocators
  // grow in steps of up to ~15 MiB (seen on Node 24: 100 -> 115 MiB, then flat over 100k more
  // calls), so the bound is 24 MiB over the last 30-50k calls, where the leak reported
  // before (about 1.4 MiB per 1,000 calls: 68 MB at 10k calls, 124 MB at 50k) adds 40+ MiB.
  const script = `
    import { createNativeQuickJSIsolateDriver } from ${JSON.stringify(new URL('../index.mjs', import.meta.url).href)}
    const driver = createNativeQuickJSIsolateDriver()
    const bindings = { external_log: { name: 'log', description: '', inputSchema: {}, execute: async (x) => x } }
    const code = 'const r = await Promise.all(Array.from({ length: 10 }, (_, i) => external_log({ i }))); return r.length'
    const samples = []
    for (let i = 1; i <= 10000; i++) {
      const ctx = await driver.createContext({ bindings })
      const r = await ctx.execute(code)
      await ctx.dispose()
      if (!r.success || r.value !== 10) { console.error(JSON.stringify(r)); process.exit(1) }
      if (i % 1000 === 0) { globalThis.gc(); samples.push(process.memoryUsage().rss / 1048576) }
    }
    console.log(JSON.stringify(samples))
  `
  const run = spawnSync(process.execPath, ['--expose-gc', '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 240000, env: process.env })
  assert.equal(run.status, 0, run.stderr)
  const samples = JSON.parse(run.stdout.trim())
  console.log(`rss every 10,000 calls (MiB): ${samples.map((m) => m.toFixed(1)).join(' ')}`)
  const warm = Math.max(...samples.slice(4, 7))
  const late = Math.max(...samples.slice(7))
  assert.ok(late - warm < 24, `RSS grew ${(late - warm).toFixed(1)} MiB between 50-70k and 80-100k calls: ${samples}`)
})

test('Node exits on its own with contexts still open', async () => {
  const { spawnSync } = await import('node:child_process')
  const script = `
    import { createNativeQuickJSIsolateDriver } from ${JSON.stringify(new URL('../index.mjs', import.meta.url).href)}
    const driver = createNativeQuickJSIsolateDriver()
    const ctx = await driver.createContext({ bindings: { external_x: { name: 'x', description: '', inputSchema: {}, execute: async () => 1 } } })
    const r = await ctx.execute('return await external_x({})')
    console.log(JSON.stringify(r.value))
  `
  const run = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 20000, env: process.env })
  assert.equal(run.status, 0, run.stderr)
  assert.equal(run.stdout.trim(), '1')
})
