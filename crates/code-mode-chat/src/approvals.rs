//! Approvals inside an `execute_typescript` call, through TanStack AI's approval flow.
//!
//! When a program calls a tool that needs approval, the execution waits (see `code_mode`'s
//! `approval` module). The TanStack client asks its user about *tool calls of the model*:
//! a CUSTOM `approval-requested` chunk (`{toolCallId, toolName, input, approval: {id,
//! needsApproval: true}}`) puts that call's part in the `approval-requested` state; the page
//! calls `addToolApprovalResponse({id, approved})`, and once the response stream has ended
//! the client sends the conversation again, with a `tool` message for that call whose
//! content is `{"approved": bool, "pendingExecution"?: true, "message": ...}`.
//!
//! So the server:
//! 1. names the `execute_typescript` call in `approval-requested` (its `input` says which
//!    function of the program asks, and with what), ends the response with `RUN_FINISHED`
//!    (`tool_calls`), and *parks* the run: the agent loop and the sandbox keep running, their
//!    chunks are buffered, keyed by the call's id, for a time-to-live ([`ChatApprovals::new`]);
//! 2. on the follow-up request, [`Agent::resume`](crate::Agent::resume) finds the parked run
//!    by that `tool` message, hands the decision to the waiting call, and streams the rest of
//!    the *same* execution (a new `RUN_STARTED` with the request's run id, the buffered
//!    chunks, the tool result, the model's next turn). No program is run twice.
//!
//! Approvals of one execution are asked one at a time (a call part holds one approval). A
//! run parked longer than the time-to-live is dropped, which cancels its execution; its
//! pending approval is withdrawn.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use code_mode::{ApprovalDecision, ApprovalRequest, Approver, async_trait, now_ms};
use futures::StreamExt;
use futures::stream::BoxStream;
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};
use tokio::task::AbortHandle;

use crate::Chunk;

/// Default time a parked run waits for the client's decision.
pub const DEFAULT_PARK_TTL: Duration = Duration::from_secs(10 * 60);

/// The runs paused for a decision, by the id of their `execute_typescript` call. Cheap to
/// clone; one per server.
///
/// ```
/// use std::time::Duration;
/// let approvals = code_mode_chat::ChatApprovals::new(Duration::from_secs(600));
/// assert_eq!(approvals.parked(), 0);
/// ```
#[derive(Clone)]
pub struct ChatApprovals {
    inner: Arc<Registry>,
}

struct Registry {
    ttl: Duration,
    parked: Mutex<HashMap<String, Parked>>,
    generation: std::sync::atomic::AtomicU64,
}

/// A run waiting for the client: where its chunks go, the call waiting for a decision,
/// and its task (aborted if the entry is dropped unclaimed).
struct Parked {
    relay: Arc<Relay>,
    decision: Option<(Arc<str>, oneshot::Sender<ApprovalDecision>)>,
    task: Option<TaskGuard>,
    generation: u64,
}

impl std::fmt::Debug for ChatApprovals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatApprovals")
            .field("ttl", &self.inner.ttl)
            .field("parked", &self.parked())
            .finish()
    }
}

impl Default for ChatApprovals {
    fn default() -> Self {
        Self::new(DEFAULT_PARK_TTL)
    }
}

impl ChatApprovals {
    /// A registry keeping parked runs for `ttl` (at least 1 s).
    pub fn new(ttl: Duration) -> Self {
        Self {
            inner: Arc::new(Registry {
                ttl: ttl.max(Duration::from_secs(1)),
                parked: Mutex::new(HashMap::new()),
                generation: std::sync::atomic::AtomicU64::new(0),
            }),
        }
    }

    /// Number of runs parked now.
    pub fn parked(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Parked>> {
        self.inner
            .parked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Ends the relay's current response and parks the run, in one step under the
    /// registry's lock: a follow-up request that saw the response end finds the run here.
    fn park(
        &self,
        tool_call_id: &str,
        relay: Arc<Relay>,
        decision: (Arc<str>, oneshot::Sender<ApprovalDecision>),
    ) {
        let generation = self
            .inner
            .generation
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        {
            let mut map = self.lock();
            let task = relay.detach();
            map.insert(
                tool_call_id.to_owned(),
                Parked {
                    relay,
                    decision: Some(decision),
                    task,
                    generation,
                },
            );
        }
        let me = self.clone();
        let key = tool_call_id.to_owned();
        tokio::spawn(async move {
            tokio::time::sleep(me.inner.ttl).await;
            let mut map = me.lock();
            let expired = if map.get(&key).is_some_and(|p| p.generation == generation) {
                map.remove(&key)
            } else {
                None
            };
            drop(map);
            // Dropping the entry aborts the run, which withdraws its request.
            drop(expired);
        });
    }

    /// Takes the parked run of `tool_call_id`, handing it `decision`.
    fn claim(
        &self,
        tool_call_id: &str,
        decision: ApprovalDecision,
    ) -> Option<(Arc<Relay>, Option<TaskGuard>)> {
        let mut parked = self.lock().remove(tool_call_id)?;
        if let Some((_, tx)) = parked.decision.take() {
            let _ = tx.send(decision);
        }
        Some((parked.relay.clone(), parked.task.take()))
    }

    /// The request `approval_id` of `tool_call_id` is withdrawn: no decision will be used.
    fn withdraw(&self, tool_call_id: &str, approval_id: &str) {
        if let Some(p) = self.lock().get_mut(tool_call_id)
            && p.decision
                .as_ref()
                .is_some_and(|(id, _)| &**id == approval_id)
        {
            p.decision = None;
        }
    }

    /// Reads the decision a follow-up request carries: the `tool` message TanStack's client
    /// sends for a call whose approval was answered (`{"approved": bool, ...}`), for a call
    /// that is parked here.
    pub(crate) fn decision_in(&self, body: &Value) -> Option<(String, ApprovalDecision)> {
        let map = self.lock();
        for m in body["messages"].as_array().into_iter().flatten().rev() {
            if m["role"] != "tool" {
                continue;
            }
            let Some(id) = m["toolCallId"].as_str() else {
                continue;
            };
            if !map.contains_key(id) {
                continue;
            }
            let content: Value = match &m["content"] {
                Value::String(s) => serde_json::from_str(s).unwrap_or(Value::Null),
                other => other.clone(),
            };
            let decision = match content["approved"].as_bool() {
                Some(true) => ApprovalDecision::Approve,
                Some(false) => ApprovalDecision::deny("denied in the chat"),
                None => continue,
            };
            return Some((id.to_owned(), decision));
        }
        None
    }
}

/// Aborts a run's task when dropped armed.
pub(crate) struct TaskGuard(pub(crate) Option<AbortHandle>);

impl Drop for TaskGuard {
    fn drop(&mut self) {
        if let Some(h) = self.0.take() {
            h.abort();
        }
    }
}

/// Where a run's chunks go: the response being streamed, or a buffer while the run is
/// parked between two requests. Run ids are those of the response they go to.
pub(crate) struct Relay {
    state: Mutex<RelayState>,
}

struct RelayState {
    tx: Option<mpsc::UnboundedSender<Chunk>>,
    buffer: Vec<Chunk>,
    run_id: String,
    thread_id: String,
    /// The response's hold on the task: dropped with the response (a client that goes away
    /// cancels the run), taken out when the run parks.
    task: Arc<Mutex<Option<TaskGuard>>>,
}

impl Relay {
    fn state(&self) -> std::sync::MutexGuard<'_, RelayState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A relay streaming into a new response; returns it and the response's chunks.
    pub(crate) fn new(
        run_id: String,
        thread_id: String,
    ) -> (Arc<Self>, mpsc::UnboundedReceiver<Chunk>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let relay = Arc::new(Self {
            state: Mutex::new(RelayState {
                tx: Some(tx),
                buffer: Vec::new(),
                run_id,
                thread_id,
                task: Arc::new(Mutex::new(None)),
            }),
        });
        (relay, rx)
    }

    /// Gives the response the task to abort when it is dropped.
    pub(crate) fn hold_task(&self, handle: AbortHandle) -> Arc<Mutex<Option<TaskGuard>>> {
        let state = self.state();
        *state
            .task
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(TaskGuard(Some(handle)));
        state.task.clone()
    }

    pub(crate) fn send(&self, mut chunk: Chunk) {
        let mut state = self.state();
        match &mut chunk {
            Chunk::RunStarted { run_id, .. } | Chunk::RunFinished { run_id, .. } => {
                run_id.clone_from(&state.run_id);
            }
            Chunk::RunError {
                run_id: Some(id), ..
            } => id.clone_from(&state.run_id),
            _ => {}
        }
        let undelivered = match &state.tx {
            Some(tx) => tx.send(chunk).err().map(|e| e.0),
            None => Some(chunk),
        };
        if let Some(chunk) = undelivered
            && state.tx.is_none()
        {
            state.buffer.push(chunk);
        }
    }

    /// Ends the current response (its stream ends); returns the task so the run outlives it.
    fn detach(&self) -> Option<TaskGuard> {
        let mut state = self.state();
        state.tx = None;
        state
            .task
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    }

    /// Streams the run into a new response with `run_id`: `RUN_STARTED`, then what was
    /// buffered, then the rest as it comes.
    fn attach(
        self: &Arc<Self>,
        run_id: String,
        task: Option<TaskGuard>,
    ) -> BoxStream<'static, Chunk> {
        let (tx, rx) = mpsc::unbounded_channel();
        let guard = {
            let mut state = self.state();
            state.run_id = run_id.clone();
            let _ = tx.send(Chunk::RunStarted {
                run_id,
                thread_id: state.thread_id.clone(),
                timestamp: now_ms(),
                metadata: None,
            });
            for chunk in state.buffer.drain(..) {
                let _ = tx.send(chunk);
            }
            state.tx = Some(tx);
            let guard = Arc::new(Mutex::new(task));
            state.task = guard.clone();
            guard
        };
        response_stream(rx, guard)
    }
}

/// The chunks of a response; dropping it (the client went away) drops the task guard it
/// holds, which aborts the run unless the run parked first.
pub(crate) fn response_stream(
    rx: mpsc::UnboundedReceiver<Chunk>,
    slot: Arc<Mutex<Option<TaskGuard>>>,
) -> BoxStream<'static, Chunk> {
    let guard = ResponseGuard(slot);
    futures::stream::unfold((rx, guard), |(mut rx, guard)| async move {
        let chunk = rx.recv().await?;
        Some((chunk, (rx, guard)))
    })
    .boxed()
}

/// The response's hold on its run: dropped with the response, it aborts the run, unless the
/// run took its guard out of the shared slot when it parked.
struct ResponseGuard(Arc<Mutex<Option<TaskGuard>>>);

impl Drop for ResponseGuard {
    fn drop(&mut self) {
        let taken = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        drop(taken);
    }
}

/// Resumes the parked run the request `body` answers, streaming the rest into a response
/// with `run_id`; `None` when the request answers no parked run.
pub(crate) fn resume(
    approvals: &ChatApprovals,
    body: &Value,
    run_id: String,
) -> Option<BoxStream<'static, Chunk>> {
    let (tool_call_id, decision) = approvals.decision_in(body)?;
    let (relay, task) = approvals.claim(&tool_call_id, decision)?;
    Some(relay.attach(run_id, task))
}

/// The approver of one `execute_typescript` call in a chat: asks the client as described in
/// the module docs.
pub(crate) struct ChatApprover {
    pub(crate) approvals: ChatApprovals,
    pub(crate) relay: Arc<Relay>,
    pub(crate) tool_call_id: String,
    pub(crate) tool_name: String,
    /// One question at a time per call.
    pub(crate) one_at_a_time: tokio::sync::Mutex<()>,
}

#[async_trait]
impl Approver for ChatApprover {
    async fn decide(&self, request: ApprovalRequest) -> ApprovalDecision {
        let _turn = self.one_at_a_time.lock().await;
        let (tx, rx) = oneshot::channel();
        self.relay.send(Chunk::Custom {
            timestamp: now_ms(),
            name: "approval-requested".into(),
            value: json!({
                "toolCallId": self.tool_call_id,
                "toolName": self.tool_name,
                "input": {"function": request.function, "input": request.input},
                "approval": {"id": &*request.approval_id, "needsApproval": true},
            }),
        });
        let thread_id = self.relay.state().thread_id.clone();
        self.relay.send(Chunk::RunFinished {
            run_id: String::new(),
            thread_id,
            timestamp: now_ms(),
            usage: None,
            metadata: Some(json!({"tanstack": {"finishReason": "tool_calls"}})),
        });
        self.approvals.park(
            &self.tool_call_id,
            self.relay.clone(),
            (request.approval_id.clone(), tx),
        );
        rx.await
            .unwrap_or_else(|_| ApprovalDecision::deny("the chat session ended before a decision"))
    }

    fn withdrawn(&self, approval_id: &str) {
        self.approvals.withdraw(&self.tool_call_id, approval_id);
    }
}

/// The answer TanStack's client sends for a call whose approval was answered: a `tool`
/// message whose content is `{"approved": bool, "message"?: ..., "pendingExecution"?: ...}`.
///
/// ```
/// use code_mode_chat::approval_answer;
/// assert_eq!(approval_answer(r#"{"approved":true,"pendingExecution":true}"#), Some(true));
/// assert_eq!(approval_answer(r#"{"approved":false,"message":"no"}"#), Some(false));
/// assert_eq!(approval_answer(r#"{"success":true,"result":1,"logs":[]}"#), None);
/// ```
pub fn approval_answer(content: &str) -> Option<bool> {
    let v: Value = serde_json::from_str(content).ok()?;
    let o = v.as_object()?;
    if o.len() > 3 {
        return None;
    }
    o.get("approved")?.as_bool()
}

/// The model's result for an answer whose execution is gone.
pub(crate) fn stale_approval() -> String {
    json!({"error": "this program was paused for an approval and is no longer running (the server restarted or the approval expired); run it again if it is still needed"}).to_string()
}
