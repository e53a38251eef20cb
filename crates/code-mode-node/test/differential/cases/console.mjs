// Differential cases: console output, as TanStack's drivers record it in `logs`.
const BOTH = ['quickjs', 'node']
const log = (name, code, same = BOTH) => ({ name: `console: ${name}`, code, same })

export const console_ = [
  log('no arguments', 'console.log(); return 1'),
  log('numbers, booleans and null', 'console.log(1, 2.5, true, null); return 1'),
  log('a nested object', 'console.log({ a: { b: { c: [1, 2] } } }); return 1', ['node']),
  log('an array', 'console.log([1, "two", null]); return 1', ['node']),
  // isolated-vm copies an Error as `{}`; both QuickJS drivers print `Error: shown`.
  log('an Error', "console.log(new Error('shown')); return 1", ['quickjs']),
  log('unicode', "console.log('日本語 ✓ 🎉'); return 1"),
  log('100 lines', 'for (let i = 0; i < 100; i++) console.log("line", i); return 1'),
  log('warn and error prefixes', "console.warn('careful'); console.error('broken'); return 1"),
  log('console.info with several arguments', "console.info('a', 'b', 3); return 1"),
  log('logging before a failure', "console.log('before'); throw new Error('after the log')"),
  log('logging inside a tool callback chain', "const r = await external_echo({ v: 1 }); console.log('got', r.v); return r.v"),
  log('a string with newlines', "console.log('one\\ntwo'); return 1"),
]
