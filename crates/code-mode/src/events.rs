//! Live events of an execution.
//!
//! A chat UI shows the model's program making progress: which tool it calls, what comes back,
//! what it logs. Events are pushed to an [`EventSink`] *as they happen* (console lines
//! included, unlike TanStack which batches them after the run), each tagged with the id of
//! the `execute_typescript` tool call they belong to. Emitting never blocks and never fails:
//! a slow or gone consumer cannot stall the sandbox.
//!
//! [`Event::name`] and [`Event::value`] give the TanStack wire form: the CUSTOM chunk's `name`
//! (`code_mode:external_call`, ...) and its `value` object with `toolCallId` merged in.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};
use tokio::sync::mpsc;

use crate::console::LogLevel;
use crate::error::ExecutionError;

/// Milliseconds since the Unix epoch, the timestamp unit of every event.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Milliseconds rounded to microseconds, so durations read cleanly on the wire.
fn round_ms(ms: f64) -> f64 {
    (ms * 1000.0).round() / 1000.0
}

/// Where an `execute_typescript` call stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// The input was rejected before anything ran.
    ValidateInput,
    /// The TypeScript could not be stripped.
    Transpile,
    /// The type check found errors (`block` mode) or could not answer.
    TypeCheck,
    /// The sandbox could not be created.
    CreateContext,
    /// The program ran (successfully or not).
    Execute,
}

impl Phase {
    /// Wire name of the phase.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ValidateInput => "validate-input",
            Self::Transpile => "transpile",
            Self::TypeCheck => "type-check",
            Self::CreateContext => "create-context",
            Self::Execute => "execute",
        }
    }
}

/// What happened.
///
/// Non-exhaustive: new event kinds will be added (each with its wire name in
/// [`Event::name`]); match the ones you handle and keep a wildcard arm.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum EventKind {
    /// `code_mode:execution_started`.
    ExecutionStarted {
        /// Emission time (ms since epoch).
        timestamp: u64,
        /// Length of the submitted code in UTF-16 units, as JavaScript counts it.
        code_length: usize,
    },
    /// `code_mode:console`, emitted when the guest calls `console.*`.
    Console {
        /// `log`, `info`, `warn`, `error` or `debug`.
        level: LogLevel,
        /// The formatted line.
        message: String,
        /// Emission time.
        timestamp: u64,
    },
    /// `code_mode:external_call`, when the guest calls a tool.
    ExternalCall {
        /// Binding name, e.g. `external_getWeather`.
        function: String,
        /// Arguments as passed by the guest.
        args: Value,
        /// Emission time.
        timestamp: u64,
    },
    /// `code_mode:external_result`, when a tool returns.
    ExternalResult {
        /// Binding name.
        function: String,
        /// The tool's result.
        result: Value,
        /// Milliseconds the call took.
        duration_ms: f64,
    },
    /// `code_mode:external_error`, when a tool fails (validation errors included).
    ExternalError {
        /// Binding name.
        function: String,
        /// The error message the guest sees.
        error: String,
        /// Milliseconds the call took.
        duration_ms: f64,
    },
    /// `code_mode:execution_finished`, always last.
    ExecutionFinished {
        /// Emission time.
        timestamp: u64,
        /// Milliseconds since the call started.
        duration_ms: f64,
        /// Where it stopped.
        phase: Phase,
        /// Whether the program succeeded.
        success: bool,
        /// Number of console entries kept.
        log_count: usize,
        /// The error, on failure.
        error: Option<ExecutionError>,
    },
    /// `code_mode:approval_requested`, when the program calls a tool that needs approval.
    ApprovalRequested {
        /// Id of the request (what the approver answers).
        approval_id: String,
        /// Binding name.
        function: String,
        /// The input the program passed.
        input: Value,
        /// Emission time.
        timestamp: u64,
    },
    /// `code_mode:approval_resolved`, when the request is decided, times out or is
    /// withdrawn (the execution ended first).
    ApprovalResolved {
        /// Id of the request.
        approval_id: String,
        /// Binding name.
        function: String,
        /// `approved`, `denied`, `timeout` or `withdrawn`.
        outcome: &'static str,
        /// Why, when not approved.
        reason: Option<String>,
        /// The approver's edit of the input, when it gave one.
        edited_input: Option<Value>,
        /// Emission time.
        timestamp: u64,
    },
    /// `code_mode:execution_paused`, when a durable execution is sealed because every
    /// outstanding call waits for an answer from outside (see
    /// [`CodeMode::execute_durable`](crate::CodeMode::execute_durable)). No
    /// `execution_finished` follows until a resumed step ends the program.
    ExecutionPaused {
        /// The calls waiting, each `{callId, function, input, approvalId?}`.
        waiting: Value,
        /// Bytes of the sealed execution.
        sealed_bytes: usize,
        /// Emission time.
        timestamp: u64,
    },
    /// `code_mode:execution_resumed`, when a sealed execution continues with answers.
    ExecutionResumed {
        /// The calls answered now (their `callId`s).
        answered: Vec<u32>,
        /// Emission time.
        timestamp: u64,
    },
    /// Any other event, e.g. from a tool through [`ToolContext::emit_custom`](crate::ToolContext::emit_custom)
    /// or from the skills crate.
    Custom {
        /// Event name.
        name: String,
        /// Payload object.
        value: Value,
    },
}

/// An event tagged with the tool call it belongs to.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Id of the model's tool call, when the caller gave one.
    pub tool_call_id: Option<Arc<str>>,
    /// What happened.
    pub kind: EventKind,
}

impl Event {
    /// The CUSTOM chunk name, e.g. `code_mode:external_call`.
    pub fn name(&self) -> &str {
        match &self.kind {
            EventKind::ExecutionStarted { .. } => "code_mode:execution_started",
            EventKind::Console { .. } => "code_mode:console",
            EventKind::ExternalCall { .. } => "code_mode:external_call",
            EventKind::ExternalResult { .. } => "code_mode:external_result",
            EventKind::ExternalError { .. } => "code_mode:external_error",
            EventKind::ExecutionFinished { .. } => "code_mode:execution_finished",
            EventKind::ApprovalRequested { .. } => "code_mode:approval_requested",
            EventKind::ApprovalResolved { .. } => "code_mode:approval_resolved",
            EventKind::ExecutionPaused { .. } => "code_mode:execution_paused",
            EventKind::ExecutionResumed { .. } => "code_mode:execution_resumed",
            EventKind::Custom { name, .. } => name,
        }
    }

    /// The CUSTOM chunk value: the payload with `toolCallId` merged in.
    ///
    /// ```
    /// use code_mode::{Event, EventKind};
    /// use serde_json::json;
    /// let event = Event {
    ///     tool_call_id: Some("call_1".into()),
    ///     kind: EventKind::ExternalCall { function: "external_f".into(), args: json!({}), timestamp: 5 },
    /// };
    /// assert_eq!(event.value(), json!({"function": "external_f", "args": {}, "timestamp": 5, "toolCallId": "call_1"}));
    /// ```
    pub fn value(&self) -> Value {
        let mut value = match &self.kind {
            EventKind::ExecutionStarted {
                timestamp,
                code_length,
            } => {
                json!({"timestamp": timestamp, "codeLength": code_length})
            }
            EventKind::Console {
                level,
                message,
                timestamp,
            } => {
                json!({"level": level.as_str(), "message": message, "timestamp": timestamp})
            }
            EventKind::ExternalCall {
                function,
                args,
                timestamp,
            } => {
                json!({"function": function, "args": args, "timestamp": timestamp})
            }
            EventKind::ExternalResult {
                function,
                result,
                duration_ms,
            } => {
                json!({"function": function, "result": result, "duration": round_ms(*duration_ms)})
            }
            EventKind::ExternalError {
                function,
                error,
                duration_ms,
            } => {
                json!({"function": function, "error": error, "duration": round_ms(*duration_ms)})
            }
            EventKind::ExecutionFinished {
                timestamp,
                duration_ms,
                phase,
                success,
                log_count,
                error,
            } => {
                let mut v = json!({
                    "timestamp": timestamp,
                    "durationMs": round_ms(*duration_ms),
                    "phase": phase.as_str(),
                    "success": success,
                    "logCount": log_count,
                });
                if let Some(error) = error {
                    v["error"] = serde_json::to_value(error).unwrap_or(Value::Null);
                }
                v
            }
            EventKind::ApprovalRequested {
                approval_id,
                function,
                input,
                timestamp,
            } => {
                json!({"approvalId": approval_id, "function": function, "input": input, "timestamp": timestamp})
            }
            EventKind::ApprovalResolved {
                approval_id,
                function,
                outcome,
                reason,
                edited_input,
                timestamp,
            } => {
                let mut v = json!({
                    "approvalId": approval_id,
                    "function": function,
                    "approved": *outcome == "approved",
                    "outcome": outcome,
                    "timestamp": timestamp,
                });
                if let Some(reason) = reason {
                    v["reason"] = Value::String(reason.clone());
                }
                if let Some(edited) = edited_input {
                    v["editedInput"] = edited.clone();
                }
                v
            }
            EventKind::ExecutionPaused {
                waiting,
                sealed_bytes,
                timestamp,
            } => {
                json!({"waiting": waiting, "sealedBytes": sealed_bytes, "timestamp": timestamp})
            }
            EventKind::ExecutionResumed {
                answered,
                timestamp,
            } => json!({"answered": answered, "timestamp": timestamp}),
            EventKind::Custom { value, .. } => value.clone(),
        };
        if let Some(id) = &self.tool_call_id {
            match &mut value {
                Value::Object(map) => {
                    map.insert("toolCallId".into(), Value::String(id.to_string()));
                }
                other => {
                    let mut map = Map::new();
                    map.insert("value".into(), other.take());
                    map.insert("toolCallId".into(), Value::String(id.to_string()));
                    value = Value::Object(map);
                }
            }
        }
        value
    }
}

type Callback = dyn Fn(Event) + Send + Sync;

/// Receives events. Cheap to clone; the default sink drops everything.
///
/// ```
/// # tokio_test_block(async {
/// use code_mode::EventSink;
/// let (sink, mut rx) = EventSink::channel();
/// sink.emit_custom(Some("call_1".into()), "my:event".into(), serde_json::json!({"n": 1}));
/// let event = rx.recv().await.unwrap();
/// assert_eq!(event.name(), "my:event");
/// # });
/// # fn tokio_test_block(f: impl std::future::Future<Output = ()>) {
/// #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
/// # }
/// ```
#[derive(Clone, Default)]
pub struct EventSink {
    callback: Option<Arc<Callback>>,
}

impl std::fmt::Debug for EventSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventSink")
            .field("active", &self.callback.is_some())
            .finish()
    }
}

impl EventSink {
    /// A sink that drops every event.
    pub fn none() -> Self {
        Self::default()
    }

    /// A sink calling `f` for each event. `f` runs on the sandbox's task: keep it short and
    /// non-blocking (push into a queue), or use [`EventSink::channel`].
    pub fn from_fn(f: impl Fn(Event) + Send + Sync + 'static) -> Self {
        Self {
            callback: Some(Arc::new(f)),
        }
    }

    /// A sink feeding an unbounded channel. Sending never blocks; the queue is bounded in
    /// practice by the per-execution caps on console entries and tool calls.
    pub fn channel() -> (Self, mpsc::UnboundedReceiver<Event>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (
            Self::from_fn(move |event| {
                let _ = tx.send(event);
            }),
            rx,
        )
    }

    /// True when events go somewhere.
    pub fn is_active(&self) -> bool {
        self.callback.is_some()
    }

    /// Emits an event.
    pub fn emit(&self, event: Event) {
        if let Some(cb) = &self.callback {
            cb(event);
        }
    }

    /// Emits `kind` tagged with `tool_call_id`.
    pub fn emit_kind(&self, tool_call_id: Option<Arc<str>>, kind: EventKind) {
        if self.callback.is_some() {
            self.emit(Event { tool_call_id, kind });
        }
    }

    /// Emits a custom event.
    pub fn emit_custom(&self, tool_call_id: Option<Arc<str>>, name: String, value: Value) {
        self.emit_kind(tool_call_id, EventKind::Custom { name, value });
    }
}
