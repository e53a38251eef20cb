//! # code-mode
//!
//! Let an LLM write one short TypeScript program that calls your application's tools inside
//! a secure sandbox, instead of calling tools one at a time.
//!
//! You give code-mode your [`Tool`]s (name, description, JSON Schema in and out, async
//! handler) and a sandbox driver; [`CodeMode`] gives back:
//! - the `execute_typescript` tool ([`CodeMode::execute_tool_spec`], [`CodeMode::execute`]),
//!   whose result is a [`CodeModeResult`] `{success, result, logs, error{name, message, line}}`;
//! - a system prompt ([`CodeMode::system_prompt`]) with TypeScript declarations of every
//!   tool, exposed in the sandbox as `external_<name>(input)` async functions;
//! - `discover_tools` when some tools are lazy;
//! - live [`Event`]s (`code_mode:external_call`, `code_mode:console`, ...) tagged with the
//!   tool-call id, through an [`EventSink`].
//!
//! Tools run in the host, never in the sandbox: secrets stay out of generated code.
//! Sandboxes implement [`IsolateDriver`]/[`IsolateContext`]; the drivers live in their own
//! crates (`code-mode-isolate-quickjs`, ...) and `code-mode-drivers` picks one by cargo feature.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use code_mode::{CodeMode, Tool, ToolError};
//! use serde_json::json;
//! # use std::sync::Arc;
//! # struct D; #[async_trait::async_trait] impl code_mode::IsolateDriver for D { fn name(&self) -> &str { "d" }
//! # async fn create_context(&self, _: code_mode::ContextConfig) -> Result<Box<dyn code_mode::IsolateContext>, code_mode::DriverError> { Err(code_mode::DriverError::new("d", "doc")) } }
//! # let driver: Arc<dyn code_mode::IsolateDriver> = Arc::new(D);
//!
//! let weather = Tool::new(
//!     "getWeather",
//!     "Current weather for a city.",
//!     json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}),
//!     |input, _ctx| async move { Ok::<_, ToolError>(json!({"city": input["city"], "tempC": 21})) },
//! ).unwrap();
//! let code_mode = CodeMode::builder().tool(weather).driver(driver).build().unwrap();
//! let prompt = code_mode.system_prompt(); // give this to the model
//! assert!(prompt.contains("external_getWeather"));
//! # }
//! ```

#![warn(missing_docs)]

mod approval;
mod approval_policy;
mod bindings;
mod clock;
mod code_mode;
mod console;
mod depth;
pub mod driver;
pub mod durable;
mod error;
mod events;
mod failure;
pub mod identifier;
mod lifecycle;
mod limits;
mod lines;
mod nesting;
mod prelude_setup;
mod program;
mod prompt;
mod pump;
mod result;
mod runtime_paths;
mod schema;
mod secrets;
mod stubs;
mod text;
mod tool;
mod tool_names;
mod trace;
mod typecheck;
mod typescript;

pub use approval::{
    APPROVAL_DENIED_ERROR, ApprovalChannel, ApprovalDecision, ApprovalPolicy, ApprovalRequest,
    ApproveAll, Approver, DenyAll, PendingApproval,
};
pub use bindings::{Binding, Bindings, GuestError};
pub use clock::ExecutionClock;
pub use code_mode::{
    BindingProvider, CodeMode, CodeModeBuilder, DEFAULT_MAX_CODE_BYTES, ExecuteOptions,
    ExecutionScope,
};
pub use console::{ConsoleSink, LogEntry, LogLevel, TRUNCATION_MARKER};
pub use depth::{MAX_VALUE_DEPTH, parse_tool_input};
pub use driver::{ContextConfig, ExecutionResult, IsolateContext, IsolateDriver};
pub use error::{
    CodeModeError, DriverError, ErrorKind, ExecutionError, LimitsError, MAX_ERROR_MESSAGE_BYTES,
    MAX_ERROR_NAME_BYTES, ToolDefinitionError, ToolError,
};
pub use events::{Event, EventKind, EventSink, Phase, now_ms};
pub use limits::{Limits, LimitsBuilder};
pub use prompt::{CatalogDetail, DISCOVER_TOOL_NAME, EXECUTE_TOOL_NAME};
pub use result::{CodeModeResult, result_schema};
pub use runtime_paths::{absolute, path_from_env, provisioned_in_checkout};
pub use secrets::{SecretParameter, SecretParameterPolicy, find_secret_parameters};
pub use stubs::{generate_checker_stubs, generate_stubs};
pub use tool::{RESERVED_TOOL_NAMES, Tool, ToolContext, ToolFuture, ToolSpec, schema_of};
pub use trace::{
    TraceContext, TraceContextAdopter, TraceContextInjector, adopt_trace_context,
    set_trace_context_adopter, set_trace_context_injector,
};
pub use typecheck::{
    CheckRequest, CheckerError, SANDBOX_DECLARATIONS, TypeCheckMode, TypeCheckModeError,
    TypeChecker, TypeDiagnostic,
};
#[cfg(feature = "stack-probe")]
#[doc(hidden)]
pub use typescript::strip_typescript_unchecked;
pub use typescript::{StrippedCode, strip_typescript};

/// Re-exported so drivers and applications use the same versions.
pub use async_trait::async_trait;
pub use serde_json;
pub use tokio_util::sync::CancellationToken;
