//! Escape attempts: host globals, dynamic import, constructors, prototype pollution, hooks the program installs, replaced built-ins.

use super::*;

/// The program's scope holds none of the driver's machinery: no harness variables, no
/// entrypoint as `this`, no `arguments` at all (every driver runs the core's one wrapper, an
/// async arrow function; two drivers used to run a function expression, whose `arguments`
/// the program could read).
pub async fn driver_machinery_is_out_of_scope(h: &Harness) {
    let code = "const seen = [];
        for (const name of ['host', 'caps', 'budget', 'charge', 'guard', 'fns', 'env', 'ctx', 'link', 'shared', 'bridge', '__cm_run', '__cm_deliver', '__cm_setup', '__main']) {
          let t; try { t = typeof eval(name); } catch { t = 'unreachable'; }
          if (t !== 'undefined' && t !== 'unreachable') seen.push(name + ':' + t);
        }
        const args = typeof arguments;
        const self = this === undefined || this === globalThis ? 'plain' : 'other';
        return { seen, args, self };";
    let r = h.run(code).await;
    let v = value(&r);
    // Without code generation `eval` throws: every name then reads as unreachable, and the
    // check falls back to the direct forms below.
    assert_eq!(v, json!({"seen": [], "args": "undefined", "self": "plain"}));
    let direct =
        "return [typeof host, typeof caps, typeof budget, typeof charge, typeof guard, typeof fns]";
    let r = h.run(direct).await;
    assert_eq!(value(&r), json!(vec!["undefined"; 6]));
}

/// A program that replaces `Promise.prototype.then` (or `JSON`) breaks at most its own
/// code, never the machinery around it: results and tool calls still work.
pub async fn replaced_promise_then_does_not_break_the_sandbox(h: &Harness) {
    for (code, expected) in [
        (
            "Promise.prototype.then = function () { throw new Error('hijacked'); }; console.log('x'); return 1",
            json!(1),
        ),
        (
            "Promise.prototype.then = function () { throw new Error('hijacked'); }; const r = await external_echo({a: 1}); return r.a",
            json!(1),
        ),
        (
            "JSON.parse = () => { throw new Error('p'); }; JSON.stringify = () => { throw new Error('s'); }; const r = await external_echo({a: 1}); return r",
            json!({"a": 1}),
        ),
    ] {
        let r = h.run(code).await;
        assert_eq!(value(&r), expected, "{code}");
    }
    h.assert_healthy().await;
}

/// Errors show none of the sandbox's machinery: no call-site access to its functions (and
/// so their source), no isolated-vm frames in stack traces.
pub async fn errors_do_not_expose_the_machinery(h: &Harness) {
    let code = "const seen = [];
        try { Error.prepareStackTrace = (e, frames) => { for (const f of frames) { try { seen.push(String(f.getFunction && f.getFunction())); } catch {} } return 'formatted by the program'; }; } catch {}
        let stack = '';
        try { null.x; } catch (e) { stack = String(e.stack); }
        return { seen: seen.join('\\n'), stack };";
    let r = h.run(code).await;
    let v = value(&r);
    let seen = v["seen"].as_str().unwrap_or_default();
    let stack = v["stack"].as_str().unwrap_or_default();
    for marker in [
        "hostCall",
        "__cm_",
        "pending",
        "stringify(",
        "host.call",
        "<isolated-vm>",
        "<prelude>",
    ] {
        assert!(
            !seen.contains(marker),
            "machinery reachable through call sites ({marker}): {seen}"
        );
    }
    assert!(!stack.contains("<isolated-vm>"), "{stack}");
}

/// Network and timer globals are absent from the whole prototype chain of the global object,
/// not only shadowed on it.
pub async fn removed_globals_stay_removed(h: &Harness) {
    let code = "const found = [];
        for (const n of ['fetch', 'setTimeout', 'setInterval', 'WebSocket', 'EventSource', 'XMLHttpRequest', 'caches', 'connect']) {
          for (let o = globalThis; o !== null; o = Object.getPrototypeOf(o)) {
            let v; try { v = o[n]; } catch { v = undefined; }
            if (v !== undefined) found.push(n);
          }
        }
        return found;";
    let r = h.run(code).await;
    assert_eq!(value(&r), json!([]));
}

/// None of the host's globals exist in the sandbox.
pub async fn absent_host_globals(h: &Harness) {
    let names = [
        "process",
        "require",
        "module",
        "exports",
        "fetch",
        "XMLHttpRequest",
        "WebSocket",
        "Deno",
        "Bun",
        "std",
        "os",
        "setTimeout",
        "setInterval",
        "setImmediate",
        "__dirname",
        "Buffer",
        "importScripts",
        "navigator",
    ];
    let code = format!(
        "return [{}].map(n => typeof globalThis[n])",
        names
            .iter()
            .map(|n| format!("{n:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let r = h.run(&code).await;
    let v = value(&r);
    for (name, t) in names.iter().zip(v.as_array().into_iter().flatten()) {
        assert_eq!(
            t,
            &json!("undefined"),
            "global {name} is visible in the sandbox"
        );
    }
    // The bindings themselves are ordinary enumerable globals (models list them this way).
    let r = h
        .run("return Object.keys(globalThis).filter((k) => k.startsWith('external_')).sort()")
        .await;
    assert_eq!(
        value(&r),
        json!([
            "external_add",
            "external_big",
            "external_echo",
            "external_fail",
            "external_fail_as",
            "external_never",
            "external_sleep"
        ])
    );
    let r = h
        .run("return [typeof process, typeof require, typeof fetch, typeof Deno, typeof Bun]")
        .await;
    assert_eq!(
        value(&r),
        json!([
            "undefined",
            "undefined",
            "undefined",
            "undefined",
            "undefined"
        ])
    );
}

/// `import()` of host modules never yields a module.
pub async fn dynamic_import_is_blocked(h: &Harness) {
    for module in [
        "fs",
        "std",
        "os",
        "node:child_process",
        "child_process",
        "./secret.js",
        "https://example.com/x.js",
    ] {
        let code = format!(
            "try {{ const m = await import({module:?}); return 'loaded:' + typeof m; }} catch (e) {{ return 'blocked'; }}"
        );
        let r = h.run(&code).await;
        match &r.outcome {
            Ok(v) => assert_eq!(v, &Some(json!("blocked")), "import({module:?})"),
            Err(e) => assert!(
                !matches!(e.kind, ErrorKind::Timeout),
                "import({module:?}): {e}"
            ),
        }
    }
}

/// The Function-constructor family reaches only the sandbox's own global.
pub async fn function_constructor_escapes(h: &Harness) {
    let probes = [
        "return (function(){}).constructor('return typeof process')()",
        "return (async function(){}).constructor('return typeof require')().then(v => v)",
        "return (function*(){}).constructor('yield typeof process')().next().value",
        "return (async function*(){}).constructor('yield typeof fetch')().next().then(r => r.value)",
        "return Reflect.construct(Function, ['return typeof process'])()",
        "return Function.prototype.bind.call(Function, null, 'return typeof require')()()",
        "return external_echo.constructor('return typeof process')()",
        "return console.log.constructor('return typeof process')()",
        "return Object.getPrototypeOf(external_echo).constructor('return typeof require')()",
        "return [].map.constructor('return typeof this.process')()",
        "return eval('typeof process')",
        "return new Function('return this')() === globalThis ? 'undefined' : 'other-global'",
    ];
    for code in probes {
        let r = h.run(code).await;
        match &r.outcome {
            Err(e) if !h.capabilities.code_generation => {
                assert_eq!(e.kind.name(), "EvalError", "{code}: {e}");
            }
            _ => assert_eq!(value(&r), json!("undefined"), "{code}"),
        }
    }
}

/// Prototype pollution stays in its context: not in the host's data, not in another
/// context, not in the next `execute_typescript` call.
pub async fn prototype_pollution_is_contained(h: &Harness) {
    let fixtures = Fixtures::default();
    let ctx = h.context_with(&fixtures, h.limits(), None).await;
    let r = ctx
        .execute("Object.prototype.polluted = 'yes'; Array.prototype.extra = 1; Object.prototype.toJSON = undefined; await external_echo({own: 1}); return {own: 2}")
        .await;
    assert_eq!(value(&r), json!({"own": 2}));
    let sent = fixtures
        .last_echo
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    assert_eq!(
        sent,
        Some(json!({"own": 1})),
        "inherited keys reached the host"
    );
    let other = h
        .run("return [typeof ({}).polluted, typeof [].extra]")
        .await;
    assert_eq!(value(&other), json!(["undefined", "undefined"]));
    ctx.dispose().await;

    let cm = h.code_mode(&Fixtures::default(), h.limits());
    let r = cm
        .execute(
            "(Object.prototype as any).leak = 1; return 1",
            ExecuteOptions::default(),
        )
        .await;
    assert!(r.success);
    let r = cm
        .execute("return typeof ({} as any).leak", ExecuteOptions::default())
        .await;
    assert_eq!(r.result, Some(json!("undefined")));
}

/// Handing a tool result to the guest builds it from own data properties: setters a program
/// put on `Object.prototype` and `Array.prototype` do not run, and the result keeps its own
/// keys. A setter that re-enters `JSON.stringify` (which QuickJS's own stringify runs: it
/// keeps its work list in an engine array) breaks only that program, with a clear error, never
/// an undescribed internal failure.
pub async fn delivery_runs_no_guest_setters(h: &Harness) {
    let code = r#"
const pending = external_echo({ list: [{ a: 1 }, [2, 3]], a: 'x' });
let hits = 0;
const keys = [['0', Array.prototype], ['1', Array.prototype], ['a', Object.prototype], ['list', Object.prototype]];
for (const [k, o] of keys) Object.defineProperty(o, k, { set(v) { hits++; }, get() { return 'inherited'; }, configurable: true });
const r = await pending;
const seen = hits;
const own = [Object.keys(r).join(','), Object.keys(r.list[0]).join(','), r.list.length, r.list[1].length];
const values = [r.a, r.list[0].a, r.list[1][0], r.list[1][1]];
for (const [k, o] of keys) delete o[k];
return { seen, own, values };
"#;
    let r = h.run(code).await;
    assert_eq!(
        value(&r),
        json!({"seen": 0, "own": ["list,a", "a", 2, 2], "values": ["x", 1, 2, 3]}),
        "delivering a tool result ran guest setters or lost own properties"
    );

    for code in [
        "Object.defineProperty(Array.prototype, '0', { set(v) { JSON.stringify(this); }, configurable: true });
const r = await external_echo({ x: [1] });
return r;",
        "Object.defineProperty(Array.prototype, '0', { set(v) { JSON.stringify(this); }, configurable: true });
const x = [5];
return { x };",
        "Object.defineProperty(Array.prototype, '0', { set(v) { JSON.stringify(this); }, configurable: true });
throw new Error('after the setter');",
    ] {
        let r = h.run(code).await;
        match &r.outcome {
            Ok(_) => {}
            Err(e) => assert!(
                matches!(e.kind, ErrorKind::StackOverflow) || e.message.contains("after the setter"),
                "{code}: expected success, StackOverflowError or the thrown error, got {e}"
            ),
        }
    }
    h.assert_healthy().await;
}

/// Hooks a program leaves on the prototypes the sandbox's own machinery would otherwise
/// inherit from (`toJSON`, `then`, `RegExp.prototype.exec`, `String.prototype.slice`) do
/// not change how its error or its tool replies are reported.
pub async fn inherited_hooks_do_not_change_outcomes(h: &Harness) {
    let hooks = [
        "Object.prototype.toJSON = function () { return 'hijacked'; };",
        "Object.defineProperty(Object.prototype, 'then', { value(ok) { ok({ value: 'hijacked' }); }, writable: true, configurable: true });",
        "RegExp.prototype.exec = function () { return ['hijacked', '99']; };",
        "String.prototype.slice = function () { return 'hijacked'; };",
    ];
    for hook in hooks {
        let code = format!("{hook}\nthrow new RangeError('boom');");
        let r = h.run(&code).await;
        let e = error(&r);
        assert_eq!(
            (e.kind.name(), e.message.as_str(), e.line),
            ("RangeError", "boom", Some(2)),
            "{hook}"
        );
        // The input has no prototype, so the program's own `toJSON` does not apply to it.
        let code = format!(
            "{hook}\nconst r = await external_add({{ __proto__: null, a: 1, b: 2 }});\nreturn r;"
        );
        let r = h.run(&code).await;
        assert_eq!(value(&r), json!(3), "{hook}");
    }
    h.assert_healthy().await;
}

/// Replacing `JSON`, `Promise`, `console`, `Object` methods does not break tool calls or
/// result handling.
pub async fn overwritten_builtins_do_not_break_the_host(h: &Harness) {
    let code = r#"
const echo = external_echo;
const saved = Promise;
globalThis.JSON = { stringify() { throw new Error('hijacked'); }, parse() { throw new Error('hijacked'); } };
Object.prototype.toJSON = function () { return 'hijacked'; };
delete Object.prototype.toJSON;
Array.prototype.map = () => { throw new Error('hijacked'); };
Object.defineProperty = () => { throw new Error('hijacked'); };
const r = await echo({ a: [1, 2] });
globalThis.Promise = function () { throw new Error('hijacked'); };
globalThis.console = null;
const again = await echo({ b: 1 });
return { a: r.a, b: again.b, ok: saved !== Promise };
"#;
    let r = h.run(code).await;
    assert_eq!(value(&r), json!({"a": [1, 2], "b": 1, "ok": true}));
}

/// Guest code the host runs while converting a result or an error (getters, `toJSON`) is
/// still under the deadline.
pub async fn host_caused_guest_code_is_under_the_deadline(h: &Harness) {
    let fixtures = Fixtures::default();
    for code in [
        "return { toJSON() { while (true) {} } }",
        "return { get x() { while (true) {} } }",
        "throw { get message() { while (true) {} }, name: 'E' }",
        "const e = new Error('x'); Object.defineProperty(e, 'name', { get() { while (true) {} } }); throw e;",
        "await external_echo({ toJSON() { while (true) {} } });",
        "console.log({ toJSON() { while (true) {} } }); return 1",
    ] {
        let started = Instant::now();
        let r = h.run_with(&fixtures, h.short_limits(), code).await;
        assert_kind(&r, ErrorKind::Timeout);
        assert!(
            started.elapsed() < h.short_timeout + Duration::from_secs(5),
            "{code}"
        );
    }
    h.assert_healthy().await;
}

/// Names of the machinery that no stack a program reads may show.
pub const MACHINERY_MARKERS: [&str; 8] = [
    "<prelude>",
    "<isolated-vm>",
    "__cm",
    "hostCall",
    "main.js",
    "makeBinding",
    "deliver",
    "v8Hooks",
];

/// A program's stacks show its own frames only, whatever the error's source (the engine, a
/// tool's rejection, a callback run by a delivery) and whatever built-ins it replaced first:
/// generated over error sources × replaced built-ins.
pub async fn stacks_show_only_the_programs_frames(h: &Harness) {
    let sources = [
        "try { null.x; } catch (e) { stack = String(e.stack); }",
        "try { await external_fail({ message: 'no' }); } catch (e) { stack = String(e.stack); }",
        "try { await external_echo({}).then(() => { throw new Error('in then'); }); } catch (e) { stack = String(e.stack); }",
        "try { await Promise.all([external_fail({ message: 'a' }), external_echo({})]); } catch (e) { stack = String(e.stack); }",
    ];
    let replacements = [
        "",
        "Reflect.apply = () => 'forged';",
        "Array.prototype.filter = function () { return this; };",
        "Function.prototype.toString = () => 'forged';",
    ];
    for replacement in replacements {
        for source in sources {
            let code = format!("let stack = '';\n{replacement}\n{source}\nreturn stack;");
            let r = h.run(&code).await;
            let stack = value(&r);
            let stack = stack.as_str().unwrap_or_default();
            for marker in MACHINERY_MARKERS {
                assert!(
                    !stack.contains(marker),
                    "{source} after {replacement:?}: the stack shows {marker}: {stack}"
                );
            }
        }
    }
}
