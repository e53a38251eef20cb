//! Stream chunks of the TanStack AI / AG-UI protocol.
//!
//! Field names and casing follow what the TanStack AI server sends (see the reference
//! transcript): `type` in SCREAMING_SNAKE_CASE, camelCase fields, `timestamp` in ms since the
//! epoch, optional `metadata`. Absent optional fields are omitted, never `null`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Token usage reported with `RUN_FINISHED`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    /// Prompt tokens.
    pub input_tokens: u64,
    /// Completion tokens.
    pub output_tokens: u64,
    /// Both.
    pub total_tokens: u64,
}

/// The error of `RUN_ERROR`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunError {
    /// What went wrong.
    pub message: String,
    /// A machine-readable code, when there is one.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub code: Option<String>,
}

/// One chunk of the stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "type",
    rename_all = "SCREAMING_SNAKE_CASE",
    rename_all_fields = "camelCase"
)]
pub enum Chunk {
    /// A model run starts.
    RunStarted {
        /// Run id.
        run_id: String,
        /// Conversation id.
        thread_id: String,
        /// Milliseconds since the epoch.
        timestamp: u64,
        /// Extra data (`{"tanstack": {...}}`).
        #[serde(skip_serializing_if = "Option::is_none", default)]
        metadata: Option<Value>,
    },
    /// A model run ends.
    RunFinished {
        /// Run id.
        run_id: String,
        /// Conversation id.
        thread_id: String,
        /// Milliseconds since the epoch.
        timestamp: u64,
        /// Token usage, when the model reported it.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        usage: Option<Vec<Usage>>,
        /// Extra data, e.g. `{"tanstack": {"finishReason": "stop"}}`.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        metadata: Option<Value>,
        /// AG-UI's outcome: `{"type": "interrupt", "interrupts": [...]}` when the run waits
        /// for the user (an approval); absent for a run that finished.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        outcome: Option<Value>,
    },
    /// The run failed; always the last chunk of a failed stream.
    RunError {
        /// Run id, when a run had started.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        run_id: Option<String>,
        /// Milliseconds since the epoch.
        timestamp: u64,
        /// The error message (AG-UI's field).
        message: String,
        /// The error code (AG-UI's field).
        #[serde(skip_serializing_if = "Option::is_none", default)]
        code: Option<String>,
        /// The same error as TanStack AI's client reads it.
        error: RunError,
    },
    /// An assistant text message starts.
    TextMessageStart {
        /// Message id.
        message_id: String,
        /// Milliseconds since the epoch.
        timestamp: u64,
        /// Always `assistant`.
        role: String,
        /// Extra data.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        metadata: Option<Value>,
    },
    /// A piece of assistant text.
    TextMessageContent {
        /// Message id.
        message_id: String,
        /// Milliseconds since the epoch.
        timestamp: u64,
        /// The new text.
        delta: String,
    },
    /// An assistant text message ends.
    TextMessageEnd {
        /// Message id.
        message_id: String,
        /// Milliseconds since the epoch.
        timestamp: u64,
        /// Extra data.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        metadata: Option<Value>,
    },
    /// The model starts a tool call.
    ToolCallStart {
        /// Tool-call id; `code_mode:*` events carry it as `value.toolCallId`.
        tool_call_id: String,
        /// Tool name, e.g. `execute_typescript`.
        tool_call_name: String,
        /// The assistant message the call belongs to.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        parent_message_id: Option<String>,
        /// Milliseconds since the epoch.
        timestamp: u64,
        /// Extra data.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        metadata: Option<Value>,
    },
    /// A piece of the tool call's JSON arguments.
    ToolCallArgs {
        /// Tool-call id.
        tool_call_id: String,
        /// Milliseconds since the epoch.
        timestamp: u64,
        /// The new argument text.
        delta: String,
    },
    /// The tool call's arguments are complete.
    ToolCallEnd {
        /// Tool-call id.
        tool_call_id: String,
        /// Milliseconds since the epoch.
        timestamp: u64,
        /// Extra data (TanStack puts the tool name and parsed input here).
        #[serde(skip_serializing_if = "Option::is_none", default)]
        metadata: Option<Value>,
    },
    /// The tool's result, as the JSON text the model receives.
    ToolCallResult {
        /// Milliseconds since the epoch.
        timestamp: u64,
        /// The assistant message the call belongs to.
        message_id: String,
        /// Tool-call id.
        tool_call_id: String,
        /// The result as JSON text.
        content: String,
        /// Always `tool`.
        role: String,
    },
    /// An application event, e.g. `code_mode:console`; `value.toolCallId` ties it to a call.
    Custom {
        /// Milliseconds since the epoch.
        timestamp: u64,
        /// Event name.
        name: String,
        /// Event payload.
        value: Value,
    },
}

impl Chunk {
    /// The CUSTOM chunk of a code-mode event, stamped `timestamp`.
    pub fn from_event(event: &code_mode::Event, timestamp: u64) -> Self {
        Self::Custom {
            timestamp,
            name: event.name().to_owned(),
            value: event.value(),
        }
    }

    /// A `RUN_ERROR` chunk.
    pub fn run_error(
        run_id: Option<String>,
        timestamp: u64,
        message: impl Into<String>,
        code: Option<String>,
    ) -> Self {
        let message = message.into();
        Self::RunError {
            run_id,
            timestamp,
            error: RunError {
                message: message.clone(),
                code: code.clone(),
            },
            message,
            code,
        }
    }

    /// The event name for CUSTOM chunks (`code_mode:console`, ...), the `type` otherwise:
    /// what a UI or a test keys on.
    ///
    /// ```
    /// use code_mode_chat::Chunk;
    /// let c = Chunk::Custom { timestamp: 0, name: "code_mode:console".into(), value: serde_json::json!({}) };
    /// assert_eq!(c.label(), "code_mode:console");
    /// ```
    pub fn label(&self) -> &str {
        match self {
            Self::Custom { name, .. } => name,
            other => other.type_name(),
        }
    }

    /// The chunk's `type` on the wire.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::RunStarted { .. } => "RUN_STARTED",
            Self::RunFinished { .. } => "RUN_FINISHED",
            Self::RunError { .. } => "RUN_ERROR",
            Self::TextMessageStart { .. } => "TEXT_MESSAGE_START",
            Self::TextMessageContent { .. } => "TEXT_MESSAGE_CONTENT",
            Self::TextMessageEnd { .. } => "TEXT_MESSAGE_END",
            Self::ToolCallStart { .. } => "TOOL_CALL_START",
            Self::ToolCallArgs { .. } => "TOOL_CALL_ARGS",
            Self::ToolCallEnd { .. } => "TOOL_CALL_END",
            Self::ToolCallResult { .. } => "TOOL_CALL_RESULT",
            Self::Custom { .. } => "CUSTOM",
        }
    }
}
