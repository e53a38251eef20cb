//! Host bindings and tools the cases call, with counters the cases inspect.
//!
//! - `echo(args)` returns its arguments;
//! - `sleep({ms})` waits `ms` milliseconds and counts calls in flight (for overlap checks);
//! - `fail({message})` fails with `message`;
//! - `never()` never settles;
//! - `big({bytes})` returns a string of `bytes` bytes;
//! - `add({a, b})` (a [`Tool`] with a schema requiring two numbers) adds them.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use code_mode::{Binding, Bindings, GuestError, Tool, ToolError};
use serde_json::{Value, json};

/// Counters shared by the bindings of one case.
#[derive(Debug, Default, Clone)]
pub struct Fixtures {
    /// Calls of `sleep` currently in flight.
    pub in_flight: Arc<AtomicUsize>,
    /// Highest number of `sleep` calls in flight at once.
    pub max_in_flight: Arc<AtomicUsize>,
    /// Calls of any binding.
    pub calls: Arc<AtomicUsize>,
    /// Last arguments of `echo`.
    pub last_echo: Arc<std::sync::Mutex<Option<Value>>>,
}

impl Fixtures {
    /// Highest concurrency seen by `sleep`.
    pub fn max_concurrency(&self) -> usize {
        self.max_in_flight.load(Ordering::SeqCst)
    }
    /// Number of binding calls.
    pub fn call_count(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

async fn sleep(f: Fixtures, args: Value) -> Result<Value, String> {
    let ms = args.get("ms").and_then(Value::as_u64).unwrap_or(10);
    let now = f.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    f.max_in_flight.fetch_max(now, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(ms)).await;
    f.in_flight.fetch_sub(1, Ordering::SeqCst);
    Ok(json!({"slept": ms}))
}

async fn dispatch(f: Fixtures, name: &'static str, args: Value) -> Result<Value, String> {
    f.calls.fetch_add(1, Ordering::SeqCst);
    match name {
        "echo" => {
            *f.last_echo.lock().unwrap_or_else(|p| p.into_inner()) = Some(args.clone());
            Ok(args)
        }
        "sleep" => sleep(f, args).await,
        "fail" => Err(args
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("tool failed")
            .to_owned()),
        "never" => futures::future::pending().await,
        "big" => {
            let n = args.get("bytes").and_then(Value::as_u64).unwrap_or(0) as usize;
            Ok(Value::String("x".repeat(n)))
        }
        "add" => {
            let a = args.get("a").and_then(Value::as_f64).unwrap_or(0.0);
            let b = args.get("b").and_then(Value::as_f64).unwrap_or(0.0);
            Ok(json!(a + b))
        }
        _ => Err(format!("unknown fixture {name}")),
    }
}

const NAMES: [&str; 6] = ["echo", "sleep", "fail", "never", "big", "add"];

/// The fixtures as raw driver bindings (`external_echo`, ...), without schema validation.
pub fn bindings(f: &Fixtures) -> Bindings {
    let mut b = Bindings::new();
    for name in NAMES {
        let f = f.clone();
        let binding = Binding::new(format!("external_{name}"), move |args| {
            let f = f.clone();
            Box::pin(async move { dispatch(f, name, args).await.map_err(GuestError::error) })
        })
        .expect("valid fixture binding");
        b.insert(binding).expect("unique fixture names");
    }
    // Fails with the error name and message it is given, as a binding of a JavaScript host
    // can (a tool that itself overflowed its stack rejects with the engine's exact error).
    let calls = f.clone();
    let fail_as = Binding::new("external_fail_as", move |args| {
        calls.calls.fetch_add(1, Ordering::SeqCst);
        let text = |key: &str| args.get(key).and_then(Value::as_str).unwrap_or_default().to_owned();
        let error = GuestError {
            name: text("name"),
            message: text("message"),
        };
        Box::pin(async move { Err(error) })
    })
    .expect("valid fixture binding");
    b.insert(fail_as).expect("unique fixture names");
    b
}

/// The fixtures as [`Tool`]s with schemas, for [`code_mode::CodeMode`] cases.
pub fn tools(f: &Fixtures) -> Vec<Tool> {
    NAMES
        .iter()
        .map(|&name| {
            let schema = match name {
                "add" => json!({
                    "type": "object",
                    "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
                    "required": ["a", "b"],
                    "additionalProperties": false
                }),
                "sleep" => json!({"type": "object", "properties": {"ms": {"type": "integer", "minimum": 0}}}),
                _ => json!({"type": "object"}),
            };
            let f = f.clone();
            Tool::new(name, format!("Fixture `{name}`."), schema, move |args, _ctx| {
                let f = f.clone();
                async move { dispatch(f, name, args).await.map_err(ToolError::new) }
            })
            .expect("valid fixture tool")
        })
        .collect()
}
