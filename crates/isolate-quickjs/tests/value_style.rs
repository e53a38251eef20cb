//! `ValueStyle`: the core's strict contract by default, TanStack's way when asked (the
//! Node-API addon): returned functions and symbols, and thrown non-Error values. Limits are
//! still decided by the engine in both styles.

use code_mode::{ContextConfig, ErrorKind, IsolateDriver};
use code_mode_isolate_quickjs::{QuickJsDriver, ValueStyle};

/// The outcome of `code`: a value, or the error.
#[derive(Debug)]
struct Ran {
    value: Option<serde_json::Value>,
    error: Option<code_mode::ExecutionError>,
}

async fn run(style: ValueStyle, code: &str) -> Ran {
    let driver = QuickJsDriver::builder().value_style(style).build();
    let ctx = driver
        .create_context(ContextConfig::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    match ctx.execute(code).await.outcome {
        Ok(value) => Ran { value, error: None },
        Err(e) => Ran {
            value: None,
            error: Some(e),
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_style_gives_values_json_cannot_hold_its_own_way() {
    for code in ["return () => 1", "return Symbol('s')", "return class {}"] {
        let strict = run(ValueStyle::Strict, code).await;
        assert_eq!(
            strict.error.map(|e| e.kind),
            Some(ErrorKind::Result),
            "{code}"
        );
        let tanstack = run(ValueStyle::TanStack, code).await;
        assert!(
            tanstack.error.is_none() && tanstack.value.is_none(),
            "{code}: {tanstack:?}"
        );
    }
    // A BigInt is an error in both (TanStack's drivers throw a TypeError for it).
    let big = run(ValueStyle::TanStack, "return 10n").await;
    assert_eq!(big.error.map(|e| e.kind), Some(ErrorKind::Result));
    for (code, text) in [
        ("throw 42", "42"),
        ("throw null", "null"),
        ("throw undefined", "undefined"),
        ("throw true", "true"),
    ] {
        let strict = run(ValueStyle::Strict, code)
            .await
            .error
            .unwrap_or_else(|| panic!("{code}"));
        assert_eq!(strict.kind, ErrorKind::Guest("Error".into()));
        assert_eq!(strict.message, format!("{text} was thrown"));
        let tanstack = run(ValueStyle::TanStack, code)
            .await
            .error
            .unwrap_or_else(|| panic!("{code}"));
        assert_eq!(
            tanstack.kind,
            ErrorKind::Guest("UnknownError".into()),
            "{code}"
        );
        assert_eq!(tanstack.message, text, "{code}");
    }
    // Strings and Errors are the same in both; limits stay the engine's.
    let thrown = run(ValueStyle::TanStack, "throw 'plain'")
        .await
        .error
        .unwrap_or_else(|| panic!("no error"));
    assert_eq!(
        (thrown.kind, thrown.message.as_str()),
        (ErrorKind::Guest("Error".into()), "plain")
    );
    let deep = run(
        ValueStyle::TanStack,
        "function f(n) { return f(n + 1) + 1 }\nreturn f(0)",
    )
    .await;
    assert_eq!(deep.error.map(|e| e.kind), Some(ErrorKind::StackOverflow));
}
