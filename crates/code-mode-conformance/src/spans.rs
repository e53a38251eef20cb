//! The span-tree case: what an OpenTelemetry backend receives from one execution, exported
//! to memory through `tracing-opentelemetry` (the layer `code-mode-otel` installs).
//!
//! The subscriber is process-wide (tool calls run on whatever thread a driver polls them
//! on), installed once; each run sits under a root span of its own and is found by that
//! root's trace id, so cases running in parallel do not see each other's spans.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use opentelemetry::Value as OtelValue;
use opentelemetry::trace::{Status, TraceContextExt, TraceId, TracerProvider as _};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;

static EXPORTER: OnceLock<Option<InMemorySpanExporter>> = OnceLock::new();

/// The in-memory exporter behind the process's subscriber; `None` when the process already
/// had a global subscriber (the case then cannot observe spans and says so).
fn exporter() -> Option<&'static InMemorySpanExporter> {
    EXPORTER
        .get_or_init(|| {
            let exporter = InMemorySpanExporter::default();
            let provider = SdkTracerProvider::builder()
                .with_simple_exporter(exporter.clone())
                .build();
            let subscriber = tracing_subscriber::registry()
                .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("conformance")));
            tracing::subscriber::set_global_default(subscriber)
                .ok()
                .map(|()| exporter)
        })
        .as_ref()
}

/// One recorded span, reduced to what the case checks.
#[derive(Debug, Clone)]
pub struct RecordedSpan {
    /// The span's name (`otel.name`).
    pub name: String,
    /// Its id and its parent's.
    pub id: u64,
    /// Parent span id (0 for a root).
    pub parent: u64,
    /// Attributes.
    pub attributes: Vec<(String, String)>,
    /// Event names, in order.
    pub events: Vec<String>,
    /// Whether the status is an error.
    pub error: bool,
}

impl RecordedSpan {
    /// The attribute `key`, as text.
    pub fn attr(&self, key: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

fn reduce(s: &SpanData) -> RecordedSpan {
    let text = |v: &OtelValue| match v {
        OtelValue::String(s) => s.as_str().to_owned(),
        other => other.to_string(),
    };
    RecordedSpan {
        name: s.name.to_string(),
        id: u64::from_be_bytes(s.span_context.span_id().to_bytes()),
        parent: u64::from_be_bytes(s.parent_span_id.to_bytes()),
        attributes: s
            .attributes
            .iter()
            .map(|kv| (kv.key.as_str().to_owned(), text(&kv.value)))
            .collect(),
        events: s.events.iter().map(|e| e.name.to_string()).collect(),
        error: matches!(s.status, Status::Error { .. }),
    }
}

/// Runs `f` under a fresh root span and returns the spans of its trace once `expected` of
/// them arrived (at most 10 s), or `None` when spans cannot be observed in this process.
pub async fn record<F: std::future::Future<Output = ()>>(
    expected: usize,
    f: F,
) -> Option<(RecordedSpan, Vec<RecordedSpan>)> {
    let exporter = exporter()?;
    let root = tracing::info_span!("conformance.root");
    let trace_id: TraceId = root.context().span().span_context().trace_id();
    f.instrument(root.clone()).await;
    drop(root);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let spans: Vec<RecordedSpan> = exporter
            .get_finished_spans()
            .unwrap_or_default()
            .iter()
            .filter(|s| s.span_context.trace_id() == trace_id)
            .map(reduce)
            .collect();
        if spans.len() > expected || Instant::now() > deadline {
            let root = spans.iter().find(|s| s.name == "conformance.root")?.clone();
            let rest = spans.into_iter().filter(|s| s.id != root.id).collect();
            return Some((root, rest));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
