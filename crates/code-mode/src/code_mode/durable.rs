//! Durable executions (feature `durable`): a program whose outstanding calls all wait for a
//! person (their tool's approval policy applies) or for the application (its
//! [`Park`](crate::durable::Park)) is sealed into bytes instead of kept in memory, and
//! [`CodeMode::resume`] continues it, in any process, once answers come.
//!
//! Why here and not in each application: the approval gate, the events, the line map and
//! the type errors are `CodeMode`'s, so a durable run's result and events are the ones a
//! live run with the same decisions gives (the tests compare them), written once.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::CodeMode;
use super::options::DRIVER_GRACE;
use super::options::ExecuteOptions;
use super::options::ExecutionScope;
use super::options::cancelled;
use crate::approval::ApprovalPolicy;
use crate::approval::{denied, next_approval_id};
use crate::bindings::GuestError;
use crate::durable::{
    Answer, DurableError, DurableOptions, DurableOutcome, Opened, Park, Paused, PausedExecution,
    Reply, ResumeError, SealError, SnapshotVault, Step, WaitingCall, admit, durable_driver,
};
use crate::error::ErrorKind;
use crate::error::ExecutionError;
use crate::events::EventKind;
use crate::events::Phase;
use crate::events::now_ms;
use crate::result::CodeModeResult;
use crate::trace::ExecTrace;
use crate::typecheck::TypeDiagnostic;
use crate::typescript::StrippedCode;
use crate::typescript::strip_typescript;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use std::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// What a `CodeMode` seals with an execution ([`Suspended::meta`](crate::durable::Suspended::meta)).
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Meta {
    /// The program as submitted: re-stripped on resume to map error lines.
    source: String,
    /// Whether `source` is JavaScript already (not stripped).
    javascript: bool,
    /// The model's tool call, for events when the resuming call gives none.
    tool_call_id: Option<String>,
    /// Approval ids of the calls waiting for a person, by call id.
    #[serde(default)]
    approvals: HashMap<u32, String>,
    /// The type check's findings, reported with the final result.
    #[serde(default)]
    type_errors: Vec<TypeDiagnostic>,
}

/// The replies to a resume's answers, and the events that announce them.
type Replies = (Vec<(u32, Reply)>, Vec<EventKind>);

/// Functions whose approval policy is not `Never`, with the policy.
type Policies = Arc<HashMap<String, ApprovalPolicy>>;

fn needs_approval(policies: &Policies, function: &str, input: &Value) -> bool {
    policies.get(function).is_some_and(|p| p.applies(input))
}

impl CodeMode {
    /// Runs `code` like [`CodeMode::execute`], except that calls needing approval are not
    /// put to an approver: when every outstanding call waits (for approval, or held by
    /// `durable.park` for the application), the execution is sealed with the builder's
    /// [`snapshot_vault`](CodeModeBuilder::snapshot_vault), its sandbox released, and
    /// [`DurableOutcome::Paused`] returned with the bytes and the waiting calls. Calls that
    /// can run are awaited and delivered first. A program that never waits simply finishes.
    ///
    /// Events: `code_mode:approval_requested` for each call waiting for approval, then
    /// `code_mode:execution_paused`; no `execution_finished` until a resumed step ends it.
    ///
    /// Only a driver with a durable side (QuickJS-WASM) can do this; others give
    /// [`ResumeError::Unsupported`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use std::sync::Arc;
    /// use code_mode::{ApprovalPolicy, CodeMode, ExecuteOptions, Tool, ToolError};
    /// use code_mode::durable::{DurableError, DurableOptions, ResumeError, SnapshotKey, SnapshotVault};
    /// use serde_json::json;
    ///
    /// let refund = Tool::new("refund", "Refunds an order.", json!({"type": "object"}),
    ///     |v, _| async move { Ok::<_, ToolError>(v) }).unwrap()
    ///     .require_approval(ApprovalPolicy::Always);
    /// let vault = SnapshotVault::new(SnapshotKey::generate(1).unwrap());
    /// // The native QuickJS driver cannot pause durably; QuickJS-WASM can.
    /// let code_mode = CodeMode::builder()
    ///     .tool(refund)
    ///     .driver(Arc::new(code_mode_isolate_quickjs::QuickJsDriver::new()))
    ///     .snapshot_vault(vault)
    ///     .build().unwrap();
    /// let err = code_mode
    ///     .execute_durable("return 1", ExecuteOptions::default(), DurableOptions::new(*b"t1"))
    ///     .await.unwrap_err();
    /// assert!(matches!(err, DurableError::Resume(ResumeError::Unsupported { .. })));
    /// # }
    /// ```
    pub async fn execute_durable(
        &self,
        code: &str,
        opts: ExecuteOptions,
        durable: DurableOptions,
    ) -> Result<DurableOutcome, DurableError> {
        let vault = self.vault()?;
        let driver = durable_driver(self.inner.driver.as_ref())?;
        let trace = self.trace(&opts, code.len());
        let span = trace.span.clone();
        async {
            let started = Instant::now();
            let (stripped, type_errors) = match self.prepare(code, &opts).await {
                Ok(prepared) => prepared,
                Err((phase, error)) => {
                    let result = CodeModeResult::failure(error);
                    let result = self.finish(&opts, started, phase, result, &trace);
                    return Ok(DurableOutcome::Finished(result));
                }
            };
            let meta = Meta {
                source: code.to_owned(),
                javascript: false,
                tool_call_id: opts.tool_call_id.as_deref().map(str::to_owned),
                approvals: HashMap::new(),
                type_errors,
            };
            let scope = ExecutionScope::for_options(&opts);
            let _ends = scope.cancel.clone().drop_guard();
            let step = match self.context_config(&opts, &trace, &scope, true) {
                Ok(config) => {
                    let park = self.durable_park(&opts, &durable);
                    let run = driver.start(config, &stripped.body, park);
                    match self.bounded(&opts, &scope, Duration::ZERO, run).await {
                        Ok(Ok(step)) => Ok(step),
                        Ok(Err(e)) => Err((
                            Phase::CreateContext,
                            ExecutionError::internal(e.to_string()),
                        )),
                        Err(e) => Err((Phase::Execute, e)),
                    }
                }
                Err(message) => Err((Phase::CreateContext, ExecutionError::internal(message))),
            };
            let ended = Ended {
                vault,
                durable: &durable,
                opts: &opts,
                stripped: &stripped,
                started,
                trace: &trace,
            };
            Ok(self.conclude(ended, meta, step))
        }
        .instrument(span)
        .await
    }

    /// [`CodeMode::execute_durable`] with `execute_typescript`'s tool input
    /// `{"typescriptCode": "..."}` (a missing program is a validation failure, as in
    /// [`CodeMode::call_execute_tool`]).
    pub async fn call_execute_durable(
        &self,
        input: &Value,
        opts: ExecuteOptions,
        durable: DurableOptions,
    ) -> Result<DurableOutcome, DurableError> {
        match input.get("typescriptCode").and_then(Value::as_str) {
            Some(code) => self.execute_durable(code, opts, durable).await,
            None => Ok(DurableOutcome::Finished(
                self.call_execute_tool(input, opts).await,
            )),
        }
    }

    /// Continues a sealed execution with answers to some or all of its waiting calls (by
    /// [`WaitingCall::call_id`]); calls left unanswered keep waiting, and the step may pause
    /// again with new bytes. `durable.aad` must be the bytes it was sealed with.
    ///
    /// Everything is checked before the sandbox is restored: the bytes (authentic, this
    /// vault's key, not expired, not resumed before per the vault's ledger), the driver and
    /// its guest, this `CodeMode`'s tools and `opts.extra_bindings` (the same set), and the
    /// answers (each names a waiting call once). A refusal is a [`DurableError`]; after the
    /// checks, every outcome (the sandbox failing to restore included) is a result.
    ///
    /// An approved call runs now, inside the resumed execution, with its events; a denied
    /// one throws `ApprovalDeniedError` in the program; a value or error answer reaches the
    /// program's `await` without running a tool. Events: `code_mode:execution_resumed`,
    /// `code_mode:approval_resolved` for each answered approval, then the program's.
    pub async fn resume(
        &self,
        sealed: &[u8],
        answers: Vec<(u32, Answer)>,
        mut opts: ExecuteOptions,
        durable: DurableOptions,
    ) -> Result<DurableOutcome, DurableError> {
        let vault = self.vault()?;
        let driver = self.inner.driver.as_ref();
        durable_driver(driver)?;
        let opened = vault.open(sealed, &durable.aad)?;
        let meta: Meta = serde_json::from_value(opened.suspended.meta.clone()).map_err(|e| {
            ResumeError::Invalid(format!(
                "it was not sealed by CodeMode::execute_durable ({e})"
            ))
        })?;
        let source = crate::lines::normalize_line_terminators(&meta.source);
        let stripped = if meta.javascript {
            StrippedCode::javascript(source.into_owned())
        } else {
            strip_typescript(&source).map_err(|e| {
                ResumeError::Invalid(format!("its program no longer compiles: {}", e.message))
            })?
        };
        if opts.tool_call_id.is_none() {
            opts.tool_call_id = meta.tool_call_id.as_deref().map(Arc::from);
        }
        let (replies, announced) = self.replies(&opened, &meta, answers)?;
        let trace = self.trace(&opts, meta.source.len());
        let span = trace.span.clone();
        async {
            let started = Instant::now();
            let scope = ExecutionScope::for_options(&opts);
            let _ends = scope.cancel.clone().drop_guard();
            let config = self
                .context_config(&opts, &trace, &scope, true)
                .map_err(ResumeError::Invalid)?;
            let resumed = admit(driver, vault, &opened, &config, &replies).await?;
            opts.events.emit_kind(
                opts.tool_call_id.clone(),
                EventKind::ExecutionResumed {
                    answered: replies.iter().map(|(id, _)| *id).collect(),
                    timestamp: now_ms(),
                },
            );
            for kind in announced {
                opts.events.emit_kind(opts.tool_call_id.clone(), kind);
            }
            let used = opened.suspended.used;
            let park = self.durable_park(&opts, &durable);
            let run = resumed.resume_suspended(config, opened.suspended, replies, park);
            let step = match self.bounded(&opts, &scope, used, run).await {
                Ok(Ok(step)) => Ok(step),
                Ok(Err(e)) => Err((
                    Phase::CreateContext,
                    ExecutionError::internal(format!(
                        "the paused execution could not be restored: {e}"
                    )),
                )),
                Err(e) => Err((Phase::Execute, e)),
            };
            let ended = Ended {
                vault,
                durable: &durable,
                opts: &opts,
                stripped: &stripped,
                started,
                trace: &trace,
            };
            Ok(self.conclude(ended, meta, step))
        }
        .instrument(span)
        .await
    }

    /// Whether [`CodeMode::execute_durable`] can pause here: the builder set a
    /// [`snapshot_vault`](CodeModeBuilder::snapshot_vault) and the driver has a durable side.
    pub fn can_pause_durably(&self) -> bool {
        self.inner.vault.is_some() && self.inner.driver.durable().is_some()
    }

    fn vault(&self) -> Result<&SnapshotVault, DurableError> {
        self.inner.vault.as_ref().ok_or(DurableError::NoVault)
    }

    /// The replies the driver gets for `answers`, and the events that announce them (sent
    /// once the resume is admitted).
    fn replies(
        &self,
        opened: &Opened,
        meta: &Meta,
        answers: Vec<(u32, Answer)>,
    ) -> Result<Replies, ResumeError> {
        let mut replies = Vec::with_capacity(answers.len());
        let mut announced = Vec::new();
        for (call_id, answer) in answers {
            let call = opened
                .suspended
                .pending
                .iter()
                .find(|c| c.call_id == call_id)
                .ok_or(ResumeError::UnknownCall(call_id))?;
            let function = call.function.as_str();
            // (outcome, reason, edited input) of the approval, when it is one.
            let (reply, resolution) = match answer {
                Answer::Approve => (Reply::run(call.args.clone()), ("approved", None, None)),
                Answer::ApproveWithInput(edited) => match self.check_edit(function, &edited) {
                    Ok(()) => (Reply::run(edited.clone()), ("approved", None, Some(edited))),
                    Err(problem) => {
                        let reason = format!("the edited input was refused: {problem}");
                        let reply = Reply::Deliver(Err(denied(function, &reason)));
                        (reply, ("denied", Some(reason), Some(edited)))
                    }
                },
                Answer::Deny { reason } => {
                    let reason = reason.unwrap_or_else(|| "denied".to_owned());
                    let reply = Reply::Deliver(Err(denied(function, &reason)));
                    (reply, ("denied", Some(reason), None))
                }
                Answer::Value(value) => (
                    Reply::value(value),
                    (
                        "withdrawn",
                        Some("the application answered the call itself".to_owned()),
                        None,
                    ),
                ),
                Answer::Error(message) => (
                    Reply::Deliver(Err(GuestError::error(message))),
                    (
                        "withdrawn",
                        Some("the application answered the call itself".to_owned()),
                        None,
                    ),
                ),
            };
            let denied_here = resolution.0 == "denied";
            if let Some(approval_id) = meta.approvals.get(&call_id) {
                let (outcome, reason, edited_input) = resolution;
                announced.push(EventKind::ApprovalResolved {
                    approval_id: approval_id.clone(),
                    function: function.to_owned(),
                    outcome,
                    reason,
                    edited_input,
                    timestamp: now_ms(),
                });
            }
            // A call that runs reports itself through its binding; one answered from
            // outside is reported here, as a call that returned at once. A denied call never
            // started: only its error is reported, as on a live execution.
            if let Reply::Deliver(outcome) = &reply {
                if !denied_here {
                    announced.push(EventKind::ExternalCall {
                        function: function.to_owned(),
                        args: call.args.clone(),
                        timestamp: now_ms(),
                    });
                }
                announced.push(match outcome {
                    Ok(result) => EventKind::ExternalResult {
                        function: function.to_owned(),
                        result: result.clone(),
                        duration_ms: 0.0,
                    },
                    Err(e) => EventKind::ExternalError {
                        function: function.to_owned(),
                        error: e.message.clone(),
                        duration_ms: 0.0,
                    },
                });
            }
            replies.push((call_id, reply));
        }
        Ok((replies, announced))
    }

    /// Checks an approver's edit of `function`'s input against its tool's schema (extra
    /// bindings have none).
    fn check_edit(&self, function: &str, edited: &Value) -> Result<(), String> {
        let name = function.strip_prefix("external_").unwrap_or(function);
        match self.inner.tools.iter().find(|t| t.name() == name) {
            Some(tool) if function.starts_with("external_") => tool.validate_input(edited),
            _ => Ok(()),
        }
    }

    /// The approval policies of this execution's functions (tools and extra bindings).
    fn policies(&self, opts: &ExecuteOptions) -> Policies {
        let mut policies = HashMap::new();
        for tool in &self.inner.tools {
            if !tool.approval_policy().is_never() {
                let function = format!("external_{}", tool.name());
                policies.insert(function, tool.approval_policy().clone());
            }
        }
        for extra in &opts.extra_bindings {
            if !extra.approval_policy().is_never() {
                policies.insert(extra.name().to_owned(), extra.approval_policy().clone());
            }
        }
        Arc::new(policies)
    }

    /// Holds back calls that need approval and those `durable.park` names.
    fn durable_park(&self, opts: &ExecuteOptions, durable: &DurableOptions) -> Park {
        let policies = self.policies(opts);
        let app = durable.park.clone();
        Park::when(move |function, input| {
            needs_approval(&policies, function, input)
                || app.as_ref().is_some_and(|p| p.applies(function, input))
        })
    }

    /// Runs one durable step under the execution's remaining time (`used` already spent)
    /// and the application's cancellation: the backstop for a driver that overruns.
    async fn bounded<T>(
        &self,
        opts: &ExecuteOptions,
        scope: &ExecutionScope,
        used: Duration,
        step: impl std::future::Future<Output = T>,
    ) -> Result<T, ExecutionError> {
        if opts
            .cancel
            .as_ref()
            .is_some_and(CancellationToken::is_cancelled)
        {
            return Err(cancelled());
        }
        let timeout = self.inner.limits.timeout();
        let budget = scope.clock.budget_after(timeout, used);
        let app_cancel = async {
            match &opts.cancel {
                Some(token) => token.cancelled().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            r = step => Ok(r),
            () = budget.spent_plus(DRIVER_GRACE) => Err(ExecutionError::timeout(timeout)),
            () = app_cancel => Err(cancelled()),
        }
    }

    /// The outcome of a step: a finished result (with its events), or the sealed bytes.
    fn conclude(
        &self,
        ended: Ended<'_>,
        mut meta: Meta,
        step: Result<Step, (Phase, ExecutionError)>,
    ) -> DurableOutcome {
        let (phase, mut result) = match step {
            Ok(Step::Paused(paused)) => return self.pause(ended, meta, paused),
            Ok(Step::Finished(r)) => (Phase::Execute, CodeModeResult::from_execution(r)),
            Err((phase, e)) => (phase, CodeModeResult::failure(e)),
        };
        if let Some(err) = &mut result.error {
            err.line = err.line.and_then(|l| ended.stripped.original_line(l));
        }
        result.type_errors = std::mem::take(&mut meta.type_errors);
        DurableOutcome::Finished(self.finish(ended.opts, ended.started, phase, result, ended.trace))
    }

    /// Seals a paused step: approval ids for calls newly waiting for a person, the meta,
    /// the bytes; then the events. A snapshot that cannot be sealed ends the execution.
    fn pause(&self, ended: Ended<'_>, mut meta: Meta, mut paused: Paused) -> DurableOutcome {
        let policies = self.policies(ended.opts);
        let mut approvals = HashMap::new();
        let mut requested = Vec::new();
        let mut waiting = Vec::with_capacity(paused.pending().len());
        for call in paused.pending() {
            let approval_id = needs_approval(&policies, &call.function, &call.args).then(|| {
                meta.approvals
                    .get(&call.call_id)
                    .cloned()
                    .unwrap_or_else(|| {
                        let id = next_approval_id().to_string();
                        requested.push(EventKind::ApprovalRequested {
                            approval_id: id.clone(),
                            function: call.function.clone(),
                            input: call.args.clone(),
                            timestamp: now_ms(),
                        });
                        id
                    })
            });
            if let Some(id) = &approval_id {
                approvals.insert(call.call_id, id.clone());
            }
            waiting.push(WaitingCall {
                call_id: call.call_id,
                function: call.function.clone(),
                input: call.args.clone(),
                approval_id,
            });
        }
        meta.approvals = approvals;
        let sealed = serde_json::to_value(&meta)
            .map_err(|e| SealError::Config(format!("the execution's record: {e}")))
            .and_then(|m| {
                paused.set_meta(m);
                paused.seal(ended.vault, &ended.durable.aad)
            });
        let sealed = match sealed {
            Ok(sealed) => sealed,
            Err(e) => {
                let message = format!("The paused execution could not be stored: {e}");
                let error = match e {
                    SealError::TooLarge { .. } => {
                        ExecutionError::new(ErrorKind::MemoryLimit, message)
                    }
                    _ => ExecutionError::internal(message),
                };
                let result = CodeModeResult::failure(error);
                return DurableOutcome::Finished(self.finish(
                    ended.opts,
                    ended.started,
                    Phase::Execute,
                    result,
                    ended.trace,
                ));
            }
        };
        let id = ended.opts.tool_call_id.clone();
        for kind in requested {
            ended.opts.events.emit_kind(id.clone(), kind);
        }
        ended.opts.events.emit_kind(
            id,
            EventKind::ExecutionPaused {
                waiting: serde_json::to_value(&waiting).unwrap_or(Value::Null),
                sealed_bytes: sealed.len(),
                timestamp: now_ms(),
            },
        );
        tracing::debug!(target: "code_mode", sealed_bytes = sealed.len(), waiting = waiting.len(), "execution paused");
        DurableOutcome::Paused(PausedExecution {
            sealed,
            waiting,
            logs: paused.logs().to_vec(),
            time_used: paused.time_used(),
        })
    }
}

/// What concluding a step needs besides its outcome.
struct Ended<'a> {
    vault: &'a SnapshotVault,
    durable: &'a DurableOptions,
    opts: &'a ExecuteOptions,
    stripped: &'a StrippedCode,
    started: Instant,
    trace: &'a ExecTrace,
}
