//! Spans across layers, on every driver this build has: a skill-like function that runs a
//! nested execution nests it under its own call, and a tool reads the W3C trace context of
//! its call (the one `code-mode-mcp` passes to upstream servers in `_meta`).

use std::sync::{Arc, Mutex};

use code_mode::{Binding, CodeMode, ExecuteOptions, GuestError, Tool, ToolError};
use code_mode_conformance::spans;
use serde_json::{Value, json};

fn code_mode(driver: Arc<dyn code_mode::IsolateDriver>, seen: Arc<Mutex<Vec<String>>>) -> CodeMode {
    let echo = Tool::new("echo", "Echo.", json!({"type": "object"}), move |v, ctx| {
        let seen = seen.clone();
        async move {
            if let Some(tc) = ctx.trace_context() {
                seen.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(tc.traceparent);
            }
            Ok::<_, ToolError>(v)
        }
    })
    .unwrap_or_else(|e| panic!("{e}"));
    CodeMode::builder()
        .tool(echo)
        .driver(driver)
        .build()
        .unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nested_runs_nest_and_tools_see_their_trace_context() {
    code_mode_otel::install_propagation();
    let options = code_mode_drivers::DriverOptions::from_env();
    let drivers = code_mode_drivers::enabled_drivers();
    assert!(!drivers.is_empty());
    for name in drivers {
        let Ok(driver) = code_mode_drivers::driver_by_name(name, &options) else {
            // The Cloudflare driver needs a Worker URL; its conformance run covers spans.
            continue;
        };
        let seen = Arc::new(Mutex::new(Vec::new()));
        let cm = code_mode(driver, seen.clone());
        let inner = cm.clone();
        let skill = Binding::new("skill_double", move |args: Value| {
            let inner = inner.clone();
            Box::pin(async move {
                let n = args["n"].as_i64().unwrap_or(0);
                let r = inner
                    .execute(
                        &format!("return (await external_echo({{ n: {n} }})).n * 2"),
                        ExecuteOptions::default(),
                    )
                    .await;
                r.result
                    .ok_or_else(|| GuestError::error("the nested run failed"))
            })
        })
        .unwrap_or_else(|e| panic!("{e}"));
        let run = async {
            let opts = ExecuteOptions {
                extra_bindings: vec![skill],
                ..ExecuteOptions::default()
            };
            let r = cm
                .execute("return await skill_double({ n: 21 })", opts)
                .await;
            assert_eq!(r.result, Some(json!(42)), "{name}: {r:?}");
        };
        let Some((root, all)) = spans::record(4, run).await else {
            panic!("no span exporter in this process");
        };
        let by_name =
            |n: &str| -> Vec<&spans::RecordedSpan> { all.iter().filter(|s| s.name == n).collect() };
        let execs = by_name("execute_tool execute_typescript");
        assert_eq!(execs.len(), 2, "{name}: {all:#?}");
        let outer = execs
            .iter()
            .find(|s| s.parent == root.id)
            .unwrap_or_else(|| panic!("{name}: {all:#?}"));
        let skill_call = by_name("execute_tool skill_double");
        assert_eq!(skill_call.len(), 1, "{name}: {all:#?}");
        assert_eq!(skill_call[0].parent, outer.id, "{name}");
        let nested = execs
            .iter()
            .find(|s| s.parent == skill_call[0].id)
            .unwrap_or_else(|| {
                panic!("{name}: the nested run is not under the skill call: {all:#?}")
            });
        let echo = by_name("execute_tool external_echo");
        assert_eq!(echo.len(), 1, "{name}");
        assert_eq!(echo[0].parent, nested.id, "{name}");
        assert_eq!(outer.attr("code_mode.tool_calls"), Some("1"));
        // The tool saw its own span as the W3C parent: `00-<trace>-<span id of the call>-01`.
        let seen = seen.lock().unwrap_or_else(|e| e.into_inner()).clone();
        assert_eq!(seen.len(), 1, "{name}: {seen:?}");
        let parts: Vec<&str> = seen[0].split('-').collect();
        assert_eq!(parts.len(), 4, "{seen:?}");
        assert_eq!(parts[2], format!("{:016x}", echo[0].id), "{name}: {seen:?}");
        assert_eq!(parts[3], "01");
    }
}
