//! What an execution is given: its options, its scope (clock and cancellation), and the tool
//! specs handed to a model.

use crate::approval::Approver;
use crate::bindings::Binding;
use crate::clock::ExecutionClock;
use crate::error::ErrorKind;
use crate::error::ExecutionError;
use crate::events::EventSink;
use crate::tool::ToolContext;
use futures::future::BoxFuture;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Largest program accepted by default, in bytes.
pub const DEFAULT_MAX_CODE_BYTES: usize = 256 * 1024;

/// Extra wall-clock time the host grants a driver past the execution timeout before it
/// gives up on the driver itself (a driver is expected to stop on time on its own).
pub(super) const DRIVER_GRACE: Duration = Duration::from_secs(2);

/// What one execution's calls share: the clock its timeout runs on and the token that
/// fires when it ends (see [`CodeMode::bindings`]).
#[derive(Debug, Clone, Default)]
pub struct ExecutionScope {
    /// Held while an approval is pending.
    pub clock: ExecutionClock,
    /// Fires when the execution ends; a child of the application's token
    /// ([`ExecuteOptions::cancel`]) when there is one.
    pub cancel: CancellationToken,
}

impl ExecutionScope {
    /// A fresh scope for an execution with `opts`.
    pub fn for_options(opts: &ExecuteOptions) -> Self {
        Self {
            clock: ExecutionClock::new(),
            cancel: opts
                .cancel
                .as_ref()
                .map_or_else(CancellationToken::new, CancellationToken::child_token),
        }
    }
}

/// The error of an execution the application cancelled.
pub(super) fn cancelled() -> ExecutionError {
    ExecutionError::new(ErrorKind::Cancelled, "The execution was cancelled")
}

/// Computes extra sandbox functions for one execution from its tool context
/// (see [`CodeMode::as_tools_with`]).
pub type BindingProvider =
    Arc<dyn Fn(&ToolContext) -> BoxFuture<'static, Vec<Binding>> + Send + Sync>;

/// Per-call options of [`CodeMode::execute`].
#[derive(Clone, Default)]
pub struct ExecuteOptions {
    /// Id of the model's tool call; every event carries it.
    pub tool_call_id: Option<Arc<str>>,
    /// Where events go.
    pub events: EventSink,
    /// Bindings added to the tools' for this call (the skills crate adds `skill_*` here).
    pub extra_bindings: Vec<Binding>,
    /// JSON Schema the program's result must match, for the type check (the skills crate
    /// sets a skill's output schema here): a `return` of another shape is a type error.
    pub expected_output: Option<Value>,
    /// Decides on calls that need approval in this execution, instead of the builder's
    /// [`CodeModeBuilder::approver`] (a chat server asks the session's browser, an MCP
    /// server the requesting client).
    pub approver: Option<Arc<dyn Approver>>,
    /// The clock of an execution this one runs inside (a skill's program started by a call
    /// of another program): held too while this execution's approvals wait, so the outer
    /// program's timeout does not run out meanwhile.
    pub outer_clock: Option<ExecutionClock>,
    /// Cancels the execution when fired: it ends at once with `CancelledError`, its
    /// context is disposed (a `CodeMode` execution always has a context of its own), and
    /// every tool call in flight sees [`ToolContext::cancel`] fire. Dropping the execution's
    /// future has the same effect on the tools, without a result.
    pub cancel: Option<CancellationToken>,
}

impl std::fmt::Debug for ExecuteOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecuteOptions")
            .field("tool_call_id", &self.tool_call_id)
            .field("events", &self.events)
            .field("extra_bindings", &self.extra_bindings)
            .field("expected_output", &self.expected_output)
            .field("approver", &self.approver.is_some())
            .field("cancel", &self.cancel)
            .finish()
    }
}

impl ExecuteOptions {
    /// Options tagging events with `tool_call_id` and sending them to `events`.
    pub fn new(tool_call_id: impl Into<Arc<str>>, events: EventSink) -> Self {
        Self {
            tool_call_id: Some(tool_call_id.into()),
            events,
            extra_bindings: Vec::new(),
            expected_output: None,
            approver: None,
            outer_clock: None,
            cancel: None,
        }
    }

    /// Sets the token that cancels this execution (see [`ExecuteOptions::cancel`]).
    #[must_use]
    pub fn with_cancel(mut self, cancel: CancellationToken) -> Self {
        self.cancel = Some(cancel);
        self
    }

    /// Sets the approver of this execution.
    #[must_use]
    pub fn with_approver(mut self, approver: Arc<dyn Approver>) -> Self {
        self.approver = Some(approver);
        self
    }
}
