//! A long built-in (`join` over an array-like of 2^32 - 1 elements) holds up neither its
//! caller nor other contexts, even on a single-threaded runtime, and its engine is never used
//! again.

use std::time::{Duration, Instant};

use code_mode::{ContextConfig, ErrorKind, IsolateDriver, Limits};
use code_mode_isolate_quickjs::{HARD_DEADLINE_GRACE, QuickJsDriver};
use serde_json::json;

#[tokio::test(flavor = "current_thread")]
async fn a_runaway_builtin_holds_up_neither_the_caller_nor_other_contexts() {
    let driver = QuickJsDriver::new();
    let timeout = Duration::from_millis(300);
    let limits = Limits::builder()
        .timeout(timeout)
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let slow = driver
        .create_context(ContextConfig::default().with_limits(limits))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let fast = driver
        .create_context(ContextConfig::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let started = Instant::now();
    let slow_run = slow.execute("return Array.prototype.join.call({length: 2 ** 32 - 1}, '')");
    let fast_run = async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let at = Instant::now();
        let r = fast.execute("return 1 + 1").await;
        (r, at.elapsed())
    };
    let (slow_result, (fast_result, fast_took)) = tokio::join!(slow_run, fast_run);
    let took = started.elapsed();
    let e = slow_result
        .error()
        .unwrap_or_else(|| panic!("the runaway succeeded"));
    assert_eq!(e.kind, ErrorKind::Timeout, "{e}");
    assert!(
        took < timeout + HARD_DEADLINE_GRACE + Duration::from_secs(1),
        "the caller waited {took:?}"
    );
    // The other context answered while the built-in was still running.
    assert_eq!(fast_result.value(), Some(&json!(2)));
    assert!(
        fast_took < timeout,
        "the other context waited {fast_took:?}"
    );
    // The runaway's engine is never used again.
    let again = slow.execute("return 1").await;
    let e = again
        .error()
        .unwrap_or_else(|| panic!("a timed-out engine ran again"));
    assert_eq!(e.kind, ErrorKind::Disposed);
    slow.dispose().await;
    fast.dispose().await;
}
