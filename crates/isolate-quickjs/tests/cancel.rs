//! A dropped execution (its caller was cancelled, e.g. an MCP client's
//! `notifications/cancelled`) stops computing at once, not at its deadline. Alone in its
//! test binary: it measures this process's CPU time.

use std::time::Duration;

use code_mode::{ContextConfig, IsolateDriver, Limits};
use code_mode_isolate_quickjs::QuickJsDriver;

/// User + system CPU time of this process, in clock ticks (10 ms each on Linux).
fn cpu_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command's closing parenthesis: state is field 3; utime 14, stime 15.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| {
        fields
            .get(n - 3)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    field(14) + field(15)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_execution_stops_computing() {
    let driver = QuickJsDriver::new();
    let limits = Limits::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let ctx = driver
        .create_context(ContextConfig::default().with_limits(limits))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let spinning = tokio::spawn(async move { ctx.execute("while (true) {}").await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    // While it runs, the loop takes a core.
    let before = cpu_ticks();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let running = cpu_ticks() - before;
    assert!(
        running >= 20,
        "the program was not running: {running} ticks in 500 ms"
    );
    spinning.abort();
    let _ = spinning.await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = cpu_ticks();
    tokio::time::sleep(Duration::from_millis(600)).await;
    let after = cpu_ticks() - before;
    assert!(
        after <= 15,
        "the dropped program still computes: {after} ticks in 600 ms"
    );
}
