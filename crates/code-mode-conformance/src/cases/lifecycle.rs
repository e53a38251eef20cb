//! Contexts: isolation between them, one execution at a time, dispose, many at once, recovery after failures.

use super::*;

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

/// A driver that can pause durably pauses at a held call and continues from its record
/// with the answer; any other refuses with `ResumeError::Unsupported` naming itself.
pub async fn durable_pause_is_supported_or_refused_by_name(h: &Harness) {
    use code_mode::durable::{Park, Reply, ResumeError, Step, durable_driver};
    let driver = h.driver().clone();
    let Some(durable) = driver.durable() else {
        let err = durable_driver(driver.as_ref())
            .err()
            .map(|e| (e.to_string(), e));
        let Some((message, ResumeError::Unsupported { driver: named })) = err else {
            panic!("a driver without a durable side must answer Unsupported")
        };
        assert_eq!(named, driver.name());
        assert!(message.contains(driver.name()), "{message}");
        assert!(
            message.contains("does not support durable pause"),
            "{message}"
        );
        return;
    };
    let config = || {
        let echo = code_mode::Binding::new("external_wait", |a| Box::pin(async move { Ok(a) }))
            .unwrap_or_else(|e| panic!("{e}"));
        let mut bindings = code_mode::Bindings::new();
        bindings.insert(echo).unwrap_or_else(|e| panic!("{e}"));
        code_mode::ContextConfig::new(bindings).with_limits(h.limits())
    };
    let step = durable
        .start(
            config(),
            "const r = await external_wait({ a: 1 });\nreturn r.a + 1;",
            Park::functions(["external_wait"]),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let Step::Paused(paused) = step else {
        panic!("the held call did not pause the execution: {step:?}")
    };
    assert_eq!(paused.pending().len(), 1);
    assert_eq!(paused.pending()[0].args, json!({"a": 1}));
    let call = paused.pending()[0].call_id;
    let step = durable
        .resume_suspended(
            config(),
            paused.suspended().clone(),
            vec![(call, Reply::value(json!({"a": 41})))],
            Park::never(),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let Step::Finished(result) = step else {
        panic!("the answered execution paused again")
    };
    assert_eq!(value(&result), json!(42));
}
