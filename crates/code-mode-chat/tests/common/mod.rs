//! Shared fixtures of the chat tests.

#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use code_mode::{CodeMode, Tool, ToolError};
use code_mode_isolate_quickjs::QuickJsDriver;
use serde_json::json;

/// Sets its flag when dropped: tells a test that a tool future was cancelled or finished.
struct Flag(Arc<AtomicBool>);

impl Drop for Flag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Code mode over one `weather` tool that answers `{tempC: 4}` after `delay`; `dropped` is set
/// when the tool's future ends, by completing or by being cancelled.
pub(crate) fn weather_code_mode(delay: Duration, dropped: Arc<AtomicBool>) -> CodeMode {
    let weather = Tool::new(
        "weather",
        "Weather of a city.",
        json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}),
        move |_input, _| {
            let flag = Flag(dropped.clone());
            async move {
                tokio::time::sleep(delay).await;
                drop(flag);
                Ok::<_, ToolError>(json!({"tempC": 4}))
            }
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));
    CodeMode::builder()
        .tool(weather)
        .driver(Arc::new(QuickJsDriver::new()))
        .build()
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Waits up to 3 s for `flag`; panics with `what` otherwise.
pub(crate) async fn wait_for(flag: &AtomicBool, what: &str) {
    for _ in 0..150 {
        if flag.load(Ordering::SeqCst) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{what}");
}
