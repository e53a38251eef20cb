//! The cases. Each takes a [`Harness`] and panics with a message saying what the driver did
//! wrong. Names say what is checked; the escape-attempt cases start at
//! [`absent_host_globals`].

pub use crate::approvals::{
    approval_denied_is_a_catchable_error, approval_runs_nothing_before_the_decision,
    approval_wait_does_not_use_the_timeout, approval_wait_has_its_own_limit,
    edited_input_is_validated, pending_approval_is_withdrawn_when_the_execution_ends,
    two_pending_approvals_resolve_in_any_order,
};
pub use crate::cancellation::{
    an_application_cancels_mid_call, cancellation_reaches_a_waiting_tool,
    unawaited_calls_are_cancelled_at_return,
};

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use code_mode::{
    ConsoleSink, ErrorKind, EventSink, ExecuteOptions, ExecutionResult, Limits, LogLevel,
    TRUNCATION_MARKER,
};
use serde_json::{Value, json};

use crate::Harness;
use crate::fixtures::Fixtures;

fn value(r: &ExecutionResult) -> Value {
    match &r.outcome {
        Ok(v) => v.clone().unwrap_or(Value::Null),
        Err(e) => panic!("expected success, got {e} (logs: {:?})", r.logs),
    }
}

fn error(r: &ExecutionResult) -> &code_mode::ExecutionError {
    match &r.outcome {
        Ok(v) => panic!("expected a failure, got success with {v:?}"),
        Err(e) => e,
    }
}

fn assert_kind(r: &ExecutionResult, kind: ErrorKind) {
    let e = error(r);
    assert_eq!(e.kind, kind, "expected {}, got {e}", kind.name());
}

/// Every JSON type comes back as itself.
pub async fn returns_every_json_type(h: &Harness) {
    let cases = [
        ("return 42", json!(42)),
        ("return -1.5", json!(-1.5)),
        ("return 'text ✓'", json!("text ✓")),
        ("return true", json!(true)),
        ("return null", Value::Null),
        ("return [1, 'a', null, [2]]", json!([1, "a", null, [2]])),
        (
            "return {a: {b: [1, {c: false}]}, d: 'x'}",
            json!({"a": {"b": [1, {"c": false}]}, "d": "x"}),
        ),
        ("return new Date(0)", json!("1970-01-01T00:00:00.000Z")),
    ];
    for (code, expected) in cases {
        let r = h.run(code).await;
        assert_eq!(r.outcome, Ok(Some(expected.clone())), "{code}");
    }
}

/// No `return` (or `return undefined`) succeeds with no value.
pub async fn no_return_gives_no_value(h: &Harness) {
    for code in [
        "const x = 1;",
        "return undefined",
        "return",
        "// only a comment",
    ] {
        let r = h.run(code).await;
        assert_eq!(r.outcome, Ok(None), "{code}");
    }
}

/// Top-level await works, including on host calls and promise chains.
pub async fn top_level_await(h: &Harness) {
    let r = h
        .run("const a = await Promise.resolve(1); const b = await external_echo({n: a + 1}); return [a, b.n, await (async () => 3)()]")
        .await;
    assert_eq!(value(&r), json!([1, 2, 3]));
}

/// TypeScript syntax is stripped: interfaces, generics, `as`, enums, `!`, `satisfies`,
/// parameter properties, type aliases, abstract classes.
pub async fn typescript_forms(h: &Harness) {
    let code = r#"
interface Point { x: number; y: number }
type Pair<T> = [T, T];
enum Color { Red = "red", Green = "green" }
class Box<T> { constructor(public readonly value: T, private tag?: string) {} }
function first<T>(items: T[]): T | undefined { return items[0]; }
const p = { x: 1, y: 2 } as Point;
const q = { x: 3, y: 4 } satisfies Point;
const pair: Pair<number> = [p.x, q.y];
const maybe: number | undefined = first<number>([7]);
const res = await external_echo({ v: maybe! }) as { v: number };
return { pair, color: Color.Green, box: new Box<string>("b").value, v: res.v };
"#;
    let r = h.run_typescript(code).await;
    assert!(r.success, "{r:?}");
    assert_eq!(
        r.result,
        Some(json!({"pair": [1, 4], "color": "green", "box": "b", "v": 7}))
    );
}

/// A JavaScript syntax error is a `SyntaxError` with the line of the offending code; a
/// TypeScript one is a `TypeScriptError` with the line in the original code.
pub async fn syntax_error_reports_line(h: &Harness) {
    let r = h.run("const a = 1;\nconst b = 2;\nconst = 3;").await;
    let e = error(&r);
    assert_eq!(e.kind, ErrorKind::Syntax, "{e}");
    assert_eq!(e.line, Some(3), "{e}");

    let r = h
        .run_typescript("const a: number = 1;\n\nlet b: = 2;")
        .await;
    let e = r.error.expect("TypeScript syntax error");
    assert_eq!(e.kind, ErrorKind::TypeScript, "{e}");
    assert_eq!(e.line, Some(3), "{e}");
}

/// A runtime error reports the line in the original code, TypeScript types included.
pub async fn runtime_error_reports_line(h: &Harness) {
    let r = h
        .run("const a = 1;\nconst b = null;\n\nreturn b.missing;")
        .await;
    let e = error(&r);
    assert_eq!(e.kind, ErrorKind::Guest("TypeError".into()), "{e}");
    assert_eq!(e.line, Some(4), "{e}");

    let ts = "interface A {\n  x: number;\n}\nconst a: A = { x: 1 };\nconst f = (v: A): number => v.x;\nthrow new RangeError(`bad ${f(a)}`);";
    let r = h.run_typescript(ts).await;
    let e = r.error.expect("runtime error");
    assert_eq!(e.kind, ErrorKind::Guest("RangeError".into()), "{e}");
    assert_eq!(e.message, "bad 1");
    assert_eq!(e.line, Some(6), "{e}");

    // Code that needs TypeScript's transform mode (an enum) still maps lines back.
    let ts = "enum E { A, B }\nconst e: E = E.B;\nconst o: any = null;\nreturn o.field + e;";
    let r = h.run_typescript(ts).await;
    let e = r.error.expect("runtime error");
    assert_eq!(e.line, Some(4), "{e}");
}

/// Thrown errors keep their class name and message.
pub async fn thrown_error_classes(h: &Harness) {
    let cases = [
        ("throw new TypeError('t')", "TypeError", "t"),
        ("throw new RangeError('r')", "RangeError", "r"),
        ("undefinedVariable + 1", "ReferenceError", ""),
        ("JSON.parse('{')", "SyntaxError", ""),
        (
            "class MyError extends Error { constructor(m) { super(m); this.name = 'MyError'; } }\nthrow new MyError('mine')",
            "MyError",
            "mine",
        ),
        ("throw new Error('plain')", "Error", "plain"),
        ("throw 'bare string'", "Error", "bare string"),
        (
            "throw { name: 'CustomError', message: 'custom obj' }",
            "CustomError",
            "custom obj",
        ),
        (
            "await Promise.reject(new TypeError('async'))",
            "TypeError",
            "async",
        ),
    ];
    for (code, name, message) in cases {
        let r = h.run(code).await;
        let e = error(&r);
        assert_eq!(e.kind.name(), name, "{code}: {e}");
        if !message.is_empty() {
            assert_eq!(e.message, message, "{code}");
        }
    }
    let r = h.run("throw 42").await;
    assert!(!r.is_success());
    let r = h.run("throw null").await;
    assert!(!r.is_success());
}

/// Inputs are validated against the tool's schema before the handler runs; the guest gets
/// an `Error` naming the field, which it can catch.
pub async fn tool_input_validation(h: &Harness) {
    let fixtures = Fixtures::default();
    let cm = h.code_mode(&fixtures, h.limits());
    let code = r#"
let message = "";
try { await external_add({ a: 1, b: "two" }); } catch (e) { message = e.message; }
let missing = "";
try { await external_add({ a: 1 }); } catch (e) { missing = e.message; }
const ok = await external_add({ a: 1, b: 2 });
return { message, missing, ok };
"#;
    let r = cm.execute(code, ExecuteOptions::default()).await;
    assert!(r.success, "{r:?}");
    let out = r.result.expect("result");
    let message = out["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("Input validation failed for tool add"),
        "{message}"
    );
    assert!(message.contains("/b"), "{message}");
    let missing = out["missing"].as_str().unwrap_or_default();
    assert!(missing.contains("\"b\""), "{missing}");
    assert_eq!(out["ok"].as_f64(), Some(3.0));
    // The handler never ran for the two invalid calls.
    assert_eq!(fixtures.call_count(), 1);
}

/// A tool's error reaches the guest as `Error(message)`: the message only, no host detail.
pub async fn tool_errors_reach_guest_as_message(h: &Harness) {
    let r = h
        .run("try { await external_fail({message: 'city not found'}); } catch (e) { return [e instanceof Error, e.name, e.message, String(e.stack || '')]; }")
        .await;
    let v = value(&r);
    assert_eq!(v[0], json!(true));
    assert_eq!(v[1], json!("Error"));
    assert_eq!(v[2], json!("city not found"));
    let stack = v[3].as_str().unwrap_or_default();
    for leak in [".rs", "/home", "/root", "cargo", "src/"] {
        assert!(
            !stack.contains(leak),
            "host detail {leak:?} in guest stack: {stack}"
        );
    }
}

/// An uncaught tool error fails the execution with the tool's message.
pub async fn uncaught_tool_error_fails_execution(h: &Harness) {
    let r = h
        .run("await external_fail({message: 'upstream 503'});\nreturn 1;")
        .await;
    let e = error(&r);
    assert_eq!(e.kind.name(), "Error");
    assert_eq!(e.message, "upstream 503");
    assert_eq!(e.line, Some(1), "{e}");

    // The error carries the line of the call that failed (the `await` of an inline call),
    // wherever the rejection is finally left uncaught, and on every path a call can fail
    // by: the tool's own error, an input the sandbox refuses, a call in a helper, one of a
    // Promise.all.
    for (code, line) in [
        (
            "const a = 1;\n\nconst r = await external_fail({message: 'x'});\nreturn r;",
            3,
        ),
        (
            "let v = {};\nfor (let i = 0; i < 100; i++) v = { v };\nconst r = await external_echo(v);\nreturn r;",
            3,
        ),
        (
            "async function get() {\n  const a = 1;\n  return await external_fail({message: 'x'});\n}\n\nreturn await get();",
            3,
        ),
        (
            "const all = Promise.all([external_echo({}),\n  external_echo({}),\n  external_fail({message: 'x'})]);\n\nreturn await all;",
            3,
        ),
    ] {
        let r = h.run(code).await;
        assert_eq!(error(&r).line, Some(line), "{code}: {}", error(&r));
    }
    let ts = "interface In { message: string }\nconst input: In = { message: 'x' };\n\nconst r: unknown = await external_fail(input);\nreturn r;";
    let r = h.run_typescript(ts).await;
    assert_eq!(r.error.expect("tool error").line, Some(4), "{ts}");
}

/// A call with no argument passes `{}`.
pub async fn no_argument_passes_empty_object(h: &Harness) {
    let r = h
        .run("return [await external_echo(), await external_echo(undefined)]")
        .await;
    assert_eq!(value(&r), json!([{}, {}]));
}

/// `Promise.all` over tool calls runs them concurrently on the host.
pub async fn parallel_tool_calls_overlap(h: &Harness) {
    let fixtures = Fixtures::default();
    let r = h
        .run_with(&fixtures, h.limits(), "const r = await Promise.all(Array.from({length: 10}, () => external_sleep({ms: 150}))); return r.length")
        .await;
    assert_eq!(value(&r), json!(10));
    assert_eq!(
        fixtures.max_concurrency(),
        10,
        "the 10 calls did not overlap"
    );
}

/// Many sequential awaited calls work (TanStack's WASM driver crashes at the 4th).
pub async fn sequential_tool_calls(h: &Harness) {
    let fixtures = Fixtures::default();
    let r = h
        .run_with(&fixtures, h.limits(), "let s = 0; for (let i = 0; i < 60; i++) { s += (await external_echo({i})).i; } return s")
        .await;
    assert_eq!(value(&r), json!((0..60).sum::<i32>()));
    assert_eq!(fixtures.call_count(), 60);
}

/// A hundred parallel calls all come back, each to its own caller.
pub async fn hundred_parallel_tool_calls(h: &Harness) {
    let r = h
        .run("const r = await Promise.all(Array.from({length: 100}, (_, i) => external_echo({i}))); return r.every((x, i) => x.i === i) && r.length")
        .await;
    assert_eq!(value(&r), json!(100));
}

/// Console methods are captured with their level and formatted.
pub async fn console_levels_and_formatting(h: &Harness) {
    let r = h
        .run("console.log('a', 1, true, null, undefined, {k: [1]}); console.info('i'); console.warn('w'); console.error('e'); console.debug('d'); return 0")
        .await;
    value(&r);
    let lines: Vec<(LogLevel, &str)> = r
        .logs
        .iter()
        .map(|e| (e.level, e.message.as_str()))
        .collect();
    assert_eq!(
        lines,
        vec![
            (LogLevel::Log, "a 1 true null undefined {\"k\":[1]}"),
            (LogLevel::Info, "i"),
            (LogLevel::Warn, "w"),
            (LogLevel::Error, "e"),
            (LogLevel::Debug, "d"),
        ]
    );
    let r = h.run("const o = {}; o.self = o; console.log(o, Symbol('s'), 5n, new TypeError('bad')); return 1").await;
    value(&r);
    assert_eq!(r.logs.len(), 1);
    assert!(
        r.logs[0].message.contains("Symbol(s) 5n TypeError: bad"),
        "{:?}",
        r.logs
    );
}

/// A log flood is capped (entries and bytes) with one truncation marker, and the program
/// still completes.
pub async fn console_caps(h: &Harness) {
    let limits = h.limits_with(|b| b.max_log_entries(100));
    let r = h
        .run_with(
            &Fixtures::default(),
            limits,
            "for (let i = 0; i < 100000; i++) console.log('line', i); return 'done'",
        )
        .await;
    assert_eq!(value(&r), json!("done"));
    assert_eq!(r.logs.len(), 101);
    assert_eq!(r.logs[100].message, TRUNCATION_MARKER);

    let limits = h.limits_with(|b| b.max_log_bytes(1000));
    let r = h
        .run_with(
            &Fixtures::default(),
            limits,
            "console.log('x'.repeat(5000)); console.log('after'); return 1",
        )
        .await;
    value(&r);
    let total: usize = r.logs.iter().map(|e| e.message.len()).sum();
    assert!(
        total <= 1000 + TRUNCATION_MARKER.len(),
        "{total} bytes kept"
    );
    assert_eq!(
        r.logs.last().map(|e| e.message.as_str()),
        Some(TRUNCATION_MARKER)
    );
}

/// Console lines reach the sink while the program runs, before it finishes.
pub async fn console_events_are_live(h: &Harness) {
    let seen: Arc<Mutex<Vec<(String, Instant)>>> = Arc::default();
    let s = seen.clone();
    let sink: ConsoleSink = Arc::new(move |_, m| {
        s.lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((m.to_owned(), Instant::now()))
    });
    let ctx = h
        .context_with(&Fixtures::default(), h.limits(), Some(sink))
        .await;
    let r = ctx.execute("console.log('first'); await external_sleep({ms: 200}); console.log('second'); return 1").await;
    let finished = Instant::now();
    ctx.dispose().await;
    value(&r);
    let seen = seen.lock().unwrap_or_else(|p| p.into_inner());
    assert_eq!(
        seen.iter().map(|(m, _)| m.as_str()).collect::<Vec<_>>(),
        ["first", "second"]
    );
    assert!(
        finished.duration_since(seen[0].1) >= Duration::from_millis(150),
        "first console line was not delivered live"
    );
}

/// `execute_typescript` events carry the tool-call id and come in order, console live.
pub async fn events_are_tagged_and_ordered(h: &Harness) {
    let (sink, mut rx) = EventSink::channel();
    let cm = h.code_mode(&Fixtures::default(), h.limits());
    let code = "console.log('start');\nconst r = await external_echo({q: 1});\ntry { await external_fail({message: 'nope'}); } catch {}\nreturn r.q;";
    let r = cm.execute(code, ExecuteOptions::new("call_42", sink)).await;
    assert!(r.success, "{r:?}");
    let mut names = Vec::new();
    while let Ok(event) = rx.try_recv() {
        assert_eq!(event.tool_call_id.as_deref(), Some("call_42"));
        assert_eq!(event.value()["toolCallId"], json!("call_42"));
        names.push(event.name().to_owned());
    }
    assert_eq!(
        names,
        [
            "code_mode:execution_started",
            "code_mode:console",
            "code_mode:external_call",
            "code_mode:external_result",
            "code_mode:external_call",
            "code_mode:external_error",
            "code_mode:execution_finished",
        ]
    );
}

async fn assert_times_out(h: &Harness, fixtures: &Fixtures, code: &str) {
    let started = Instant::now();
    let ctx = h.context_with(fixtures, h.short_limits(), None).await;
    let r = ctx.execute(code).await;
    assert_kind(&r, ErrorKind::Timeout);
    assert!(
        started.elapsed() < h.short_timeout + Duration::from_secs(5),
        "timeout enforced too late: {:?}",
        started.elapsed()
    );
    // A timeout is terminal for the context.
    assert_kind(&ctx.execute("return 1").await, ErrorKind::Disposed);
    ctx.dispose().await;
    h.assert_healthy().await;
}

/// `while (true) {}` is stopped by the deadline.
pub async fn infinite_loop(h: &Harness) {
    assert_times_out(h, &Fixtures::default(), "while (true) {}").await;
    assert_times_out(
        h,
        &Fixtures::default(),
        "try { while (true) {} } catch (e) { return 'caught' } finally { while (true) {} }",
    )
    .await;
}

/// An infinite loop after an awaited tool call is also stopped.
pub async fn infinite_loop_after_await(h: &Harness) {
    assert_times_out(
        h,
        &Fixtures::default(),
        "await external_echo({}); while (true) {}",
    )
    .await;
    assert_times_out(
        h,
        &Fixtures::default(),
        "const f = async () => { await null; f(); }; f(); await external_never();",
    )
    .await;
}

/// A tool call that never returns is cut by the deadline.
pub async fn never_resolving_tool_call(h: &Harness) {
    assert_times_out(h, &Fixtures::default(), "await external_never(); return 1").await;
}

/// Awaiting a promise nothing can settle fails at once instead of waiting for the timeout.
pub async fn never_settling_promise(h: &Harness) {
    let started = Instant::now();
    let r = h.run("await new Promise(() => {}); return 1").await;
    assert_kind(&r, ErrorKind::Deadlock);
    assert!(started.elapsed() < Duration::from_secs(5));
}

async fn assert_memory_failure(h: &Harness, code: &str, strict: bool) {
    let limits = h.limits_with(|b| b.memory_mib(32));
    let r = h.run_with(&Fixtures::default(), limits, code).await;
    let e = error(&r);
    if strict && h.capabilities.reports_memory_limit {
        assert_eq!(e.kind, ErrorKind::MemoryLimit, "{code}: {e}");
    }
    h.assert_healthy().await;
}

/// Growing arrays hit the memory limit.
pub async fn memory_bomb_arrays(h: &Harness) {
    assert_memory_failure(
        h,
        "const a = []; while (true) a.push(new Array(100000).fill(1.5));",
        true,
    )
    .await;
    assert_memory_failure(
        h,
        "const a = []; while (true) a.push({x: a.length, y: [a.length]});",
        true,
    )
    .await;
}

/// Growing strings fail (out of memory, or the engine's maximum string length).
pub async fn memory_bomb_strings(h: &Harness) {
    assert_memory_failure(h, "let s = 'x'; while (true) s += s;", false).await;
    assert_memory_failure(
        h,
        "const parts = []; let i = 0; while (true) parts.push('y'.repeat(65536) + (i++));",
        true,
    )
    .await;
}

/// Large buffers hit the memory limit.
pub async fn memory_bomb_array_buffers(h: &Harness) {
    assert_memory_failure(
        h,
        "return new ArrayBuffer(1024 * 1024 * 1024).byteLength;",
        true,
    )
    .await;
    assert_memory_failure(
        h,
        "const b = []; while (true) b.push(new Uint8Array(1024 * 1024));",
        true,
    )
    .await;
}

/// Unbounded recursion is a `StackOverflowError`, never a crash.
pub async fn deep_recursion(h: &Harness) {
    for code in [
        "function f(n) { return f(n + 1) + 1; } return f(0);",
        "const g = async (n) => (await g(n + 1)) + 1; return await g(0);",
        "const o = {}; o.toString = function () { return String(this); }; return String(o);",
    ] {
        let ctx = h.context_with(&Fixtures::default(), h.limits(), None).await;
        let r = ctx.execute(code).await;
        assert_kind(&r, ErrorKind::StackOverflow);
        assert_kind(&ctx.execute("return 1").await, ErrorKind::Disposed);
        ctx.dispose().await;
    }
    h.assert_healthy().await;
}

/// One nesting limit for results and tool inputs, the same on every driver: a value at the
/// limit passes whole, one level over is refused with the documented message (never a parse
/// failure, a silently changed value or a dead sandbox), far over too.
pub async fn value_nesting_limit(h: &Harness) {
    let max = code_mode::MAX_VALUE_DEPTH;
    let nest =
        |d: usize| format!("let v = 1; for (let i = 0; i < {d}; i++) v = i % 2 ? [v] : {{k: v}};");
    let r = h.run(&format!("{} return v;", nest(max))).await;
    assert_eq!(code_mode::value_depth(&value(&r)), max);
    for depth in [max + 1, 300] {
        let r = h.run(&format!("{} return v;", nest(depth))).await;
        let e = error(&r);
        assert_eq!(e.kind, ErrorKind::Result, "{depth}: {e}");
        assert!(
            e.message.contains(&format!("the limit is {max}")),
            "{depth}: {e}"
        );
    }
    // Tool input: at the limit it reaches the tool whole; over it the call throws a
    // catchable TypeError and the tool never runs.
    let fixtures = Fixtures::default();
    let code = format!(
        "{} const back = await external_echo({{v}}); return back.v === undefined ? 'lost' : 'ok';",
        nest(max - 1)
    );
    let r = h.run_with(&fixtures, h.limits(), &code).await;
    assert_eq!(value(&r), json!("ok"));
    assert_eq!(fixtures.call_count(), 1);
    for depth in [max, 300] {
        let code = format!(
            "{} try {{ await external_echo({{v}}); return 'called'; }} catch (e) {{ return e.name + ': ' + e.message; }}",
            nest(depth)
        );
        let r = h.run_with(&fixtures, h.limits(), &code).await;
        let v = value(&r);
        let text = v.as_str().unwrap_or_default();
        assert!(
            text.starts_with("TypeError: external_echo's input nests")
                && text.contains(&format!("the limit is {max}")),
            "{depth}: {v}"
        );
    }
    assert_eq!(
        fixtures.call_count(),
        1,
        "a too deep input reached the tool"
    );
    h.assert_healthy().await;
}

/// Memory outside the engine's heap (a WebAssembly memory) cannot bypass the memory limit:
/// either WebAssembly is absent, or growing a memory past the limit fails.
pub async fn webassembly_memory_cannot_bypass_the_limit(h: &Harness) {
    let limits = h.limits_with(|b| b.memory_mib(64));
    let code = "if (typeof WebAssembly === 'undefined') return 'absent';
        const m = new WebAssembly.Memory({ initial: 1, maximum: 65536 });
        try { for (let i = 0; i < 16; i++) m.grow(1024); } catch (e) { return 'refused: ' + e.name; }
        return 'grew to ' + m.buffer.byteLength;";
    let r = h.run_with(&Fixtures::default(), limits, code).await;
    match &r.outcome {
        Ok(Some(v)) => {
            let v = v.as_str().unwrap_or_default();
            assert!(
                v == "absent" || v.starts_with("refused") || !h.capabilities.reports_memory_limit,
                "a WebAssembly memory bypassed the 64 MiB limit: {v}"
            );
        }
        Ok(None) => panic!("no answer"),
        Err(e) => assert_eq!(e.kind, ErrorKind::MemoryLimit, "{e}"),
    }
    h.assert_healthy().await;
}

/// The program's scope holds none of the driver's machinery: no harness variables, no
/// entrypoint as `this`, no harness `arguments`.
pub async fn driver_machinery_is_out_of_scope(h: &Harness) {
    let code = "const seen = [];
        for (const name of ['host', 'caps', 'budget', 'charge', 'guard', 'fns', 'env', 'ctx', 'link', 'shared', 'bridge', '__cm_run', '__cm_deliver', '__cm_setup', '__main']) {
          let t; try { t = typeof eval(name); } catch { t = 'unreachable'; }
          if (t !== 'undefined' && t !== 'unreachable') seen.push(name + ':' + t);
        }
        const args = typeof arguments === 'undefined' ? 0 : arguments.length;
        const self = this === undefined || this === globalThis ? 'plain' : 'other';
        return { seen, args, self };";
    let r = h.run(code).await;
    let v = value(&r);
    // Without code generation `eval` throws: every name then reads as unreachable, and the
    // check falls back to the direct forms below.
    assert_eq!(v, json!({"seen": [], "args": 0, "self": "plain"}));
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

/// Tool calls refused while the program is deep in a recursion (input nested too deeply,
/// calls past the cap) do not move the engine's stack limit: the recursion still ends in
/// `StackOverflowError`, never in a crash.
pub async fn refused_calls_deep_in_a_recursion_keep_the_stack_limit(h: &Harness) {
    let limits = h.limits_with(|b| b.max_tool_calls(5));
    let code = "let deep = 1; for (let i = 0; i < 70; i++) deep = [deep];
        function f(n) { if (n % 200 === 0) { external_echo({deep}).catch(() => {}); } return f(n + 1) + 1; }
        return f(1);";
    let r = h.run_with(&Fixtures::default(), limits, code).await;
    assert_kind(&r, ErrorKind::StackOverflow);
    h.assert_healthy().await;
}

/// Every stack limit the core accepts is safe: deep recursion at the smallest, a middling
/// and the largest limit ends in `StackOverflowError` (a driver may lower a limit its engine
/// cannot give, never raise it or crash).
pub async fn deep_recursion_at_every_stack_limit(h: &Harness) {
    for kib in [16, 8 * 1024, 64 * 1024] {
        let limits = h.limits_with(|b| b.stack_kib(kib));
        let ctx = h.context_with(&Fixtures::default(), limits, None).await;
        let r = ctx
            .execute("function f(n) { return n === 0 ? 0 : 1 + f(n - 1); } return f(1e8);")
            .await;
        let e = error(&r);
        assert_eq!(e.kind, ErrorKind::StackOverflow, "stack {kib} KiB: {e}");
        ctx.dispose().await;
    }
    h.assert_healthy().await;
}

/// Built-ins that loop over a huge array-like object end at the deadline like any other
/// code: the caller hears `TimeoutError` (or `MemoryLimitError`) within the deadline plus a
/// grace, and other contexts work meanwhile and after.
pub async fn long_builtins_stop_at_the_deadline(h: &Harness) {
    let limits = h.limits_with(|b| b.timeout(h.short_timeout));
    for code in [
        "return Array.prototype.includes.call({length: 2 ** 53 - 1}, 1)",
        "return Array.prototype.join.call({length: 2 ** 32 - 1}, '')",
        "return Array.prototype.lastIndexOf.call({length: 2 ** 53 - 1}, 1)",
        "const a = []; a.length = 2 ** 32 - 1; return a.indexOf(1)",
        "return Array.prototype.sort.call({length: 2 ** 32 - 1, 0: 1})",
        "return Array.prototype.concat.call([], {length: 2 ** 32 - 1, [Symbol.isConcatSpreadable]: true}).length",
    ] {
        let ctx = h.context_with(&Fixtures::default(), limits, None).await;
        let started = Instant::now();
        let r = ctx.execute(code).await;
        let took = started.elapsed();
        // An engine may also finish quickly (V8 handles sparse arrays well): any answer but a
        // hang, and no error other than the limits.
        if let Err(e) = &r.outcome {
            assert!(
                matches!(e.kind, ErrorKind::Timeout | ErrorKind::MemoryLimit),
                "{code}: {e}"
            );
        }
        // Every driver answers within 100 ms of the deadline (a loaded CI machine gets a
        // margin on top).
        assert!(
            took < h.short_timeout + Duration::from_millis(1000),
            "{code}: the caller waited {took:?} for a {:?} deadline",
            h.short_timeout
        );
        ctx.dispose().await;
        h.assert_healthy().await;
    }
}

/// Error messages and names of any size are cut to the documented caps with a marker.
pub async fn huge_error_messages_are_capped(h: &Harness) {
    for code in [
        "throw new Error('m'.repeat(20 * 1024 * 1024))",
        "const e = new Error('x'); e.name = 'N'.repeat(100000); throw e;",
        "throw 'm'.repeat(5 * 1024 * 1024)",
    ] {
        let r = h.run(code).await;
        let e = error(&r);
        assert!(
            e.message.len() <= code_mode::MAX_ERROR_MESSAGE_BYTES + 64,
            "{code}: message of {} bytes",
            e.message.len()
        );
        assert!(
            e.kind.name().len() <= code_mode::MAX_ERROR_NAME_BYTES + 64,
            "{code}: name of {} bytes",
            e.kind.name().len()
        );
    }
    let r = h.run("throw new Error('m'.repeat(100000))").await;
    assert!(
        error(&r).message.contains("truncated: 100000 bytes"),
        "{:?}",
        r.outcome
    );
}

/// Strings the host and guest exchange keep their content: lone surrogates in console
/// lines become U+FFFD (never an exception in the program), NUL characters in the program's
/// text and values survive.
pub async fn odd_strings_survive(h: &Harness) {
    let r = h
        .run("console.log('a\\uD800b'); console.log('\\uDC00'); return 'ok'")
        .await;
    assert_eq!(value(&r), json!("ok"));
    let lines: Vec<String> = r.logs.iter().map(|e| e.to_line()).collect();
    assert_eq!(lines, ["a\u{FFFD}b", "\u{FFFD}"], "{lines:?}");
    let r = h.run("return ['x\\uD800', '\\uD83D\\uDE00']").await;
    assert_eq!(value(&r), json!(["x\u{FFFD}", "😀"]));
    // A raw NUL inside a string literal of the program, and one in the result.
    let r = h
        .run("const s = 'a\0b'; return [s.length, s.charCodeAt(1), 'x\\u0000y']")
        .await;
    assert_eq!(value(&r), json!([3, 0, "x\u{0}y"]));
}

/// Line numbers count line terminators as ECMAScript does (LF, CR, CRLF, U+2028, U+2029).
pub async fn lines_follow_ecmascript_line_terminators(h: &Harness) {
    for (code, line) in [
        ("const a = 1;\rconst b = 2;\rnull.x;", 3),
        ("const a = 1;\r\nconst b = 2;\r\nnull.x;", 3),
        ("const a = 1;\u{2028}const b = 2;\u{2029}null.x;", 3),
    ] {
        let r = h.run_typescript(code).await;
        let e = r.error.unwrap_or_else(|| panic!("{code:?} succeeded"));
        assert_eq!(e.line, Some(line), "{code:?}: {e}");
    }
}

/// Absurdly nested code is refused with an error, never a crash of the host: through
/// `execute_typescript` (the TypeScript parser) and straight into the driver (the engine's
/// parser).
pub async fn deeply_nested_code_is_refused(h: &Harness) {
    for code in [
        format!("return {}1{};", "(".repeat(50_000), ")".repeat(50_000)),
        format!("return {}1;", "!".repeat(100_000)),
        format!("return {}1;", "[".repeat(50_000)) + &"]".repeat(50_000),
    ] {
        let r = h.run_typescript(&code).await;
        let e = r.error.expect("refused");
        assert_eq!(e.kind, ErrorKind::TypeScript, "{e}");
        let r = h.run(&code).await;
        assert!(
            !r.is_success(),
            "the driver accepted {} levels of nesting",
            code.len() / 2
        );
    }
    // What crashed the host in the outside test round: statement, type and chain nesting
    // that brackets do not show. `execute_typescript` refuses them; straight into the
    // driver (where some are valid JavaScript) any answer will do but a crash.
    for code in [
        format!(
            "let x = 0; if (x) {{}} {} else {{}}",
            "else if (x) {} ".repeat(15_000)
        ),
        format!(
            "let v: {}number{} = 1;",
            "Array<".repeat(30_000),
            ">".repeat(30_000)
        ),
        format!("type T = {}string; return 1;", "keyof ".repeat(40_000)),
        format!("let a: any = 1; return a{};", "!".repeat(200_000)),
        format!("let a: any = 1; return a{};", ".b".repeat(100_000)),
        format!("return 1{};", "..toString()".repeat(20_000)),
        format!("{} 1;", "l: ".repeat(60_000)),
        format!(
            "const C = {}Object {{}}; return 1;",
            "class extends ".repeat(15_000)
        ),
    ] {
        let r = h.run_typescript(&code).await;
        let e = r.error.expect("refused");
        assert_eq!(e.kind, ErrorKind::TypeScript, "{e}");
        assert!(e.message.contains("nests too deeply"), "{e}");
        let _ = h.run(&code).await;
    }
    h.assert_healthy().await;
}

/// Past `max_tool_calls` calls are refused with a catchable `ToolCallLimitError`, and an
/// uncaught one fails the execution with that name.
pub async fn tool_call_flood(h: &Harness) {
    let fixtures = Fixtures::default();
    let limits = h.limits_with(|b| b.max_tool_calls(5));
    let r = h
        .run_with(&fixtures, limits, "let ok = 0, err = ''; for (let i = 0; i < 1000; i++) { try { await external_echo({i}); ok++; } catch (e) { err = e.name + ': ' + e.message; } } return {ok, err}")
        .await;
    let v = value(&r);
    assert_eq!(v["ok"], json!(5));
    assert!(
        v["err"]
            .as_str()
            .unwrap_or_default()
            .starts_with("ToolCallLimitError: Exceeded the maximum of 5 tool calls"),
        "{v}"
    );
    assert_eq!(fixtures.call_count(), 5);

    let limits = h.limits_with(|b| b.max_tool_calls(3));
    let r = h
        .run_with(
            &Fixtures::default(),
            limits,
            "await Promise.all(Array.from({length: 10000}, () => external_echo({})));",
        )
        .await;
    assert_kind(&r, ErrorKind::ToolCallLimit);
}

/// A result above `max_result_bytes` is a `ResultTooLargeError`.
pub async fn huge_return_value(h: &Harness) {
    let limits = h.limits_with(|b| b.max_result_bytes(10_000));
    let r = h
        .run_with(&Fixtures::default(), limits, "return 'x'.repeat(20000)")
        .await;
    assert_kind(&r, ErrorKind::ResultTooLarge);
    let r = h
        .run_with(
            &Fixtures::default(),
            limits,
            "return Array.from({length: 5000}, (_, i) => i)",
        )
        .await;
    assert_kind(&r, ErrorKind::ResultTooLarge);
    let r = h
        .run_with(&Fixtures::default(), limits, "return 'x'.repeat(9000)")
        .await;
    assert_eq!(value(&r).as_str().map(str::len), Some(9000));
}

/// Functions, symbols, BigInt and cycles are refused with a clear `ResultError`.
pub async fn non_json_results(h: &Harness) {
    for code in [
        "return () => 1",
        "return Symbol('s')",
        "return 10n",
        "return {n: 10n}",
        "const a = {}; a.self = a; return a",
    ] {
        let r = h.run(code).await;
        let e = error(&r);
        assert_eq!(e.kind, ErrorKind::Result, "{code}: {e}");
        assert!(e.message.contains("JSON"), "{code}: {e}");
    }
    // Nested non-JSON members follow JSON semantics (dropped or null).
    let r = h.run("return {f() {}, u: undefined, a: [() => 1]}").await;
    assert_eq!(value(&r), json!({"a": [null]}));
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

/// Strings that would break out of generated code round-trip exactly.
pub async fn hostile_strings_round_trip(h: &Harness) {
    let hostile = "\"); process.exit(1); //`${globalThis}`\\'\u{2028}\u{0}</script>";
    let code = format!(
        "const r = await external_echo({{s: {}}}); return r.s",
        serde_json::to_string(hostile).unwrap_or_default()
    );
    let r = h.run(&code).await;
    assert_eq!(value(&r), json!(hostile));
}

/// Globals persist within a context (for drivers that keep them) and never cross contexts.
pub async fn state_isolation_between_contexts(h: &Harness) {
    let a = h.bare_context(h.limits()).await;
    let b = h.bare_context(h.limits()).await;
    value(&a.execute("globalThis.marker = 'A'; return 1").await);
    let expected = if h.capabilities.persistent_globals {
        json!("A")
    } else {
        Value::Null
    };
    assert_eq!(
        value(&a.execute("return globalThis.marker ?? null").await),
        expected
    );
    assert_eq!(
        value(&b.execute("return typeof globalThis.marker").await),
        json!("undefined")
    );
    a.dispose().await;
    b.dispose().await;
}

/// Concurrent executions on one context run one at a time, in call order.
pub async fn executions_on_one_context_are_serialized(h: &Harness) {
    if !h.capabilities.persistent_globals {
        // Observed on the host instead: the two executions' tool calls never overlap.
        let fixtures = Fixtures::default();
        let ctx = h.context_with(&fixtures, h.limits(), None).await;
        let (a, b) = tokio::join!(
            ctx.execute("await external_sleep({ms: 100}); return 'a'"),
            ctx.execute("await external_sleep({ms: 100}); return 'b'"),
        );
        assert_eq!((value(&a), value(&b)), (json!("a"), json!("b")));
        assert_eq!(fixtures.max_concurrency(), 1, "executions overlapped");
        ctx.dispose().await;
        return;
    }
    let ctx = h.context_with(&Fixtures::default(), h.limits(), None).await;
    value(&ctx.execute("globalThis.s = ''; return 1").await);
    let (a, b) = tokio::join!(
        ctx.execute("await external_sleep({ms: 50}); globalThis.s += 'a'; return s"),
        ctx.execute("globalThis.s += 'b'; return s"),
    );
    assert_eq!(value(&a), json!("a"));
    assert_eq!(value(&b), json!("ab"));
    ctx.dispose().await;
}

/// `dispose` is idempotent; executing afterwards gives `DisposedError`.
pub async fn dispose_is_idempotent_and_final(h: &Harness) {
    let ctx = h.bare_context(h.limits()).await;
    value(&ctx.execute("return 1").await);
    ctx.dispose().await;
    ctx.dispose().await;
    assert_kind(&ctx.execute("return 1").await, ErrorKind::Disposed);
}

/// A hundred contexts running at once each get their own results and logs.
pub async fn hundred_concurrent_contexts(h: &Harness) {
    let mut runs = Vec::new();
    for i in 0..100 {
        runs.push(async move {
            let code = format!("globalThis.me = {i}; console.log('ctx', {i}); const r = await external_sleep({{ms: {}}}); const e = await external_echo({{i: me}}); return [me, e.i]", i % 7);
            let r = h.run(&code).await;
            (i, r)
        });
    }
    for (i, r) in futures::future::join_all(runs).await {
        assert_eq!(value(&r), json!([i, i]), "context {i}");
        assert_eq!(r.logs.len(), 1);
        assert_eq!(r.logs[0].message, format!("ctx {i}"));
    }
}

/// After every kind of failure, a fresh context works.
pub async fn next_execution_works_after_failures(h: &Harness) {
    let limits = Limits::builder()
        .timeout(h.short_timeout)
        .memory_mib(32)
        .build()
        .expect("limits");
    for code in [
        "while (true) {}",
        "function f() { return f() + 1 } return f()",
        "const a = []; while (true) a.push(new Array(1e5).fill(0))",
        "throw new Error('x')",
        "syntax error here (",
        "await new Promise(() => {})",
    ] {
        let r = h.run_with(&Fixtures::default(), limits, code).await;
        assert!(!r.is_success(), "{code}");
        h.assert_healthy().await;
    }
}

/// What a tracing backend receives from one execution (the spans `code_mode`'s `trace`
/// module documents, exported to memory through `tracing-opentelemetry`): one
/// `execute_tool execute_typescript` span under the caller's, with one child per tool call
/// (parallel, sequential and failing ones alike), console lines and the truncation as its
/// events, and a timeout as an error with its name.
pub async fn execution_spans_form_the_documented_tree(h: &Harness) {
    let fixtures = Fixtures::default();
    let cm = h.code_mode(&fixtures, h.limits_with(|b| b.max_log_entries(20)));
    let code = "const [a, b] = await Promise.all([external_echo({ n: 1 }), external_echo({ n: 2 })]);\nconst c = await external_add({ a: a.n, b: b.n });\ntry { await external_fail({ message: 'no' }); } catch (e) { console.log('caught', e.message); }\nfor (let i = 0; i < 50; i++) console.log('line', i);\nreturn c;";
    let run = async {
        let r = cm
            .execute(
                code,
                ExecuteOptions::new("call_spans", EventSink::default()),
            )
            .await;
        assert_eq!(
            r.result.as_ref().and_then(Value::as_f64),
            Some(3.0),
            "{r:?}"
        );
    };
    let Some((root, spans)) = crate::spans::record(5, run).await else {
        eprintln!("span tree not checked: this process already has a global tracing subscriber");
        return;
    };
    assert_eq!(spans.len(), 5, "{spans:#?}");
    let exec = spans
        .iter()
        .find(|s| s.name == "execute_tool execute_typescript")
        .unwrap_or_else(|| panic!("no execution span: {spans:#?}"));
    assert_eq!(
        exec.parent, root.id,
        "the execution is a child of the caller's span"
    );
    let driver = h.driver().name().to_owned();
    let bytes = code.len().to_string();
    for (key, want) in [
        ("gen_ai.operation.name", "execute_tool"),
        ("gen_ai.tool.name", "execute_typescript"),
        ("gen_ai.tool.call.id", "call_spans"),
        ("code_mode.driver", driver.as_str()),
        ("code_mode.code.bytes", bytes.as_str()),
        ("code_mode.outcome", "ok"),
        ("code_mode.tool_calls", "4"),
        ("code_mode.logs", "21"),
    ] {
        assert_eq!(exec.attr(key), Some(want), "{key}: {exec:#?}");
    }
    assert!(
        !exec.error && exec.attr("error.type").is_none(),
        "{exec:#?}"
    );
    let consoles = exec.events.iter().filter(|e| *e == "console").count();
    assert_eq!(consoles, 20, "{:?}", exec.events);
    assert_eq!(
        exec.events.last().map(String::as_str),
        Some("console truncated")
    );
    let mut children: Vec<_> = spans.iter().filter(|s| s.parent == exec.id).collect();
    children.sort_by(|a, b| a.name.cmp(&b.name));
    let names: Vec<&str> = children.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "execute_tool external_add",
            "execute_tool external_echo",
            "execute_tool external_echo",
            "execute_tool external_fail"
        ]
    );
    for echo in &children[1..3] {
        assert_eq!(echo.attr("gen_ai.tool.name"), Some("echo"));
        assert_eq!(echo.attr("code_mode.input.bytes"), Some("7"), "{echo:#?}");
        assert_eq!(echo.attr("code_mode.output.bytes"), Some("7"), "{echo:#?}");
        assert_eq!(echo.attr("code_mode.outcome"), Some("ok"));
        // Values are recorded only when the application opts in.
        assert!(echo.attr("gen_ai.tool.call.arguments").is_none());
    }
    let fail = children[3];
    assert_eq!(fail.attr("code_mode.outcome"), Some("error"));
    assert_eq!(fail.attr("error.type"), Some("ToolError"));
    assert!(fail.error, "{fail:#?}");

    let cm = h.code_mode(&fixtures, h.short_limits());
    let run = async {
        let r = cm
            .execute("while (true) {}", ExecuteOptions::default())
            .await;
        assert_eq!(r.error.map(|e| e.kind), Some(ErrorKind::Timeout));
    };
    let Some((root, spans)) = crate::spans::record(1, run).await else {
        return;
    };
    assert_eq!(spans.len(), 1, "{spans:#?}");
    let exec = &spans[0];
    assert_eq!(exec.parent, root.id);
    assert_eq!(exec.attr("code_mode.outcome"), Some("error"));
    assert_eq!(exec.attr("error.type"), Some("TimeoutError"));
    assert_eq!(exec.attr("code_mode.tool_calls"), Some("0"));
    assert!(exec.error, "{exec:#?}");
    h.assert_healthy().await;
}
