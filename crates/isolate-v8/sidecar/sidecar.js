// code-mode V8 sidecar: runs model-written JavaScript in isolated-vm isolates on Node 24 and
// talks to the Rust driver (crates/isolate-v8) over stdio, one JSON object per line.
//
// Rust -> sidecar
//   {"op":"run","run":R,"ctx":C,"timeoutMs":T,"maxResultBytes":B,"program":"...",
//    "create":{"memoryMb":M,"setup":{"bindings":["external_a",...],"maxLogs":N,"maxLogBytes":N,"maxCalls":N,"maxResultBytes":N}}}
//        (`create` on a context's first run only)
//   {"op":"reply","ctx":C,"call":K,"ok":"<json text>"} | {"op":"reply","ctx":C,"call":K,"err":{"name","message"}}
//   {"op":"dispose","ctx":C}
// sidecar -> Rust
//   {"t":"ready","node":"v24.x"}
// Arguments: --contexts-per-isolate=N (see `recycle`; default 1).
//   {"t":"spares","ready":N,"making":M,"made":K}   (isolates prepared for new contexts, in the
//                                                  making, and made since start)
//   {"t":"log","run":R,"level":"log","msg":"..."}
//   {"t":"call","run":R,"call":K,"name":"external_a","args":<raw json>}
//   {"t":"done","run":R,"value":<raw json>} | {"t":"done","run":R}   (no value: undefined)
//   {"t":"done","run":R,"error":{"kind","name","message","line"}}
//        kind: guest | syntax | timeout | memory | stack | deadlock | result | too_large | disposed | internal
//   {"t":"retiring"}   (an isolate's thread stays held past its disposal: no new contexts here;
//                       the process ends itself once its runs in flight are done)
//   {"t":"refused","run":R}   (a run creating its context reached a retiring sidecar: nothing
//                              of it ran; the driver places it on another sidecar)
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
const { performance } = require('perf_hooks')

const SCRIPT = 'code.js'
const contexts = new Map() // ctx id -> Ctx
const SPARE_MB = Number(process.env.CODE_MODE_V8_SPARE_MB || 128)
// How many contexts, one after another, an isolate may serve (`--contexts-per-isolate=N`;
// 1: a fresh isolate per context). See `recycle`.
const CONTEXTS_PER_ISOLATE = (() => {
  const arg = process.argv.find((a) => a.startsWith('--contexts-per-isolate='))
  const n = arg ? Number(arg.slice(arg.indexOf('=') + 1)) : 1
  return Number.isSafeInteger(n) && n >= 1 ? n : 1
})()
// An isolate whose heap holds more than this when its context is disposed is not reused:
// the next program would pay for collecting the earlier one's garbage.
const RECYCLE_HEAP_BYTES = 16 * 1024 * 1024

// ---------- output, batched per tick ----------
let outBuf = []
let flushScheduled = false
let outBytes = 0
function out(line) {
  outBuf.push(line)
  outBytes += line.length
  // A program producing lines in one long synchronous stretch is flushed as it goes.
  if (outBytes > 65536) return flush()
  if (!flushScheduled) {
    flushScheduled = true
    queueMicrotask(flush)
  }
}
function flush() {
  flushScheduled = false
  if (outBuf.length === 0) return
  const text = outBuf.join('\n') + '\n'
  outBuf = []
  outBytes = 0
  process.stdout.write(text)
}
const q = JSON.stringify

// One nesting limit for values crossing to the host: code_mode::MAX_VALUE_DEPTH, with the
// core's wording (a Rust test checks both). Checked on the JSON text, before a line that
// embeds it is written: the host's parser would refuse a deeper line and the run would
// never end.
const MAX_VALUE_DEPTH = 64
function jsonDepth(text) {
  let depth = 0, max = 0, str = false, esc = false
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (str) {
      if (esc) esc = false
      else if (c === 92) esc = true
      else if (c === 34) str = false
      continue
    }
    if (c === 34) str = true
    else if (c === 91 || c === 123) { if (++depth > max) max = depth }
    else if (c === 93 || c === 125) depth--
  }
  return max
}
function tooDeep(what, depth) {
  return `${what} nests ${depth} levels of arrays and objects deep; the limit is ${MAX_VALUE_DEPTH}: pass flatter data`
}

// ---------- the prelude: runs inside each fresh context ----------
// The core's guest prelude (`code_mode::driver::GUEST_PRELUDE`: console, bindings, result
// encoding, failure records), put here by the driver when it writes this script
// (`runtime.rs`), handed to `v8Hooks` below.
const GUEST_PRELUDE = /* GUEST_PRELUDE */ null
// The line of the program (`code_mode::driver::program_source`, the core's wrapper around the
// model's code, sent in each run) on which the code starts; put here by the driver too.
const PROGRAM_FIRST_LINE = /* PROGRAM_FIRST_LINE */ 1

// Connects the prelude's hooks to this sidecar, inside the context (its source is evaluated
// there, never called here). The host functions it receives are fire-and-forget isolated-vm
// Callbacks (`__cm_call`, `__cm_log`, `__cm_done`): the guest never waits for this thread.
// Each carries the run's token, so a line queued by an earlier run (or by the warm-up) is
// never taken for the current run's. They are kept in closures and the globals deleted.
// `__cm_setup` runs before the first program and deletes itself; `__cm_run` and
// `__cm_deliver` are taken out by the sidecar as references and deleted, so guest code can
// reach none of them.
function v8Hooks(prelude, firstLine) {
  'use strict'
  const hostCall = globalThis.__cm_call, hostLog = globalThis.__cm_log, hostDone = globalThis.__cm_done
  delete globalThis.__cm_call; delete globalThis.__cm_log; delete globalThis.__cm_done
  // Stack traces show the program's frames only: isolated-vm's and the prelude's frames
  // (`<isolated-vm>`) are left out, and the formatter cannot be replaced, so no program sees
  // the machinery's functions or names through an error.
  // Everything the formatter uses is taken now: it runs after the program may have replaced
  // `Reflect.apply` or `Array.prototype.filter`, and must not call the program's functions.
  const errorToString = Error.prototype.toString, apply = Reflect.apply
  const getFileName = (f) => f.getFileName()
  const format = (err, frames) => {
    let head
    try { head = apply(errorToString, err, []) } catch { head = 'Error' }
    let out = head
    for (let i = 0; i < frames.length; i++) {
      try { if (getFileName(frames[i]) !== '<isolated-vm>') out += '\n    at ' + frames[i] } catch {}
    }
    return out
  }
  Object.defineProperty(Error, 'prepareStackTrace', { value: format, writable: false, configurable: false, enumerable: false })
  // WebAssembly memories are allocated outside the isolate's heap limit: a program could grow
  // one far past its memory limit. No other driver offers WebAssembly; neither does this one.
  delete globalThis.WebAssembly
  // Resizable and growable buffers reserve their maximum outside the allocator that counts an
  // isolate's memory and grow without it: a program could reach gigabytes under a 64 MiB
  // limit. They are refused (their constructors take no options here), as their memory
  // cannot be counted; fixed-size buffers are counted by isolated-vm's allocator.
  //
  // When that allocator refuses a buffer, V8 throws a RangeError a program could also write.
  // So the refusal is observed where it happens: a buffer or typed array made from a plain
  // number (no program code runs inside the constructor then) whose construction throws
  // V8's refusal tells the sidecar, through a log level no console method has. Only a run
  // that saw such a refusal can end as a memory limit on that error's text (see `settle`).
  const construct = Reflect.construct, RangeErrorCtor = RangeError, rangeErrorProto = RangeError.prototype
  const getPrototypeOf = Object.getPrototypeOf, getOwn = Object.getOwnPropertyDescriptor
  const REFUSED_LEVEL = '\u0000refused' // the sidecar's REFUSED_LEVEL
  const refusedIn = (target, length) => {
    try {
      return construct(target, [length], target)
    } catch (e) {
      // Nothing of the program ran in the constructor: this error is V8's.
      let own
      try { own = e !== null && typeof e === 'object' && getPrototypeOf(e) === rangeErrorProto && getOwn(e, 'message') } catch { own = undefined }
      if (own && own.value === 'Array buffer allocation failed') hostLog(token, REFUSED_LEVEL, '')
      throw e
    }
  }
  const fixedSizeOnly = (Ctor) => {
    if (typeof Ctor !== 'function') return
    const P = new Proxy(Ctor, {
      construct(target, args, newTarget) {
        const options = args.length > 1 ? args[1] : undefined
        if (options !== null && typeof options === 'object' && options.maxByteLength !== undefined) {
          throw new RangeErrorCtor('Array buffer allocation failed: resizable and growable buffers are not available in this sandbox')
        }
        if (typeof args[0] === 'number' && newTarget === P) return refusedIn(target, args[0])
        return construct(target, [args[0]], newTarget === P ? target : newTarget)
      },
    })
    Object.defineProperty(Ctor.prototype, 'constructor', { value: P, writable: true, configurable: true, enumerable: false })
    Object.defineProperty(globalThis, Ctor.name, { value: P, writable: true, configurable: true, enumerable: false })
  }
  fixedSizeOnly(globalThis.ArrayBuffer)
  fixedSizeOnly(globalThis.SharedArrayBuffer)
  // Typed arrays made from a length allocate their buffer themselves.
  const lengthObserved = (Ctor) => {
    if (typeof Ctor !== 'function') return
    const P = new Proxy(Ctor, {
      construct(target, args, newTarget) {
        if (args.length === 1 && typeof args[0] === 'number' && newTarget === P) return refusedIn(target, args[0])
        return construct(target, args, newTarget === P ? target : newTarget)
      },
    })
    Object.defineProperty(Ctor.prototype, 'constructor', { value: P, writable: true, configurable: true, enumerable: false })
    Object.defineProperty(globalThis, Ctor.name, { value: P, writable: true, configurable: true, enumerable: false })
  }
  for (const name of ['Int8Array', 'Uint8Array', 'Uint8ClampedArray', 'Int16Array', 'Uint16Array', 'Int32Array',
    'Uint32Array', 'Float16Array', 'Float32Array', 'Float64Array', 'BigInt64Array', 'BigUint64Array']) {
    lengthObserved(globalThis[name])
  }
  let token = 0
  const api = prelude({
    call: (id, name, text) => { hostCall(token, id, name, text) },
    log: (level, msg) => { hostLog(token, level, msg) },
    frames: /code\.js:(\d+):\d+/g,
    firstLine,
  })
  Object.defineProperty(globalThis, '__cm_setup', {
    configurable: true, enumerable: false, writable: false,
    value: (setup) => {
      delete globalThis.__cm_setup
      api.setup(setup)
    },
  })
  // Settles tool call `id`: ok = 1 with the result's JSON text, ok = 0 with {name, message}.
  globalThis.__cm_deliver = (id, ok, text) => api.deliver(id, (ok ? 'v' : 'e') + text)
  // Runs the program; hands the encoded outcome to the host when it settles.
  globalThis.__cm_run = (main, runToken) => {
    token = runToken
    api.run(main, (outcome) => hostDone(runToken, outcome))
  }
}
const PRELUDE = `(${v8Hooks})(${GUEST_PRELUDE}, ${PROGRAM_FIRST_LINE})`

// ---------- isolates ----------
// An isolate is prepared completely (context, host callbacks, prelude) before a context asks
// for it; `link.ctx` tells the callbacks which context they serve.
//
// Guest code runs on the isolate's own thread (isolated-vm's pool, which grows past its size
// rather than queue), inside asynchronous `apply` calls that carry isolated-vm's `timeout`
// (the time left before the deadline) and drain the guest's microtasks. This thread never
// runs guest code, so a program computing until its deadline (or a V8 built-in that ignores
// termination) holds only its own isolate: the other contexts of this sidecar, its timers and
// its input go on. What stays synchronous here is bounded by the program's size: compiling
// it and evaluating the function expression that wraps it. Tool calls, console lines and the
// outcome are fire-and-forget callbacks, so the guest never waits for this thread either.
// \`entry\` (a spare's record) says whether a run is already waiting for this isolate.
let made = 0 // isolates made since start (reported in `spares`)
async function makeIsolate(memoryMb, entry = { wanted: true }) {
  made++
  return prepareIn(new ivm.Isolate({ memoryLimit: memoryMb }), memoryMb, entry, 0)
}

// Prepares a fresh context in `isolate` (new, or recycled after `uses` contexts); disposes
// the isolate when that fails.
async function prepareIn(isolate, memoryMb, entry, uses) {
  try {
    return await prepare(isolate, memoryMb, entry, uses)
  } catch (e) {
    try { if (!isolate.isDisposed) isolate.dispose() } catch {}
    throw e
  }
}

async function prepare(isolate, memoryMb, entry, uses) {
  // Synchronous calls: each asynchronous one is two thread hops, which on a busy machine
  // each wait for a core (the isolate is not in use yet, so nothing waits on this thread).
  const context = isolate.createContextSync()
  const link = { ctx: null }
  const ignored = { ignored: true }
  const call = new ivm.Callback((token, id, name, args) => { if (link.ctx) link.ctx.onCall(token, id, name, args) }, ignored)
  const log = new ivm.Callback((token, level, msg) => { if (link.ctx) link.ctx.onLog(token, level, msg) }, ignored)
  const done = new ivm.Callback((token, text) => { if (link.ctx) link.ctx.onDone(token, text) }, ignored)
  const global = context.global
  global.setSync('__cm_call', call)
  global.setSync('__cm_log', log)
  global.setSync('__cm_done', done)
  runPrelude(isolate, context)
  const deliver = global.getSync('__cm_deliver', { reference: true })
  const start = global.getSync('__cm_run', { reference: true })
  global.deleteSync('__cm_deliver')
  global.deleteSync('__cm_run')
  // Warm the path every run takes (compile, async function, result encoding): V8 initialises
  // these lazily, and the first run of a context would otherwise pay for it.
  // (Token 0: no run has it, so the warm-up's queued outcome is dropped.)
  const main = isolate
    .compileScriptSync(`(async function () { return [1, 'a', { b: null }] })`, { filename: SCRIPT })
    .runSync(context, { reference: true, timeout: 1000 })
  start.applySync(undefined, [main.derefInto(), 0], { timeout: 1000 })
  main.release()
  // Exercise the optimizing compilers once: V8 sets them up per isolate on first use, which
  // would otherwise cost a compute-heavy program ~0.7 ms (a quarter of fib(25)) on this path.
  // Not when isolates are in demand (a run is waiting for this one, or one was taken in the
  // last DEMAND_MS): the warm-up's CPU would then compete with the runs themselves (it cost
  // ~0.9 ms of a 3.7 ms fresh-context run, runs 0.3 ms apart, with one core busy), for a
  // gain only compute-heavy programs see.
  // (Once per isolate: a recycled one has them already.)
  if (uses === 0 && !entry.wanted && performance.now() - lastTaken > DEMAND_MS) {
    isolate.compileScriptSync(JIT_WARMUP).runSync(context, { timeout: 1000 })
  }
  return { isolate, context, link, deliver, start, memoryMb, uses }
}

// ---------- recycling ----------
// Making an isolate costs ~1.1 ms of CPU (`new Isolate` ~0.8 ms, its first context ~0.3 ms)
// of the ~1.5 ms a spare takes; a fresh context in an isolate that already exists costs
// ~0.4 ms. On a busy machine that CPU competes with the runs themselves, so an isolate whose
// context ended cleanly serves up to CONTEXTS_PER_ISOLATE contexts, one after another, each
// a fresh V8 context (its own globals and built-ins; nothing of an earlier context is
// reachable from it). Never reused: an isolate that was stopped (timeout, memory, stack),
// disposed during a run, made for another memory limit, busy with guest code, or whose heap
// holds more than RECYCLE_HEAP_BYTES. The earlier context's handles are released and its
// host callbacks unlinked, so a line it still had queued is dropped.
const recycled = [] // bare isolates awaiting a fresh context: { isolate, uses }
function recycle(prepared) {
  const { isolate } = prepared
  prepared.link.ctx = null
  for (const handle of [prepared.deliver, prepared.start, prepared.context]) {
    try { handle.release() } catch {}
  }
  let heap = Infinity
  try { heap = isolate.getHeapStatisticsSync().used_heap_size } catch {}
  if (prepared.uses + 1 >= CONTEXTS_PER_ISOLATE || heap > RECYCLE_HEAP_BYTES || recycled.length >= SPARES || retiring) {
    try { if (!isolate.isDisposed) isolate.dispose() } catch {}
    return
  }
  recycled.push({ isolate, uses: prepared.uses + 1 })
  scheduleRefill()
}

// The prelude's compiled code, made by the first isolate and reused by the next ones
// (compiling it costs ~0.2 ms of the ~1.6 ms an isolate takes; V8 checks the cache against
// the source and its own version and flags, and compiles afresh when it does not match).
let preludeCache = null
function runPrelude(isolate, context) {
  const script = isolate.compileScriptSync(PRELUDE, preludeCache ? { cachedData: preludeCache } : { produceCachedData: true })
  try {
    if (!preludeCache && script.cachedData) preludeCache = script.cachedData
    script.runSync(context)
  } finally {
    script.release()
  }
}

// Hot enough (3,193 calls) for V8 to tier a function up through Maglev to Turbofan.
const JIT_WARMUP = '(function () { function w(n) { return n < 2 ? n : w(n - 1) + w(n - 2) } return w(16) })()'

// A spare taken less than this long ago means isolates are in demand.
const DEMAND_MS = 100
let lastTaken = -Infinity

const SPARES = 2
// Prepared isolates at SPARE_MB, oldest first: { isolate: prepared or null while being made,
// made: promise of it }.
const spares = []
let making = 0
// One isolate per task: making one blocks this thread for ~1.5 ms, so the driver is told
// before (it sends new contexts to a sidecar that is not making one), and a run that arrives
// meanwhile is handled before the next one is started.
function refillSpares() {
  if (spares.length >= SPARES) return
  const entry = { isolate: null, made: null, wanted: false }
  making++
  status()
  flush()
  const bare = recycled.shift()
  entry.made = (bare ? prepareIn(bare.isolate, SPARE_MB, entry, bare.uses) : makeIsolate(SPARE_MB, entry)).then(
    (got) => { entry.isolate = got; return got },
    () => null,
  ).finally(() => {
    making--
    status()
    scheduleRefill()
  })
  spares.push(entry)
}

// Tells the driver how many isolates are ready and how many are being made, so it can send
// new contexts to a sidecar that has one ready and is not busy making more.
function status() {
  let ready = 0
  for (const e of spares) if (e.isolate && !e.isolate.isolate.isDisposed) ready++
  out(`{"t":"spares","ready":${ready},"making":${making},"made":${made}}`)
}

async function takeIsolate(memoryMb) {
  lastTaken = performance.now()
  try {
    while (memoryMb === SPARE_MB && spares.length > 0) {
      const entry = spares.shift()
      entry.wanted = true
      const got = entry.isolate || await entry.made
      if (got && !got.isolate.isDisposed) return got
    }
    return await makeIsolate(memoryMb)
  } finally {
    status()
  }
}

// Creating an isolate blocks this thread for a millisecond or more, so spares are refilled
// only when no run is in flight (checked again on every finish), one isolate at a time.
let refillQueued = null
function scheduleRefill() {
  if (refillQueued || making > 0 || spares.length >= SPARES) return
  refillQueued = setImmediate(() => {
    refillQueued = null
    if (active > 0) return
    refillSpares()
  })
}
let active = 0

// How long a disposed isolate may take to leave its thread before the sidecar retires.
const STUCK_MS = 250
// Retiring: an isolate's thread is held by a built-in past its disposal, burning a core.
// The sidecar says so (the driver places no new context here), finishes the runs in
// flight, then ends itself, which frees the thread; the driver starts a replacement.
let retiring = false
function retire() {
  if (retiring) return
  retiring = true
  out('{"t":"retiring"}')
  endIfRetired()
}
let ending = false
function endIfRetired() {
  if (!retiring || active > 0 || ending) return
  ending = true
  // Not process.exit: its exit handlers would wait for the held thread. And not before the
  // output is out: writes to a pipe are asynchronous on POSIX, so after a console flood the
  // last runs' `done` lines may still sit in Node's buffer, and a kill now would lose them
  // (the driver would report runs that ended as lost). So the kill waits for both streams'
  // callbacks, with a bound in case the driver stopped reading.
  const kill = () => process.kill(process.pid, 'SIGKILL')
  let waiting = 2
  const written = () => { if (--waiting === 0) kill() }
  setTimeout(kill, 5000)
  flush()
  process.stdout.write('\n', written)
  process.stderr.write('retired: an isolate kept running after its deadline (a built-in that ignores termination)\n', written)
}

// V8's own texts, read only where no program code can have written them (a compile error),
// or matched exactly (see settle).
const OUT_OF_MEMORY = /memory limit|Array buffer allocation failed/
const STACK_OVERFLOW = 'Maximum call stack size exceeded'
const BUFFER_REFUSED = 'Array buffer allocation failed'
// The log level the context's buffer guards use to say the allocator refused (no console
// method logs at it; `v8Hooks` spells it too).
const REFUSED_LEVEL = '\u0000refused'
// What the prelude may say about a program.
const GUEST_KINDS = new Set(['guest', 'syntax', 'result', 'too_large'])

class Ctx {
  constructor(id) {
    this.id = id
    this.prepared = null // the isolate's record (see prepare)
    this.isolate = null
    this.context = null
    this.deliver = null
    this.start = null
    this.pending = new Set() // call ids awaiting a reply
    this.maxCalls = 0
    this.entries = 0 // guest entries (program start, deliveries) in flight on the isolate
    this.run = null // current run: { id, done, deadline, timer, probeTimer, probeGen, outcome, msg }
    this.dead = null // what ended the isolate, once it is gone
    this.disposed = false
  }

  async create(spec) {
    const prepared = await takeIsolate(spec.memoryMb)
    if (this.disposed) {
      // Disposed while its isolate was being made: nobody will use it.
      try { prepared.isolate.dispose() } catch {}
      throw new Error('the context was disposed')
    }
    prepared.link.ctx = this
    this.prepared = prepared
    this.isolate = prepared.isolate
    this.context = prepared.context
    this.deliver = prepared.deliver
    this.start = prepared.start
    this.memoryMb = spec.memoryMb
    this.maxCalls = spec.setup.maxCalls
    // The core's PreludeSetup record, as one object literal (JSON is one).
    this.setup = `__cm_setup(${JSON.stringify(spec.setup)});`
  }

  // The run a guest callback's token names, if it is still going.
  current(token) {
    const run = this.run
    return run && !run.done && run.id === token ? run : null
  }

  // ----- callbacks from the guest (queued to this thread; the guest does not wait) -----
  onCall(token, id, name, args) {
    const run = this.current(token)
    if (!run || run.outcome !== undefined) return
    // Past the cap the guest throws ToolCallLimitError itself: a flood never crosses. A
    // call past it here (or a reused id) is ignored: its promise never settles.
    id = Number(id)
    if (++run.calls > this.maxCalls || !Number.isSafeInteger(id) || id <= 0 || this.pending.has(id)) return
    this.pending.add(id)
    run.probeGen++
    clearTimeout(run.probeTimer)
    const depth = jsonDepth(String(args))
    if (depth > MAX_VALUE_DEPTH) {
      // Refused here, as the host would: the call rejects with a TypeError, no tool runs.
      const err = { name: 'TypeError', message: tooDeep(`${String(name)}'s input`, depth) }
      setImmediate(() => this.reply({ call: id, err }))
      return
    }
    out(`{"t":"call","run":${run.id},"call":${id},"name":${q(String(name))},"args":${args}}`)
  }

  onLog(token, level, msg) {
    const run = this.current(token)
    if (run && level === REFUSED_LEVEL) {
      run.refused = true
      return
    }
    if (run) out(`{"t":"log","run":${run.id},"level":${q(String(level))},"msg":${q(String(msg).toWellFormed())}}`)
  }

  onDone(token, text) {
    const run = this.current(token)
    if (!run || run.outcome !== undefined) return
    run.outcome = String(text)
    // Queued after the entry that produced it finished: settle now.
    if (this.entries === 0) this.settle(run, run.outcome)
  }

  // Runs guest code (`fn(timeoutMs)`, a promise) within the run's deadline, then settles the
  // run if the program finished, or arms the deadlock probe if it is waiting on nothing.
  async enter(run, fn) {
    // While the host holds the clock (an approval is pending) the deadline stands still,
    // but guest code entering meanwhile spends what was left at the hold.
    const held = run.held !== undefined
    const left = held ? Math.ceil(run.held) : Math.ceil(run.deadline - performance.now())
    if (left <= 0) return this.timeout(run)
    const entered = performance.now()
    this.entries++
    try {
      await fn(left)
    } catch (e) {
      if (run.done) return
      // Decided by what this side observed, never by the error's text: isolated-vm also
      // rethrows a promise the program rejected and never handled (its task epilogue rethrows
      // the first such reason after the task ran to completion; \`__cm_run\` and
      // \`__cm_deliver\` catch everything else themselves), and the program chooses that
      // reason's message. The entry used up its time (isolated-vm stopped it), or the isolate
      // was disposed under it (its heap limit); anything else is an unhandled rejection,
      // which every driver ignores: the program goes on.
      if (performance.now() - entered >= left - 1) return this.timeout(run)
      if (this.isolate.isDisposed) return this.memory(run)
    } finally {
      this.entries--
      if (held && run.held !== undefined) run.held -= performance.now() - entered
    }
    if (run.done || this.entries > 0) return
    if (run.outcome !== undefined) return this.settle(run, run.outcome)
    if (this.pending.size === 0) this.armProbe(run)
  }

  // The host's clock stopped (an approval is pending): no deadline while it is held.
  hold(msg) {
    const run = this.run
    if (!run || run.done || run.id !== msg.run || run.held !== undefined) return
    run.held = Math.max(0, run.deadline - performance.now())
    clearTimeout(run.timer)
  }

  // The clock runs again with `leftMs` of the budget left (never more than this side has).
  release(msg) {
    const run = this.run
    if (!run || run.done || run.id !== msg.run || run.held === undefined) return
    const left = Math.max(0, Math.min(Number(msg.leftMs) || 0, run.held))
    run.held = undefined
    run.deadline = performance.now() + left
    run.timer = setTimeout(() => this.timeout(run), left)
  }

  reply(msg) {
    if (!this.pending.delete(msg.call)) return
    const run = this.run
    if (!run || run.done) return
    const deliver = this.deliver
    const ok = msg.ok !== undefined
    const text = ok ? msg.ok : q(msg.err)
    this.enter(run, (timeout) => deliver.apply(undefined, [msg.call, ok ? 1 : 0, text], { timeout }))
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
    // Calls the program never awaited are forgotten: their promises stay pending.
    this.pending.clear()
    out(`{"t":"done","run":${run.id}${payload}}`)
    if (retiring) return setImmediate(endIfRetired)
    scheduleRefill()
  }

  fail(run, kind, name, message, line, size) {
    this.finish(run, `,"error":${q({ kind, name, message, line: line || 0, size: size || 0 })}`)
  }

  // Deadlock detection: with no tool call pending, every microtask has already run (each
  // entry drains them); two round trips through the isolate's task queue let anything
  // V8 itself still owes (e.g. WebAssembly compilation) arrive. If the program is still
  // pending and nothing new started, nothing can ever settle it.
  async probe(run) {
    const gen = run.probeGen
    try {
      for (let i = 0; i < 2; i++) {
        await this.context.eval('0')
        await new Promise(setImmediate)
        if (run.done || run.outcome !== undefined || run.probeGen !== gen || this.pending.size > 0 || this.entries > 0) {
          if (!run.done && run.outcome !== undefined) this.settle(run, run.outcome)
          return
        }
      }
    } catch {
      return
    }
    this.fail(run, 'deadlock', 'DeadlockError',
      'The program is awaiting a promise that can never settle (no tool call is pending and nothing else can resolve it)')
  }

  kill(why) {
    this.dead = why
    try { if (this.isolate && !this.isolate.isDisposed) this.isolate.dispose() } catch {}
    // A terminated isolate leaves its thread at once, unless a V8 built-in that ignores
    // termination holds it (a `join` over a huge array-like can run for a minute).
    if (this.entries > 0) {
      setTimeout(() => { if (this.entries > 0) retire() }, STUCK_MS).unref()
    }
  }

  dispose() {
    this.disposed = true
    contexts.delete(this.id)
    const isolate = this.isolate
    const running = this.run !== null
    if (running) this.fail(this.run, 'disposed', 'DisposedError', 'The context was disposed during the execution')
    if (!isolate || isolate.isDisposed) return
    // Reused only after a clean end: no run in flight, no guest entry still on the
    // isolate's thread, never stopped, made for the spares' memory limit.
    if (!running && !this.dead && this.entries === 0 && this.memoryMb === SPARE_MB) {
      return setImmediate(() => recycle(this.prepared))
    }
    setImmediate(() => { try { if (!isolate.isDisposed) isolate.dispose() } catch {} })
  }

  async execute(msg) {
    const run = { id: msg.run, done: false, deadline: performance.now() + msg.timeoutMs, timer: null,
      probeTimer: null, probeGen: 0, outcome: undefined, calls: 0, held: undefined, msg }
    active++
    if (this.dead) return this.fail(run, 'disposed', 'DisposedError', 'The context was stopped by an earlier ' + this.dead + ' and cannot run code anymore')
    this.run = run
    // Covers the time spent waiting for tools (no guest code runs then) and anything the
    // isolate runs outside our synchronous entries.
    run.timer = setTimeout(() => this.timeout(run), msg.timeoutMs)
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
      // The setup call (first run only) shares the wrapper's first line.
      script = this.isolate.compileScriptSync(setup + msg.program, { filename: SCRIPT })
    } catch (e) {
      if (run.done) return
      const message = String(e && e.message)
      const m = /\[code\.js:(\d+):\d+\]$/.exec(message)
      const name = e && e.name === 'SyntaxError' ? 'SyntaxError' : 'Error'
      const clean = message.replace(/ \[code\.js:\d+:\d+\]$/, '')
      // Compiling runs no program code: this is V8's own error.
      if (OUT_OF_MEMORY.test(message) || this.isolate.isDisposed) return this.memory(run)
      if (message === STACK_OVERFLOW) return this.stack(run)
      const line = m ? +m[1] - PROGRAM_FIRST_LINE + 1 : 0
      return this.fail(run, name === 'SyntaxError' ? 'syntax' : 'guest', name, clean, line > 0 ? line : 0)
    }
    const context = this.context, start = this.start
    await this.enter(run, async (timeout) => {
      // Evaluates the function expression (and the setup call): bounded by the program's
      // size, so synchronous. The program itself runs on the isolate's thread.
      const main = script.runSync(context, { reference: true, timeout })
      try {
        await start.apply(undefined, [main.derefInto(), run.id], { timeout: Math.max(1, Math.ceil(run.deadline - performance.now())) })
      } finally {
        main.release()
      }
    })
    try { script.release() } catch {}
  }

  settle(run, text) {
    if (text === 'u') return this.finish(run, '')
    if (text[0] === 'v') {
      // The prelude measured it already; this side trusts nothing the isolate says.
      const bytes = Buffer.byteLength(text) - 1
      if (bytes > run.msg.maxResultBytes) return this.fail(run, 'too_large', 'ResultTooLargeError', '', 0, bytes)
      const depth = jsonDepth(text)
      if (depth > MAX_VALUE_DEPTH) return this.fail(run, 'result', 'ResultError', tooDeep('The returned value', depth))
      return this.finish(run, `,"value":${text.slice(1)}`)
    }
    let err
    try { err = JSON.parse(text.slice(1)) } catch { err = null }
    if (err === null || typeof err !== 'object' || typeof err.kind !== 'string' || typeof err.name !== 'string' || typeof err.message !== 'string') {
      return this.fail(run, 'internal', 'Error', 'the program ended without a readable result')
    }
    // The record comes from the program's realm: it may describe the program, never report a
    // limit. V8 gives isolated-vm no stack-guard or allocator signal, so its own two errors
    // are recognised by their exact name and message (a longer message that merely contains
    // one is the program's own error), or by the isolate having been disposed.
    if (!GUEST_KINDS.has(err.kind)) return this.fail(run, 'internal', 'Error', 'the program reported an outcome only the sandbox may report')
    if (this.isolate && this.isolate.isDisposed) return this.memory(run)
    if (err.kind === 'guest' && err.name === 'RangeError' && err.message === STACK_OVERFLOW && err.tool !== true) return this.stack(run)
    // V8's refusal ends the run as a memory limit only when the buffer guards saw the
    // allocator refuse in this run (see `v8Hooks`); the text alone is the program's own.
    if (err.kind === 'guest' && err.name === 'RangeError' && err.message === BUFFER_REFUSED && run.refused) return this.memory(run)
    return this.fail(run, err.kind, err.name, err.message, err.line, err.size)
  }

  timeout(run) {
    if (run.done) return
    this.kill('timeout')
    this.fail(run, 'timeout', 'TimeoutError', `Execution exceeded the timeout of ${run.msg.timeoutMs} ms`)
  }

  memory(run) {
    this.kill('out-of-memory failure')
    this.fail(run, 'memory', 'MemoryLimitError', `Execution exceeded the memory limit of ${this.memoryMb} MiB`)
  }

  stack(run) {
    this.kill('stack overflow')
    this.fail(run, 'stack', 'StackOverflowError', 'Maximum call stack size exceeded')
  }
}

// ---------- input ----------
function handle(msg) {
  switch (msg.op) {
    case 'run': {
      // A new context is never started on a retiring sidecar: the process ends itself once
      // its runs in flight are done, and would take this one with it half-way.
      if (retiring && msg.create) {
        out(`{"t":"refused","run":${Number(msg.run)}}`)
        break
      }
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
    case 'hold': {
      const ctx = contexts.get(msg.ctx)
      if (ctx) ctx.hold(msg)
      break
    }
    case 'release': {
      const ctx = contexts.get(msg.ctx)
      if (ctx) ctx.release(msg)
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
