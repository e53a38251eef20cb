//! The cases, one module per theme. Each takes a [`Harness`] and panics with a message saying
//! what the driver did wrong; names say what is checked. Every `pub async fn` here is a case:
//! `conformance_tests!` runs each one, and this crate's own test fails when a case is missing
//! from that list (so none can exist without running).

mod approvals;
mod cancellation;
mod console_events;
mod errors;
mod escapes;
mod forgery;
mod lifecycle;
mod limits;
mod tools;
mod typescript;
mod values;

pub use approvals::*;
pub use cancellation::*;
pub use console_events::*;
pub use errors::*;
pub use escapes::*;
pub use forgery::*;
pub use lifecycle::*;
pub use limits::*;
pub use tools::*;
pub use typescript::*;
pub use values::*;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use code_mode::{
    ConsoleSink, ErrorKind, EventSink, ExecuteOptions, ExecutionResult, Limits, LogLevel,
    TRUNCATION_MARKER,
};
use serde_json::{Value, json};

use crate::Harness;
use crate::fixtures::Fixtures;

fn value(r: &ExecutionResult) -> Value {
    match &r.outcome {
        Ok(v) => v.clone().unwrap_or(Value::Null),
        Err(e) => panic!("expected success, got {e} (logs: {:?})", r.logs),
    }
}

fn error(r: &ExecutionResult) -> &code_mode::ExecutionError {
    match &r.outcome {
        Ok(v) => panic!("expected a failure, got success with {v:?}"),
        Err(e) => e,
    }
}

fn assert_kind(r: &ExecutionResult, kind: ErrorKind) {
    let e = error(r);
    assert_eq!(e.kind, kind, "expected {}, got {e}", kind.name());
}
