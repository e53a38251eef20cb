// code-mode QuickJS-WASM prelude: evaluated once, at pre-initialisation, before the snapshot.
//
// It captures every intrinsic it relies on before any guest code runs, so a program that
// replaces JSON, Promise, Map or console cannot break result handling or the tool bridge,
// and it hands the C glue four functions: run, deliver, setup and describe. The two host
// functions it receives (__cm_call, __cm_log) are removed from the global object; no guest
// code can reach them except through the bindings.
(() => {
  'use strict';
  const defineOwn = (o, k, value) => Object.defineProperty(o, k, { value, writable: false, configurable: false, enumerable: false });
  const hostCall = globalThis.__cm_call, hostLog = globalThis.__cm_log;
  delete globalThis.__cm_call; delete globalThis.__cm_log;
  // No call-site API: with \`Error.prepareStackTrace\` a program could get the prelude's own
  // functions (and read their source) from the frames of an error. Stack traces stay text.
  defineOwn(Error, 'prepareStackTrace', undefined);
  const stringify = JSON.stringify, parse = JSON.parse, ErrorCtor = Error, StringCtor = String;
  const PromiseCtor = Promise, MapCtor = Map;
  const mapClear = Map.prototype.clear, mapGet = Map.prototype.get, mapSet = Map.prototype.set, mapDelete = Map.prototype.delete;
  const defineProperty = Object.defineProperty, apply = Reflect.apply;
  const arrayMap = Array.prototype.map, arrayJoin = Array.prototype.join;
  const regexpExec = RegExp.prototype.exec;
  const charCodeAt = String.prototype.charCodeAt, stringSlice = String.prototype.slice;
  const typeOf = (v) => typeof v;
  const isError = (v) => v instanceof ErrorCtor;
  const LEVELS = ['log', 'info', 'warn', 'error', 'debug'];
  let maxLogs = 0, maxLogBytes = 0, maxCalls = 0, logs = 0, logBytes = 0, nextCall = 1;
  const pending = new MapCtor();

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
    // One past the caps, so the host's buffer sees the overflow and adds its marker.
    if (logs > maxLogs || logBytes > maxLogBytes) return;
    const msg = apply(arrayJoin, apply(arrayMap, args, [fmt]), [' ']);
    logs++; logBytes += msg.length;
    hostLog(level, msg);
  };
  const consoleObject = {};
  for (let i = 0; i < LEVELS.length; i++) consoleObject[LEVELS[i]] = makeLog(i);
  consoleObject.trace = consoleObject.debug;
  defineProperty(globalThis, 'console', { value: consoleObject, writable: true, configurable: true, enumerable: false });

  const namedError = (name, message) => {
    const err = new ErrorCtor(message);
    if (name !== 'Error') defineProperty(err, 'name', { value: name, writable: true, configurable: true, enumerable: false });
    return err;
  };
  const makeBinding = (name) => {
    const fn = async function (args) {
      // Made while the caller's frames are on the stack (QuickJS records them at creation):
      // a failed call throws it, so the program's error names the line of the call.
      const site = new ErrorCtor();
      const text = stringify(args === undefined ? {} : args);
      const id = nextCall++;
      if (!hostCall(id, name, text === undefined ? '{}' : text)) {
        throw namedError('ToolCallLimitError', 'Exceeded the maximum of ' + maxCalls + ' tool calls per execution');
      }
      const reply = await new PromiseCtor((resolve) => { apply(mapSet, pending, [id, resolve]); });
      const body = apply(stringSlice, reply, [1]);
      if (reply[0] === 'v') return parse(body);
      const e = parse(body);
      defineProperty(site, 'message', { value: e.message, writable: true, configurable: true, enumerable: false });
      if (e.name !== 'Error') defineProperty(site, 'name', { value: e.name, writable: true, configurable: true, enumerable: false });
      throw site;
    };
    defineProperty(fn, 'name', { value: name });
    return fn;
  };

  const lineOf = (e) => {
    try {
      const m = apply(regexpExec, /<code>:(\d+)/, [StringCtor(e.stack)]);
      return m ? +m[1] : 0;
    } catch { return 0; }
  };
  // The error record: a null-prototype object (no inherited `toJSON` runs), stringified. If
  // stringify itself fails it is encoded by hand: QuickJS's stringify pushes onto
  // engine-internal arrays, so an index setter on Array.prototype runs inside it, and a setter
  // that itself stringifies recurses until the stack is gone. Describing that stack overflow
  // must not need the broken built-in. The hand encoder cuts messages at 16 Ki code units
  // (the host caps them at 8 KiB and adds its marker), so its loop stays short.
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
  const failure = (kind, name, message, line) => {
    try { return 'e' + stringify({ __proto__: null, kind, name, message, line }); }
    catch {
      return 'e{"kind":' + quote(kind) + ',"name":' + quote(name) + ',"message":' + quote(message) + ',"line":' + (line | 0) + '}';
    }
  };
  const describe = (e, syntax) => {
    if (e === null || e === undefined || (typeOf(e) !== 'object' && typeOf(e) !== 'function')) {
      const message = typeOf(e) === 'string' ? e : (e === null ? 'null' : StringCtor(e)) + ' was thrown';
      return failure('guest', 'Error', message, 0);
    }
    let name, message;
    try { name = e.name; message = e.message; } catch { name = 'Error'; message = 'an error was thrown'; }
    name = typeOf(name) === 'string' && name ? name : 'Error';
    try { message = typeOf(message) === 'string' ? message : (message === undefined ? '' : StringCtor(message)); }
    catch { message = ''; }
    const kind = syntax && name === 'SyntaxError' ? 'syntax' : 'guest';
    return failure(kind, name, message, isError(e) ? lineOf(e) : 0);
  };
  const refuse = (what) => failure('result', 'ResultError',
    'The returned value is not JSON-serializable: ' + what + ' cannot be returned; return plain data', 0);

  return {
    // Runs the program; resolves to 'u' (no value), 'v'+json, or 'e'+json(error). Never rejects.
    run: async (main) => {
      logs = 0; logBytes = 0;
      apply(mapClear, pending, []);
      let value;
      try { value = await main(); }
      catch (e) { return describe(e, false); }
      const t = typeOf(value);
      if (t === 'undefined') return 'u';
      if (t === 'function') return refuse('a function');
      if (t === 'symbol') return refuse('a symbol');
      if (t === 'bigint') return refuse('a BigInt (convert it with Number() or String())');
      let text;
      try { text = stringify(value); }
      catch (e) {
        if (isError(e) && e.name === 'TypeError') return failure('result', 'ResultError',
          'The returned value is not JSON-serializable: ' + StringCtor(e.message), 0);
        return describe(e, false);
      }
      return text === undefined ? 'u' : 'v' + text;
    },
    deliver: (id, text) => {
      const resolve = apply(mapGet, pending, [id]);
      if (resolve) { apply(mapDelete, pending, [id]); resolve(text); }
    },
    setup: (json) => {
      const s = parse(json);
      maxLogs = s.maxLogs; maxLogBytes = s.maxLogBytes; maxCalls = s.maxCalls;
      for (const n of s.bindings) globalThis[n] = makeBinding(n);
    },
    describe,
  };
})()
