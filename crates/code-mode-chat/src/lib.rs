//! # code-mode-chat
//!
//! Code Mode is used on top of a chat. This crate holds the chat layer's wire format: the
//! stream chunks of the TanStack AI / AG-UI protocol ([`Chunk`]) and their Server-Sent Events
//! framing ([`sse`]), so that a Rust server can serve the TanStack AI React client
//! (`useChat({ connection: fetchServerSentEvents('/api/chat'), onCustomEvent })`) unchanged:
//! the same event names, the same `toolCallId` tagging of `code_mode:*` CUSTOM events.
//!
//! ```
//! use code_mode::{Event, EventKind};
//! use code_mode_chat::{Chunk, sse};
//! use serde_json::json;
//!
//! let event = Event {
//!     tool_call_id: Some("call_1".into()),
//!     kind: EventKind::ExternalCall { function: "external_f".into(), args: json!({}), timestamp: 7 },
//! };
//! let chunk = Chunk::from_event(&event, 7);
//! assert_eq!(
//!     sse::encode(&chunk),
//!     "data: {\"type\":\"CUSTOM\",\"timestamp\":7,\"name\":\"code_mode:external_call\",\"value\":{\"function\":\"external_f\",\"args\":{},\"timestamp\":7,\"toolCallId\":\"call_1\"}}\n\n"
//! );
//! ```

#![warn(missing_docs)]

mod agent;
mod approvals;
mod chunk;
#[cfg(feature = "durable")]
mod durable;
#[cfg(feature = "axum")]
mod http;
pub mod llm;
mod openai;
mod paused_store;
mod scripted;
pub mod sse;

pub use agent::Agent;
pub use approvals::{ChatApprovals, DEFAULT_PARK_TTL, approval_answer};
pub use chunk::{Chunk, RunError, Usage};
#[cfg(feature = "durable")]
pub use durable::{DEFAULT_DURABLE_TTL, DurableApprovals};
#[cfg(feature = "axum")]
pub use http::sse_response;
pub use llm::{LlmAdapter, LlmError, LlmEvent, LlmRequest, LlmTool, Message, ToolCall};
pub use openai::OpenAiCompatible;
pub use paused_store::{MemoryPausedStore, PausedStore, StoreError};
pub use scripted::{ScriptedLlm, Turn};
