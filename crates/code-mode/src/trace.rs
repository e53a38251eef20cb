//! Tracing: what every execution and every tool call inside it records, through `tracing`.
//!
//! Why `tracing` and nothing more in core: an application already has a subscriber (or
//! none, and then this costs a branch per span); the OpenTelemetry pipeline — exporter,
//! metrics, W3C propagation — lives in `code-mode-otel`, which installs
//! [`set_trace_context_injector`] so tools can pass the trace on.
//!
//! Spans (target `code_mode`), named and attributed after the OpenTelemetry semantic
//! conventions for GenAI tool execution where they fit:
//!
//! - `code_mode.execute` — one per `execute_typescript` (`otel.name` "execute_tool
//!   execute_typescript"): `gen_ai.operation.name` = `execute_tool`, `gen_ai.tool.name`,
//!   `gen_ai.tool.call.id`, `code_mode.driver`, `code_mode.code.bytes`, and at the end
//!   `code_mode.outcome` (`ok`/`error`), `error.type` (the error name), `code_mode.error.line`,
//!   `code_mode.tool_calls`, `code_mode.logs`, `otel.status_code` = `ERROR` on failure.
//!   A skill run inside a tool call nests under that call's span.
//! - `code_mode.tool_call` — one per call from the program, child of its execution
//!   (`otel.name` "execute_tool external_<name>"): `gen_ai.tool.name`, `code_mode.function`,
//!   `code_mode.input.bytes`, `code_mode.output.bytes`, `code_mode.outcome`, `error.type`.
//!   The input and output themselves (`gen_ai.tool.call.arguments` / `.result`, opt-in in the
//!   conventions too) only with [`CodeModeBuilder::trace_values`](crate::CodeModeBuilder::trace_values),
//!   since they may hold personal data.
//! - Events on the execution span: `console` (level, bytes; the text only with
//!   `trace_values`) and `console truncated`.
//!
//! Metrics are `tracing` events with target `code_mode::metrics` whose fields follow
//! `tracing-opentelemetry`'s naming (`monotonic_counter.*`, `histogram.*`):
//! `code_mode.executions` (by `code_mode.outcome`, `error.type`, `code_mode.driver`),
//! `code_mode.execution.duration` (ms), `code_mode.tool_calls` and
//! `code_mode.tool_call.duration` (ms, by `gen_ai.tool.name` and outcome).
//!
//! Where the conventions do not fit: they have no notion of a program that makes tool calls,
//! so the execution is an `execute_tool` span whose children are `execute_tool` spans too;
//! sizes, outcome and driver are `code_mode.*` attributes.

use std::sync::OnceLock;

/// A W3C trace context (`traceparent`, optional `tracestate`), to pass to whatever a tool
/// calls (HTTP headers, MCP `_meta`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    /// `00-<trace id>-<span id>-<flags>`.
    pub traceparent: String,
    /// Vendor state, when any.
    pub tracestate: Option<String>,
}

/// Computes the trace context of a span; installed by an OpenTelemetry integration.
pub type TraceContextInjector = fn(&tracing::Span) -> Option<TraceContext>;

/// Makes a span continue a remote trace (its parent becomes the remote span); installed by
/// an OpenTelemetry integration.
pub type TraceContextAdopter = fn(&tracing::Span, &TraceContext);

static INJECTOR: OnceLock<TraceContextInjector> = OnceLock::new();
static ADOPTER: OnceLock<TraceContextAdopter> = OnceLock::new();

/// Installs the function [`adopt_trace_context`] uses (`code-mode-otel` does it). Returns
/// false when one was installed already.
pub fn set_trace_context_adopter(adopter: TraceContextAdopter) -> bool {
    ADOPTER.set(adopter).is_ok()
}

/// Makes `span` continue the trace `remote` names (an incoming MCP request's `_meta`, an
/// HTTP request's headers), when an OpenTelemetry integration is installed. Call it before
/// the span is first entered.
pub fn adopt_trace_context(span: &tracing::Span, remote: &TraceContext) {
    if span.is_disabled() {
        return;
    }
    if let Some(adopt) = ADOPTER.get() {
        adopt(span, remote);
    }
}

/// Installs the function [`ToolContext::trace_context`](crate::ToolContext::trace_context)
/// uses (`code-mode-otel` does it). Returns false when one was installed already.
pub fn set_trace_context_injector(injector: TraceContextInjector) -> bool {
    INJECTOR.set(injector).is_ok()
}

/// The trace context of `span`, when an injector is installed and the span is recorded.
pub(crate) fn trace_context(span: &tracing::Span) -> Option<TraceContext> {
    if span.is_disabled() {
        return None;
    }
    INJECTOR.get().and_then(|inject| inject(span))
}

/// The size of `value` as JSON text, in bytes (only computed for a recorded span).
pub(crate) fn json_bytes(value: &serde_json::Value) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    let _ = serde_json::to_writer(&mut count, value);
    count.0
}

/// What one execution records: its span, its tool-call count, whether values are recorded.
pub(crate) struct ExecTrace {
    pub(crate) span: tracing::Span,
    /// The span as the bindings and the console sink reach it: emptied when the execution
    /// ends, so a driver that keeps them a while longer does not keep the span open (its
    /// duration is the execution's).
    pub(crate) shared: std::sync::Arc<std::sync::Mutex<tracing::Span>>,
    pub(crate) calls: std::sync::Arc<std::sync::atomic::AtomicU32>,
    pub(crate) values: bool,
}

impl ExecTrace {
    /// Opens the execution span (a child of the current span: a skill run nests under the
    /// tool call that started it).
    pub(crate) fn start(
        driver: &str,
        tool_call_id: Option<&str>,
        code_bytes: usize,
        values: bool,
    ) -> Self {
        let span = tracing::info_span!(
            target: "code_mode",
            "code_mode.execute",
            otel.name = "execute_tool execute_typescript",
            otel.status_code = tracing::field::Empty,
            gen_ai.operation.name = "execute_tool",
            gen_ai.tool.name = crate::tool_names::EXECUTE_TOOL_NAME,
            gen_ai.tool.call.id = tool_call_id.unwrap_or_default(),
            code_mode.driver = driver,
            code_mode.code.bytes = code_bytes,
            code_mode.outcome = tracing::field::Empty,
            error.type = tracing::field::Empty,
            code_mode.error.line = tracing::field::Empty,
            code_mode.tool_calls = tracing::field::Empty,
            code_mode.logs = tracing::field::Empty,
        );
        Self {
            shared: std::sync::Arc::new(std::sync::Mutex::new(span.clone())),
            span,
            calls: Default::default(),
            values,
        }
    }

    /// No execution span of its own: calls nest under the caller's current span (for
    /// bindings built outside an execution, which would otherwise open a span nobody ends).
    pub(crate) fn current(values: bool) -> Self {
        let span = tracing::Span::current();
        Self {
            shared: std::sync::Arc::new(std::sync::Mutex::new(span.clone())),
            span,
            calls: Default::default(),
            values,
        }
    }

    /// The execution's span while it runs; a disabled span after.
    pub(crate) fn shared_span(shared: &std::sync::Mutex<tracing::Span>) -> tracing::Span {
        shared
            .lock()
            .map(|s| s.clone())
            .unwrap_or_else(|_| tracing::Span::none())
    }

    /// Records the outcome on the span and the execution metrics.
    pub(crate) fn finish(
        &self,
        driver: &str,
        result: &crate::result::CodeModeResult,
        duration_ms: f64,
    ) {
        if let Ok(mut shared) = self.shared.lock() {
            *shared = tracing::Span::none();
        }
        let calls = self.calls.load(std::sync::atomic::Ordering::Relaxed);
        let outcome = if result.success { "ok" } else { "error" };
        let error = result.error.as_ref().map(|e| e.kind.name());
        let span = &self.span;
        span.record("code_mode.outcome", outcome);
        span.record("code_mode.tool_calls", calls);
        span.record("code_mode.logs", result.logs.len());
        if let Some(e) = &result.error {
            span.record("error.type", e.kind.name());
            span.record("otel.status_code", "ERROR");
            if let Some(line) = e.line {
                span.record("code_mode.error.line", line);
            }
        }
        tracing::event!(target: "code_mode::metrics", parent: None, tracing::Level::INFO,
            monotonic_counter.code_mode.executions = 1u64,
            histogram.code_mode.execution.duration = duration_ms,
            code_mode.outcome = outcome,
            error.type = error.unwrap_or(""),
            code_mode.driver = driver,
        );
    }
}
