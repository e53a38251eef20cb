//! OpenTelemetry for code-mode: exports the spans and metrics core records through
//! `tracing` (see `code_mode`'s `trace` module docs for what they are) over OTLP, and
//! passes W3C trace context to tools and MCP upstream servers.
//!
//! Why a crate of its own: the OpenTelemetry SDK, its OTLP exporter and an HTTP client are
//! a heavy build an application that does not trace should not pay for. Core depends on
//! `tracing` only.
//!
//! - [`init_from_env`]: what the CLI and the chat server example call. When the standard
//!   `OTEL_EXPORTER_OTLP_ENDPOINT` variable is set it installs a global `tracing` subscriber
//!   exporting traces and metrics over OTLP/HTTP (protobuf), plus the W3C propagator; when
//!   it is not set it does nothing at all. Other `OTEL_EXPORTER_OTLP_*` variables (headers,
//!   timeout, per-signal endpoints) and `OTEL_SERVICE_NAME` apply as the OpenTelemetry
//!   specification says.
//! - [`layers`]: the same trace and metrics layers for an application composing its own
//!   subscriber, with its own providers.
//! - [`install_propagation`]: the W3C trace-context propagator and the hooks through which
//!   `ToolContext::trace_context` and `code_mode::adopt_trace_context` work.
//!
//! ```no_run
//! // At the start of main, inside or outside a Tokio runtime:
//! let _telemetry = code_mode_otel::init_from_env("my-agent").expect("OTLP exporter");
//! // ... run Code Mode; spans and metrics are flushed when `_telemetry` is dropped (or
//! // call `shutdown` to bound the wait and hear whether the export worked).
//! ```

use std::collections::HashMap;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::{Layer, filter};

/// The instrumentation scope of code-mode's spans.
pub const SCOPE: &str = "code-mode";

/// Why telemetry could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum OtelError {
    /// The OTLP exporter could not be built (a malformed endpoint, for example).
    #[error("the OTLP {signal} exporter could not be built: {reason}")]
    Exporter {
        /// `traces` or `metrics`.
        signal: &'static str,
        /// What the exporter said.
        reason: String,
    },
    /// A global `tracing` subscriber was installed already.
    #[error(
        "a global tracing subscriber is already installed; compose code_mode_otel::layers into it instead"
    )]
    SubscriberExists,
}

/// Installed telemetry: flushes and shuts the exporters down when dropped.
#[derive(Debug)]
pub struct Telemetry {
    tracer: SdkTracerProvider,
    meter: SdkMeterProvider,
    /// Shut down already (by [`Telemetry::shutdown`]).
    shut: bool,
}

impl Telemetry {
    /// The tracer provider (for spans of the application's own).
    pub fn tracer_provider(&self) -> &SdkTracerProvider {
        &self.tracer
    }

    /// The meter provider (for metrics of the application's own).
    pub fn meter_provider(&self) -> &SdkMeterProvider {
        &self.meter
    }
}

/// How long dropping [`Telemetry`] waits for the last export, at most.
pub const SHUTDOWN_BUDGET: std::time::Duration = std::time::Duration::from_secs(1);

/// Why the last export did not complete.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShutdownError {
    /// The collector did not take the data within the time allowed.
    #[error("the OTLP collector did not take the telemetry within {0:?} (it is dropped)")]
    TimedOut(std::time::Duration),
    /// The exporter failed (the collector refused the connection or the data).
    #[error("the OTLP export failed: {0}")]
    Failed(String),
}

impl Telemetry {
    /// Flushes and shuts the exporters down, waiting at most `budget`: an unreachable or
    /// silent collector costs the process at most that long at exit (the exporter retries
    /// with back-off, up to `OTEL_EXPORTER_OTLP_TIMEOUT`, 10 s by default, per attempt).
    /// What did not go out by then is dropped. Says whether the export worked, so that a
    /// command line can warn once instead of staying silent.
    ///
    /// ```no_run
    /// if let Ok(Some(telemetry)) = code_mode_otel::init_from_env("my-agent") {
    ///     // ... run Code Mode, print the result ...
    ///     if let Err(e) = telemetry.shutdown(std::time::Duration::from_millis(500)) {
    ///         eprintln!("warning: {e}");
    ///     }
    /// }
    /// ```
    pub fn shutdown(mut self, budget: std::time::Duration) -> Result<(), ShutdownError> {
        self.shut_down(budget)
    }

    fn shut_down(&mut self, budget: std::time::Duration) -> Result<(), ShutdownError> {
        if std::mem::replace(&mut self.shut, true) {
            return Ok(());
        }
        let (tracer, meter) = (self.tracer.clone(), self.meter.clone());
        let (done, outcome) = std::sync::mpsc::channel();
        let worker = std::thread::Builder::new()
            .name("code-mode-otel-shutdown".into())
            .spawn(move || {
                let flushed = tracer.force_flush().and(meter.force_flush());
                let stopped = tracer.shutdown().and(meter.shutdown());
                let _ = done.send(flushed.and(stopped).map_err(|e| e.to_string()));
            });
        if let Err(e) = worker {
            return Err(ShutdownError::Failed(format!(
                "cannot start the flush: {e}"
            )));
        }
        match outcome.recv_timeout(budget) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(reason)) => Err(ShutdownError::Failed(reason)),
            Err(_) => Err(ShutdownError::TimedOut(budget)),
        }
    }
}

impl Drop for Telemetry {
    /// Flushes within [`SHUTDOWN_BUDGET`], silently (see [`Telemetry::shutdown`]).
    fn drop(&mut self) {
        let _ = self.shut_down(SHUTDOWN_BUDGET);
    }
}

/// When `OTEL_EXPORTER_OTLP_ENDPOINT` is set (and not empty): exports traces and metrics over
/// OTLP/HTTP to it, as `service_name` (unless `OTEL_SERVICE_NAME` says otherwise), through a
/// global subscriber; returns the guard to keep until the end of `main`. Otherwise `Ok(None)`
/// and nothing is installed.
pub fn init_from_env(service_name: &str) -> Result<Option<Telemetry>, OtelError> {
    if std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT").map_or(true, |v| v.trim().is_empty()) {
        return Ok(None);
    }
    let service = std::env::var("OTEL_SERVICE_NAME")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| service_name.to_owned());
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(service)
        .build();
    let spans = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .build()
        .map_err(|e| OtelError::Exporter {
            signal: "traces",
            reason: e.to_string(),
        })?;
    let metrics = opentelemetry_otlp::MetricExporter::builder()
        .with_http()
        .build()
        .map_err(|e| OtelError::Exporter {
            signal: "metrics",
            reason: e.to_string(),
        })?;
    let tracer = SdkTracerProvider::builder()
        .with_batch_exporter(spans)
        .with_resource(resource.clone())
        .build();
    let meter = SdkMeterProvider::builder()
        .with_periodic_exporter(metrics)
        .with_resource(resource)
        .build();
    let subscriber = tracing_subscriber::registry().with(layers(&tracer, &meter));
    tracing::subscriber::set_global_default(subscriber).map_err(|_| OtelError::SubscriberExists)?;
    install_propagation();
    Ok(Some(Telemetry {
        tracer,
        meter,
        shut: false,
    }))
}

/// The fields a code-mode span or event may carry to an exporter: what the `code_mode`
/// `trace` module documents, and the chat and MCP layers' GenAI attributes. A span or event
/// with any other field is not exported: a field this list does not know may hold anything
/// (an error message quoting a tool's input, a connection string). The values that may hold
/// personal data (`gen_ai.tool.call.arguments` / `.result`, `code_mode.console.message`) are
/// declared here but recorded by core only with `CodeModeBuilder::trace_values`.
pub const EXPORTED_FIELDS: &[&str] = &[
    "message",
    "otel.name",
    "otel.kind",
    "otel.status_code",
    "error.type",
    "gen_ai.operation.name",
    "gen_ai.tool.name",
    "gen_ai.tool.call.id",
    "gen_ai.tool.call.arguments",
    "gen_ai.tool.call.result",
    "gen_ai.conversation.id",
    "gen_ai.request.model",
    "gen_ai.response.finish_reasons",
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.output_tokens",
    "mcp.request.id",
    "code_mode.driver",
    "code_mode.code.bytes",
    "code_mode.outcome",
    "code_mode.error.line",
    "code_mode.tool_calls",
    "code_mode.logs",
    "code_mode.function",
    "code_mode.input.bytes",
    "code_mode.output.bytes",
    "code_mode.console.level",
    "code_mode.console.bytes",
    "code_mode.console.message",
    "code_mode_chat.run_id",
];

/// Whether a span or event goes to the exporter: this project's own targets (`code_mode`,
/// `code_mode::*`, `code_mode_*`), at INFO or above, with allow-listed fields only. A
/// dependency's events (rmcp's DEBUG and TRACE events carry whole requests: tool arguments,
/// program text, upstream results) never leave the process through OpenTelemetry.
///
/// ```
/// use code_mode_otel::exported;
/// assert!(exported("code_mode", tracing::Level::INFO, ["otel.name", "code_mode.driver"]));
/// assert!(!exported("rmcp::service", tracing::Level::INFO, ["message"]));
/// assert!(!exported("code_mode", tracing::Level::DEBUG, ["message"]));
/// assert!(!exported("code_mode_skills", tracing::Level::WARN, ["message", "error"]));
/// ```
pub fn exported<'a>(
    target: &str,
    level: tracing::Level,
    fields: impl IntoIterator<Item = &'a str>,
) -> bool {
    let own = target == "code_mode"
        || target.starts_with("code_mode::")
        || target.starts_with("code_mode_");
    own && level <= tracing::Level::INFO && fields.into_iter().all(|f| EXPORTED_FIELDS.contains(&f))
}

/// The trace layer (code-mode's spans as OpenTelemetry spans, filtered by [`exported`]) and
/// the metrics layer (events of target `code_mode::metrics` as instruments), for a
/// subscriber the application builds. Metric events are kept out of the spans.
pub fn layers<S>(
    tracer: &SdkTracerProvider,
    meter: &SdkMeterProvider,
) -> impl Layer<S> + Send + Sync
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a> + Send + Sync,
{
    let spans = filter::filter_fn(|m| {
        m.target() != "code_mode::metrics"
            && exported(m.target(), *m.level(), m.fields().iter().map(|f| f.name()))
    });
    let traces = tracing_opentelemetry::layer()
        .with_tracer(tracer.tracer(SCOPE))
        .with_filter(spans);
    let only_metrics = filter::filter_fn(|m| m.target() == "code_mode::metrics");
    let metrics = tracing_opentelemetry::MetricsLayer::new(meter.clone()).with_filter(only_metrics);
    traces.and_then(metrics)
}

/// Sets the W3C trace-context propagator as OpenTelemetry's global one and installs
/// code-mode's hooks, so `ToolContext::trace_context()` returns the `traceparent` of a tool
/// call and `code_mode::adopt_trace_context` continues a remote trace. Idempotent.
pub fn install_propagation() {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    code_mode::set_trace_context_injector(inject);
    code_mode::set_trace_context_adopter(adopt);
}

fn inject(span: &tracing::Span) -> Option<code_mode::TraceContext> {
    let cx = span.context();
    if !cx.span().span_context().is_valid() {
        return None;
    }
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&cx, &mut carrier);
    Some(code_mode::TraceContext {
        traceparent: carrier.remove("traceparent")?,
        tracestate: carrier.remove("tracestate").filter(|s| !s.is_empty()),
    })
}

fn adopt(span: &tracing::Span, remote: &code_mode::TraceContext) {
    let mut carrier = HashMap::new();
    carrier.insert("traceparent".to_owned(), remote.traceparent.clone());
    if let Some(state) = &remote.tracestate {
        carrier.insert("tracestate".to_owned(), state.clone());
    }
    let cx = TraceContextPropagator::new().extract(&carrier);
    if cx.span().span_context().is_valid() {
        let _ = span.set_parent(cx);
    }
}
