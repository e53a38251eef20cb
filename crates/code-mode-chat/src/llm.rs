//! The one LLM abstraction of the project: a streaming chat completion with tool calls.
//!
//! Adapters (OpenAI-compatible HTTP, a scripted model for tests, ...) turn a [`LlmRequest`]
//! into a stream of [`LlmEvent`]s. The agent loop and the skills crate's selection both use it.

use async_trait::async_trait;
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Usage;

/// A tool call the assistant made, as kept in the conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    /// Tool-call id.
    pub id: String,
    /// Tool name.
    pub name: String,
    /// Arguments as the JSON text the model produced.
    pub arguments: String,
}

/// One message of the conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "lowercase")]
pub enum Message {
    /// The user.
    User {
        /// Text.
        content: String,
    },
    /// The assistant: text and/or tool calls.
    Assistant {
        /// Text.
        content: String,
        /// Tool calls.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        tool_calls: Vec<ToolCall>,
    },
    /// A tool's result.
    Tool {
        /// The call it answers.
        tool_call_id: String,
        /// The result as JSON text.
        content: String,
    },
}

/// A tool as offered to the model.
#[derive(Debug, Clone, PartialEq)]
pub struct LlmTool {
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Input JSON Schema.
    pub parameters: Value,
}

/// One request to the model.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LlmRequest {
    /// System prompts, in order.
    pub system: Vec<String>,
    /// The conversation.
    pub messages: Vec<Message>,
    /// Tools the model may call.
    pub tools: Vec<LlmTool>,
}

/// What the model streams back.
#[derive(Debug, Clone, PartialEq)]
pub enum LlmEvent {
    /// Assistant text.
    TextDelta(String),
    /// A tool call starts (`index` orders calls within the response).
    ToolCallStart {
        /// Position of the call in the response.
        index: usize,
        /// Tool-call id.
        id: String,
        /// Tool name.
        name: String,
    },
    /// More argument text of call `index`.
    ToolCallArgs {
        /// Position of the call.
        index: usize,
        /// Argument text.
        delta: String,
    },
    /// The response is complete.
    Finish {
        /// `stop`, `tool_calls`, `length`, ...
        reason: String,
        /// Token usage, if reported.
        usage: Option<Usage>,
    },
}

/// Why the model could not answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct LlmError {
    /// What failed.
    pub message: String,
    /// A short code (`http_401`, `network`, `malformed`, ...).
    pub code: Option<String>,
}

impl LlmError {
    /// An error with a code.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            code: Some(code.into()),
        }
    }
}

/// A streaming chat model.
#[async_trait]
pub trait LlmAdapter: Send + Sync {
    /// Model name, reported in chunk metadata.
    fn model(&self) -> &str;

    /// Streams the model's answer to `request`.
    async fn stream(
        &self,
        request: LlmRequest,
    ) -> Result<BoxStream<'static, Result<LlmEvent, LlmError>>, LlmError>;
}
