//! `init_from_env` exports over OTLP/HTTP to a collector — here a receiver on 127.0.0.1
//! started by the test, decoding what arrives with the OTLP protobuf definitions.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::routing::post;
use code_mode::{CodeMode, ExecuteOptions, Tool, ToolError};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use serde_json::json;

#[derive(Default)]
struct Received {
    spans: Vec<(String, String)>,
    metrics: Vec<String>,
}

async fn receiver() -> (String, Arc<Mutex<Received>>) {
    let got = Arc::new(Mutex::new(Received::default()));
    let (traces, metrics) = (got.clone(), got.clone());
    let app = axum::Router::new()
        .route(
            "/v1/traces",
            post(move |body: Bytes| {
                let got = traces.clone();
                async move {
                    if let Ok(req) = ExportTraceServiceRequest::decode(body) {
                        let mut got = got.lock().unwrap_or_else(|e| e.into_inner());
                        for rs in req.resource_spans {
                            let service = rs
                                .resource
                                .iter()
                                .flat_map(|r| r.attributes.iter())
                                .find(|kv| kv.key == "service.name")
                                .and_then(|kv| kv.value.as_ref())
                                .map(|v| format!("{:?}", v.value))
                                .unwrap_or_default();
                            for ss in rs.scope_spans {
                                for s in ss.spans {
                                    got.spans.push((s.name, service.clone()));
                                }
                            }
                        }
                    }
                    ""
                }
            }),
        )
        .route(
            "/v1/metrics",
            post(move |body: Bytes| {
                let got = metrics.clone();
                async move {
                    if let Ok(req) = ExportMetricsServiceRequest::decode(body) {
                        let mut got = got.lock().unwrap_or_else(|e| e.into_inner());
                        for rm in req.resource_metrics {
                            for sm in rm.scope_metrics {
                                got.metrics.extend(sm.metrics.into_iter().map(|m| m.name));
                            }
                        }
                    }
                    ""
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}"), got)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_and_metrics_reach_an_otlp_collector() {
    let (endpoint, got) = receiver().await;
    // SAFETY: this test binary has one test; nothing else reads the environment meanwhile.
    unsafe {
        std::env::set_var("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint);
        std::env::remove_var("OTEL_SERVICE_NAME");
    }
    let telemetry = code_mode_otel::init_from_env("otlp-test")
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("the endpoint is set"));
    let echo = Tool::new(
        "echo",
        "Echo.",
        json!({"type": "object"}),
        |v, _| async move { Ok::<_, ToolError>(v) },
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let cm = CodeMode::builder()
        .tool(echo)
        .driver(Arc::new(code_mode_isolate_quickjs::QuickJsDriver::new()))
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let r = cm
        .execute(
            "return (await external_echo({ a: 1 })).a",
            ExecuteOptions::default(),
        )
        .await;
    assert_eq!(r.result, Some(json!(1)));
    // Dropping the guard flushes both signals (the exporters block; not on this thread).
    tokio::task::spawn_blocking(move || drop(telemetry))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        {
            let got = got.lock().unwrap_or_else(|e| e.into_inner());
            let names: Vec<&str> = got.spans.iter().map(|(n, _)| n.as_str()).collect();
            if names.contains(&"execute_tool execute_typescript")
                && names.contains(&"execute_tool external_echo")
                && got.metrics.iter().any(|m| m == "code_mode.executions")
            {
                assert!(
                    got.spans.iter().all(|(_, s)| s.contains("otlp-test")),
                    "{:?}",
                    got.spans
                );
                assert!(
                    got.metrics
                        .iter()
                        .any(|m| m == "code_mode.tool_call.duration"),
                    "{:?}",
                    got.metrics
                );
                assert!(
                    got.metrics
                        .iter()
                        .any(|m| m == "code_mode.execution.duration"),
                    "{:?}",
                    got.metrics
                );
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "spans {:?}, metrics {:?}",
                got.spans,
                got.metrics
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
