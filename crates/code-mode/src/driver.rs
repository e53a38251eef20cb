//! The sandbox driver contract.
//!
//! A driver is a factory of contexts; a context runs JavaScript function bodies. All drivers
//! (in-process QuickJS, QuickJS in WebAssembly, V8, a Cloudflare Worker) implement these two
//! traits and pass the same behaviour suite (`code-mode-conformance`), so an application can
//! swap one for another without changing code.
//!
//! The contract, which every implementation upholds:
//! - [`IsolateContext::execute`] never panics and never returns a Rust error for guest
//!   failures: every failure is an [`ExecutionError`] with a normalised [`ErrorKind`](crate::ErrorKind).
//! - The code is a JavaScript *function body*: it may `await` at top level and `return` a
//!   value; the value comes back as JSON (no `return` gives `None`).
//! - Bindings appear as global async functions; a call with no argument passes `{}`; a
//!   rejected call throws an `Error` (or the named error of [`GuestError`](crate::GuestError))
//!   carrying the message only.
//! - Limits are enforced: the timeout covers awaited tool calls; timeout, memory and stack
//!   failures are terminal, after which the context reports `DisposedError`.
//! - The timeout is measured on [`ContextConfig::clock`] (a [`Budget`](crate::driver::Budget) per
//!   execution): time the clock is held, while a call waits for a person's approval, does
//!   not count.
//! - Executions on one context run one at a time, in call order; state set on `globalThis`
//!   persists between them; separate contexts share nothing.
//! - `dispose` is idempotent.
//!
//! This module is also the driver author's toolbox: the machinery every driver shares and no
//! application needs (the host side of tool calls, the console buffer, the execution's time
//! budget, the nesting pre-check, the guest JSON helpers). The crate root keeps what an
//! application touches; the traits and their types are in both.

use serde_json::Value;

use crate::error::{DriverError, ExecutionError};
use crate::limits::Limits;

pub use crate::bindings::{Binding, BindingFuture, Bindings, GuestError, HostBridge};
pub use crate::clock::{Budget, ClockHold, ExecutionClock, GuestRunning};
pub use crate::console::{ConsoleSink, LogBuffer, LogEntry, LogLevel, LogState};
pub use crate::depth::{MAX_VALUE_DEPTH, json_text_depth, too_deep_message, value_depth};
pub use crate::failure::{FailureKind, GuestFailure};
pub use crate::lifecycle::{Engine, EngineContext};
pub use crate::lines::{lf_line, normalize_line_terminators};
pub use crate::nesting::{MAX_NESTING, check_nesting};
pub use crate::prelude_setup::PreludeSetup;
pub use crate::program::{
    PROGRAM_FIRST_LINE, PROGRAM_HEAD, PROGRAM_TAIL, program_line, program_source,
};
pub use crate::pump::{Delivery, PumpedEngine, pump};
pub use crate::runtime_paths::{
    NpmInstallError, content_hash, install_pinned_npm, write_if_changed,
};
pub use crate::stubs::generate_stubs_with_prefix;
pub use crate::text::{parse_guest_json, wtf8_to_string};
pub use async_trait::async_trait;

/// The guest prelude: the one JavaScript source every JS-engine driver runs in its sandbox
/// (console formatting and caps, the tool bindings, the result's encoding and size limit,
/// the description of thrown values), so the drivers cannot drift apart.
///
/// It is an expression: a function that takes the engine's hooks (`call`, `log`, `frames`,
/// `firstLine`, `lastLine`) and returns the run API (`setup`, `run`, `deliver`, `describe`).
/// The comment at its top documents both; failures come out as [`GuestFailure`] records. A
/// driver evaluates `(hooks)(GUEST_PRELUDE)` where `hooks` is a few lines of its own.
///
/// ```
/// let prelude = code_mode::driver::GUEST_PRELUDE;
/// assert!(prelude.contains("ResultTooLargeError"));
/// assert!(prelude.trim_end().ends_with("})"));
/// ```
pub const GUEST_PRELUDE: &str = include_str!("../guest/prelude.js");

/// What a context is created from.
#[derive(Clone, Default)]
pub struct ContextConfig {
    /// Host functions exposed as guest globals.
    pub bindings: Bindings,
    /// Limits of every execution in the context.
    pub limits: Limits,
    /// Receives console lines live (in addition to the logs in the result).
    pub console: Option<ConsoleSink>,
    /// The clock the timeout runs on: a driver measures each execution with
    /// [`ExecutionClock::budget`], so time the clock is held (a pending approval) does not
    /// count. A fresh clock never stops.
    pub clock: ExecutionClock,
}

impl std::fmt::Debug for ContextConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContextConfig")
            .field("bindings", &self.bindings)
            .field("limits", &self.limits)
            .field("console", &self.console.is_some())
            .field("clock", &self.clock)
            .finish()
    }
}

impl ContextConfig {
    /// A configuration with these bindings and the default limits.
    pub fn new(bindings: Bindings) -> Self {
        Self {
            bindings,
            ..Self::default()
        }
    }
    /// Sets the limits.
    #[must_use]
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }
    /// Sets the live console sink.
    #[must_use]
    pub fn with_console(mut self, sink: ConsoleSink) -> Self {
        self.console = Some(sink);
        self
    }
}

/// The outcome of one execution.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecutionResult {
    /// The returned JSON value (`None` when the code returned nothing), or the failure.
    pub outcome: Result<Option<Value>, ExecutionError>,
    /// Console lines kept during the execution (capped, with a truncation marker).
    pub logs: Vec<LogEntry>,
}

impl ExecutionResult {
    /// A successful result.
    pub fn ok(value: Option<Value>, logs: Vec<LogEntry>) -> Self {
        Self {
            outcome: Ok(value),
            logs,
        }
    }
    /// A failed result.
    pub fn err(error: ExecutionError, logs: Vec<LogEntry>) -> Self {
        Self {
            outcome: Err(error),
            logs,
        }
    }
    /// True on success.
    pub fn is_success(&self) -> bool {
        self.outcome.is_ok()
    }
    /// The error, if any.
    pub fn error(&self) -> Option<&ExecutionError> {
        self.outcome.as_ref().err()
    }
    /// The value, if the execution succeeded and returned one.
    pub fn value(&self) -> Option<&Value> {
        self.outcome.as_ref().ok().and_then(Option::as_ref)
    }
}

/// A sandbox engine: creates isolated contexts.
#[async_trait]
pub trait IsolateDriver: Send + Sync {
    /// Short name of the driver (`quickjs`, `quickjs-wasm`, `v8`, `cloudflare`).
    fn name(&self) -> &str;

    /// Creates a fresh, isolated context with `config.bindings` installed.
    async fn create_context(
        &self,
        config: ContextConfig,
    ) -> Result<Box<dyn IsolateContext>, DriverError>;

    /// The driver's durable side, if it can pause an execution to bytes and resume it in
    /// another process (see [`durable`](crate::durable)); `None` by default.
    fn durable(&self) -> Option<&dyn crate::durable::DurableDriver> {
        None
    }
}

/// One isolated JavaScript environment.
#[async_trait]
pub trait IsolateContext: Send + Sync {
    /// Runs a JavaScript function body. Never fails as a Rust call; see the module docs.
    /// `line` in errors is 1-based within `code`.
    async fn execute(&self, code: &str) -> ExecutionResult;

    /// Frees the context. Idempotent; later executions report `DisposedError`.
    async fn dispose(&self);
}
