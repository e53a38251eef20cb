// Differential cases: what a program throws, and how it reaches the result.
const BOTH = ['quickjs', 'node']
const err = (name, code, same = BOTH) => ({ name: `error: ${name}`, code, same })

export const errors = [
  // TanStack's node driver's words (its QuickJS driver says `QuickJSUnwrapError`).
  err('throw a number', 'throw 42', ['node']),
  // TanStack's node driver's words (its QuickJS driver says `QuickJSUnwrapError`).
  err('throw null', 'throw null', ['node']),
  // TanStack's node driver's words (its QuickJS driver says `QuickJSUnwrapError`).
  err('throw undefined', 'throw undefined', ['node']),
  err('throw a plain object with a message', "throw { message: 'plain object', code: 7 }", ['node']),
  err('a custom Error subclass', "class MyError extends Error { constructor(m: string) { super(m); this.name = 'MyError' } }\nthrow new MyError('custom')"),
  err('a RangeError from the engine', 'return new Array(-1)', ['quickjs']),
  err('a URIError from the engine', "return decodeURIComponent('%')", ['quickjs']),
  err('an error with a cause', "throw new Error('outer', { cause: new Error('inner') })"),
  err('an AggregateError from Promise.any', 'await Promise.any([Promise.reject(new Error("a"))])', ['quickjs']),
  err('a rejected promise awaited', "await Promise.reject(new RangeError('rejected'))"),
  err('a rejection with a string', "await Promise.reject('just text')", ['node']),
  err('an error thrown in finally', "try { return 1 } finally { throw new Error('from finally') }"),
  err('a reference error inside an async function', 'const f = async () => missingName; return await f()', ['node']),
  err('calling undefined', 'const o: any = {}; return o.nope()', ['quickjs']),
  err('reading a property of null', 'const o: any = null; return o.x', ['quickjs']),
  err('JSON.parse of bad text', "return JSON.parse('{bad')", ['node']),
  err('an error caught and returned as fields', "try { null!.x } catch (e) { return [(e as Error).name, e instanceof TypeError] }"),
  err('an error rethrown after a tool call', "try { await external_fail({}) } catch (e) { throw new Error('wrapped: ' + (e as Error).message) }"),
  err('a TypeScript syntax error in a type', 'const x: = 1', ['node']),
  err('an unterminated string', "return 'abc", ['node']),
]
