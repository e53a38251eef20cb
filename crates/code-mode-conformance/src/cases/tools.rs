//! Tool calls: input validation, errors that reach the program, sequential and parallel calls, floods.

use super::*;

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
