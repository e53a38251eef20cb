//! Human approval of tool calls made from a program.
//!
//! A tool can require a person's approval, always or when its input says so
//! ([`ApprovalPolicy`], set with [`Tool::require_approval`](crate::Tool::require_approval)).
//! When the program calls it, that one call waits: core asks the execution's [`Approver`],
//! emits `code_mode:approval_requested`, and holds the execution's clock (see
//! [`ExecutionClock`](crate::ExecutionClock)) so the wait does not use up the timeout. The
//! program and its other calls keep running. Then:
//!
//! - approved: the tool runs, with the approver's edited input if it gave one (validated
//!   against the tool's input schema first; an invalid edit is refused and the tool does not
//!   run);
//! - denied, or no decision within [`Limits::approval_timeout`](crate::Limits::approval_timeout),
//!   or no approver configured: the call throws an `ApprovalDeniedError` the program can
//!   catch, with the reason; the tool does not run;
//! - the execution ended while the decision was pending (timeout, cancellation, dispose, a
//!   failure elsewhere): the approver is told the request is withdrawn
//!   ([`Approver::withdrawn`]) and `code_mode:approval_resolved` says so.
//!
//! Nothing is replayed: the sandbox is alive while the call waits, so no earlier call runs
//! twice. An application supplies the approver once ([`CodeModeBuilder::approver`](crate::CodeModeBuilder::approver))
//! or per execution ([`ExecuteOptions::approver`](crate::ExecuteOptions::approver)): the chat
//! server asks the browser, the MCP server asks its client through elicitation, the CLI asks
//! on the terminal. [`ApprovalChannel`] turns requests into a stream of
//! [`PendingApproval`]s for applications that answer from elsewhere.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use crate::bindings::GuestError;
use crate::clock::ExecutionClock;
use crate::events::{EventKind, EventSink, now_ms};

/// Name of the error a program sees when a call is not approved.
pub const APPROVAL_DENIED_ERROR: &str = "ApprovalDeniedError";

pub use crate::approval_policy::ApprovalPolicy;

/// One call waiting for a decision.
#[derive(Debug, Clone, PartialEq)]
pub struct ApprovalRequest {
    /// Unique id of this request (`approval_` and 24 hex digits).
    pub approval_id: Arc<str>,
    /// The model's `execute_typescript` call it belongs to, when known.
    pub tool_call_id: Option<Arc<str>>,
    /// The function the program called (`external_sendEmail`, `skill_refund`).
    pub function: String,
    /// The input the program passed.
    pub input: Value,
}

/// An approver's answer.
#[derive(Debug, Clone, PartialEq)]
pub enum ApprovalDecision {
    /// Run the call with the program's input.
    Approve,
    /// Run the call with this input instead (validated against the tool's schema first).
    ApproveWithInput(Value),
    /// Do not run it; the reason reaches the program (and the model).
    Deny {
        /// Why, if the person said.
        reason: Option<String>,
    },
}

impl ApprovalDecision {
    /// A denial with a reason.
    pub fn deny(reason: impl Into<String>) -> Self {
        Self::Deny {
            reason: Some(reason.into()),
        }
    }
}

/// Decides on calls that need approval.
///
/// ```
/// use code_mode::{ApprovalDecision, ApprovalRequest, Approver, async_trait};
///
/// struct OnlySmallRefunds;
/// #[async_trait]
/// impl Approver for OnlySmallRefunds {
///     async fn decide(&self, request: ApprovalRequest) -> ApprovalDecision {
///         match request.input["amount"].as_f64() {
///             Some(a) if a <= 50.0 => ApprovalDecision::Approve,
///             _ => ApprovalDecision::deny("refunds above 50 need a manager"),
///         }
///     }
/// }
/// ```
#[async_trait]
pub trait Approver: Send + Sync {
    /// Decides on `request`. May take as long as a person needs; core stops waiting after
    /// [`Limits::approval_timeout`](crate::Limits::approval_timeout) and denies.
    async fn decide(&self, request: ApprovalRequest) -> ApprovalDecision;

    /// The request is withdrawn: the execution ended (or stopped waiting) before a
    /// decision. A UI should take the question down. The default does nothing.
    fn withdrawn(&self, approval_id: &str) {
        let _ = approval_id;
    }
}

/// Approves every request (for trusted runs and tests).
#[derive(Debug, Clone, Copy, Default)]
pub struct ApproveAll;

#[async_trait]
impl Approver for ApproveAll {
    async fn decide(&self, _request: ApprovalRequest) -> ApprovalDecision {
        ApprovalDecision::Approve
    }
}

/// Denies every request with a fixed reason.
#[derive(Debug, Clone)]
pub struct DenyAll(pub String);

#[async_trait]
impl Approver for DenyAll {
    async fn decide(&self, _request: ApprovalRequest) -> ApprovalDecision {
        ApprovalDecision::Deny {
            reason: Some(self.0.clone()),
        }
    }
}

/// An approver that hands each request out as a [`PendingApproval`] on a channel, for
/// applications that answer from another task (a UI, a chat session, a test).
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use code_mode::{ApprovalChannel, ApprovalDecision, ApprovalRequest, Approver};
/// use serde_json::json;
///
/// let (approver, mut pending) = ApprovalChannel::new();
/// let request = ApprovalRequest { approval_id: "approval_1".into(), tool_call_id: None,
///     function: "external_pay".into(), input: json!({"amount": 3}) };
/// let asked = tokio::spawn(async move { approver.decide(request).await });
/// let question = pending.recv().await.unwrap();
/// assert_eq!(question.request().function, "external_pay");
/// question.answer(ApprovalDecision::Approve);
/// assert_eq!(asked.await.unwrap(), ApprovalDecision::Approve);
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct ApprovalChannel {
    tx: mpsc::UnboundedSender<PendingApproval>,
}

impl ApprovalChannel {
    /// The approver and the receiving end of its requests.
    pub fn new() -> (Self, mpsc::UnboundedReceiver<PendingApproval>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Self { tx }, rx)
    }
}

#[async_trait]
impl Approver for ApprovalChannel {
    async fn decide(&self, request: ApprovalRequest) -> ApprovalDecision {
        let (answer, decided) = oneshot::channel();
        if self
            .tx
            .send(PendingApproval {
                request,
                answer: Some(answer),
            })
            .is_err()
        {
            return ApprovalDecision::deny("nobody is listening for approval requests");
        }
        decided.await.unwrap_or_else(|_| {
            ApprovalDecision::deny("the approval request was dropped without an answer")
        })
    }
}

/// A request handed out by [`ApprovalChannel`]: answer it, or drop it (a denial).
#[derive(Debug)]
pub struct PendingApproval {
    request: ApprovalRequest,
    answer: Option<oneshot::Sender<ApprovalDecision>>,
}

impl PendingApproval {
    /// What is asked.
    pub fn request(&self) -> &ApprovalRequest {
        &self.request
    }

    /// Answers. Returns `false` when the request was already withdrawn.
    pub fn answer(mut self, decision: ApprovalDecision) -> bool {
        self.answer
            .take()
            .is_some_and(|tx| tx.send(decision).is_ok())
    }

    /// True once the request is withdrawn (the execution ended without a decision).
    pub fn is_withdrawn(&self) -> bool {
        self.answer.as_ref().is_none_or(oneshot::Sender::is_closed)
    }

    /// Resolves when the request is withdrawn.
    pub async fn withdrawn(&mut self) {
        if let Some(tx) = &mut self.answer {
            tx.closed().await;
        }
    }
}

/// Everything one execution needs to ask for approvals.
#[derive(Clone)]
pub(crate) struct Gate {
    pub(crate) approver: Option<Arc<dyn Approver>>,
    pub(crate) cancel: tokio_util::sync::CancellationToken,
    pub(crate) clock: ExecutionClock,
    pub(crate) outer_clock: Option<ExecutionClock>,
    pub(crate) timeout: Duration,
    pub(crate) events: EventSink,
    pub(crate) tool_call_id: Option<Arc<str>>,
    /// Approvals are answered outside this execution (a durable one holds such calls back
    /// and starts them only once approved), so the gate lets every call through.
    pub(crate) held: bool,
}

pub(crate) fn next_approval_id() -> Arc<str> {
    use std::hash::{BuildHasher, Hasher};
    static SEED: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let seed = *SEED.get_or_init(|| {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0),
        );
        h.finish()
    });
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("approval_{seed:016x}{n:08x}").into()
}

/// Tells the approver and the events that a request was withdrawn, unless disarmed.
struct Withdrawal<'a> {
    gate: &'a Gate,
    approver: &'a Arc<dyn Approver>,
    approval_id: &'a Arc<str>,
    function: &'a str,
    armed: bool,
}

impl Drop for Withdrawal<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.approver.withdrawn(self.approval_id);
            self.gate
                .resolved(self.approval_id, self.function, Resolution::Withdrawn, None);
        }
    }
}

/// How a request ended, for `code_mode:approval_resolved`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Resolution {
    Approved,
    Denied,
    TimedOut,
    Withdrawn,
}

impl Resolution {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Approved => "approved",
            Self::Denied => "denied",
            Self::TimedOut => "timeout",
            Self::Withdrawn => "withdrawn",
        }
    }
}

pub(crate) fn denied(function: &str, reason: &str) -> GuestError {
    GuestError {
        name: APPROVAL_DENIED_ERROR.into(),
        message: format!("{function} was not approved: {reason}"),
    }
}

impl Gate {
    fn resolved(
        &self,
        approval_id: &Arc<str>,
        function: &str,
        resolution: Resolution,
        detail: Option<(Option<String>, Option<Value>)>,
    ) {
        let (reason, edited_input) = detail.unwrap_or((None, None));
        let reason = reason.or_else(|| {
            (resolution == Resolution::Withdrawn)
                .then(|| "the execution ended before a decision".to_owned())
        });
        self.events.emit_kind(
            self.tool_call_id.clone(),
            EventKind::ApprovalResolved {
                approval_id: approval_id.to_string(),
                function: function.to_owned(),
                outcome: resolution.as_str(),
                reason,
                edited_input,
                timestamp: now_ms(),
            },
        );
    }

    /// Asks about `function(input)`: the input to run it with, or the `ApprovalDeniedError`
    /// the program gets. `validate` checks an edited input against the tool's schema.
    pub(crate) async fn ask(
        &self,
        function: &str,
        input: Value,
        validate: impl Fn(&Value) -> Result<(), String>,
    ) -> Result<Value, GuestError> {
        let approval_id = next_approval_id();
        self.events.emit_kind(
            self.tool_call_id.clone(),
            EventKind::ApprovalRequested {
                approval_id: approval_id.to_string(),
                function: function.to_owned(),
                input: input.clone(),
                timestamp: now_ms(),
            },
        );
        let Some(approver) = &self.approver else {
            let reason = "it needs approval and no approver is configured";
            self.resolved(
                &approval_id,
                function,
                Resolution::Denied,
                Some((Some(reason.into()), None)),
            );
            return Err(denied(function, reason));
        };
        let request = ApprovalRequest {
            approval_id: approval_id.clone(),
            tool_call_id: self.tool_call_id.clone(),
            function: function.to_owned(),
            input: input.clone(),
        };
        let hold = (
            self.clock.hold(),
            self.outer_clock.as_ref().map(ExecutionClock::hold),
        );
        let mut withdrawal = Withdrawal {
            gate: self,
            approver,
            approval_id: &approval_id,
            function,
            armed: true,
        };
        let decision = tokio::time::timeout(self.timeout, approver.decide(request)).await;
        drop(hold);
        let (resolution, reason, run_with, edited) = match decision {
            Err(_) => {
                // The approver is still waiting: take the question down.
                let reason = format!(
                    "no decision within {}",
                    crate::limits::describe_duration(self.timeout)
                );
                (Resolution::TimedOut, Some(reason), None, None)
            }
            Ok(ApprovalDecision::Approve) => (Resolution::Approved, None, Some(input), None),
            Ok(ApprovalDecision::ApproveWithInput(edited)) => match validate(&edited) {
                Ok(()) => (
                    Resolution::Approved,
                    None,
                    Some(edited.clone()),
                    Some(edited),
                ),
                Err(problem) => (
                    Resolution::Denied,
                    Some(format!("the edited input was refused: {problem}")),
                    None,
                    Some(edited),
                ),
            },
            Ok(ApprovalDecision::Deny { reason }) => (
                Resolution::Denied,
                Some(reason.unwrap_or_else(|| "denied".to_owned())),
                None,
                None,
            ),
        };
        withdrawal.armed = false;
        drop(withdrawal);
        if resolution == Resolution::TimedOut {
            approver.withdrawn(&approval_id);
        }
        self.resolved(
            &approval_id,
            function,
            resolution,
            Some((reason.clone(), edited)),
        );
        match run_with {
            Some(input) => Ok(input),
            None => Err(denied(function, reason.as_deref().unwrap_or("denied"))),
        }
    }
}
