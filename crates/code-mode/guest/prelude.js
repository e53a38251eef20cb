// The code-mode guest prelude: the one JavaScript source every JS-engine driver runs inside
// its sandbox (QuickJS in WebAssembly, V8 through isolated-vm, a Cloudflare Dynamic Worker).
// It is an expression: a function that takes the engine's host hooks and returns the run API.
// Each driver wraps it in a few lines that connect the hooks to its own transport and add what
// only its engine needs (locking V8's stack formatter, removing a global); everything about a
// program's semantics is here, written once:
// - console formatting and the log caps;
// - the tool bindings: arguments to JSON, the call cap, replies back to values or errors that
//   name the line of the call;
// - the result's encoding and its size limit (UTF-8 bytes of its JSON text);
// - the description of whatever the program throws (getters that throw, proxies, primitives).
//
// It captures every intrinsic it relies on before any program runs, so a program that
// replaces JSON, Promise, String or console cannot break result handling or the tool bridge.
// Nothing it returns crosses as an object the program could reach: outcomes are text.
//
// hooks:
//   call(id, name, argsJson)  sends a tool call; returning false means the host refused it
//                             (the call cap); the reply comes back through deliver(id, text).
//   log(level, text)          one console line; level is log | info | warn | error | debug.
//   frames                    a global RegExp matching the program's stack frames, with the
//                             line number as its first group.
//   firstLine, lastLine       the program's lines in that file (default 1 and unbounded); a
//                             frame's line L is reported as L - firstLine + 1.
//   jsonDepth(text)           optional: the nesting depth of JSON text, natively (the
//                             prelude scans it itself otherwise).
//   utf8Length(text)          optional: the UTF-8 bytes of well-formed text, natively (the
//                             prelude has the engine's URI encoder count them otherwise).
// API:
//   setup({bindings, maxLogs, maxLogBytes, maxCalls, maxResultBytes})
//                             installs the bindings as globals and sets the caps.
//   run(main, done?)          runs the program (an async function); the outcome, 'u' (no
//                             value), 'v' + JSON text or 'e' + JSON failure record, is handed
//                             to done and resolves the returned promise. Never rejects.
//   deliver(id, text)         settles tool call id: 'v' + JSON value or 'e' + JSON {name, message}.
//   describe(e, syntax)       the failure record ('e' + JSON) of a thrown value.
// The failure record is {kind, name, message, line, size, tool}: code_mode::driver::GuestFailure
// (`tool` is present, true, when the thrown value is the error a tool call rejected with).
((hooks) => {
  'use strict';
  const stringify = JSON.stringify, parse = JSON.parse, ErrorCtor = Error, StringCtor = String;
  const PromiseCtor = Promise;
  const defineProperty = Object.defineProperty, apply = Reflect.apply;
  const getOwnPropertyDescriptor = Object.getOwnPropertyDescriptor;
  const regexpExec = RegExp.prototype.exec;
  const charCodeAt = String.prototype.charCodeAt, stringSlice = String.prototype.slice;
  const encodeURI = encodeURIComponent, unescapeText = unescape;
  // Built-ins the program may replace or shadow are never reached through the program's
  // objects: `instanceof` would consult `Error[Symbol.hasInstance]`, `v.description` a
  // replaced `Symbol.prototype` getter, `Array.prototype.map` a replaced species constructor,
  // and a descriptor object literal an accessor the program put on `Object.prototype`.
  const hasInstance = Function.prototype[Symbol.hasInstance];
  const symbolDescription = getOwnPropertyDescriptor(Symbol.prototype, 'description').get;
  const typeOf = (v) => typeof v;
  const isError = (v) => apply(hasInstance, ErrorCtor, [v]);
  // The errors tool calls rejected with. A failure whose thrown value is one of them is the
  // tool's, and may never be read as the engine's own error (a tool that itself overflowed
  // its stack rejects with V8's exact overflow error). The set is out of the program's reach;
  // the worst a program can do is rethrow a copy, which is then its own error.
  const toolErrors = new WeakSet(), weakAdd = WeakSet.prototype.add, weakHas = WeakSet.prototype.has;
  const hostCall = hooks.call, hostLog = hooks.log, frames = hooks.frames;
  const firstLine = hooks.firstLine || 1, lastLine = hooks.lastLine || Infinity;
  let maxLogs = 0, maxLogBytes = 0, maxCalls = 0, maxResultBytes = Infinity;
  let logs = 0, logBytes = 0, calls = 0;
  // Call ids are unique over the context's life: a reply that arrives after its run ended can
  // never settle a later run's call.
  let nextId = 0;
  // Tool calls awaiting their reply, by id: a null-prototype object, which the program cannot
  // reach through Object.prototype or Map.prototype.
  let pending = { __proto__: null };

  // ---------- console ----------
  // An error's name (a string, else 'Error') and message (a string, else none); a getter
  // that throws counts as absent.
  const fmtError = (e) => {
    let name = 'Error', message = '';
    try { const n = e.name; if (typeOf(n) === 'string') name = n; } catch {}
    try { const m = e.message; if (typeOf(m) === 'string') message = m; } catch {}
    return message ? name + ': ' + message : name;
  };
  // Objects nested deeper than the value limit (code_mode::driver::MAX_VALUE_DEPTH) log as
  // one marker on every driver: engines stringify different depths before they give up.
  const MAX_DEPTH = 64, DEEP = '[nested deeper than 64 levels]';
  const objectKeys = Object.keys;
  // The depth of JSON text (brackets outside strings); an engine may hand a native one.
  const jsonDepth = hooks.jsonDepth || ((s) => {
    let depth = 0, max = 0, inString = false, escaped = false;
    for (let i = 0; i < s.length; i++) {
      const c = apply(charCodeAt, s, [i]);
      if (inString) {
        if (escaped) escaped = false;
        else if (c === 92) escaped = true;
        else if (c === 34) inString = false;
      } else if (c === 34) inString = true;
      else if (c === 91 || c === 123) { if (++depth > max) max = depth; }
      else if (c === 93 || c === 125) depth--;
    }
    return max;
  });
  // Whether a value that JSON could not show nests objects past the limit (a cycle is not
  // depth). The path is a null-prototype object: no setter of the program's runs on it.
  const deeper = (v, d, path, n) => {
    if (v === null || typeOf(v) !== 'object') return false;
    if (d > MAX_DEPTH) return true;
    for (let i = 0; i < n; i++) if (path[i] === v) return false;
    path[n] = v;
    let keys;
    try { keys = objectKeys(v); } catch { return false; }
    for (let i = 0; i < keys.length; i++) {
      let child;
      try { child = v[keys[i]]; } catch { continue; }
      if (deeper(child, d + 1, path, n + 1)) return true;
    }
    return false;
  };
  const fmt = (v) => {
    switch (typeOf(v)) {
      case 'string': return v;
      case 'undefined': return 'undefined';
      case 'symbol': {
        let d;
        try { d = apply(symbolDescription, v, []); } catch {}
        return 'Symbol(' + (typeOf(d) === 'string' ? d : '') + ')';
      }
      case 'bigint': return StringCtor(v) + 'n';
      case 'function': {
        // As the native driver reads it: a getter that throws counts as no name.
        let n;
        try { n = v.name; } catch {}
        return typeOf(n) === 'string' && n ? '[Function: ' + n + ']' : '[Function (anonymous)]';
      }
      case 'object': {
        if (v === null) return 'null';
        let error = false;
        try { error = isError(v); } catch {}
        if (error) return fmtError(v);
        let text;
        try { text = stringify(v); }
        catch {
          let deep = false;
          try { deep = deeper(v, 1, { __proto__: null }, 0); } catch {}
          if (deep) return DEEP;
          try { return StringCtor(v); } catch { return '[unprintable]'; }
        }
        if (text === undefined) return 'undefined';
        return text.length > 2 * MAX_DEPTH && jsonDepth(text) > MAX_DEPTH ? DEEP : text;
      }
      default: return StringCtor(v);
    }
  };
  const makeLog = (level) => function (...args) {
    // One past the caps, so the host's buffer sees the overflow and adds its marker.
    if (logs > maxLogs || logBytes > maxLogBytes) return;
    let msg = '';
    for (let i = 0; i < args.length; i++) msg += (i === 0 ? '' : ' ') + fmt(args[i]);
    logs++; logBytes += msg.length;
    hostLog(level, msg);
  };
  const consoleObject = {};
  consoleObject.log = makeLog('log');
  consoleObject.info = makeLog('info');
  consoleObject.warn = makeLog('warn');
  consoleObject.error = makeLog('error');
  consoleObject.debug = makeLog('debug');
  consoleObject.trace = consoleObject.debug;
  defineProperty(globalThis, 'console', { __proto__: null, value: consoleObject, writable: true, configurable: true, enumerable: false });

  // ---------- tool bindings ----------
  const rename = (err, name, message) => {
    defineProperty(err, 'message', { __proto__: null, value: message, writable: true, configurable: true, enumerable: false });
    if (name !== 'Error') defineProperty(err, 'name', { __proto__: null, value: name, writable: true, configurable: true, enumerable: false });
    return err;
  };
  // A plain function returning a native promise (a throw in the executor rejects it), not an
  // async function returning one: resolving a promise with a promise looks up its `then`,
  // which the program may have replaced.
  const makeBinding = (name) => {
    const fn = function (args) {
      // Made while the caller's frames are on the stack (engines record them at creation,
      // V8 formats them on first read): a failed call rejects with it, so the program's error
      // names the line of the call.
      const site = new ErrorCtor();
      return new PromiseCtor((resolve, reject) => {
        const text = stringify(args === undefined ? {} : args);
        // Past the cap, refused here without crossing (the host checks again).
        if (++calls > maxCalls) {
          throw rename(site, 'ToolCallLimitError', 'Exceeded the maximum of ' + maxCalls + ' tool calls per execution');
        }
        const id = ++nextId;
        pending[id] = [resolve, reject, site];
        if (hostCall(id, name, text === undefined ? '{}' : text) === false) {
          delete pending[id];
          throw rename(site, 'ToolCallLimitError', 'Exceeded the maximum of ' + maxCalls + ' tool calls per execution');
        }
      });
    };
    defineProperty(fn, 'name', { __proto__: null, value: name });
    return fn;
  };
  const deliver = (id, text) => {
    const entry = pending[id];
    if (entry === undefined) return;
    delete pending[id];
    const body = apply(stringSlice, text, [1]);
    if (text[0] === 'v') { entry[0](parse(body)); return; }
    let e;
    try { e = parse(body); } catch { e = null; }
    const name = e !== null && typeOf(e.name) === 'string' && e.name ? e.name : 'Error';
    const message = e !== null && typeOf(e.message) === 'string' ? e.message : 'the tool call failed';
    const err = rename(entry[2], name, message);
    apply(weakAdd, toolErrors, [err]);
    entry[1](err);
  };

  // ---------- failures ----------
  // The program's line of an error: the first frame inside the program's lines.
  const lineOf = (e) => {
    let stack;
    try { stack = StringCtor(e.stack); } catch { return 0; }
    frames.lastIndex = 0;
    for (let m; (m = apply(regexpExec, frames, [stack])) !== null;) {
      const n = +m[1];
      if (n >= firstLine && n <= lastLine) return n - firstLine + 1;
    }
    return 0;
  };
  // The record is a null-prototype object (no inherited `toJSON` runs), stringified. If
  // stringify itself fails it is encoded by hand: QuickJS's stringify pushes onto
  // engine-internal arrays, so an index setter on Array.prototype runs inside it, and a setter
  // that itself stringifies recurses until the stack is gone; describing that stack overflow
  // must not need the broken built-in. The hand encoder cuts messages at 16 Ki code units (the
  // host caps them at 8 KiB and adds its marker), so its loop stays short.
  const HEX = '0123456789abcdef';
  const quote = (s) => {
    const n = s.length < 16384 ? s.length : 16384;
    let out = '"';
    for (let i = 0; i < n; i++) {
      const c = apply(charCodeAt, s, [i]);
      if (c === 34) out += '\\"';
      else if (c === 92) out += '\\\\';
      else if (c < 32 || (c >= 0xd800 && c <= 0xdfff)) {
        out += '\\u' + HEX[(c >> 12) & 15] + HEX[(c >> 8) & 15] + HEX[(c >> 4) & 15] + HEX[c & 15];
      } else out += apply(stringSlice, s, [i, i + 1]);
    }
    return out + '"';
  };
  const failure = (kind, name, message, line, size, tool) => {
    try {
      return 'e' + stringify(tool === true
        ? { __proto__: null, kind, name, message, line, size, tool }
        : { __proto__: null, kind, name, message, line, size });
    } catch {
      return 'e{"kind":' + quote(kind) + ',"name":' + quote(name) + ',"message":' + quote(message)
        + ',"line":' + (line | 0) + ',"size":' + (+size || 0) + (tool === true ? ',"tool":true' : '') + '}';
    }
  };
  // Whatever was thrown, described; its `name` and `message` may be getters that throw, or a
  // proxy's traps, and the outcome is still a record.
  const describe = (e, syntax) => {
    const t = typeOf(e);
    if (e === null || (t !== 'object' && t !== 'function')) {
      let message;
      try { message = t === 'string' ? e : (e === null ? 'null' : StringCtor(e)) + ' was thrown'; }
      catch { message = 'a value was thrown'; }
      return failure('guest', 'Error', message, 0, 0);
    }
    let name = 'Error', message = '';
    try { const n = e.name; if (typeOf(n) === 'string' && n) name = n; } catch {}
    try { const m = e.message; message = typeOf(m) === 'string' ? m : (m === undefined ? '' : StringCtor(m)); } catch {}
    let error = false;
    try { error = isError(e); } catch {}
    const kind = syntax && name === 'SyntaxError' ? 'syntax' : 'guest';
    let tool = false;
    try { tool = apply(weakHas, toolErrors, [e]); } catch {}
    return failure(kind, name, message, error ? lineOf(e) : 0, 0, tool);
  };

  // ---------- the result ----------
  // UTF-8 bytes of a JSON text (lone surrogates are escaped by stringify, so each unit of a
  // pair counts 2 and an astral character 4). The engine's own encoder counts it (a loop in
  // an interpreter took seconds for a 4 MiB result), or the driver natively (QuickJS-WASM:
  // 227 -> 54 ms for a 4 MiB result); the loop stays as the fallback.
  const utf8Length = hooks.utf8Length;
  const utf8Bytes = (s) => {
    if (utf8Length) return utf8Length(s);
    try { return unescapeText(encodeURI(s)).length; } catch {}
    let n = s.length;
    for (let i = 0; i < s.length; i++) {
      const c = apply(charCodeAt, s, [i]);
      if (c >= 0x80) n += c < 0x800 || (c >= 0xd800 && c <= 0xdfff) ? 1 : 2;
    }
    return n;
  };
  const refuse = (what) => failure('result', 'ResultError',
    'The returned value is not JSON-serializable: ' + what + ' cannot be returned; return plain data', 0, 0);
  const encode = (value) => {
    const t = typeOf(value);
    if (t === 'undefined') return 'u';
    if (t === 'function') return refuse('a function');
    if (t === 'symbol') return refuse('a symbol');
    if (t === 'bigint') return refuse('a BigInt (convert it with Number() or String())');
    let text;
    try { text = stringify(value); }
    catch (e) {
      let typeError = false;
      try { typeError = isError(e) && e.name === 'TypeError'; } catch {}
      if (typeError) {
        let message = '';
        try { message = StringCtor(e.message); } catch {}
        return failure('result', 'ResultError', 'The returned value is not JSON-serializable: ' + message, 0, 0);
      }
      return describe(e, false);
    }
    if (text === undefined) return 'u';
    // Only measured when it could be over: the host words the error from the size.
    if (text.length * 3 > maxResultBytes) {
      const size = utf8Bytes(text);
      if (size > maxResultBytes) return failure('too_large', 'ResultTooLargeError', '', 0, size);
    }
    return 'v' + text;
  };

  return {
    setup: (spec) => {
      maxLogs = spec.maxLogs; maxLogBytes = spec.maxLogBytes; maxCalls = spec.maxCalls;
      if (spec.maxResultBytes > 0) maxResultBytes = spec.maxResultBytes;
      const names = spec.bindings;
      for (let i = 0; i < names.length; i++) globalThis[names[i]] = makeBinding(names[i]);
    },
    run: async (main, done) => {
      logs = 0; logBytes = 0; calls = 0;
      pending = { __proto__: null };
      let outcome;
      try { outcome = encode(await main()); }
      catch (e) {
        try { outcome = describe(e, false); }
        catch { outcome = failure('guest', 'Error', 'the program threw a value that cannot be described', 0, 0); }
      }
      if (done) { try { done(outcome); } catch {} }
      return outcome;
    },
    deliver,
    describe,
  };
})
