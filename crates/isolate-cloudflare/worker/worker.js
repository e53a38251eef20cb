// code-mode Worker: runs model-written code in a Dynamic Worker and calls the host's tools
// back over the same WebSocket, so each tool call executes exactly once and the program
// never re-runs (unlike TanStack's request/response rounds).
//
// Protocol (one WebSocket per execution, JSON text frames):
//   driver -> worker  {"t":"run","code":"<JS function body>","memoryBytes":N,
//                      "setup":{"bindings":["external_a",...],"maxLogs":N,"maxLogBytes":N,
//                               "maxCalls":N,"maxResultBytes":N}}
//                     (setup: the core's PreludeSetup, handed to the prelude's setup as is)
//   worker -> driver  {"t":"log","level":"log","msg":"..."}
//                     {"t":"call","id":K,"name":"external_a","args":"<json text>"}
//                     {"t":"idle"}   the program's code stopped running: it waits for tool
//                                    results (sent after its start and after each delivery,
//                                    once its microtasks drained); the driver's clock, held
//                                    while an approval is pending, stops only between an idle
//                                    frame and the next reply, so guest code is always charged
//   driver -> worker  {"t":"reply","id":K,"ok":"<json text>"} | {"t":"reply","id":K,"err":{"name","message"}}
//   worker -> driver  {"t":"done","value":"<json text>"} | {"t":"done"} | {"t":"done","error":{"kind","name","message","line"}}
//
// Security:
// - `Authorization` is compared with env.AUTH_TOKEN in constant time (both SHA-256 hashed,
//   then crypto.subtle.timingSafeEqual); no token configured means no check (local only).
// - Frames above MAX_FRAME bytes or of unknown shape close the socket with an error.
// - The model's code runs in a fresh Dynamic Worker (env.LOADER) with no bindings and no
//   outbound network (globalOutbound: null). Production Workers forbid eval, so the code is
//   a module of that worker. Only when env.ALLOW_UNSAFE_EVAL is "true" and there is no
//   loader (old local setups) does it fall back to env.UNSAFE_EVAL.
import { RpcTarget } from 'cloudflare:workers'
// The core's guest prelude (`code_mode::driver::GUEST_PRELUDE`), a text module: the driver
// writes it next to this file, and `worker/guest-prelude.txt` links to it for deploying.
import GUEST_PRELUDE from './guest-prelude.txt'

// Frames from the (authenticated) driver: the program and tool results. Tool results are not
// capped below what the other drivers accept; this only bounds a broken client.
const MAX_FRAME = 64 * 1024 * 1024
// Lines of the program module before the model's first line: the core's wrapper
// (`code_mode::driver::program_source`, sent in each run) puts the code on its second line
// (`PROGRAM_FIRST_LINE`; a Rust test holds the two together).
const PREFIX_LINES = 1

async function authorized(request, env) {
  const expected = env.AUTH_TOKEN
  if (!expected) return true
  const given = request.headers.get('Authorization') || ''
  const enc = new TextEncoder()
  const [a, b] = await Promise.all([
    crypto.subtle.digest('SHA-256', enc.encode(given)),
    crypto.subtle.digest('SHA-256', enc.encode(`Bearer ${expected}`)),
  ])
  return crypto.subtle.timingSafeEqual(a, b)
}

function fail(kind, name, message, line = 0, size = 0, tool = false) {
  return tool === true
    ? { kind, name, message: String(message), line, size, tool }
    : { kind, name, message: String(message), line, size }
}

// What the program's realm may report about the program; limits (timeout, memory, stack,
// deadlock) are only ever said by the runtime or the host, never by the realm that ran the
// program (a program that hijacked an intrinsic could write any record there).
const GUEST_KINDS = new Set(['guest', 'syntax', 'result', 'too_large'])

// The program module's outcome: 'u' (no value), 'v' + JSON text, or 'e' + JSON error record.
// Anything else (the module is the program's realm) is an internal failure, never trusted.
function decodeOutcome(text) {
  if (typeof text === 'string') {
    if (text === 'u') return {}
    if (text[0] === 'v') return { value: text.slice(1) }
    if (text[0] === 'e') {
      let e = null
      try { e = JSON.parse(text.slice(1)) } catch {}
      if (e && GUEST_KINDS.has(e.kind) && typeof e.name === 'string' && typeof e.message === 'string') {
        const line = Number.isInteger(e.line) && e.line > 0 ? e.line : 0
        const size = Number.isSafeInteger(e.size) && e.size > 0 ? e.size : 0
        // `tool` (the thrown value is a tool call's error) can only make a failure the
        // program's own, so it is passed on as the realm said it.
        return { error: fail(e.kind, e.name, e.message, line, size, e.tool === true) }
      }
    }
  }
  return { error: fail('internal', 'Error', 'the program ended without a readable result') }
}

// The two modules a Dynamic Worker runs. The program is alone in its own module, as the
// default export: an arrow function with nothing else declared in its scope, so it can
// neither read nor change the machinery (`host`, `caps`, the prelude, the memory budget, the
// bindings' closures, the entrypoint), its `this` is undefined and it has no `arguments`.
// Console, bindings, the result's encoding and its size limit are the core's guest prelude
// (`guest-prelude.txt`), the same JavaScript every driver runs; what is here is what only a
// Worker needs.
function programModule(program) {
  return `export default ${program};
`
}

// The entry module. `run` is a plain method returning a promise made from the `Promise`
// taken before the program ran, resolved with a string: the runtime settles it natively, so
// no `then` or `constructor` the program may have replaced is looked up to deliver the
// outcome (an `async run` would look up `Promise.prototype.constructor` at its `await`, and a
// program that replaced it could end the run with a forged outcome).
function entryModule(program) {
  // The program's last line in its module (the wrapper's closing line is the one after):
  // frames past it are not the program's.
  const lastLine = program.split(/\r\n|[\n\r\u2028\u2029]/).length - 1
  return `// code-mode entry module
import { WorkerEntrypoint } from 'cloudflare:workers';
import program from './program.js';
export default class extends WorkerEntrypoint { run(host, caps) {
  // Taken before the program runs: it may replace any of them.
  const PromiseCtor = Promise;
  const later = setTimeout;
  // Stack traces show the program's frames only (this module's, \`main.js\`, are left out),
  // formatted with built-ins taken now; the formatter is locked, so no program gets the
  // call-site API or sees the machinery's names through an error.
  const errorToString = Error.prototype.toString, applyNow = Reflect.apply;
  Object.defineProperty(Error, 'prepareStackTrace', { writable: false, configurable: false, enumerable: false, value: (err, frames) => {
    let out;
    try { out = applyNow(errorToString, err, []); } catch { out = 'Error'; }
    for (let i = 0; i < frames.length; i++) {
      try { if (frames[i].getFileName() !== 'main.js') out += '\\n    at ' + frames[i]; } catch {}
    }
    return out;
  } });
  // Tells the driver once the program's code stopped running (a timer task runs only after
  // the microtasks the last entry queued): see the idle frame in worker.js.
  let idleQueued = false;
  const idle = () => {
    if (idleQueued) return;
    idleQueued = true;
    later(() => { idleQueued = false; host.idle(); }, 0);
  };
  // The contract: no network, timers or host objects in the sandbox (the Dynamic Worker has
  // no outbound network anyway; removing the globals makes that visible to the program).
  // They are removed from every object of the global's prototype chain, not only shadowed,
  // so \`Object.getPrototypeOf(globalThis).fetch\` finds nothing either.
  // \`structuredClone\` and \`WebAssembly\` allocate memory no wrapper here can count.
  for (const n of ['fetch', 'WebSocket', 'navigator', 'setTimeout', 'setInterval', 'setImmediate', 'clearTimeout', 'clearInterval', 'clearImmediate', 'XMLHttpRequest', 'EventSource', 'caches', 'scheduler', 'connect', 'process', 'require', 'Buffer', 'structuredClone', 'WebAssembly']) {
    for (let o = globalThis; o !== null; o = Object.getPrototypeOf(o)) {
      try { delete o[n]; } catch {}
      try { if (Object.getOwnPropertyDescriptor(o, n)) Object.defineProperty(o, n, { value: undefined, writable: false, configurable: false }); } catch {}
    }
    try { if (globalThis[n] !== undefined) Object.defineProperty(globalThis, n, { value: undefined, writable: false, configurable: false }); } catch {}
  }
  // Buffer allocations are charged to the execution's memory limit (Cloudflare enforces
  // 128 MB per isolate itself; a local workerd enforces nothing, so this keeps the contract
  // for the allocations that would otherwise succeed at any size).
  let budget = caps.memoryBytes;
  const charge = (bytes) => {
    const n = typeof bytes === 'number' && bytes > 0 ? bytes : 0;
    if (n > budget) throw new RangeErrorCtor('Array buffer allocation failed');
    budget -= n;
  };
  // Every way to make a buffer is charged before it is made, from the same value the
  // constructor then receives (no second read of a program's getter): a byte length, a typed
  // array's element count or an array-like's \`length\`, a transfer's new length. Resizable
  // and growable buffers grow without any constructor: refused.
  // Taken now: the guards run after the program may have replaced any of them.
  const construct = Reflect.construct, apply = Reflect.apply, arrayFrom = Array.from, isView = ArrayBuffer.isView;
  const NumberCtor = Number, RangeErrorCtor = RangeError;
  const abByteLength = Object.getOwnPropertyDescriptor(ArrayBuffer.prototype, 'byteLength').get;
  const isBuffer = (v) => { try { apply(abByteLength, v, []); return true; } catch { return false; } };
  const guard = (Ctor, size) => {
    if (typeof Ctor !== 'function') return;
    const P = new Proxy(Ctor, { construct(t, args, nt) {
      if (args.length > 1 && args[1] !== null && typeof args[1] === 'object' && 'maxByteLength' in args[1] && (Ctor === ArrayBuffer || Ctor === globalThis.SharedArrayBuffer)) {
        throw new RangeErrorCtor('Array buffer allocation failed: resizable and growable buffers are not available in this sandbox');
      }
      const fixed = size(args);
      charge(fixed.bytes);
      return construct(t, fixed.args, nt === P ? t : nt);
    } });
    try { Object.defineProperty(Ctor.prototype, 'constructor', { value: P, writable: true, configurable: true }); } catch {}
    globalThis[Ctor.name] = P;
  };
  const byteLength = (a) => { const n = NumberCtor(a[0]) || 0; return { bytes: n, args: [n] }; };
  guard(ArrayBuffer, byteLength);
  guard(globalThis.SharedArrayBuffer, byteLength);
  for (const T of [Int8Array, Uint8Array, Uint8ClampedArray, Int16Array, Uint16Array, Int32Array, Uint32Array, Float32Array, Float64Array, BigInt64Array, BigUint64Array]) {
    guard(T, (a) => {
      const first = a[0];
      if (typeof first === 'number') return { bytes: first * T.BYTES_PER_ELEMENT, args: [first] };
      if (first !== null && typeof first === 'object' && !isBuffer(first) && !isView(first)) {
        // An array-like or iterable: copied once into a plain array, so its length is read once.
        const items = arrayFrom(first);
        return { bytes: items.length * T.BYTES_PER_ELEMENT, args: [items] };
      }
      return { bytes: 0, args: a };
    });
  }
  for (const name of ['transfer', 'transferToFixedLength']) {
    const original = ArrayBuffer.prototype[name];
    if (typeof original !== 'function') continue;
    Object.defineProperty(ArrayBuffer.prototype, name, { configurable: true, writable: true, value: function (length) {
      const n = length === undefined ? apply(abByteLength, this, []) : NumberCtor(length) || 0;
      charge(n);
      return apply(original, this, [n]);
    } });
  }
  // Console lines are sent as they happen; the outcome waits for them, so none is lost and
  // they arrive in order (calls on one stub keep their order). Tool replies cross as text
  // ('v' + JSON, 'e' + JSON error): resolving a promise with an object looks up its \`then\`.
  // RPC promises have their own \`then\`, which the program cannot reach.
  const sent = [];
  const api = (${GUEST_PRELUDE})({
    call: (id, name, text) => {
      host.call(name, text).then((reply) => { api.deliver(id, reply); idle(); }, () => api.deliver(id, 'e{"name":"Error","message":"the execution has ended"}'));
    },
    log: (level, msg) => { sent[sent.length] = host.log(level, msg); },
    frames: /program\\.js:(\\d+):\\d+/g,
    firstLine: ${PREFIX_LINES + 1},
    lastLine: ${lastLine},
  });
  api.setup(caps.setup);
  const outcome = new PromiseCtor((resolve) => api.run(program, (outcome) => {
    let left = sent.length;
    if (left === 0) return resolve(outcome);
    const one = () => { if (--left === 0) resolve(outcome); };
    for (let i = 0; i < sent.length; i++) sent[i].then(one, one);
  }));
  idle();
  return outcome;
} }
`
}

class Host extends RpcTarget {
  constructor(socket) {
    super()
    this.socket = socket
    this.pending = new Map()
    this.next = 1
    this.closed = false
  }
  send(msg) {
    if (!this.closed) this.socket.send(JSON.stringify(msg))
  }
  log(level, msg) {
    this.send({ t: 'log', level, msg: String(msg).toWellFormed() })
  }
  idle() {
    this.send({ t: 'idle' })
  }
  // Never rejects: resolves to 'v' + the result's JSON text or 'e' + {name, message} as JSON
  // (text, so no \`then\` of the program's realm is looked up on it).
  call(name, args) {
    if (this.closed) return 'e' + JSON.stringify({ name: 'Error', message: 'the execution has ended' })
    const id = this.next++
    return new Promise((resolve) => {
      this.pending.set(id, resolve)
      this.send({ t: 'call', id, name, args })
    })
  }
  reply(msg) {
    const resolve = this.pending.get(msg.id)
    if (!resolve) return
    this.pending.delete(msg.id)
    resolve(msg.ok !== undefined ? 'v' + String(msg.ok) : 'e' + JSON.stringify({ name: String(msg.err?.name || 'Error'), message: String(msg.err?.message || '') }))
  }
  end() {
    this.closed = true
    for (const resolve of this.pending.values()) resolve('e' + JSON.stringify({ name: 'Error', message: 'the execution has ended' }))
    this.pending.clear()
  }
}

let counter = 0

async function execute(env, socket, host, run) {
  const s = run.setup
  const caps = {
    memoryBytes: run.memoryBytes,
    setup: { bindings: s.bindings, maxLogs: s.maxLogs, maxLogBytes: s.maxLogBytes, maxCalls: s.maxCalls, maxResultBytes: s.maxResultBytes },
  }
  let outcome
  if (env.LOADER) {
    const id = `exec-${Date.now()}-${counter++}-${Math.random().toString(36).slice(2)}`
    let worker
    try {
      const code = {
        compatibilityDate: '2025-06-01',
        mainModule: 'main.js',
        modules: { 'main.js': entryModule(run.program), 'program.js': programModule(run.program) },
        env: {},
        globalOutbound: null,
      }
      // `load` makes a fresh Worker that is not cached: every program is new code, and
      // `get` keeps each ID's isolate warm (a local workerd never let them go: about
      // 1.7 MB per execution). `get` remains for runtimes without `load`.
      worker = typeof env.LOADER.load === 'function' ? env.LOADER.load(code) : env.LOADER.get(id, async () => code)
      const entrypoint = worker.getEntrypoint()
      try {
        outcome = decodeOutcome(await entrypoint.run(host, caps))
      } finally {
        // Stubs hold the dynamic Worker (and its isolate) until disposed.
        try { entrypoint[Symbol.dispose]?.() } catch {}
        try { worker[Symbol.dispose]?.() } catch {}
      }
    } catch (e) {
      // The runtime's own error (the program's realm settles \`run\` with a string only, and
      // can neither reject it nor reach this realm): loading failed (a syntax error in the
      // program module), or workerd stopped the Dynamic Worker (its memory or CPU limit, a
      // hang). The driver reads workerd's limit phrases from these \`internal\` records alone.
      const message = String(e && e.message)
      const syntax = /SyntaxError/.test(message)
      const m = /program\.js:(\d+):\d+/.exec(message)
      outcome = {
        error: syntax
          ? fail('syntax', 'SyntaxError', message.replace(/^[\s\S]*?Uncaught SyntaxError: /, '').split('\n')[0], m ? Math.max(0, +m[1] - PREFIX_LINES) : 0)
          : fail('internal', 'Error', 'the sandbox failed: ' + message),
      }
    }
  } else if (env.UNSAFE_EVAL && env.ALLOW_UNSAFE_EVAL === 'true') {
    outcome = { error: fail('internal', 'Error', 'UNSAFE_EVAL fallback is not supported by this Worker version; configure a worker_loader binding named LOADER') }
  } else {
    outcome = { error: fail('internal', 'Error', 'this Worker has no LOADER (worker_loader) binding; see the crate README') }
  }
  host.end()
  const done = { t: 'done' }
  if (outcome.error) done.error = outcome.error
  else if (outcome.value !== undefined) done.value = outcome.value
  socket.send(JSON.stringify(done))
  socket.close(1000, 'done')
}

export default {
  async fetch(request, env) {
    const url = new URL(request.url)
    if (url.pathname === '/health') return new Response('ok')
    if (url.pathname !== '/execute') return new Response('not found', { status: 404 })
    if (!(await authorized(request, env))) return new Response('unauthorized', { status: 401 })
    if (request.headers.get('Upgrade') !== 'websocket') {
      return new Response('expected a WebSocket upgrade', { status: 426 })
    }
    const pair = new WebSocketPair()
    const [client, socket] = Object.values(pair)
    socket.accept()
    const host = new Host(socket)
    let started = false
    const reject = (why) => {
      try {
        socket.send(JSON.stringify({ t: 'done', error: fail('protocol', 'Error', why) }))
        socket.close(1008, 'bad request')
      } catch {}
      host.end()
    }
    socket.addEventListener('message', (event) => {
      const data = event.data
      if (typeof data !== 'string' || data.length > MAX_FRAME) return reject('frames must be JSON text of at most 64 MiB')
      let msg
      try { msg = JSON.parse(data) } catch { return reject('a frame is not JSON') }
      if (msg && msg.t === 'reply' && Number.isInteger(msg.id)) return host.reply(msg)
      const setup = msg && msg.setup
      if (msg && msg.t === 'run' && !started && typeof msg.program === 'string' && Number.isFinite(msg.memoryBytes)
        && setup !== null && typeof setup === 'object' && Array.isArray(setup.bindings)
        && setup.bindings.every((b) => typeof b === 'string' && /^[A-Za-z_$][\w$]*$/.test(b))
        && [setup.maxLogs, setup.maxLogBytes, setup.maxResultBytes, setup.maxCalls].every(Number.isSafeInteger)) {
        started = true
        execute(env, socket, host, msg).catch((e) => reject('internal failure: ' + String(e && e.message)))
        return
      }
      reject('unexpected frame')
    })
    socket.addEventListener('close', () => host.end())
    return new Response(null, { status: 101, webSocket: client })
  },
}
