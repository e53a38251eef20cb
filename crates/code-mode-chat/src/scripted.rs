//! A model that plays back scripted turns: for tests, demos and offline development, where
//! no real model is reachable. It records every request it receives.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use futures::StreamExt;
use futures::stream::BoxStream;
use serde_json::Value;

use crate::llm::{LlmAdapter, LlmError, LlmEvent, LlmRequest};

/// One scripted answer: the events the model streams.
pub type Turn = Vec<Result<LlmEvent, LlmError>>;

/// Plays back one turn per call, in order; past the script, calls fail with an
/// [`LlmError`] coded `script`.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use code_mode_chat::{LlmAdapter, LlmRequest, ScriptedLlm};
/// use futures::StreamExt;
/// let llm = ScriptedLlm::new(vec![ScriptedLlm::text("hello")]);
/// let events: Vec<_> = llm.stream(LlmRequest::default()).await.unwrap().collect().await;
/// assert_eq!(events.len(), 2);
/// assert_eq!(llm.requests().len(), 1);
/// assert!(llm.stream(LlmRequest::default()).await.is_err());
/// # }
/// ```
pub struct ScriptedLlm {
    turns: Vec<Turn>,
    calls: AtomicUsize,
    requests: Mutex<Vec<LlmRequest>>,
}

impl std::fmt::Debug for ScriptedLlm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScriptedLlm")
            .field("turns", &self.turns.len())
            .field("calls", &self.calls.load(Ordering::SeqCst))
            .finish()
    }
}

impl ScriptedLlm {
    /// A model answering with `turns`, one per call.
    pub fn new(turns: Vec<Turn>) -> Self {
        Self {
            turns,
            calls: AtomicUsize::new(0),
            requests: Mutex::new(Vec::new()),
        }
    }

    /// The requests received so far.
    pub fn requests(&self) -> Vec<LlmRequest> {
        self.requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// A turn answering `text` and stopping.
    pub fn text(text: &str) -> Turn {
        vec![
            Ok(LlmEvent::TextDelta(text.to_owned())),
            Ok(LlmEvent::Finish {
                reason: "stop".into(),
                usage: None,
            }),
        ]
    }

    /// A turn making one tool call `name(args)` with id `id`.
    pub fn tool_call(id: &str, name: &str, args: &Value) -> Turn {
        vec![
            Ok(LlmEvent::ToolCallStart {
                index: 0,
                id: id.to_owned(),
                name: name.to_owned(),
            }),
            Ok(LlmEvent::ToolCallArgs {
                index: 0,
                delta: args.to_string(),
            }),
            Ok(LlmEvent::Finish {
                reason: "tool_calls".into(),
                usage: None,
            }),
        ]
    }
}

#[async_trait]
impl LlmAdapter for ScriptedLlm {
    fn model(&self) -> &str {
        "scripted"
    }

    async fn stream(
        &self,
        request: LlmRequest,
    ) -> Result<BoxStream<'static, Result<LlmEvent, LlmError>>, LlmError> {
        self.requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(request);
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        let turn = self
            .turns
            .get(n)
            .cloned()
            .ok_or_else(|| LlmError::new("script", "no more scripted turns"))?;
        Ok(futures::stream::iter(turn).boxed())
    }
}
