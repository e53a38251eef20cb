//! Cancellation cases: every tool call sees [`ToolContext::cancel`](code_mode::ToolContext)
//! fire when its execution ends, whatever ends it, on every driver; an application cancels
//! a running execution with [`ExecuteOptions::cancel`](code_mode::ExecuteOptions).
//!
//! These assert that the signal arrives (within a few seconds at most, so a broken driver
//! fails instead of hanging); how fast it arrives is measured by the benchmarks.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use code_mode::{CancellationToken, CodeMode, ExecuteOptions, Limits, Tool, ToolError};
use serde_json::json;

use crate::Harness;

/// Counts the calls of `wait` that started and those whose background work saw the
/// cancellation. A call's own future is dropped when its execution ends; what sees the
/// signal is work it started elsewhere (here a spawned task), as a real tool's would be.
#[derive(Clone, Default)]
struct Waits {
    started: Arc<AtomicUsize>,
    cancelled: Arc<AtomicUsize>,
}

impl Waits {
    fn tool(&self) -> Tool {
        let me = self.clone();
        Tool::new(
            "wait",
            "Waits until its execution ends (or 60 s).",
            json!({"type": "object"}),
            move |_, ctx| {
                let me = me.clone();
                async move {
                    me.started.fetch_add(1, Ordering::SeqCst);
                    let (cancel, seen) = (ctx.cancel.clone(), me.cancelled.clone());
                    tokio::spawn(async move {
                        cancel.cancelled().await;
                        seen.fetch_add(1, Ordering::SeqCst);
                    });
                    tokio::time::sleep(Duration::from_secs(60)).await;
                    Ok::<_, ToolError>(json!("waited"))
                }
            },
        )
        .expect("valid wait tool")
    }

    fn code_mode(&self, h: &Harness, limits: Limits) -> CodeMode {
        CodeMode::builder()
            .tool(self.tool())
            .tool(
                Tool::new(
                    "quick",
                    "Returns at once.",
                    json!({"type": "object"}),
                    |_, _| async { Ok::<_, ToolError>(json!(1)) },
                )
                .expect("valid quick tool"),
            )
            .driver(h.driver().clone())
            .limits(limits)
            .build()
            .expect("valid code mode")
    }

    async fn started(&self, n: usize) {
        for _ in 0..500 {
            if self.started.load(Ordering::SeqCst) >= n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("{n} wait calls did not start");
    }

    async fn saw_cancel(&self, n: usize, what: &str) {
        for _ in 0..500 {
            if self.cancelled.load(Ordering::SeqCst) >= n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!(
            "{what}: {} of {n} calls saw the cancellation",
            self.cancelled.load(Ordering::SeqCst)
        );
    }
}

/// A tool waiting on its signal sees it when the execution times out.
pub async fn cancellation_reaches_a_waiting_tool(h: &Harness) {
    let waits = Waits::default();
    let cm = waits.code_mode(h, h.short_limits());
    let r = cm
        .execute(
            "await Promise.all([external_wait(), external_wait()]);",
            ExecuteOptions::default(),
        )
        .await;
    assert_eq!(
        r.error.map(|e| e.kind.name().to_owned()).as_deref(),
        Some("TimeoutError")
    );
    waits.saw_cancel(2, "after a timeout").await;
    h.assert_healthy().await;
}

/// A program that returns (or fails) while calls it never awaited are still running: those
/// calls are cancelled.
pub async fn unawaited_calls_are_cancelled_at_return(h: &Harness) {
    let waits = Waits::default();
    let cm = waits.code_mode(h, h.limits());
    let r = cm
        .execute(
            "external_wait();\nawait external_quick();\nreturn 'early';",
            ExecuteOptions::default(),
        )
        .await;
    assert_eq!(r.result, Some(json!("early")), "{r:?}");
    waits.saw_cancel(1, "after the program returned").await;
    let r = cm
        .execute(
            "external_wait();\nawait external_quick();\nthrow new Error('boom');",
            ExecuteOptions::default(),
        )
        .await;
    assert_eq!(r.error.map(|e| e.message), Some("boom".to_owned()));
    waits.saw_cancel(2, "after the program failed").await;
}

/// The application cancels a running execution: it ends with `CancelledError` at once
/// (long before its timeout), its tool calls see the signal, and the driver serves the next
/// execution. A token cancelled before the start runs nothing.
pub async fn an_application_cancels_mid_call(h: &Harness) {
    let waits = Waits::default();
    let cm = waits.code_mode(h, h.limits_with(|l| l.timeout(Duration::from_secs(60))));
    let token = CancellationToken::new();
    let opts = ExecuteOptions::default().with_cancel(token.clone());
    let run = {
        let cm = cm.clone();
        tokio::spawn(async move { cm.execute("return await external_wait();", opts).await })
    };
    waits.started(1).await;
    token.cancel();
    let r = tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .expect("the cancelled execution ends")
        .expect("no panic");
    let error = r.error.expect("an error");
    assert_eq!(error.kind.name(), "CancelledError");
    assert_eq!(error.message, "The execution was cancelled");
    waits.saw_cancel(1, "after the application cancelled").await;
    let r = cm
        .execute(
            "return await external_quick();",
            ExecuteOptions::default().with_cancel(token),
        )
        .await;
    assert_eq!(
        r.error.map(|e| e.kind.name().to_owned()).as_deref(),
        Some("CancelledError")
    );
    assert_eq!(waits.started.load(Ordering::SeqCst), 1);
    let r = cm
        .execute("return await external_quick();", ExecuteOptions::default())
        .await;
    assert_eq!(r.result, Some(json!(1)));
    h.assert_healthy().await;
}
