//! What a thrown value becomes: error classes and names, odd thrown values, capped messages.

use super::*;

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

/// Thrown values whose `name` or `message` getters throw, proxies and other odd values end
/// the execution with a readable error (never a crash, never a driver error), and the
/// context goes on working.
pub async fn odd_thrown_values_are_described(h: &Harness) {
    let cases = [
        "throw { get name() { throw new Error('name getter') }, get message() { return 'm' } }",
        "throw { get name() { return 'N' }, get message() { throw new Error('message getter') } }",
        "class E extends Error { get name() { throw 1 } }\nthrow new E('x')",
        "const e = new Error('x'); Object.defineProperty(e, 'message', { get() { throw e } }); throw e",
        "throw new Proxy({}, { get() { throw new Error('trap') } })",
        "throw new Proxy(new Error('p'), { get(t, k) { if (k === 'name') throw 1; return Reflect.get(t, k) } })",
        "throw Object.create(null)",
        "throw [1, 2]",
        "throw undefined",
        "throw Symbol('s')",
    ];
    let fixtures = Fixtures::default();
    let mut ctx = h.context_with(&fixtures, h.limits(), None).await;
    for code in cases {
        let r = ctx.execute(code).await;
        let e = error(&r);
        assert!(
            !matches!(&e.kind, ErrorKind::Driver(_)),
            "{code}: a thrown value is the program's error, not the driver's: {e}"
        );
        assert!(!e.kind.name().is_empty(), "{code}: {e}");
        let after = ctx.execute("return 1 + 1").await;
        if after.error().is_some_and(|e| e.kind == ErrorKind::Disposed) {
            // A driver may not keep a context after a failure it deems terminal; a fresh
            // one must work.
            ctx = h.context_with(&fixtures, h.limits(), None).await;
            continue;
        }
        assert_eq!(
            value(&after),
            json!(2),
            "{code}: the context works after it"
        );
    }
    ctx.dispose().await;
}

/// The error names a model can see come from one documented set on every driver: the
/// [`ErrorKind`] names, `InternalError` for the sandbox's own failures, and whatever the
/// program itself threw. No driver's name is an error name, and the limit errors carry the
/// core's exact messages.
pub async fn error_names_and_messages_are_the_documented_ones(h: &Harness) {
    let limits = h.limits_with(|b| {
        b.timeout(h.short_timeout)
            .max_tool_calls(3)
            .max_result_bytes(100)
    });
    let fixtures = Fixtures::default();
    let cases: [(&str, code_mode::ExecutionError); 4] = [
        (
            "while (true) {}",
            code_mode::ExecutionError::timeout(limits.timeout()),
        ),
        (
            "return 'x'.repeat(200)",
            code_mode::ExecutionError::result_too_large(202, 100),
        ),
        (
            "await new Promise(() => {})",
            code_mode::ExecutionError::deadlock(),
        ),
        (
            "for (let i = 0; i < 10; i++) await external_echo({ i })",
            code_mode::ExecutionError::tool_call_limit(3),
        ),
    ];
    for (code, expected) in cases {
        let r = h.run_with(&fixtures, limits, code).await;
        let e = error(&r);
        if expected.kind == ErrorKind::Deadlock && e.kind == ErrorKind::Timeout {
            // A driver that cannot see a deadlock waits for the deadline instead.
            continue;
        }
        assert_eq!(e.kind, expected.kind, "{code}: {e}");
        if expected.kind == ErrorKind::ToolCallLimit {
            assert!(e.message.starts_with(&expected.message), "{code}: {e}");
        } else {
            assert_eq!(e.message, expected.message, "{code}");
        }
    }
    let documented: Vec<&str> = ErrorKind::DOCUMENTED.to_vec();
    for code in [
        "return (",
        "undefinedVariable",
        "return () => 1",
        "const a = []; while (true) a.push('x'.repeat(1e5) + a.length)",
        "const f = (n) => f(n + 1) + 1; return f(0)",
    ] {
        let r = h.run_with(&fixtures, h.limits(), code).await;
        let e = error(&r);
        let name = e.kind.name();
        let thrown_by_program = matches!(e.kind, ErrorKind::Guest(_));
        assert!(
            thrown_by_program || documented.contains(&name),
            "{code}: `{name}` is not a documented error name ({documented:?})"
        );
    }
}
