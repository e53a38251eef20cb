// code-mode V8 sidecar: runs model-written JavaScript in isolated-vm isolates on Node 24 and
// talks to the Rust driver (crates/isolate-v8) over stdio, one JSON object per line.
//
// Rust -> sidecar
//   {"op":"run","run":R,"ctx":C,"timeoutMs":T,"maxResultBytes":B,"code":"...",
//    "create":{"memoryMb":M,"bindings":["external_a",...],"maxLogs":N,"maxLogBytes":N}}
//        (`create` on a context's first run only)
//   {"op":"reply","ctx":C,"call":K,"ok":"<json text>"} | {"op":"reply","ctx":C,"call":K,"err":{"name","message"}}
//   {"op":"dispose","ctx":C}
// sidecar -> Rust
//   {"t":"ready","node":"v24.x"}
//   {"t":"log","run":R,"level":"log","msg":"..."}
//   {"t":"call","run":R,"call":K,"name":"external_a","args":<raw json>}
//   {"t":"done","run":R,"value":<raw json>} | {"t":"done","run":R}   (no value: undefined)
//   {"t":"done","run":R,"error":{"kind","name","message","line"}}
//        kind: guest | syntax | timeout | memory | stack | deadlock | result | too_large | disposed | internal
//
// Design rules (see the crate README):
// - Host functions never reject inside this process (a rejected isolated-vm promise can kill
//   Node); tool errors cross as values and the guest rethrows them with the message only.
// - No isolated-vm Reference is reachable from guest globals: the prelude captures them in
//   closures and deletes the temporary globals.
// - The deadline is enforced here by disposing the isolate (isolated-vm's own `timeout` does
//   not cover code running after an await); the Rust side keeps its own, later deadline and
//   kills this process if it stops answering.
'use strict'

const ivm = require('isolated-vm')

const SCRIPT = 'code.js'
const contexts = new Map() // ctx id -> Ctx
const SPARE_MB = Number(process.env.CODE_MODE_V8_SPARE_MB || 128)

// ---------- output, batched per tick ----------
let outBuf = []
let flushScheduled = false
function out(line) {
  outBuf.push(line)
  if (!flushScheduled) {
    flushScheduled = true
    queueMicrotask(flush)
  }
}
function flush() {
  flushScheduled = false
  const text = outBuf.join('\n') + '\n'
  outBuf = []
  process.stdout.write(text)
}
const q = JSON.stringify

// ---------- the prelude: runs inside each fresh context ----------
// It captures the intrinsics it needs before any guest code runs, so a guest that replaces
// JSON, Promise or console cannot break result handling, and installs `console`.
const PRELUDE = `(() => {
  'use strict';
  const hostCall = globalThis.__cm_call, hostLog = globalThis.__cm_log;
  delete globalThis.__cm_call; delete globalThis.__cm_log;
  const stringify = JSON.stringify, parse = JSON.parse, ErrorCtor = Error, StringCtor = String;
  const isError = (v) => v instanceof ErrorCtor;
  const defineProperty = Object.defineProperty, freeze = Object.freeze;
  const apply = Reflect.apply, arrayMap = Array.prototype.map, arrayJoin = Array.prototype.join;
  const typeOf = (v) => typeof v;
  let maxLogs = 0, maxLogBytes = 0, logs = 0, logBytes = 0;

  const fmtError = (e) => {
    const name = e.name, message = e.message;
    return message ? StringCtor(name) + ': ' + StringCtor(message) : StringCtor(name);
  };
  const fmt = (v) => {
    switch (typeOf(v)) {
      case 'string': return v;
      case 'undefined': return 'undefined';
      case 'symbol': return 'Symbol(' + (v.description ?? '') + ')';
      case 'bigint': return StringCtor(v) + 'n';
      case 'function': return v.name ? '[Function: ' + v.name + ']' : '[Function (anonymous)]';
      case 'object': {
        if (v === null) return 'null';
        if (isError(v)) return fmtError(v);
        try { const s = stringify(v); return s === undefined ? 'undefined' : s; }
        catch { try { return StringCtor(v); } catch { return '[unprintable]'; } }
      }
      default: return StringCtor(v);
    }
  };
  const makeLog = (level) => function (...args) {
    if (logs > maxLogs || logBytes > maxLogBytes) return;
    const msg = apply(arrayJoin, apply(arrayMap, args, [fmt]), [' ']);
    logs++; logBytes += msg.length;
    hostLog(level, msg);
  };
  const consoleObject = {};
  for (const level of ['log', 'info', 'warn', 'error', 'debug']) consoleObject[level] = makeLog(level);
  consoleObject.trace = consoleObject.debug;
  defineProperty(globalThis, 'console', { value: consoleObject, writable: true, configurable: true, enumerable: false });

  const makeBinding = (name) => {
    const fn = async function (args) {
      const text = stringify(args === undefined ? {} : args);
      const reply = await hostCall.apply(undefined, [name, text === undefined ? '{}' : text],
        { arguments: { copy: true }, result: { promise: true, copy: true } });
      if (reply[0] === 'v') return parse(reply.slice(1));
      const e = parse(reply.slice(1));
      const err = new ErrorCtor(e.message);
      if (e.name !== 'Error') defineProperty(err, 'name', { value: e.name, writable: true, configurable: true, enumerable: false });
      throw err;
    };
    defineProperty(fn, 'name', { value: name });
    return fn;
  };
  // Installs the bindings and the caps; deletes itself.
  defineProperty(globalThis, '__cm_setup', { configurable: true, enumerable: false, writable: false,
    value: (names, logCap, byteCap) => {
      delete globalThis.__cm_setup;
      maxLogs = logCap; maxLogBytes = byteCap;
      for (const n of names) globalThis[n] = makeBinding(n);
    } });

  const lineOf = (e) => {
    try {
      const stack = StringCtor(e.stack);
      const m = /code\\.js:(\\d+):\\d+/.exec(stack);
      return m ? +m[1] : 0;
    } catch { return 0; }
  };
  // Runs the program; resolves to 'u' (no value), 'v'+json, or 'e'+json(error).
  defineProperty(globalThis, '__cm_run', { configurable: false, enumerable: false, writable: false,
    value: async (main) => {
      let value;
      try { value = await main(); }
      catch (e) {
        if (e === null || e === undefined || (typeOf(e) !== 'object' && typeOf(e) !== 'function')) {
          const t = typeOf(e);
          const message = t === 'string' ? e : (e === null ? 'null' : StringCtor(e)) + ' was thrown';
          return 'e' + stringify({ kind: 'guest', name: 'Error', message, line: 0 });
        }
        let name = e.name, message = e.message;
        name = typeOf(name) === 'string' && name ? name : 'Error';
        message = typeOf(message) === 'string' ? message : (message === undefined ? '' : StringCtor(message));
        return 'e' + stringify({ kind: 'guest', name, message, line: isError(e) ? lineOf(e) : 0 });
      }
      const t = typeOf(value);
      if (t === 'undefined') return 'u';
      const refuse = (what) => 'e' + stringify({ kind: 'result', name: 'ResultError',
        message: 'The returned value is not JSON-serializable: ' + what + ' cannot be returned; return plain data', line: 0 });
      if (t === 'function') return refuse('a function');
      if (t === 'symbol') return refuse('a symbol');
      if (t === 'bigint') return refuse('a BigInt (convert it with Number() or String())');
      let text;
      try { text = stringify(value); }
      catch (e) {
        if (isError(e) && e.name === 'TypeError') return 'e' + stringify({ kind: 'result', name: 'ResultError',
          message: 'The returned value is not JSON-serializable: ' + e.message, line: 0 });
        throw e;
      }
      return text === undefined ? 'u' : 'v' + text;
    } });
})();`

// ---------- isolates ----------
// An isolate is prepared completely (context, host references, prelude) before a context
// asks for it; `link.ctx` tells the host references which context they serve.
async function makeIsolate(memoryMb) {
  const isolate = new ivm.Isolate({ memoryLimit: memoryMb })
  const context = await isolate.createContext()
  const link = { ctx: null }
  // Never rejects: every outcome is a string the guest decodes.
  const call = new ivm.Reference((name, args) => new Promise((resolve) => {
    const ctx = link.ctx
    const run = ctx && ctx.run
    if (!run || run.done) return resolve('e' + q({ name: 'Error', message: 'the execution has ended' }))
    const id = ctx.nextCall++
    ctx.pending.set(id, resolve)
    run.probeGen++
    clearTimeout(run.probeTimer)
    out(`{"t":"call","run":${run.id},"call":${id},"name":${q(name)},"args":${args}}`)
  }))
  const log = new ivm.Callback((level, msg) => {
    const run = link.ctx && link.ctx.run
    if (run && !run.done) out(`{"t":"log","run":${run.id},"level":${q(level)},"msg":${q(msg)}}`)
  }, { ignored: true })
  await context.global.set('__cm_call', call)
  await context.global.set('__cm_log', log)
  await context.eval(PRELUDE)
  // Warm the path every run takes (compile, async function, result encoding): V8 initialises
  // these lazily, and the first run of a context would otherwise pay for it.
  await isolate
    .compileScriptSync(`__cm_run(async function () { return [1, 'a', { b: null }] })`, { filename: SCRIPT })
    .run(context, { promise: true, copy: true })
  return { isolate, context, link, memoryMb }
}

const SPARES = 2
const spares = [] // promises of prepared isolates at SPARE_MB
function refillSpares() {
  while (spares.length < SPARES) spares.push(makeIsolate(SPARE_MB).catch(() => null))
}

async function takeIsolate(memoryMb) {
  while (memoryMb === SPARE_MB && spares.length > 0) {
    const got = await spares.shift()
    if (got && !got.isolate.isDisposed) return got
  }
  return makeIsolate(memoryMb)
}

// Creating an isolate blocks this thread for a millisecond or more, so spares are refilled
// only when no run is in flight (checked again on every finish).
let refillTimer = null
function scheduleRefill() {
  if (refillTimer || spares.length >= SPARES) return
  refillTimer = setTimeout(() => {
    refillTimer = null
    if (active > 0) return
    refillSpares()
  }, 1)
}
let active = 0

class Ctx {
  constructor(id) {
    this.id = id
    this.isolate = null
    this.context = null
    this.pending = new Map() // call id -> resolve
    this.nextCall = 1
    this.run = null // current run: { id, done, killedBy, timer, probeGen }
    this.dead = null // what ended the isolate, once it is gone
  }

  async create(spec) {
    const prepared = await takeIsolate(spec.memoryMb)
    prepared.link.ctx = this
    this.isolate = prepared.isolate
    this.context = prepared.context
    this.memoryMb = spec.memoryMb
    this.setup = `__cm_setup(${q(spec.bindings)},${spec.maxLogs},${spec.maxLogBytes});`
  }

  reply(msg) {
    const resolve = this.pending.get(msg.call)
    if (!resolve) return
    this.pending.delete(msg.call)
    resolve(msg.ok !== undefined ? 'v' + msg.ok : 'e' + q(msg.err))
    if (this.pending.size === 0 && this.run && !this.run.done) this.armProbe(this.run)
  }

  // Arms the deadlock probe a little later, so busy programs (and sequential tool calls)
  // never pay for it; any tool call in between disarms it.
  armProbe(run) {
    clearTimeout(run.probeTimer)
    run.probeTimer = setTimeout(() => this.probe(run), 5)
  }

  finish(run, payload) {
    if (run.done) return
    run.done = true
    active--
    clearTimeout(run.timer)
    clearTimeout(run.probeTimer)
    if (this.run === run) this.run = null
    for (const resolve of this.pending.values()) resolve('e' + q({ name: 'Error', message: 'the execution has ended' }))
    this.pending.clear()
    out(`{"t":"done","run":${run.id}${payload}}`)
    scheduleRefill()
  }

  fail(run, kind, name, message, line) {
    this.finish(run, `,"error":${q({ kind, name, message, line: line || 0 })}`)
  }

  // Deadlock detection: when no tool call is pending, two round trips through the isolate's
  // task queue drain its microtasks; if the program is still pending and nothing new
  // started, nothing can ever settle it.
  async probe(run) {
    const gen = run.probeGen
    try {
      for (let i = 0; i < 2; i++) {
        await this.context.eval('0')
        await new Promise(setImmediate)
        if (run.done || run.probeGen !== gen || this.pending.size > 0) return
      }
    } catch {
      return
    }
    this.fail(run, 'deadlock', 'DeadlockError',
      'The program is awaiting a promise that can never settle (no tool call is pending and nothing else can resolve it)')
  }

  dispose() {
    const isolate = this.isolate
    if (isolate && !isolate.isDisposed) {
      setImmediate(() => { try { if (!isolate.isDisposed) isolate.dispose() } catch {} })
    }
    if (this.run) this.fail(this.run, 'disposed', 'DisposedError', 'The context was disposed during the execution')
    contexts.delete(this.id)
  }

  async execute(msg) {
    const run = { id: msg.run, done: false, killedBy: null, timer: null, probeTimer: null, probeGen: 0 }
    active++
    if (this.dead) return this.fail(run, 'disposed', 'DisposedError', 'The context was stopped by an earlier ' + this.dead + ' and cannot run code anymore')
    this.run = run
    run.timer = setTimeout(() => {
      run.killedBy = 'timeout'
      this.dead = 'timeout'
      try { if (this.isolate && !this.isolate.isDisposed) this.isolate.dispose() } catch {}
      this.fail(run, 'timeout', 'TimeoutError', `Execution exceeded the timeout of ${msg.timeoutMs} ms`)
    }, msg.timeoutMs)
    let setup = ''
    try {
      if (msg.create) {
        await this.create(msg.create)
        setup = this.setup
      }
    } catch (e) {
      return this.fail(run, 'internal', 'Error', 'cannot create the isolate: ' + String(e && e.message))
    }
    if (run.done) return
    let script
    try {
      script = this.isolate.compileScriptSync(`${setup}__cm_run(async function () {${msg.code}\n})`, { filename: SCRIPT })
    } catch (e) {
      if (run.done) return
      const message = String(e && e.message)
      const m = /\[code\.js:(\d+):\d+\]$/.exec(message)
      const name = e && e.name === 'SyntaxError' ? 'SyntaxError' : 'Error'
      const clean = message.replace(/ \[code\.js:\d+:\d+\]$/, '')
      if (/memory limit/.test(message) || (this.isolate.isDisposed && !run.killedBy)) return this.memory(run, msg)
      if (/Maximum call stack size exceeded/.test(message)) return this.stack(run)
      return this.fail(run, name === 'SyntaxError' ? 'syntax' : 'guest', name, clean, m ? +m[1] : 0)
    }
    const result = script.run(this.context, { promise: true, copy: true })
    this.armProbe(run)
    let text
    try {
      text = await result
    } catch (e) {
      if (run.done) return
      const message = String(e && e.message)
      if (/memory limit/.test(message) || (this.isolate.isDisposed && !run.killedBy)) return this.memory(run, msg)
      if (/Maximum call stack size exceeded/.test(message)) return this.stack(run)
      return this.fail(run, 'guest', (e && e.name) || 'Error', message)
    } finally {
      try { script.release() } catch {}
    }
    if (run.done) return
    if (typeof text !== 'string') return this.fail(run, 'internal', 'Error', 'the program ended without a result')
    if (text === 'u') return this.finish(run, '')
    if (text[0] === 'v') {
      const bytes = Buffer.byteLength(text) - 1
      if (bytes > msg.maxResultBytes) {
        return this.fail(run, 'too_large', 'ResultTooLargeError', `The result is ${bytes} bytes of JSON, above the limit of ${msg.maxResultBytes} bytes; return less data`)
      }
      return this.finish(run, `,"value":${text.slice(1)}`)
    }
    const err = JSON.parse(text.slice(1))
    if (err.kind === 'guest' && err.name === 'RangeError' && /Maximum call stack size exceeded/.test(err.message)) return this.stack(run)
    if (err.kind === 'guest' && err.name === 'RangeError' && /Array buffer allocation failed/.test(err.message)) return this.memory(run, msg)
    return this.fail(run, err.kind, err.name, err.message, err.line)
  }

  memory(run, msg) {
    this.dead = 'out-of-memory failure'
    try { if (!this.isolate.isDisposed) this.isolate.dispose() } catch {}
    this.fail(run, 'memory', 'MemoryLimitError', `Execution exceeded the memory limit of ${this.memoryMb} MiB`)
  }

  stack(run) {
    this.dead = 'stack overflow'
    try { if (!this.isolate.isDisposed) this.isolate.dispose() } catch {}
    this.fail(run, 'stack', 'StackOverflowError', 'Maximum call stack size exceeded')
  }
}

// ---------- input ----------
function handle(msg) {
  switch (msg.op) {
    case 'run': {
      let ctx = contexts.get(msg.ctx)
      if (!ctx) {
        ctx = new Ctx(msg.ctx)
        contexts.set(msg.ctx, ctx)
      }
      ctx.execute(msg).catch((e) => {
        if (ctx.run) ctx.fail(ctx.run, 'internal', 'Error', 'sidecar failure: ' + String(e && e.message))
      })
      break
    }
    case 'reply': {
      const ctx = contexts.get(msg.ctx)
      if (ctx) ctx.reply(msg)
      break
    }
    case 'dispose': {
      const ctx = contexts.get(msg.ctx)
      if (ctx) ctx.dispose()
      break
    }
    case 'ping':
      out(`{"t":"pong","id":${Number(msg.id)}}`)
      break
    default:
      break
  }
}

let inBuf = ''
process.stdin.setEncoding('utf8')
process.stdin.on('data', (chunk) => {
  inBuf += chunk
  let nl
  while ((nl = inBuf.indexOf('\n')) >= 0) {
    const line = inBuf.slice(0, nl)
    inBuf = inBuf.slice(nl + 1)
    if (!line) continue
    let msg
    try { msg = JSON.parse(line) } catch { continue }
    handle(msg)
  }
})
process.stdin.on('end', () => process.exit(0))
// A rejection nobody handled must never take the process (and every context in it) down.
process.on('unhandledRejection', () => {})

refillSpares()
out(`{"t":"ready","node":${q(process.version)}}`)
