//! Approvals that survive a restart (feature `durable`).
//!
//! [`ChatApprovals`](crate::ChatApprovals) keeps a run waiting for a decision alive in this
//! process: a restart, a deploy or a follow-up request that lands on another server loses
//! it. With [`DurableApprovals`], an `execute_typescript` call whose program waits for an
//! approval is *sealed* instead (see `code_mode::durable`): its bytes go to a
//! [`PausedStore`] under the call's id, the client gets the usual `approval-requested`
//! chunk, and the response ends. Nothing stays in memory.
//!
//! The follow-up request (TanStack's client sends the whole conversation again, with a
//! `tool` message `{"approved": bool}` for that call) may reach any process built with the
//! same tools and vault key: [`Agent::run_as`](crate::Agent::run_as) finds the answer,
//! takes the sealed bytes from the store, resumes the program where it stopped (the
//! approved call runs now, a denied one throws in the program), streams its events and
//! result, and lets the model go on. A program waiting for a second approval is sealed
//! again. An answer whose execution is not in the store (expired, already resumed) becomes
//! a clear error result for the model.
//!
//! Why a store trait of bytes: the sealed execution is already encrypted and authenticated,
//! so a store only keeps opaque bytes by key and hands each out once; [`MemoryPausedStore`]
//! is here, and the skills crate's file and Postgres storages implement it too, for
//! servers that restart or run as a fleet.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use code_mode::durable::{Answer, DurableError, DurableOptions, DurableOutcome};
use code_mode::{CodeMode, ExecuteOptions};
use serde_json::{Value, json};

use crate::ToolCall;
use crate::agent::{Called, events_to};
use crate::approvals::Relay;
use crate::paused_store::PausedStore;

/// Default time a sealed execution waits in the store for its answer.
pub const DEFAULT_DURABLE_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// Durable approvals of an agent's `execute_typescript` calls: the `CodeMode` that runs
/// them (built with a [`snapshot_vault`](code_mode::CodeModeBuilder::snapshot_vault) on a
/// driver that can pause durably, QuickJS-WASM) and the store. Cheap to clone.
#[derive(Clone)]
pub struct DurableApprovals {
    pub(crate) code_mode: CodeMode,
    pub(crate) store: Arc<dyn PausedStore>,
    pub(crate) ttl: Duration,
}

impl std::fmt::Debug for DurableApprovals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DurableApprovals")
            .field("code_mode", &self.code_mode)
            .field("store", &self.store)
            .field("ttl", &self.ttl)
            .finish()
    }
}

impl DurableApprovals {
    /// Seals `code_mode`'s executions that wait for approval into `store`, for
    /// [`DEFAULT_DURABLE_TTL`] (the vault's own time-to-live applies too: keep them alike).
    pub fn new(code_mode: CodeMode, store: Arc<dyn PausedStore>) -> Self {
        Self {
            code_mode,
            store,
            ttl: DEFAULT_DURABLE_TTL,
        }
    }

    /// How long a sealed execution waits in the store (at least 1 s).
    #[must_use]
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl.max(Duration::from_secs(1));
        self
    }

    /// The options of the execution of call `tool_call_id`: its sealed bytes are bound to
    /// the call, so bytes stored under another call's id do not open.
    pub(crate) fn options(tool_call_id: &str) -> DurableOptions {
        DurableOptions::new(format!("code-mode-chat/{tool_call_id}").into_bytes())
    }
}

/// What is stored for a paused call: the question asked (to answer it) and the sealed
/// execution.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Waiting {
    /// The guest's id of the call waiting for approval.
    pub(crate) call_id: u32,
    /// The `approval-requested` chunk's value, sent again if the program asks once more.
    pub(crate) question: Value,
    pub(crate) sealed: Vec<u8>,
}

const RECORD_MAGIC: &[u8; 4] = b"CMCW";

impl Waiting {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let head = json!({"callId": self.call_id, "question": self.question}).to_string();
        let mut out = Vec::with_capacity(8 + head.len() + self.sealed.len());
        out.extend_from_slice(RECORD_MAGIC);
        out.extend_from_slice(&(head.len() as u32).to_le_bytes());
        out.extend_from_slice(head.as_bytes());
        out.extend_from_slice(&self.sealed);
        out
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, String> {
        let bad = |why: &str| format!("the stored paused execution is unreadable: {why}");
        let rest = bytes
            .strip_prefix(RECORD_MAGIC.as_slice())
            .ok_or_else(|| bad("no record header"))?;
        let (len, rest) = rest
            .split_first_chunk::<4>()
            .ok_or_else(|| bad("truncated"))?;
        let len = u32::from_le_bytes(*len) as usize;
        if rest.len() < len {
            return Err(bad("truncated"));
        }
        let (head, sealed) = rest.split_at(len);
        let head: Value = serde_json::from_slice(head).map_err(|e| bad(&e.to_string()))?;
        let call_id = head["callId"]
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| bad("no call id"))?;
        Ok(Self {
            call_id,
            question: head["question"].clone(),
            sealed: sealed.to_vec(),
        })
    }
}

/// The answer a chat decision gives the waiting call.
pub(crate) fn answer(approved: bool) -> Answer {
    if approved {
        Answer::Approve
    } else {
        Answer::deny("denied in the chat")
    }
}

impl DurableApprovals {
    /// What the response does with a durable step of `call`: its result, or (a program
    /// waiting for approval) the sealed execution stored and the question sent.
    pub(crate) async fn after(
        &self,
        call: &ToolCall,
        outcome: Result<DurableOutcome, DurableError>,
        relay: &Arc<Relay>,
    ) -> Called {
        let paused = match outcome {
            Ok(DurableOutcome::Finished(result)) => {
                return Called::Content(result.to_json().to_string());
            }
            Ok(DurableOutcome::Paused(paused)) => paused,
            Err(e) => return Called::error(e),
        };
        // A chat holds back only calls that need approval; they are asked one at a time.
        let Some(waiting) = paused.waiting.iter().find(|w| w.approval_id.is_some()) else {
            return Called::error("the program paused on a call no one was asked about");
        };
        let question = json!({
            "toolCallId": call.id,
            "toolName": call.name,
            "input": {"function": waiting.function, "input": waiting.input},
            "approval": {"id": waiting.approval_id, "needsApproval": true},
        });
        let record = Waiting {
            call_id: waiting.call_id,
            question: question.clone(),
            sealed: paused.sealed,
        };
        let expires_at = SystemTime::now() + self.ttl;
        if let Err(e) = self.store.put(&call.id, record.encode(), expires_at).await {
            tracing::warn!(target: "code_mode_chat", tool_call_id = %call.id, error = %e, "a paused execution could not be stored");
            return Called::error(format!(
                "the program paused for an approval, but could not be kept: {e}"
            ));
        }
        relay.ask(question);
        Called::Parked
    }

    /// The store key that says `call_id`'s approval was answered and used.
    fn answered_key(call_id: &str) -> String {
        format!("answered:{call_id}")
    }

    /// Records (for the store's time-to-live) that `call_id`'s approval was answered, so an
    /// answer sent again is told apart from one that came too late.
    async fn remember_answered(&self, call_id: &str) {
        let expires_at = SystemTime::now() + self.ttl;
        if let Err(e) = self
            .store
            .put(&Self::answered_key(call_id), Vec::new(), expires_at)
            .await
        {
            tracing::warn!(target: "code_mode_chat", tool_call_id = %call_id, error = %e, "an answered approval could not be recorded");
        }
    }

    /// Whether `call_id`'s approval was answered and used (by any process sharing the store).
    pub(crate) async fn was_answered(&self, call_id: &str) -> bool {
        let key = Self::answered_key(call_id);
        match self.store.take(&key).await {
            Ok(Some(bytes)) => {
                // Taking is the store's only read: the record goes back.
                let _ = self
                    .store
                    .put(&key, bytes, SystemTime::now() + self.ttl)
                    .await;
                true
            }
            _ => false,
        }
    }

    /// Resumes `call`'s sealed execution with the client's decision; `None` when the store
    /// holds none for it (expired, or resumed already).
    pub(crate) async fn resume(
        &self,
        call: &ToolCall,
        approved: bool,
        relay: &Arc<Relay>,
    ) -> Option<Called> {
        let (bytes, record) = match self.store.take(&call.id).await {
            Ok(Some(bytes)) => match Waiting::decode(&bytes) {
                Ok(record) => (bytes, record),
                Err(e) => return Some(Called::error(e)),
            },
            Ok(None) => return None,
            Err(e) => return Some(Called::error(e)),
        };
        let opts = ExecuteOptions::new(call.id.as_str(), events_to(relay));
        let outcome = self
            .code_mode
            .resume(
                &record.sealed,
                vec![(record.call_id, answer(approved))],
                opts,
                Self::options(&call.id),
            )
            .await;
        if outcome.is_ok() {
            self.remember_answered(&call.id).await;
        }
        Some(match outcome {
            Ok(outcome) => self.after(call, Ok(outcome), relay).await,
            // Not resumed and still unused (a wrong key, a ledger out of reach): the entry
            // goes back, so the same answer resumes it once the cause is fixed.
            Err(e) if e.leaves_snapshot_unused() => {
                let expires_at = SystemTime::now() + self.ttl;
                match self.store.put(&call.id, bytes, expires_at).await {
                    Ok(()) => Called::error(format!(
                        "the paused program could not be resumed: {e}; it is kept, and the same answer resumes it once this is fixed"
                    )),
                    Err(put) => Called::error(format!(
                        "the paused program could not be resumed: {e}; and it could not be kept: {put}"
                    )),
                }
            }
            Err(e) => Called::error(format!("the paused program could not be resumed: {e}")),
        })
    }
}
