//! Approvals for clients on protocol 2026-07-28 and newer when the sandbox cannot seal an
//! execution (the default, native QuickJS driver): the execution stays in this process,
//! parked at its approvals, between the client's requests.
//!
//! Why: from 2026-07-28 a server may not send the client requests during a call; it answers
//! `InputRequiredResult` (elicitation forms and a `requestState`) and the client retries the
//! call with the answers. The durable path (see `durable.rs`) seals a QuickJS-WASM execution
//! into the `requestState` and survives restarts; here the execution keeps running in memory,
//! its approver waiting, and the `requestState` is only a key to it:
//!
//! - **unguessable**: 256 random bits from the operating system, kept only here;
//! - **single use**: the entry is taken out of the table when a retry presents it, so a
//!   replayed `requestState` finds nothing;
//! - **bound to the session** that started the call, where the transport has sessions
//!   (stdio): another session's retry is refused. Streamable HTTP requests at 2026-07-28
//!   carry no session; there the key alone guards the execution (session 0: unbound);
//! - **timed**: an entry not resumed within [`PARKED_TTL`] is dropped, and its waiting
//!   approvals are denied (the execution then finishes on its own, unobserved).
//!
//! Approvals the program asks for at once (a `Promise.all` of calls needing approval) are
//! gathered into one `InputRequiredResult`: after the first, others arriving within
//! [`GATHER`] join it. Each form's key is the approval's id.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use code_mode::{ApprovalDecision, ApprovalRequest, Approver, async_trait};
use rmcp::model::{
    CallToolResponse, CallToolResult, ContentBlock, ElicitRequest, ElicitRequestParams,
    ElicitResult, InputRequest, InputRequests, InputRequiredResult, InputResponses,
};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::approval::{decision_of, question, schema};

/// How long a parked execution waits for the client's retry.
pub const PARKED_TTL: Duration = Duration::from_secs(10 * 60);

/// How long, after the first approval of a turn, others may join it.
const GATHER: Duration = Duration::from_millis(25);

/// What a `requestState` of this module starts with.
const STATE_PREFIX: &str = "cm-parked-1:";

/// An approval the running program waits on.
struct Ask {
    request: ApprovalRequest,
    answer: oneshot::Sender<ApprovalDecision>,
}

/// The approver of a parked execution: each request waits for the client's next retry.
struct Parking {
    asks: mpsc::UnboundedSender<Ask>,
}

#[async_trait]
impl Approver for Parking {
    async fn decide(&self, request: ApprovalRequest) -> ApprovalDecision {
        let (answer, decided) = oneshot::channel();
        if self.asks.send(Ask { request, answer }).is_err() {
            return ApprovalDecision::deny("the MCP client's call is over");
        }
        decided.await.unwrap_or_else(|_| {
            ApprovalDecision::deny("the MCP client did not answer the approval request in time")
        })
    }
}

/// A running execution and the approvals it waits on.
struct Run {
    asks: mpsc::UnboundedReceiver<Ask>,
    finished: JoinHandle<CallToolResult>,
    /// The approvals the client was sent, answered by its retry.
    waiting: Vec<Ask>,
}

struct Entry {
    session: u64,
    run: Run,
}

/// The parked executions of one server (all its sessions).
#[derive(Default, Clone)]
pub(crate) struct Parked {
    entries: Arc<Mutex<HashMap<String, Entry>>>,
}

impl Parked {
    /// The approver for a new execution, and the receiver of its approvals.
    pub(crate) fn approver() -> (Arc<dyn Approver>, ParkedAsks) {
        let (asks, rx) = mpsc::unbounded_channel();
        (Arc::new(Parking { asks }), ParkedAsks(rx))
    }

    /// Starts following `finished` (the execution, already running with the approver from
    /// [`Self::approver`]): answers its result, or its first approvals as an
    /// `InputRequiredResult` whose `requestState` resumes it in `session`.
    pub(crate) async fn start(
        &self,
        session: u64,
        asks: ParkedAsks,
        finished: JoinHandle<CallToolResult>,
    ) -> CallToolResponse {
        let run = Run {
            asks: asks.0,
            finished,
            waiting: Vec::new(),
        };
        self.turn(session, run).await
    }

    /// Resumes the execution `state` names with the client's answers.
    pub(crate) async fn resume(
        &self,
        session: u64,
        state: &str,
        responses: Option<&InputResponses>,
    ) -> CallToolResponse {
        let Some(key) = state.strip_prefix(STATE_PREFIX) else {
            return failed("the requestState is not one this server issued");
        };
        let entry = self.lock().remove(key);
        let Some(entry) = entry else {
            return failed(
                "the requestState was used already or has expired: call execute_typescript again",
            );
        };
        if entry.session != 0 && entry.session != session {
            // Not this session's: it goes back, untouched, for its own session.
            self.lock().insert(key.to_owned(), entry);
            return failed("the requestState belongs to another session");
        }
        let mut run = entry.run;
        for ask in std::mem::take(&mut run.waiting) {
            let decision = match responses.and_then(|r| r.get(ask.request.approval_id.as_ref())) {
                Some(value) => match serde_json::from_value::<ElicitResult>(value.clone()) {
                    Ok(result) => decision_of(&result.action, result.content.as_ref()),
                    Err(e) => ApprovalDecision::deny(format!("the answer could not be read: {e}")),
                },
                None => ApprovalDecision::deny("the MCP client did not answer this approval"),
            };
            let _ = ask.answer.send(decision);
        }
        self.turn(session, run).await
    }

    /// Waits for the execution's result or its next approvals.
    async fn turn(&self, session: u64, mut run: Run) -> CallToolResponse {
        let first = tokio::select! {
            ask = run.asks.recv() => ask,
            result = &mut run.finished => return finished(result),
        };
        let Some(first) = first else {
            // The approver is gone: the execution is over.
            return finished((&mut run.finished).await);
        };
        run.waiting.push(first);
        while let Ok(Some(ask)) = tokio::time::timeout(GATHER, run.asks.recv()).await {
            run.waiting.push(ask);
        }
        let mut requests = InputRequests::new();
        for ask in &run.waiting {
            let requested_schema = match schema() {
                Ok(s) => s,
                Err(e) => return failed(&format!("cannot build the approval form: {e}")),
            };
            let params = ElicitRequestParams::FormElicitationParams {
                meta: None,
                message: question(&ask.request.function, &ask.request.input),
                requested_schema,
            };
            requests.insert(
                ask.request.approval_id.to_string(),
                InputRequest::Elicitation(ElicitRequest::new(params)),
            );
        }
        let key = match fresh_key() {
            Ok(k) => k,
            Err(e) => return failed(&format!("cannot make a requestState: {e}")),
        };
        self.lock().insert(key.clone(), Entry { session, run });
        let entries = self.entries.clone();
        let expiring = key.clone();
        tokio::spawn(async move {
            tokio::time::sleep(PARKED_TTL).await;
            // Dropping the entry drops its answers: the approvals are denied as unanswered.
            let gone = entries
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&expiring);
            drop(gone);
        });
        CallToolResponse::InputRequired(InputRequiredResult::new(
            Some(requests),
            Some(format!("{STATE_PREFIX}{key}")),
        ))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Parked executions (for tests and diagnostics).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }
}

/// The approvals asked by an execution started with [`Parked::approver`].
pub(crate) struct ParkedAsks(mpsc::UnboundedReceiver<Ask>);

/// 256 random bits, as hex.
fn fresh_key() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn finished(result: Result<CallToolResult, tokio::task::JoinError>) -> CallToolResponse {
    match result {
        Ok(result) => CallToolResponse::Complete(result),
        Err(e) => failed(&format!("the execution stopped: {e}")),
    }
}

fn failed(message: &str) -> CallToolResponse {
    CallToolResponse::Complete(CallToolResult::error(vec![ContentBlock::text(
        message.to_owned(),
    )]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(id: &str) -> ApprovalRequest {
        ApprovalRequest {
            approval_id: id.into(),
            tool_call_id: None,
            function: "external_echo".into(),
            input: json!({"n": 1}),
        }
    }

    fn state_of(response: &CallToolResponse) -> (String, Vec<String>) {
        match response {
            CallToolResponse::InputRequired(r) => (
                r.request_state.clone().unwrap_or_default(),
                r.input_requests
                    .iter()
                    .flatten()
                    .map(|(k, _)| k.clone())
                    .collect(),
            ),
            other => panic!("{other:?}"),
        }
    }

    fn text_of(response: &CallToolResponse) -> String {
        match response {
            CallToolResponse::Complete(r) => serde_json::to_string(&r.content).unwrap_or_default(),
            other => panic!("{other:?}"),
        }
    }

    /// Two approvals asked at once come in one round; the answers reach them; the state is
    /// single use and bound to its session.
    #[tokio::test]
    async fn approvals_round_trip_once_per_state() {
        let parked = Parked::default();
        let (approver, asks) = Parked::approver();
        let finished = tokio::spawn(async move {
            let (a, b) = tokio::join!(
                approver.decide(request("approval_a")),
                approver.decide(request("approval_b"))
            );
            CallToolResult::success(vec![ContentBlock::text(format!("{a:?} {b:?}"))])
        });
        let first = parked.start(7, asks, finished).await;
        let (state, mut keys) = state_of(&first);
        keys.sort();
        assert_eq!(keys, ["approval_a", "approval_b"]);
        assert!(state.starts_with(STATE_PREFIX) && state.len() == STATE_PREFIX.len() + 64);
        let other_session = parked.resume(8, &state, None).await;
        assert!(text_of(&other_session).contains("another session"));
        let answers: InputResponses = [
            (
                "approval_a".to_owned(),
                json!({"action": "accept", "content": {"approve": true}}),
            ),
            ("approval_b".to_owned(), json!({"action": "decline"})),
        ]
        .into_iter()
        .collect();
        let done = text_of(&parked.resume(7, &state, Some(&answers)).await);
        assert!(
            done.contains("Approve") && done.contains("declined by the user"),
            "{done}"
        );
        let replay = parked.resume(7, &state, Some(&answers)).await;
        assert!(text_of(&replay).contains("used already"));
        assert_eq!(parked.len(), 0);
        let forged = parked
            .resume(7, &format!("{STATE_PREFIX}{}", "0".repeat(64)), None)
            .await;
        assert!(text_of(&forged).contains("used already"));
    }
}
