//! Many contexts, including ones that die of timeouts, memory and stack failures, leave the
//! host's memory where it was.

use std::time::Duration;

use code_mode::{Binding, Bindings, ContextConfig, GuestError, IsolateDriver, Limits};
use code_mode_isolate_quickjs::QuickJsDriver;

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

async fn round(driver: &QuickJsDriver, limits: Limits) {
    let programs = [
        "return 1 + 1",
        "const r = await Promise.all([1, 2, 3].map((i) => external_echo({ i }))); return r.length",
        "while (true) {}",
        "const a = []; while (true) a.push(new Array(10000).fill(1))",
        "function f() { return f() + 1 } return f()",
        "await external_never()",
        "external_echo({ fire: 'and forget' }); return 'done'",
        "throw new Error('x')",
    ];
    for code in programs {
        let echo = Binding::new("external_echo", |a| {
            Box::pin(async move { Ok::<_, GuestError>(a) })
        });
        let never = Binding::new("external_never", |_| Box::pin(futures_pending()));
        let (Ok(echo), Ok(never)) = (echo, never) else {
            panic!("bindings")
        };
        let bindings = Bindings::new()
            .with(echo)
            .and_then(|b| b.with(never))
            .unwrap_or_default();
        let ctx = match driver
            .create_context(ContextConfig::new(bindings).with_limits(limits))
            .await
        {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        };
        let _ = ctx.execute(code).await;
        ctx.dispose().await;
    }
}

async fn futures_pending() -> Result<serde_json::Value, GuestError> {
    std::future::pending().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contexts_do_not_leak() {
    let driver = QuickJsDriver::new();
    let limits = match Limits::builder()
        .timeout(Duration::from_millis(30))
        .memory_mib(16)
        .build()
    {
        Ok(l) => l,
        Err(e) => panic!("{e}"),
    };
    // Warm up allocator pools and the blank-engine pool.
    for _ in 0..5 {
        round(&driver, limits).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = rss_bytes();
    for _ in 0..40 {
        round(&driver, limits).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = rss_bytes();
    let growth = after.saturating_sub(before);
    // A leaked context keeps at least its realm (~170 KiB): leaking the 320 contexts would
    // add ~55 MiB; a leaked filled heap, 16 MiB each.
    eprintln!("RSS growth over 320 contexts: {} KiB", growth / 1024);
    assert!(
        growth < 16 * 1024 * 1024,
        "RSS grew by {} MiB over 320 contexts",
        growth / (1024 * 1024)
    );
}
