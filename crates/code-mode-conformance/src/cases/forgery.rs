//! Outcomes that cannot be forged: a limit error is reported only when the engine or the
//! host observed the limit (an interrupt, an allocator's refusal, a stack guard, a deadline),
//! never because some text the program or a tool wrote contains a limit's phrase.
//!
//! The cases are generated: every phrase a driver, an engine or a runtime uses for a limit,
//! in every place a program can put text (its own errors of several classes, a thrown string,
//! a tool's error message, an unhandled rejection, a property name in a cyclic result, an
//! error renamed to an engine's error class). Each must come back as the program's own
//! outcome, and the context must stay alive (a limit error would be terminal).

use code_mode::ErrorKind;
use serde_json::json;

use crate::Harness;
use crate::fixtures::Fixtures;

/// Every limit phrase of every engine, runtime and driver (QuickJS, V8, isolated-vm,
/// workerd, and this project's own wording).
pub const LIMIT_PHRASES: [&str; 14] = [
    "out of memory",
    "Maximum call stack size exceeded",
    "stack overflow",
    "memory limit",
    "exceeded memory",
    "Array buffer allocation failed",
    "Script execution timed out.",
    "exceeded CPU",
    "CPU time limit",
    "would never generate a response",
    "interrupted",
    "Isolate was disposed during execution due to memory limit",
    "Code execution timed out after 10 ms",
    "Code execution exceeded the memory limit of 1 MiB",
];

/// One place a program can put a phrase, and what must come back.
struct Placement {
    what: &'static str,
    code: fn(&str) -> String,
    check: fn(&code_mode::ExecutionResult, &str),
}

fn quoted(p: &str) -> String {
    serde_json::to_string(p).expect("a string serializes")
}

fn guest_error(r: &code_mode::ExecutionResult, name: &str, phrase: &str) {
    let e = super::error(r);
    assert_eq!(
        e.kind,
        ErrorKind::Guest(name.into()),
        "{phrase:?}: expected the program's own {name}, got {e}"
    );
    assert!(e.message.contains(phrase), "{phrase:?}: {e}");
}

fn placements() -> Vec<Placement> {
    vec![
        Placement {
            what: "an Error thrown by the program",
            code: |p| format!("throw new Error('cache ' + {});", quoted(p)),
            check: |r, p| guest_error(r, "Error", p),
        },
        Placement {
            what: "a RangeError whose longer message contains the phrase",
            code: |p| format!("throw new RangeError({} + ' (in the cache)');", quoted(p)),
            check: |r, p| guest_error(r, "RangeError", p),
        },
        Placement {
            what: "a thrown string",
            code: |p| format!("throw 'x: ' + {};", quoted(p)),
            check: |r, p| guest_error(r, "Error", p),
        },
        Placement {
            what: "an error renamed InternalError",
            code: |p| {
                format!(
                    "const e = new Error('x ' + {}); e.name = 'InternalError'; throw e;",
                    quoted(p)
                )
            },
            check: |r, p| guest_error(r, "InternalError", p),
        },
        Placement {
            what: "a tool's error message, uncaught",
            code: |p| {
                format!(
                    "await external_fail({{ message: 'upstream said: ' + {} }}); return 'no';",
                    quoted(p)
                )
            },
            check: |r, p| guest_error(r, "Error", p),
        },
        Placement {
            what: "a tool's error message, caught",
            code: |p| {
                format!(
                    "try {{ await external_fail({{ message: {} }}); }} catch (e) {{ return [e.name, e.message]; }}",
                    quoted(p)
                )
            },
            check: |r, p| assert_eq!(super::value(r), json!(["Error", p]), "{p:?}"),
        },
        Placement {
            what: "an unhandled rejection",
            code: |p| {
                format!(
                    "Promise.reject(new Error({0})); Promise.reject(new RangeError({0})); await external_echo({{}}); return 'went on';",
                    quoted(p)
                )
            },
            check: |r, p| assert_eq!(super::value(r), json!("went on"), "{p:?}"),
        },
        Placement {
            what: "a property name of a cyclic result",
            code: |p| format!("const o = {{}}; o[{}] = o; return o;", quoted(p)),
            check: |r, p| {
                let e = super::error(r);
                assert_eq!(e.kind, ErrorKind::Result, "{p:?}: {e}");
            },
        },
    ]
}

/// Every limit phrase in every place a program can put text comes back as the program's own
/// outcome, on a context that stays alive.
pub async fn limit_phrases_in_guest_text_decide_nothing(h: &Harness) {
    let fixtures = Fixtures::default();
    for phrase in LIMIT_PHRASES {
        let ctx = h.context_with(&fixtures, h.limits(), None).await;
        for placement in placements() {
            let code = (placement.code)(phrase);
            let r = ctx.execute(&code).await;
            if let Err(e) = &r.outcome {
                assert!(
                    !e.kind.is_terminal(),
                    "{phrase:?} in {}: the program's own text ended as {e}",
                    placement.what
                );
            }
            (placement.check)(&r, phrase);
            let after = ctx.execute("return 1 + 1").await;
            assert_eq!(
                after.value(),
                Some(&json!(2)),
                "{phrase:?} in {}: the context did not survive: {after:?}",
                placement.what
            );
        }
        ctx.dispose().await;
    }
    // The limit errors' own names, given to the program's errors.
    let ctx = h.context_with(&fixtures, h.limits(), None).await;
    for name in LIMIT_ERROR_NAMES {
        let code = format!("const e = new Error('mine'); e.name = '{name}'; throw e;");
        let r = ctx.execute(&code).await;
        assert_eq!(
            super::error(&r).kind,
            ErrorKind::Guest(name.into()),
            "an error the program named {name}"
        );
        let code = format!(
            "try {{ await external_fail({{ message: 'x' }}); }} catch (e) {{ e.name = '{name}'; throw e; }}"
        );
        let r = ctx.execute(&code).await;
        assert_eq!(
            super::error(&r).kind,
            ErrorKind::Guest(name.into()),
            "{name} from a tool's error"
        );
        assert_eq!(
            ctx.execute("return 1 + 1").await.value(),
            Some(&json!(2)),
            "{name}"
        );
    }
    ctx.dispose().await;
    h.assert_healthy().await;
}

/// The names of the errors only an engine or host may report.
pub const LIMIT_ERROR_NAMES: [&str; 5] = [
    "TimeoutError",
    "MemoryLimitError",
    "StackOverflowError",
    "DisposedError",
    "DeadlockError",
];

/// The engine's own overflow error made by the program (exact name and message) is the
/// program's `RangeError` where the engine reports its stack guard; a real overflow is still
/// a `StackOverflowError`, also after a forged one on the same context.
pub async fn forged_engine_errors_are_the_programs_own(h: &Harness) {
    let fixtures = Fixtures::default();
    let ctx = h.context_with(&fixtures, h.limits(), None).await;
    let r = ctx
        .execute("throw new RangeError('Maximum call stack size exceeded');")
        .await;
    if h.capabilities.engine_stack_signal {
        let e = super::error(&r);
        assert_eq!(e.kind, ErrorKind::Guest("RangeError".into()), "{e}");
        // QuickJS's out-of-memory error, made by the program.
        let r = ctx
            .execute("const e = new Error('out of memory'); e.name = 'InternalError'; throw e;")
            .await;
        assert_eq!(
            super::error(&r).kind,
            ErrorKind::Guest("InternalError".into())
        );
        let r = ctx.execute("throw null;").await;
        assert_eq!(super::error(&r).kind, ErrorKind::Guest("Error".into()));
        // Caught real overflows leave the program in charge of what it throws next.
        let r = ctx
            .execute("const f = (n) => f(n + 1) + 1; try { f(0); } catch (e) { throw new TypeError('after ' + e.name); }")
            .await;
        assert_eq!(super::error(&r).kind, ErrorKind::Guest("TypeError".into()));
        let r = ctx.execute("return 1 + 1").await;
        assert_eq!(r.value(), Some(&json!(2)));
    } else {
        assert_eq!(super::error(&r).kind, ErrorKind::StackOverflow);
    }
    ctx.dispose().await;
    let r = h.run("const f = (n) => f(n + 1) + 1; return f(0);").await;
    assert_eq!(super::error(&r).kind, ErrorKind::StackOverflow, "{r:?}");
    // An allocator refusal's exact text, made by the program, is its own error everywhere
    // (V8 says it in these words when its allocator refuses; only an observed refusal counts).
    for code in [
        "throw new RangeError('Array buffer allocation failed');",
        "const e = new RangeError('Array buffer allocation failed'); try { new Uint8Array(-1); } catch {} throw e;",
        "return await Promise.reject(new RangeError('Array buffer allocation failed'));",
    ] {
        let r = h.run(code).await;
        assert_eq!(
            super::error(&r).kind,
            ErrorKind::Guest("RangeError".into()),
            "{code}: {r:?}"
        );
    }
    h.assert_healthy().await;
}

/// A tool whose error reads exactly like an engine's own failure (a JavaScript tool that
/// itself overflowed its stack, ran out of memory or timed out) fails the program with that
/// tool's error, never a limit, on every driver, whether the program awaits it, returns it or
/// leaves it in `Promise.all`; the context lives on. Generated over the engines' own texts.
pub async fn a_tools_engine_like_error_is_the_tools(h: &Harness) {
    let fixtures = Fixtures::default();
    let ctx = h.context_with(&fixtures, h.limits(), None).await;
    for (name, message) in [
        ("RangeError", "Maximum call stack size exceeded"),
        ("RangeError", "Array buffer allocation failed"),
        ("InternalError", "out of memory"),
        ("InternalError", "stack overflow"),
        ("Error", "Script execution timed out."),
        ("Error", "Worker exceeded memory limit."),
    ] {
        let args = json!({"name": name, "message": message});
        for form in [
            format!("await external_fail_as({args});"),
            format!("return await external_fail_as({args});"),
            format!("await Promise.all([external_echo({{}}), external_fail_as({args})]);"),
        ] {
            let r = ctx.execute(&form).await;
            let e = super::error(&r);
            assert_eq!(e.kind, ErrorKind::from_guest_name(name), "{form}: {e}");
            assert_eq!(e.message, message, "{form}: {e}");
        }
    }
    let r = ctx.execute("return 1 + 1").await;
    assert_eq!(r.value(), Some(&json!(2)), "{r:?}");
    ctx.dispose().await;
    h.assert_healthy().await;
}

/// Built-ins a program may replace before it calls `console.log`, a tool or `return`.
pub const REPLACED_INTRINSICS: [&str; 10] = [
    "Object.defineProperty(Symbol.prototype, 'description', { get() { throw new Error('boom'); }, configurable: true });",
    "Object.defineProperty(Error, Symbol.hasInstance, { value: () => { throw new Error('boom'); }, configurable: true });",
    "Object.defineProperty(Array, Symbol.species, { get() { throw new Error('boom'); }, configurable: true });",
    "Object.defineProperty(Object.prototype, 'get', { get() { return () => 1; }, configurable: true });",
    "Array.prototype.map = () => { throw new Error('boom'); }; Array.prototype.join = () => 'forged';",
    "JSON.stringify = () => 'forged'; JSON.parse = () => ({ forged: true });",
    "String.prototype.slice = () => 'x'; String.prototype.charCodeAt = () => 0; String.prototype.toString = () => 'forged';",
    "Promise.prototype.then = function () { throw new Error('boom'); };",
    "Reflect.apply = () => { throw new Error('boom'); }; Function.prototype.apply = () => 'forged';",
    "Object.defineProperty = () => { throw new Error('boom'); }; Object.getOwnPropertyDescriptor = () => undefined;",
];

/// Console formatting, tool calls, tool errors and the result do not depend on built-ins
/// the program can replace: each replacement, made before and after an await, leaves every
/// output exactly as without it (a symbol whose description getter throws, a function whose
/// `name` getter throws and an error still log as they do on the native driver).
pub async fn replaced_intrinsics_change_no_output(h: &Harness) {
    let body = "await external_echo({ n: 1 });\nAFTER\nconsole.log('a', 1, { b: [2] }, Symbol('s'), f, new TypeError('t'), null, undefined);\nlet caught = 'none';\ntry { await external_fail({ message: 'tool said no' }); } catch (e) { caught = e.name + ': ' + e.message; }\nreturn { caught, echo: await external_echo({ k: 'v' }) };";
    let prefix = "const f = function () {};\nObject.defineProperty(f, 'name', { get() { throw new Error('n'); } });\n";
    let expected_log =
        "a 1 {\"b\":[2]} Symbol(s) [Function (anonymous)] TypeError: t null undefined";
    let expected = json!({"caught": "Error: tool said no", "echo": {"k": "v"}});
    let fixtures = Fixtures::default();
    for replacement in REPLACED_INTRINSICS {
        for after in [false, true] {
            let code = if after {
                format!("{prefix}{}", body.replace("AFTER", replacement))
            } else {
                format!("{prefix}{replacement}\n{}", body.replace("AFTER", ""))
            };
            let ctx = h.context_with(&fixtures, h.limits(), None).await;
            let r = ctx.execute(&code).await;
            let when = if after {
                "after an await"
            } else {
                "at the start"
            };
            assert_eq!(
                r.value(),
                Some(&expected),
                "{replacement} ({when}) changed the outcome: {r:?}"
            );
            let logs: Vec<&str> = r.logs.iter().map(|l| l.message.as_str()).collect();
            assert_eq!(
                logs,
                vec![expected_log],
                "{replacement} ({when}) changed the console"
            );
            ctx.dispose().await;
        }
    }
    h.assert_healthy().await;
}
