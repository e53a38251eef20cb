//! One execution = one WebSocket to the Worker: send the program, answer its tool calls as
//! they come (concurrently), collect console lines, take the result. A deadline covers the
//! whole execution, tool calls included; a silent, malformed or oversized Worker ends the
//! execution with a clear error.

use std::sync::Arc;

use async_trait::async_trait;
use code_mode::driver::{Engine, FailureKind, GuestFailure, HostBridge, LogBuffer};
use code_mode::{ContextConfig, ErrorKind, ExecutionError, ExecutionResult, Limits, LogLevel};
use futures::stream::FuturesUnordered;
use futures::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use crate::endpoint::{Endpoint, InFlight};
use crate::protocol::{self, FromWorker};
use crate::{Shared, driver_error};

pub(crate) struct CloudflareContext {
    shared: Arc<Shared>,
    bridge: Arc<HostBridge>,
    config: ContextConfig,
}

impl CloudflareContext {
    pub(crate) fn new(shared: Arc<Shared>, config: ContextConfig) -> Self {
        Self {
            shared,
            bridge: Arc::new(HostBridge::new(config.bindings.clone(), &config.limits)),
            config,
        }
    }

    async fn execute(&self, code: &str, time: &code_mode::driver::Budget) -> ExecutionResult {
        let Some(mut flight) = self.shared.endpoints.pick() else {
            return ExecutionResult::err(driver_error("the driver has no Worker URL"), Vec::new());
        };
        flight.endpoint().recovered().await;
        let limits = self.config.limits;
        let mut logs = LogBuffer::new(&limits, self.config.console.clone());
        self.bridge.begin_execution();
        // `time` runs on the context's clock, which stops while an approval is pending.
        let outcome = match tokio::select! {
            outcome = self.run(code, &limits, &mut logs, &mut flight) => Ok(outcome),
            () = time.spent() => Err(()),
        } {
            Ok(outcome) => outcome,
            Err(()) => {
                flight.endpoint().after_failure().await;
                Err(ExecutionError::timeout(limits.timeout()))
            }
        };
        ExecutionResult {
            outcome,
            logs: logs.take(),
        }
    }
}

/// The engine-specific part of a Cloudflare context (each execution is a fresh Dynamic
/// Worker); [`code_mode::driver::EngineContext`] does the rest (one execution at a time,
/// dispose, terminal failures, the nesting check).
#[async_trait]
impl Engine for CloudflareContext {
    async fn run(
        self: Box<Self>,
        code: &str,
        time: &code_mode::driver::Budget,
    ) -> (Result<Box<Self>, Option<String>>, ExecutionResult) {
        let result = self.execute(code, time).await;
        (Ok(self), result)
    }
}

/// Why an attempt failed; `retry` when the connection broke before anything came back from
/// the Worker. No tool can have run then (tools run here, on a `call` frame), so running the
/// program again cannot run a tool twice.
struct Failed {
    error: ExecutionError,
    retry: bool,
}

impl From<ExecutionError> for Failed {
    fn from(error: ExecutionError) -> Self {
        Self {
            error,
            retry: false,
        }
    }
}

/// The program's returned value from the JSON text the Worker sent: nesting and size are
/// checked here again, before any parser runs.
fn result_of(text: &str, limits: &Limits) -> Result<serde_json::Value, ExecutionError> {
    let depth = code_mode::driver::json_text_depth(text);
    if depth > code_mode::MAX_VALUE_DEPTH {
        return Err(ExecutionError::new(
            ErrorKind::Result,
            code_mode::driver::too_deep_message("The returned value", depth),
        ));
    }
    if text.len() as u64 > limits.max_result_bytes() {
        return Err(ExecutionError::result_too_large(
            text.len() as u64,
            limits.max_result_bytes(),
        ));
    }
    code_mode::driver::parse_guest_json(text)
        .map_err(|e| driver_error(format!("malformed result from the Worker: {e}")))
}

/// A broken connection (reset, closed under us, I/O), as opposed to a protocol violation.
fn is_transport(e: &tokio_tungstenite::tungstenite::Error) -> bool {
    use tokio_tungstenite::tungstenite::Error;
    use tokio_tungstenite::tungstenite::error::ProtocolError;
    matches!(
        e,
        Error::Io(_)
            | Error::ConnectionClosed
            | Error::AlreadyClosed
            | Error::Protocol(
                ProtocolError::ResetWithoutClosingHandshake | ProtocolError::HandshakeIncomplete
            )
    )
}

impl CloudflareContext {
    /// Runs the program; a connection that breaks before the Worker answered anything is
    /// tried again, up to twice, at the least busy endpoint after any recovery in progress
    /// there (a local workerd under load occasionally resets one, and one restarted after a
    /// neighbour's timeout refuses connections until it is back).
    async fn run(
        &self,
        code: &str,
        limits: &Limits,
        logs: &mut LogBuffer,
        flight: &mut InFlight,
    ) -> Result<Option<serde_json::Value>, ExecutionError> {
        let mut retries = 0;
        loop {
            match self.attempt(code, limits, logs, flight.endpoint()).await {
                Err(Failed { retry: true, .. }) if retries < 2 => {
                    retries += 1;
                    if let Some(next) = self.shared.endpoints.pick() {
                        *flight = next;
                    }
                    flight.endpoint().recovered().await;
                }
                other => return other.map_err(|f| f.error),
            }
        }
    }

    async fn attempt(
        &self,
        code: &str,
        limits: &Limits,
        logs: &mut LogBuffer,
        endpoint: &Endpoint,
    ) -> Result<Option<serde_json::Value>, Failed> {
        let shared = &self.shared;
        let mut request = endpoint
            .execute_url
            .as_str()
            .into_client_request()
            .map_err(|e| driver_error(format!("invalid Worker URL: {e}")))?;
        if let Some(auth) = &shared.authorization {
            let value = HeaderValue::from_str(auth)
                .map_err(|_| driver_error("the authorization is not a valid header value"))?;
            request.headers_mut().insert("Authorization", value);
        }
        let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
            .max_message_size(Some(shared.max_message_bytes))
            .max_frame_size(Some(shared.max_message_bytes));
        let (mut ws, _) =
            tokio_tungstenite::connect_async_with_config(request, Some(config), false)
                .await
                .map_err(|e| {
                    use tokio_tungstenite::tungstenite::Error;
                    let retry = is_transport(&e);
                    let error = match e {
                        Error::Http(resp) if resp.status().as_u16() == 401 => driver_error(
                            "the Worker refused the authorization (HTTP 401): check the token the driver sends (CODE_MODE_WORKER_AUTHORIZATION) against the Worker's AUTH_TOKEN",
                        ),
                        Error::Http(resp) => driver_error(format!(
                            "the Worker answered HTTP {} instead of accepting the WebSocket; is {} the code-mode Worker?",
                            resp.status(),
                            endpoint.execute_url
                        )),
                        other => driver_error(format!(
                            "cannot reach the Worker at {}: {other}",
                            endpoint.execute_url
                        )),
                    };
                    Failed { error, retry }
                })?;
        let setup = code_mode::driver::PreludeSetup::new(self.bridge.bindings(), limits);
        let frame = protocol::run_frame(code, &setup, limits.memory_bytes());
        ws.send(Message::text(frame)).await.map_err(|e| Failed {
            retry: is_transport(&e),
            error: driver_error(format!("cannot send the program to the Worker: {e}")),
        })?;
        let mut calls: FuturesUnordered<
            futures::future::BoxFuture<
                'static,
                (u64, Result<serde_json::Value, code_mode::GuestError>),
            >,
        > = FuturesUnordered::new();
        // Nothing came back yet: a broken connection can be retried.
        let mut answered = false;
        // Guest code may be running in the Worker: from the start and from each reply until
        // the Worker says it is idle. While marked, a pending approval does not stop the
        // clock, so the program's slices of code during the wait are charged.
        let mut running = Some(self.config.clock.running());
        loop {
            tokio::select! {
                frame = ws.next() => {
                    let text = match frame {
                        Some(Ok(Message::Text(t))) => {
                            answered = true;
                            t
                        }
                        Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                        Some(Ok(Message::Close(_))) | None => {
                            endpoint.after_failure().await;
                            return Err(driver_error(
                                "the Worker closed the connection before the execution finished (it may have run out of memory or crashed); run the code again",
                            ).into());
                        }
                        Some(Ok(other)) => {
                            return Err(driver_error(format!("malformed response from the Worker: unexpected {} frame", frame_kind(&other))).into());
                        }
                        Some(Err(e)) => {
                            endpoint.after_failure().await;
                            return Err(Failed {
                                retry: !answered && is_transport(&e),
                                error: driver_error(format!("the connection to the Worker failed: {e}")),
                            });
                        }
                    };
                    let msg: FromWorker = code_mode::driver::parse_guest_json(text.as_str()).and_then(serde_json::from_value).map_err(|e| {
                        driver_error(format!("malformed response from the Worker: {e}"))
                    })?;
                    match msg {
                        FromWorker::Idle => running = None,
                        FromWorker::Log { level, msg } => {
                            logs.push(LogLevel::from_method(&level).unwrap_or(LogLevel::Log), msg);
                        }
                        FromWorker::Call { id, name, args } => {
                            let depth = code_mode::driver::json_text_depth(&args);
                            if depth > code_mode::MAX_VALUE_DEPTH {
                                // Refused like on every driver: the call throws, no tool runs.
                                let message = code_mode::driver::too_deep_message(&format!("{name}'s input"), depth);
                                let err = code_mode::GuestError { name: "TypeError".into(), message };
                                calls.push(Box::pin(async move { (id, Err(err)) }));
                                continue;
                            }
                            let args = code_mode::driver::parse_guest_json(&args).map_err(|e| {
                                driver_error(format!("malformed tool arguments from the Worker: {e}"))
                            })?;
                            let future = self.bridge.call(&name, args);
                            calls.push(Box::pin(async move { (id, future.await) }));
                        }
                        FromWorker::Done { value, error } => {
                            let _ = ws.close(None).await;
                            return match error {
                                Some(f) => {
                                    // V8 counts a U+2028/U+2029 inside a literal as a line.
                                    let mut e = classify(f, limits);
                                    e.line = e.line.map(|l| code_mode::driver::lf_line(code, l));
                                    Err(e.into())
                                }
                                None => match value {
                                    None => Ok(None),
                                    // Re-checked here: nothing the Worker side says is trusted.
                                    Some(text) => result_of(&text, limits).map(Some).map_err(Into::into),
                                },
                            };
                        }
                    }
                }
                Some((id, result)) = calls.next(), if !calls.is_empty() => {
                    running.get_or_insert_with(|| self.config.clock.running());
                    let frame = protocol::reply_frame(id, result.map_err(|e| (e.name, e.message)));
                    ws.send(Message::text(frame)).await.map_err(|e| {
                        driver_error(format!("cannot send a tool result to the Worker: {e}"))
                    })?;
                }
            }
        }
    }
}

fn frame_kind(m: &Message) -> &'static str {
    match m {
        Message::Binary(_) => "binary",
        Message::Frame(_) => "raw",
        _ => "control",
    }
}

/// The Worker's failure.
///
/// The outer Worker (not the program's realm) reports two sorts of record: what the program's
/// prelude said about the program (`guest`, `syntax`, `result`, `too_large`; the Worker refuses
/// any other kind from there), and `internal` records it made itself from errors the
/// *runtime* raised when the Dynamic Worker failed (workerd's memory and CPU limits, a hang).
/// Only those runtime records are read for workerd's limit phrases: it is the engine's text,
/// the only signal workerd gives, and no program text can reach it. A program's own error
/// whose message (or a result's property name) contains such a phrase stays its own error.
fn classify(f: GuestFailure, limits: &Limits) -> ExecutionError {
    if f.kind == FailureKind::Internal {
        let lower = f.message.to_ascii_lowercase();
        if lower.contains("exceeded memory")
            || lower.contains("memory limit")
            || lower.contains("array buffer allocation failed")
        {
            return ExecutionError::memory_limit(limits.memory_bytes());
        }
        if lower.contains("exceeded cpu") || lower.contains("cpu time limit") {
            return ExecutionError::timeout(limits.timeout());
        }
        if lower.contains("would never generate a response") {
            return ExecutionError::deadlock();
        }
    }
    // workerd gives no stack-guard signal: V8's own overflow error is recognised by its exact
    // name and message (a longer message that merely contains it is the program's).
    if f.kind == FailureKind::Guest
        && !f.tool
        && f.name == "RangeError"
        && f.message == "Maximum call stack size exceeded"
    {
        return ExecutionError::stack_overflow(limits.stack_bytes());
    }
    f.into_error(limits, "Cloudflare driver: the Worker failed")
}
