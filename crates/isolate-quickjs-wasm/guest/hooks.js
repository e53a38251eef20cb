// The QuickJS-WASM side of the guest prelude (`code_mode::driver::GUEST_PRELUDE`): connects
// the prelude's hooks to the two host functions of the C glue and hands the glue the four
// functions it calls (run, deliver, setup, describe). `guest.rs` evaluates it once, at
// pre-initialisation, before the snapshot, as `(hooks)(prelude)`. The host functions are
// removed from the global object: no program can reach them except through the bindings.
(prelude) => {
  'use strict';
  const hostCall = globalThis.__cm_call, hostLog = globalThis.__cm_log, parse = JSON.parse;
  const jsonDepth = globalThis.__cm_json_depth, utf8Length = globalThis.__cm_utf8_length;
  delete globalThis.__cm_call; delete globalThis.__cm_log; delete globalThis.__cm_json_depth;
  delete globalThis.__cm_utf8_length;
  // No call-site API: with `Error.prepareStackTrace` a program could get the prelude's own
  // functions (and read their source) from the frames of an error. Stack traces stay text.
  Object.defineProperty(Error, 'prepareStackTrace', { value: undefined, writable: false, configurable: false, enumerable: false });
  // The glue's log levels, in `LogLevel` order.
  const LEVELS = { __proto__: null, log: 0, info: 1, warn: 2, error: 3, debug: 4 };
  const api = prelude({
    call: hostCall,
    log: (level, msg) => hostLog(LEVELS[level], msg),
    frames: /<code>:(\d+)/g,
    jsonDepth,
    utf8Length,
  });
  return { run: api.run, deliver: api.deliver, describe: api.describe, setup: (json) => api.setup(parse(json)) };
}
