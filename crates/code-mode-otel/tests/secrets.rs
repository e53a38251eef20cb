//! Nothing secret leaves through OpenTelemetry by default: a canary placed in the program's
//! literals, a tool's input and output, a console line, a dependency's DEBUG/TRACE events and
//! spans (rmcp logs whole requests at those levels) and a code-mode event field that is not
//! on the allow-list reaches none of the bytes a real OTLP/HTTP receiver (on 127.0.0.1) gets,
//! while the execution's spans and metrics do arrive.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::routing::post;
use code_mode::{CodeMode, ExecuteOptions, Tool, ToolError};
use serde_json::json;
use tracing::Instrument;

const CANARY: &str = "CANARY-7f3a9c-do-not-export";

async fn receiver() -> (String, Arc<Mutex<Vec<u8>>>) {
    let got = Arc::new(Mutex::new(Vec::new()));
    let sink = |got: Arc<Mutex<Vec<u8>>>| {
        post(move |body: Bytes| {
            let got = got.clone();
            async move {
                got.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .extend_from_slice(&body);
                ""
            }
        })
    };
    let app = axum::Router::new()
        .route("/v1/traces", sink(got.clone()))
        .route("/v1/metrics", sink(got.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}"), got)
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_canary_reaches_the_collector() {
    let (endpoint, got) = receiver().await;
    // SAFETY: this test binary has one test; nothing else reads the environment meanwhile.
    unsafe {
        std::env::set_var("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint);
        std::env::remove_var("OTEL_SERVICE_NAME");
    }
    let telemetry = code_mode_otel::init_from_env("secrets-test")
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("the endpoint is set"));
    let login = Tool::new(
        "login",
        "Logs in.",
        json!({"type": "object"}),
        |input, _| async move {
            // What a dependency logs while it serves the call (rmcp logs whole messages at
            // DEBUG and TRACE), and a code-mode event with a field that is not allow-listed.
            tracing::debug!(target: "rmcp::service", request = %input, "sending request");
            tracing::trace!(target: "rmcp::transport", body = %input, "frame");
            tracing::info!(target: "reqwest::connect", url = %format!("https://u:{CANARY}@db"), "connect");
            tracing::warn!(target: "code_mode_skills", error = %CANARY, "storage failed");
            let upstream = tracing::info_span!(target: "rmcp::service", "call_tool", body = %input);
            async move {
                tracing::info!(target: "rmcp::service", "upstream answered");
            }
            .instrument(upstream)
            .await;
            Ok::<_, ToolError>(json!({"token": input["password"], "note": format!("issued for {CANARY}")}))
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let cm = CodeMode::builder()
        .tool(login)
        .driver(Arc::new(code_mode_isolate_quickjs::QuickJsDriver::new()))
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let code = format!(
        "const secret = '{CANARY}';\nconst r = await external_login({{ password: secret }});\nconsole.log('got', r.token);\ntry {{ null.x; }} catch (e) {{ console.error(secret, e.message); }}\nreturn r.token.length;"
    );
    let r = cm.execute(&code, ExecuteOptions::default()).await;
    assert_eq!(r.result, Some(json!(CANARY.len())), "{r:?}");
    let r = cm
        .execute(
            &format!("throw new Error('{CANARY}');"),
            ExecuteOptions::default(),
        )
        .await;
    assert!(!r.success);
    tokio::task::spawn_blocking(move || drop(telemetry))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let bytes = got.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let arrived = contains(&bytes, "execute_tool execute_typescript")
            && contains(&bytes, "execute_tool external_login")
            && contains(&bytes, "code_mode.executions");
        if arrived {
            assert!(
                !contains(&bytes, CANARY),
                "the canary reached the OTLP collector ({} bytes received)",
                bytes.len()
            );
            assert!(
                !contains(&bytes, "rmcp"),
                "a dependency's telemetry was exported"
            );
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the spans and metrics never arrived ({} bytes)",
            bytes.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
