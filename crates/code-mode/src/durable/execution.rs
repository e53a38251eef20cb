//! What an application hands to and gets from a durable [`CodeMode`](crate::CodeMode)
//! execution: its options, the answers to its waiting calls, and its outcome (a result, or
//! sealed bytes and the calls they wait on).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Park, ResumeError};
use crate::console::LogEntry;
use crate::result::CodeModeResult;

/// How a durable execution pauses and is bound.
///
/// ```
/// use code_mode::durable::{DurableOptions, Park};
/// let opts = DurableOptions::new(b"tenant-42/session-7".to_vec())
///     .park(Park::functions(["external_lookupInvoice"]));
/// assert_eq!(opts.aad, b"tenant-42/session-7");
/// ```
#[derive(Debug, Clone, Default)]
pub struct DurableOptions {
    /// Bound to the sealed bytes (a tenant or session id): resuming needs the same bytes,
    /// so a snapshot cannot be replayed into another tenant's session.
    pub aad: Vec<u8>,
    /// Calls the application answers later itself (besides those whose tool's approval
    /// policy applies, which are always held for a person).
    pub park: Option<Park>,
}

impl DurableOptions {
    /// Options bound to `aad`, holding back only calls that need approval.
    pub fn new(aad: impl Into<Vec<u8>>) -> Self {
        Self {
            aad: aad.into(),
            park: None,
        }
    }

    /// Also holds back the calls `park` names, for the application to answer.
    #[must_use]
    pub fn park(mut self, park: Park) -> Self {
        self.park = Some(park);
        self
    }
}

/// The answer to one waiting call.
///
/// ```
/// use code_mode::durable::Answer;
/// use serde_json::json;
/// let answers = vec![
///     (0, Answer::Approve),
///     (1, Answer::deny("not during the freeze")),
///     (2, Answer::Value(json!({"total": 12}))),
/// ];
/// assert_eq!(answers.len(), 3);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// Approved: the call runs now, inside the resumed execution, with the program's input.
    Approve,
    /// Approved with this input instead (checked against the tool's schema first; an input
    /// the schema refuses denies the call, as a live approval does).
    ApproveWithInput(Value),
    /// Not approved: the program's `await` throws `ApprovalDeniedError` with the reason.
    Deny {
        /// Why, if the person said.
        reason: Option<String>,
    },
    /// The application's answer: the program's `await` gets this value; no tool runs.
    Value(Value),
    /// The application's failure: the program's `await` throws an `Error` with this
    /// message; no tool runs.
    Error(String),
}

impl Answer {
    /// A denial with a reason.
    pub fn deny(reason: impl Into<String>) -> Self {
        Self::Deny {
            reason: Some(reason.into()),
        }
    }
}

/// A call a paused execution waits on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WaitingCall {
    /// The call's id: answers name it.
    pub call_id: u32,
    /// The global function the program called (`external_refund`).
    pub function: String,
    /// The input it passed.
    pub input: Value,
    /// Set when the call waits for a person's approval (its tool's approval policy
    /// applies): the id of its `code_mode:approval_requested` event. `None` when the
    /// application's [`Park`] holds it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval_id: Option<String>,
}

/// An execution sealed while its calls wait.
#[derive(Debug, Clone, PartialEq)]
pub struct PausedExecution {
    /// The sealed execution: store it (it is encrypted and authenticated) and give it to
    /// [`CodeMode::resume`](crate::CodeMode::resume) with the answers.
    pub sealed: Vec<u8>,
    /// The calls it waits on, in the order the program made them.
    pub waiting: Vec<WaitingCall>,
    /// The console lines so far (already sent as events).
    pub logs: Vec<LogEntry>,
    /// Execution time used so far (the pause does not count).
    pub time_used: Duration,
}

/// How a durable step ended.
#[derive(Debug, Clone, PartialEq)]
#[allow(clippy::large_enum_variant)]
pub enum DurableOutcome {
    /// The program ended (or failed): the same result a live execution gives.
    Finished(CodeModeResult),
    /// Every outstanding call waits for an answer: the execution is sealed.
    Paused(PausedExecution),
}

/// Why a durable execution could not start or resume.
#[derive(Debug, thiserror::Error)]
pub enum DurableError {
    /// The `CodeMode` was built without a vault.
    #[error(
        "durable executions need a snapshot vault: set one with CodeModeBuilder::snapshot_vault"
    )]
    NoVault,
    /// The driver cannot pause durably, or the sealed bytes or answers were refused.
    #[error(transparent)]
    Resume(#[from] ResumeError),
}

impl DurableError {
    /// Whether the snapshot is still unused (see [`ResumeError::leaves_snapshot_unused`]):
    /// a `CodeMode` without a vault never touched it.
    pub fn leaves_snapshot_unused(&self) -> bool {
        match self {
            Self::NoVault => true,
            Self::Resume(e) => e.leaves_snapshot_unused(),
        }
    }
}
