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
use futures::future::AbortHandle;
use futures::stream::BoxStream;
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};

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
    /// Calls whose approval was answered here, and when (kept for `ANSWERED_KEPT`, at most
    /// `ANSWERED_MAX`): an answer sent again is told apart from one that came too late.
    answered: Mutex<std::collections::VecDeque<(String, std::time::Instant)>>,
}

/// How long an answered call is remembered.
const ANSWERED_KEPT: Duration = Duration::from_secs(24 * 60 * 60);
/// How many answered calls are remembered at most.
const ANSWERED_MAX: usize = 4096;

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
                answered: Mutex::default(),
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

    /// Takes the parked run of `tool_call_id`: its relay, its task, and where its decision
    /// goes (`None` when the request was withdrawn meanwhile).
    fn claim(&self, tool_call_id: &str) -> Option<Claimed> {
        let mut parked = self.lock().remove(tool_call_id)?;
        self.remember_answered(tool_call_id);
        Some(Claimed {
            relay: parked.relay.clone(),
            task: parked.task.take(),
            decision: parked.decision.take().map(|(_, tx)| tx),
        })
    }

    fn remember_answered(&self, tool_call_id: &str) {
        let mut answered = self
            .inner
            .answered
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = std::time::Instant::now();
        while answered
            .front()
            .is_some_and(|(_, at)| now.duration_since(*at) > ANSWERED_KEPT)
            || answered.len() >= ANSWERED_MAX
        {
            answered.pop_front();
        }
        answered.push_back((tool_call_id.to_owned(), now));
    }

    /// Whether the approval of `tool_call_id` was answered here (its program went on).
    pub(crate) fn was_answered(&self, tool_call_id: &str) -> bool {
        self.inner
            .answered
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .any(|(id, _)| id == tool_call_id)
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
        // Current clients answer the interrupt by its id (the approval id).
        for (id, parked) in map.iter() {
            if let Some((approval_id, _)) = &parked.decision
                && let Some(decision) = resumed_decision(body, approval_id)
            {
                return Some((id.clone(), decision));
            }
        }
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
    /// Approvals asked since the last `RUN_FINISHED`: the next one carries them as its
    /// interrupt outcome.
    interrupts: Vec<Value>,
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
                interrupts: Vec::new(),
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

    /// Asks the user: sends TanStack's `approval-requested` (what clients before the
    /// interrupt protocol read) and keeps the approval as an interrupt for the next
    /// `RUN_FINISHED` (what current clients read: they drop an `approval-requested` whose
    /// tool call belongs to an earlier response, so a second approval in one program would
    /// otherwise never reach the page).
    pub(crate) fn ask(&self, question: Value) {
        self.state().interrupts.push(approval_interrupt(&question));
        self.send(Chunk::Custom {
            timestamp: now_ms(),
            name: "approval-requested".into(),
            value: question,
        });
    }

    pub(crate) fn send(&self, mut chunk: Chunk) {
        let mut state = self.state();
        match &mut chunk {
            Chunk::RunStarted { run_id, .. } => run_id.clone_from(&state.run_id),
            Chunk::RunFinished {
                run_id, outcome, ..
            } => {
                run_id.clone_from(&state.run_id);
                if !state.interrupts.is_empty() {
                    let interrupts = std::mem::take(&mut state.interrupts);
                    *outcome = Some(json!({"type": "interrupt", "interrupts": interrupts}));
                }
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
    ///
    /// The task is taken out of the response's hold *before* the response's sender is
    /// dropped: dropping it wakes the response, which may end on another thread at once and
    /// drop its hold; a hold still armed then would abort the run that is parking (seen under
    /// load: the follow-up found the run withdrawn).
    fn detach(&self) -> Option<TaskGuard> {
        let mut state = self.state();
        let task = state
            .task
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        state.tx = None;
        task
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
    let claimed = approvals.claim(&tool_call_id)?;
    // The new response is attached before the run hears the decision: what the run sends
    // next carries the new run id and goes to the new response (decided first, a run that
    // raced ahead sent the rest of its turn under the old run id, into the buffer).
    let rest = claimed.relay.attach(run_id, claimed.task);
    if let Some(tx) = claimed.decision {
        let _ = tx.send(decision);
    }
    Some(rest)
}

/// A parked run taken out of the registry by the request that answers it.
struct Claimed {
    relay: Arc<Relay>,
    task: Option<TaskGuard>,
    decision: Option<oneshot::Sender<ApprovalDecision>>,
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
        self.relay.ask(json!({
            "toolCallId": self.tool_call_id,
            "toolName": self.tool_name,
            "input": {"function": request.function, "input": request.input},
            "approval": {"id": &*request.approval_id, "needsApproval": true},
        }));
        let thread_id = self.relay.state().thread_id.clone();
        self.relay.send(Chunk::RunFinished {
            run_id: String::new(),
            thread_id,
            timestamp: now_ms(),
            usage: None,
            metadata: Some(json!({"tanstack": {"finishReason": "tool_calls"}})),
            outcome: None,
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

/// AG-UI's interrupt for an `approval-requested` question (`{toolCallId, toolName, input,
/// approval: {id}}`): TanStack's client shows it as the tool call's pending approval, and
/// answers it with a resume entry whose `interruptId` is the approval id.
fn approval_interrupt(question: &Value) -> Value {
    json!({
        "id": question["approval"]["id"],
        "reason": "approval_required",
        "message": format!("{} needs approval", question["input"]["function"].as_str().unwrap_or("a call")),
        "toolCallId": question["toolCallId"],
        "metadata": {
            "kind": "approval",
            "toolName": question["toolName"],
            "input": question["input"],
        },
    })
}

/// The decision a resume entry of AG-UI's interrupt protocol carries (`{"interruptId",
/// "status": "resolved", "payload": {"approved": bool}}`, or `"status": "cancelled"`), for
/// the approval `approval_id`.
pub(crate) fn resumed_decision(body: &Value, approval_id: &str) -> Option<ApprovalDecision> {
    let entry = body["resume"]
        .as_array()?
        .iter()
        .find(|e| e["interruptId"].as_str() == Some(approval_id))?;
    match (
        entry["status"].as_str(),
        entry["payload"]["approved"].as_bool(),
    ) {
        (Some("cancelled"), _) => Some(ApprovalDecision::deny("cancelled in the chat")),
        (_, Some(true)) => Some(ApprovalDecision::Approve),
        (_, Some(false)) => Some(ApprovalDecision::deny("denied in the chat")),
        _ => None,
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

/// The model's result for an answer sent again after it was used: the program went on with
/// the first one, so running it again would repeat what it did.
pub(crate) fn answered_approval() -> String {
    json!({"error": "this approval was already answered, and its program went on with that answer; this copy of the answer was not used. Do not run the program again: what it did is done"}).to_string()
}

#[cfg(test)]
mod tests {
    use std::future::Future as _;
    use std::task::{Context, Wake, Waker};

    use super::*;

    /// Records, when the response is woken by the end of its sender, whether its hold still
    /// had the run's task (it must not: the end of the response would abort the parked run).
    struct Watch {
        slot: Arc<Mutex<Option<TaskGuard>>>,
        armed_at_end: Mutex<Option<bool>>,
    }

    impl Wake for Watch {
        fn wake(self: Arc<Self>) {
            let armed = self.slot.lock().map(|s| s.is_some()).unwrap_or(true);
            *self
                .armed_at_end
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(armed);
        }
    }

    #[tokio::test]
    async fn a_parking_run_takes_its_task_before_its_response_can_end() {
        let approvals = ChatApprovals::new(Duration::from_secs(60));
        let (relay, rx) = Relay::new("run-1".into(), "t".into());
        let (abort, registration) = AbortHandle::new_pair();
        let run = futures::future::Abortable::new(futures::future::pending::<()>(), registration);
        let slot = relay.hold_task(abort);
        let mut response = response_stream(rx, slot.clone());
        let watch = Arc::new(Watch {
            slot,
            armed_at_end: Mutex::new(None),
        });
        let waker = Waker::from(watch.clone());
        assert!(
            response
                .poll_next_unpin(&mut Context::from_waker(&waker))
                .is_pending()
        );
        let (tx, _decision) = oneshot::channel();
        approvals.park("call_1", relay, (Arc::from("approval_1"), tx));
        let armed = *watch
            .armed_at_end
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        assert_eq!(
            armed,
            Some(false),
            "the response could end while still holding the parked run"
        );
        // The response ends; the parked run is not aborted by it.
        assert!(response.next().await.is_none());
        drop(response);
        assert!(
            !run.is_aborted(),
            "the end of the first response aborted the parked run"
        );
        assert_eq!(approvals.parked(), 1);
    }

    /// Notes the relay's run id when the run is woken by its decision.
    struct Decided {
        relay: Arc<Relay>,
        run_id: Mutex<Option<String>>,
    }

    impl Wake for Decided {
        fn wake(self: Arc<Self>) {
            let run_id = self.relay.state().run_id.clone();
            *self
                .run_id
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(run_id);
        }
    }

    #[tokio::test]
    async fn the_follow_up_is_attached_before_the_run_hears_its_decision() {
        let approvals = ChatApprovals::new(Duration::from_secs(60));
        let (relay, _first) = Relay::new("run-1".into(), "t".into());
        let (tx, mut decision) = oneshot::channel();
        approvals.park("call_1", relay.clone(), (Arc::from("approval_1"), tx));
        let decided = Arc::new(Decided {
            relay,
            run_id: Mutex::new(None),
        });
        let waker = Waker::from(decided.clone());
        let polled = std::pin::Pin::new(&mut decision).poll(&mut Context::from_waker(&waker));
        assert!(polled.is_pending());
        let body = json!({"messages": [
            {"role": "tool", "toolCallId": "call_1", "content": "{\"approved\":true}"},
        ]});
        let rest = resume(&approvals, &body, "run-2".into());
        assert!(rest.is_some(), "the follow-up found no parked run");
        let seen = decided
            .run_id
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        assert_eq!(
            seen.as_deref(),
            Some("run-2"),
            "the run heard its decision before the follow-up was attached"
        );
        assert!(matches!(decision.await, Ok(ApprovalDecision::Approve)));
    }
}
