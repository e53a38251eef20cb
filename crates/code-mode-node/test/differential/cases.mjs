// The programs of the differential test (`test/differential.test.mjs`): each runs through
// TanStack's own `createCodeModeTool` on this driver and on TanStack's published QuickJS and
// Node drivers, one process per (driver, case) by `run.mjs`.
//
// Where a TanStack driver crashes its process or never settles (it is then killed after the
// case's timeout plus 10 s), ours must still reach its outcome.
//
// `same` lists the TanStack drivers whose normalised outcome (result without `stack`, and the
// `code_mode:*` events without times) ours must equal exactly. It leaves one out only where
// the engines differ, not the drivers: our QuickJS is quickjs-ng, whose messages match V8's
// where the older QuickJS of `@tanstack/ai-isolate-quickjs` words them differently, and a
// syntax error is worded by the engine that parses it. `ours` pins what this driver gives
// where it deliberately differs from the published drivers (the limit errors: the names of
// TanStack's contract, which the published 0.1.x drivers do not give yet); the TanStack
// outcome must then still be a failure.

import { console_ } from './cases/console.mjs'
import { errors } from './cases/errors.mjs'
import { language } from './cases/language.mjs'
import { tools } from './cases/tools.mjs'
import { values } from './cases/values.mjs'

const BOTH = ['quickjs', 'node']

const core = [
  { name: 'return a value', code: 'return 1 + 1', same: BOTH },
  { name: 'return nothing', code: 'const x: number = 1', same: BOTH },
  { name: 'JSON conversion of the result', code: 'return { d: new Date(0), n: NaN, u: undefined, f() {}, a: [undefined, () => 1], deep: { b: { c: [1, { d: 2 }] } } }', same: BOTH },
  {
    name: 'console lines and their prefixes',
    code: "console.log('a', 1, { b: 2 }, [1, 2], null, undefined, 's'); console.info('i'); console.warn('w'); console.error('e'); return 'x'",
    // Objects are written as JSON, as the isolated-vm driver does; the published QuickJS
    // driver writes `[object Object]` and `1,2`.
    same: ['node'],
  },
  { name: 'one tool call with events', code: "const r = await external_echo({ s: 'hi', n: [1, 2] }); return r", same: BOTH },
  {
    name: '8 sequential awaited calls',
    code: 'let s = 0; for (let i = 0; i < 8; i++) s = await external_add({ a: s, b: i }); return s',
    // TanStack's QuickJS driver aborts its process here (a WebAssembly memory fault).
    same: BOTH,
  },
  { name: '50 sequential awaited calls', code: 'let s = 0; for (let i = 0; i < 50; i++) s = await external_add({ a: s, b: i }); return s', same: BOTH },
  {
    name: '100 calls in Promise.all',
    code: 'const all = await Promise.all(Array.from({ length: 100 }, (_, i) => external_slow({ i }))); return all.reduce((a, b) => a + b, 0)',
    same: BOTH,
    unordered: true,
  },
  { name: 'a tool that throws, uncaught', code: 'await external_fail({})', same: BOTH },
  {
    name: 'a tool that throws, caught',
    code: 'try { await external_fail({}) } catch (e) { return [e.name, e.message, e instanceof Error] }',
    same: BOTH,
  },
  { name: 'the program throws a TypeError', code: "throw new TypeError('bad input')", same: BOTH },
  { name: 'the program throws a string', code: "throw 'plain'", same: ['node'] },
  { name: 'an undefined variable', code: 'return notDefinedAnywhere', same: ['node'] },
  // Caught by TanStack's own TypeScript stripping, before any driver runs.
  { name: 'a syntax error', code: 'return (', same: BOTH },
  { name: 'an infinite loop', code: 'while (true) {}', timeout: 500, ours: { name: 'TimeoutError' } },
  { name: 'an infinite loop after an await', code: 'await external_echo({}); while (true) {}', timeout: 500, ours: { name: 'TimeoutError' } },
  { name: 'a tool that never answers', code: 'await external_never({})', timeout: 500, ours: { name: 'TimeoutError' } },
  {
    name: 'a memory bomb',
    code: "const a = []; while (true) a.push('x'.repeat(1000) + a.length)",
    memoryLimit: 32,
    timeout: 5000,
    ours: { name: 'MemoryLimitError' },
  },
  {
    name: 'dispose during a pending call',
    // At the driver level (createCodeModeTool owns its context): the pending execution must
    // settle once the context is disposed, and the context then answers DisposedError.
    run: async (driver) => {
      let called
      const seen = new Promise((resolve) => (called = resolve))
      const ctx = await driver.createContext({
        bindings: { external_never: { name: 'external_never', description: '', inputSchema: {}, execute: () => (called(), new Promise(() => {})) } },
        timeout: 10000,
      })
      const running = ctx.execute('return await external_never({})')
      await seen
      await ctx.dispose()
      const settled = await Promise.race([running.then((r) => ({ success: r.success })), new Promise((r) => setTimeout(() => r('still pending after 3 s'), 3000))])
      const after = await ctx.execute('return 1')
      return { settled, after: after.error?.name }
    },
    ours: { settled: { success: false }, after: 'DisposedError' },
  },
  { name: 'deep recursion', code: 'function f(n: number): number { return f(n + 1) + 1 }\nreturn f(0)', ours: { name: 'StackOverflowError' } },
]

export const cases = [...core, ...values, ...language, ...errors, ...console_, ...tools]
