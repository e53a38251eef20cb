// The QuickJS-WASM side of the guest prelude (`code_mode::driver::GUEST_PRELUDE`): connects
// the prelude's hooks to the two host functions of the C glue and hands the glue the four
// functions it calls (run, deliver, setup, describe). `guest.rs` evaluates it once, at
// pre-initialisation, before the snapshot, as `(hooks)(prelude)`. The host functions are
// removed from the global object: no program can reach them except through the bindings.
(prelude) => {
  'use strict';
  const hostCall = globalThis.__cm_call, hostLog = globalThis.__cm_log, parse = JSON.parse;
  const jsonDepth = globalThis.__cm_json_depth;
  delete globalThis.__cm_call; delete globalThis.__cm_log; delete globalThis.__cm_json_depth;
  // Stack traces are formatted here, once and for all: the prelude's frames (`<prelude>`, the
  // caller of every program and of every tool call's continuation) are left out, in QuickJS's
  // own format. The formatter is locked in before any program runs (QuickJS keeps it in the
  // realm; the accessor is replaced by a read-only value), so no program gets the call-site
  // API, through which it could reach the prelude's functions and read their source. It uses
  // only built-ins taken now.
  const apply = Reflect.apply;
  Error.prepareStackTrace = (e, sites) => sites;
  const sample = new Error().stack;
  const site = Object.getPrototypeOf(sample[0]);
  const fileOf = site.getFileName, nameOf = site.getFunctionName, lineOf = site.getLineNumber, columnOf = site.getColumnNumber;
  const format = (e, sites) => {
    let out = '';
    for (let i = 0; i < sites.length; i++) {
      try {
        const s = sites[i], file = apply(fileOf, s, []);
        if (file === '<prelude>') continue;
        const name = apply(nameOf, s, []);
        const line = apply(lineOf, s, []);
        out += '    at ' + (typeof name === 'string' && name ? name : '<anonymous>')
          + (line > 0 ? ' (' + file + ':' + line + ':' + apply(columnOf, s, []) + ')' : ' (' + file + ')') + '\n';
      } catch {}
    }
    return out;
  };
  Error.prepareStackTrace = format;
  Object.defineProperty(Error, 'prepareStackTrace', { value: undefined, writable: false, configurable: false, enumerable: false });
  // The glue's log levels, in `LogLevel` order.
  const LEVELS = { __proto__: null, log: 0, info: 1, warn: 2, error: 3, debug: 4 };
  const api = prelude({
    call: hostCall,
    log: (level, msg) => hostLog(LEVELS[level], msg),
    frames: /<code>:(\d+)/g,
    jsonDepth,
  });
  return { run: api.run, deliver: api.deliver, describe: api.describe, setup: (json) => api.setup(parse(json)) };
}
