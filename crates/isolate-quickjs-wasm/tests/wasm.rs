//! What only this driver has: the hard linear-memory cap, fuel, traps that discard the
//! instance, WASI stubs, snapshot-fresh contexts, and no limit on sequential tool calls.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use code_mode::{
    Binding, Bindings, ContextConfig, ErrorKind, ExecutionResult, GuestError, IsolateDriver, Limits,
};
use code_mode_isolate_quickjs_wasm::{MAX_STACK_BYTES, QuickJsWasmDriver};
use serde_json::json;

fn echo_bindings(counter: Arc<AtomicU32>) -> Bindings {
    let echo = Binding::new("external_echo", move |a| {
        counter.fetch_add(1, Ordering::Relaxed);
        Box::pin(async move { Ok::<_, GuestError>(a) })
    })
    .unwrap();
    let slow = Binding::new("external_slow", |_| {
        Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            Ok::<_, GuestError>(json!("slow"))
        })
    })
    .unwrap();
    Bindings::new().with(echo).unwrap().with(slow).unwrap()
}

async fn run(driver: &QuickJsWasmDriver, limits: Limits, code: &str) -> ExecutionResult {
    let ctx = driver
        .create_context(ContextConfig::new(echo_bindings(Arc::default())).with_limits(limits))
        .await
        .unwrap();
    let r = ctx.execute(code).await;
    ctx.dispose().await;
    r
}

// The guest's stack limit leaves room for real programs (checked when compiling).
const _: () = assert!(MAX_STACK_BYTES >= 1024 * 1024);

fn kind(r: &ExecutionResult) -> ErrorKind {
    r.error()
        .map(|e| e.kind.clone())
        .unwrap_or_else(|| panic!("expected an error, got {r:?}"))
}

#[tokio::test]
async fn hundreds_of_sequential_awaited_calls() {
    // TanStack's WASM driver crashes the process on the 4th to 8th.
    let driver = QuickJsWasmDriver::new();
    let counter = Arc::new(AtomicU32::new(0));
    let ctx = driver
        .create_context(ContextConfig::new(echo_bindings(counter.clone())))
        .await
        .unwrap();
    let r = ctx
        .execute("let s = 0; for (let i = 0; i < 500; i++) s += (await external_echo({ i })).i; return s")
        .await;
    assert_eq!(r.value(), Some(&json!((0..500).sum::<i32>())), "{r:?}");
    assert_eq!(counter.load(Ordering::Relaxed), 500);
    // The context stays usable, with its globals.
    let r = ctx.execute("globalThis.kept = 7; return 1").await;
    assert!(r.is_success());
    assert_eq!(ctx.execute("return kept").await.value(), Some(&json!(7)));
}

#[tokio::test]
async fn every_context_starts_from_the_snapshot() {
    let driver = QuickJsWasmDriver::new();
    let a = run(
        &driver,
        Limits::default(),
        "globalThis.x = 1; Object.prototype.polluted = true; return Math.random()",
    )
    .await;
    let b = run(
        &driver,
        Limits::default(),
        "return [typeof x, ({}).polluted === undefined, Math.random()]",
    )
    .await;
    let b = b.value().unwrap().clone();
    assert_eq!(b[0], json!("undefined"));
    assert_eq!(b[1], json!(true));
    // Each instance reseeds Math.random: two contexts do not share a sequence.
    assert_ne!(a.value().unwrap(), &b[2]);
}

#[tokio::test]
async fn the_linear_memory_cap_holds_whatever_quickjs_does() {
    let driver = QuickJsWasmDriver::new();
    let limits = Limits::builder().memory_mib(16).build().unwrap();
    for code in [
        "const a = []; while (true) a.push(new Float64Array(100000));",
        "let s = []; for (;;) s.push('z'.repeat(1 << 20) + s.length);",
        "return new ArrayBuffer(64 * 1024 * 1024).byteLength",
    ] {
        let r = run(&driver, limits, code).await;
        assert_eq!(kind(&r), ErrorKind::MemoryLimit, "{code}: {r:?}");
    }
    // Below the limit, the same kinds of allocation work.
    let r = run(
        &driver,
        limits,
        "return new ArrayBuffer(4 * 1024 * 1024).byteLength",
    )
    .await;
    assert_eq!(r.value(), Some(&json!(4 * 1024 * 1024)));
}

#[tokio::test]
async fn deep_recursion_after_an_await_and_in_native_code() {
    let driver = QuickJsWasmDriver::new();
    for code in [
        "await external_echo({}); function f(n) { return f(n + 1) + 1 } return f(0)",
        "const a = []; let x = a; for (let i = 0; i < 1e6; i++) { x = [x] } return JSON.stringify(x).length",
        "return [].concat.apply([], Array.from({length: 10}, function r() { return r() }))",
    ] {
        let r = run(&driver, Limits::default(), code).await;
        assert_eq!(kind(&r), ErrorKind::StackOverflow, "{code}: {r:?}");
    }
    // A stack limit above the guest's own stack is lowered to it, never unlimited.
    let limits = Limits::builder()
        .stack_bytes(64 * 1024 * 1024)
        .build()
        .unwrap();
    let r = run(
        &driver,
        limits,
        "function f(n) { return f(n + 1) + 1 } return f(0)",
    )
    .await;
    assert_eq!(kind(&r), ErrorKind::StackOverflow);
}

#[tokio::test]
async fn deadlines_cut_guest_code_before_and_after_awaits() {
    let driver = QuickJsWasmDriver::new();
    let limits = Limits::builder()
        .timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    for code in [
        "for (;;) {}",
        "await external_slow({}); for (;;) {}",
        "const spin = async () => { for (;;) await null }; await spin()",
        "await Promise.all([external_slow({}), external_slow({})]); let s = 'x'; for (;;) s = s.slice(1) + 'y'",
    ] {
        let started = Instant::now();
        let r = run(&driver, limits, code).await;
        assert_eq!(kind(&r), ErrorKind::Timeout, "{code}: {r:?}");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{code}: {:?}",
            started.elapsed()
        );
    }
}

#[tokio::test]
async fn a_busy_guest_does_not_block_the_runtime() {
    // On a single-threaded runtime, a timer still fires while the guest spins: the epoch
    // callback yields to Tokio.
    let driver = QuickJsWasmDriver::new();
    driver.warm_up().await.unwrap();
    let limits = Limits::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let ticks = Arc::new(AtomicU32::new(0));
    let t = ticks.clone();
    let local = tokio::task::LocalSet::new();
    local
        .run_until(async move {
            let timer = tokio::task::spawn_local(async move {
                for _ in 0..5 {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    t.fetch_add(1, Ordering::Relaxed);
                }
            });
            let r = run(&driver, limits, "for (;;) {}").await;
            assert_eq!(kind(&r), ErrorKind::Timeout);
            timer.await.unwrap();
        })
        .await;
    assert_eq!(ticks.load(Ordering::Relaxed), 5);
}

#[tokio::test]
async fn fuel_is_a_deterministic_cpu_budget() {
    assert!(
        QuickJsWasmDriver::builder()
            .fuel_per_execution(0)
            .build()
            .is_err()
    );
    let driver = QuickJsWasmDriver::builder()
        .fuel_per_execution(20_000_000)
        .build()
        .unwrap();
    let r = run(
        &driver,
        Limits::default(),
        "let s = 0; for (let i = 0; i < 1000; i++) s += i; return s",
    )
    .await;
    assert_eq!(r.value(), Some(&json!(499500)));
    let r = run(&driver, Limits::default(), "for (;;) {}").await;
    assert_eq!(kind(&r), ErrorKind::Timeout);
    assert!(r.error().unwrap().message.contains("fuel"), "{r:?}");
}

#[tokio::test]
async fn the_guest_has_no_ambient_capabilities() {
    let driver = QuickJsWasmDriver::new();
    let r = run(
        &driver,
        Limits::default(),
        "return [typeof std, typeof os, typeof require, typeof process, typeof fetch, typeof WebAssembly, typeof __cm_call, typeof __cm_log, typeof Date.now()]",
    )
    .await;
    assert_eq!(
        r.value(),
        Some(&json!([
            "undefined",
            "undefined",
            "undefined",
            "undefined",
            "undefined",
            "undefined",
            "undefined",
            "undefined",
            "number"
        ]))
    );
    // The wall clock is real.
    let r = run(&driver, Limits::default(), "return Date.now()").await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as f64;
    let guest = r.value().unwrap().as_f64().unwrap();
    assert!((guest - now).abs() < 60_000.0, "{guest} vs {now}");
}

#[tokio::test]
async fn a_cancelled_execution_ends_its_context_cleanly() {
    let driver = QuickJsWasmDriver::new();
    let ctx = driver
        .create_context(ContextConfig::new(echo_bindings(Arc::default())))
        .await
        .unwrap();
    let cut = tokio::time::timeout(Duration::from_millis(50), ctx.execute("for (;;) {}")).await;
    assert!(cut.is_err());
    let r = ctx.execute("return 1").await;
    assert_eq!(kind(&r), ErrorKind::Disposed);
    assert!(r.error().unwrap().message.contains("cancelled"));
    // The driver is fine.
    assert_eq!(
        run(&driver, Limits::default(), "return 2").await.value(),
        Some(&json!(2))
    );
}
