//! A tool call from the sandbox: the approval gate, input validation, the handler with its
//! context, the span and metrics, and the `code_mode:*` events (`external_call` once the
//! gate let the call through, so a denied call is only an `external_error`).

use std::panic::AssertUnwindSafe;

use crate::approval::APPROVAL_DENIED_ERROR;
use crate::approval::ApprovalPolicy;
use crate::approval::Gate;
use crate::bindings::Binding;
use crate::bindings::GuestError;
use crate::error::ToolError;
use crate::events::EventKind;
use crate::events::EventSink;
use crate::events::now_ms;
use crate::tool::Tool;
use crate::tool::ToolContext;
use crate::trace::ExecTrace;
use futures::FutureExt;
use serde_json::Value;
use std::sync::Arc;
use std::time::Instant;
use tracing::Instrument;

pub(super) fn tool_binding(
    tool: Tool,
    tool_call_id: Option<Arc<str>>,
    events: EventSink,
    trace: &ExecTrace,
    gate: &Gate,
) -> Binding {
    let gate = gate.clone();
    let function: Arc<str> = format!("external_{}", tool.name()).into();
    let (shared, calls, values) = (trace.shared.clone(), trace.calls.clone(), trace.values);
    Binding::unchecked(
        function.clone(),
        Arc::new(move |args: Value| {
            calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let span = tool_call_span(&ExecTrace::shared_span(&shared), tool.name(), &function);
            if !span.is_disabled() {
                span.record("code_mode.input.bytes", crate::trace::json_bytes(&args));
                if values {
                    span.record("gen_ai.tool.call.arguments", args.to_string());
                }
            }
            let call = ToolCallRun {
                tool: tool.clone(),
                events: events.clone(),
                id: tool_call_id.clone(),
                function: function.clone(),
                gate: gate.clone(),
                span: span.clone(),
                values,
            };
            Box::pin(call.run(args).instrument(span))
        }),
    )
}

/// One call of an application tool from the sandbox, from the approval gate to its events.
struct ToolCallRun {
    tool: Tool,
    events: EventSink,
    id: Option<Arc<str>>,
    function: Arc<str>,
    gate: Gate,
    span: tracing::Span,
    values: bool,
}

impl ToolCallRun {
    async fn run(self, args: Value) -> Result<Value, GuestError> {
        let admitted = admit(
            &self.gate,
            self.tool.approval_policy(),
            &self.function,
            args,
            |edited| self.tool.validate_input(edited),
            &self.span,
        )
        .await;
        let args = match admitted {
            Ok(args) => args,
            Err(denied) => {
                self.failed(denied.message.clone(), 0.0);
                return Err(denied);
            }
        };
        // Announced once it may run (a denied call never started), with the input it runs
        // with (an approver may have edited it).
        if self.events.is_active() {
            self.events.emit_kind(
                self.id.clone(),
                EventKind::ExternalCall {
                    function: self.function.to_string(),
                    args: args.clone(),
                    timestamp: now_ms(),
                },
            );
        }
        let start = Instant::now();
        let outcome = self.handler(args).await;
        let duration_ms = start.elapsed().as_secs_f64() * 1000.0;
        record_tool_call(&self.span, &self.tool, &outcome, duration_ms, self.values);
        match outcome {
            Ok(result) => {
                if self.events.is_active() {
                    self.events.emit_kind(
                        self.id.clone(),
                        EventKind::ExternalResult {
                            function: self.function.to_string(),
                            result: result.clone(),
                            duration_ms,
                        },
                    );
                }
                Ok(result)
            }
            Err(e) => {
                self.failed(e.message().to_owned(), duration_ms);
                Err(GuestError::error(e.message()))
            }
        }
    }

    /// The tool's handler with its context; a panic is the tool's failure.
    async fn handler(&self, args: Value) -> Result<Value, ToolError> {
        let ctx = ToolContext {
            tool_call_id: self.id.clone(),
            events: self.events.clone(),
            span: self.span.clone(),
            approver: self.gate.approver.clone(),
            clock: self.gate.clock.clone(),
            cancel: self.gate.cancel.clone(),
        };
        match AssertUnwindSafe(self.tool.call(args, ctx))
            .catch_unwind()
            .await
        {
            Ok(r) => r,
            Err(_) => Err(ToolError::new(
                "The tool failed unexpectedly (its handler panicked)",
            )),
        }
    }

    /// `code_mode:external_error`.
    fn failed(&self, error: String, duration_ms: f64) {
        self.events.emit_kind(
            self.id.clone(),
            EventKind::ExternalError {
                function: self.function.to_string(),
                error,
                duration_ms,
            },
        );
    }
}

/// An extra binding (a skill function, ...) whose calls get a `code_mode.tool_call` span
/// under the execution's, so work they start (a nested skill run) nests under the call.
pub(super) fn traced_binding(binding: Binding, trace: &ExecTrace, gate: &Gate) -> Binding {
    let gate = gate.clone();
    let shared = trace.shared.clone();
    let calls = trace.calls.clone();
    let name: Arc<str> = binding.name().into();
    let declaration = binding.declaration().map(str::to_owned);
    let inner = binding.clone();
    let wrapped = Binding::unchecked(
        name.clone(),
        Arc::new(move |args: Value| {
            calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let span = tool_call_span(&ExecTrace::shared_span(&shared), &name, &name);
            let inner = inner.clone();
            let traced = span.clone();
            let gate = gate.clone();
            Box::pin(
                async move {
                    let args = admit(
                        &gate,
                        inner.approval_policy(),
                        inner.name(),
                        args,
                        |_| Ok(()),
                        &traced,
                    )
                    .await?;
                    let out = inner.call(args).await;
                    record_outcome(&traced, out.as_ref().err().map(|_| "Error"));
                    out
                }
                .instrument(span),
            )
        }),
    );
    match declaration {
        Some(d) => wrapped.with_declaration(d),
        None => wrapped,
    }
}

/// The input a call runs with: `args` when `policy` does not ask for approval, else what
/// the execution's approver decided; a refusal is recorded on the call's span.
pub(super) async fn admit(
    gate: &Gate,
    policy: &ApprovalPolicy,
    function: &str,
    args: Value,
    validate: impl Fn(&Value) -> Result<(), String>,
    span: &tracing::Span,
) -> Result<Value, GuestError> {
    if gate.held || !policy.applies(&args) {
        return Ok(args);
    }
    let asked = gate.ask(function, args, validate).await;
    if asked.is_err() {
        record_outcome(span, Some(APPROVAL_DENIED_ERROR));
    }
    asked
}

/// The span of one call from the program (`code_mode.tool_call`, see the `trace` module),
/// a child of its execution's.
pub(super) fn tool_call_span(parent: &tracing::Span, tool: &str, function: &str) -> tracing::Span {
    tracing::info_span!(
        target: "code_mode",
        parent: parent,
        "code_mode.tool_call",
        otel.name = format!("execute_tool {function}"),
        otel.status_code = tracing::field::Empty,
        gen_ai.operation.name = "execute_tool",
        gen_ai.tool.name = tool,
        code_mode.function = function,
        code_mode.input.bytes = tracing::field::Empty,
        code_mode.output.bytes = tracing::field::Empty,
        code_mode.outcome = tracing::field::Empty,
        error.type = tracing::field::Empty,
        gen_ai.tool.call.arguments = tracing::field::Empty,
        gen_ai.tool.call.result = tracing::field::Empty,
    )
}

/// Records a call's outcome on its span (`ok`, or `error` with `error_type` and an error
/// status); returns the outcome's label.
pub(super) fn record_outcome(span: &tracing::Span, error_type: Option<&str>) -> &'static str {
    let label = if error_type.is_some() { "error" } else { "ok" };
    if !span.is_disabled() {
        span.record("code_mode.outcome", label);
        if let Some(kind) = error_type {
            span.record("error.type", kind);
            span.record("otel.status_code", "ERROR");
        }
    }
    label
}

/// Records a tool call's outcome on its span, and the tool-call metrics.
pub(super) fn record_tool_call(
    span: &tracing::Span,
    tool: &Tool,
    outcome: &Result<Value, ToolError>,
    duration_ms: f64,
    values: bool,
) {
    let label = record_outcome(span, outcome.as_ref().err().map(|_| "ToolError"));
    if !span.is_disabled() {
        match outcome {
            Ok(v) => {
                span.record("code_mode.output.bytes", crate::trace::json_bytes(v));
                if values {
                    span.record("gen_ai.tool.call.result", v.to_string());
                }
            }
            Err(e) if values => {
                span.record("gen_ai.tool.call.result", e.message());
            }
            Err(_) => {}
        }
    }
    tracing::event!(target: "code_mode::metrics", parent: None, tracing::Level::INFO,
        monotonic_counter.code_mode.tool_calls = 1u64,
        histogram.code_mode.tool_call.duration = duration_ms,
        gen_ai.tool.name = tool.name(),
        code_mode.outcome = label,
    );
}
