//! `otel_bench`: what tracing costs an execution (`cargo xtask bench` runs it and writes its
//! section of `docs/benchmarks.md`).
//!
//! A fresh-context execution making three tool calls, on the native QuickJS driver, through
//! `CodeMode::execute`: first with no subscriber at all (what an application that does not
//! trace pays), then with `code_mode_otel::init_from_env` exporting spans and metrics over
//! OTLP/HTTP to a receiver on 127.0.0.1 that reads and discards them.
//!
//! Usage: otel_bench --runs N --out FILE

use std::io::{BufRead, BufReader, Read, Write};
use std::sync::Arc;
use std::time::Instant;

use code_mode::{CodeMode, ExecuteOptions, Tool, ToolError};
use serde_json::{Value, json};

const PROGRAM: &str = "const a = await external_echo({ n: 1 });\nconst b = await external_echo({ n: a.n + 1 });\nconst c = await external_echo({ n: b.n + 1 });\nreturn c.n;";

fn code_mode() -> CodeMode {
    let echo = Tool::new(
        "echo",
        "Echo.",
        json!({"type": "object"}),
        |v, _| async move { Ok::<_, ToolError>(v) },
    )
    .unwrap_or_else(|e| panic!("{e}"));
    CodeMode::builder()
        .tool(echo)
        .driver(Arc::new(code_mode_isolate_quickjs::QuickJsDriver::new()))
        .build()
        .unwrap_or_else(|e| panic!("{e}"))
}

async fn measure(cm: &CodeMode, runs: usize) -> f64 {
    let mut times = Vec::with_capacity(runs);
    for i in 0..runs + runs / 10 {
        std::thread::sleep(std::time::Duration::from_micros(300));
        let t = Instant::now();
        let r = cm.execute(PROGRAM, ExecuteOptions::default()).await;
        let us = t.elapsed().as_secs_f64() * 1e6;
        assert_eq!(r.result, Some(json!(3)), "{r:?}");
        if i >= runs / 10 {
            times.push(us);
        }
    }
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// A collector that answers 200 to every request and keeps nothing.
fn discard_receiver() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream);
                loop {
                    let mut length = 0usize;
                    let mut first = String::new();
                    if reader.read_line(&mut first).map_or(true, |n| n == 0) {
                        return;
                    }
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).map_or(true, |n| n == 0) || line == "\r\n" {
                            break;
                        }
                        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                            length = v.trim().parse().unwrap_or(0);
                        }
                    }
                    let mut body = vec![0u8; length];
                    if reader.read_exact(&mut body).is_err() {
                        return;
                    }
                    if reader
                        .get_mut()
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    format!("http://{addr}")
}

fn main() {
    let (runs, out) = code_mode_benches::report_args(2000);
    let endpoint = discard_receiver();
    // SAFETY: set before any other thread reads the environment.
    unsafe {
        std::env::set_var("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let cm = code_mode();
    let off = rt.block_on(measure(&cm, runs));
    let telemetry = code_mode_otel::init_from_env("otel-bench")
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("the endpoint is set"));
    let on = rt.block_on(measure(&cm, runs));
    drop(telemetry);
    let report: Value = json!({"runs": runs, "off_us": off, "on_us": on, "spans_per_run": 4});
    code_mode_benches::write_report(out, &report);
}
