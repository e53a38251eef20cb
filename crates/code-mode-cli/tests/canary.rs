//! Secrets stay in the host, over the whole product: `code-mode run` with upstream MCP
//! servers (one over stdio, one over Streamable HTTP with a configured header), events,
//! a type check and an OTLP collector, all real (the SDK-based test server from npm, the
//! TypeScript compiler, an HTTP receiver on 127.0.0.1). Needs `CODE_MODE_TEST_MCP_SERVERS`
//! and `CODE_MODE_TYPESCRIPT` from `cargo xtask test`.
//!
//! Two canaries:
//! - the **host secret**, in this process's environment and, through `${VAR}` expansion,
//!   in an upstream's request header: it may reach that upstream's requests and nothing
//!   else: not the program, its result, the events, standard error, the OTLP export, the
//!   type check, or another upstream's environment;
//! - the **program's value**, in a program literal, a tool input and a tool output: it is
//!   the program's own data, so its result and its events (the tool call's arguments and
//!   output, which the host shows as the program's trace) may carry it, and nothing else:
//!   not the OTLP export (inputs are exported only on opt-in), the type check, standard
//!   error outside the events, or an upstream's environment.

mod common;

mod upstream {
    use super::common::{contains, receiver};

    const HOST_SECRET: &str = "cm-host-canary-5be1d07a";
    const PROGRAM_VALUE: &str = "cm-program-canary-93c4e2f8";
    const BIN: &str = env!("CARGO_BIN_EXE_code-mode");

    fn servers() -> std::path::PathBuf {
        std::env::var_os("CODE_MODE_TEST_MCP_SERVERS")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| {
                panic!("CODE_MODE_TEST_MCP_SERVERS is not set: run `cargo xtask test`")
            })
    }

    #[test]
    fn secrets_reach_only_where_they_are_sent() {
        let odd = servers().join("odd-server.mjs");
        // The HTTP upstream: the header with the host secret is its to receive.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or_else(|e| panic!("{e}"));
        let mut web = std::process::Command::new("node")
            .arg(&odd)
            .arg("--http")
            .env("PORT", port.to_string())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{e}"));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "the HTTP server did not start"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let dir = std::env::temp_dir().join(format!("code-mode-canary-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        let config = dir.join("mcp.json");
        let text = serde_json::json!({"mcpServers": {
            "local": {"command": "node", "args": [odd, "canary-local"]},
            "web": {"url": format!("http://127.0.0.1:{port}/mcp"), "headers": {"X-Api-Key": "${CM_CANARY_SECRET}"}}
        }});
        std::fs::write(&config, text.to_string()).unwrap_or_else(|e| panic!("{e}"));
        let program = dir.join("program.ts");
        std::fs::write(
            &program,
            format!(
                "const env = await external_local_env({{}});\n\
                 const echoed = await external_web_echo({{ text: '{PROGRAM_VALUE}' }});\n\
                 const leaked = env.text.includes('CM_CANARY_SECRET') || env.text.includes('{HOST_SECRET}');\n\
                 console.log('echo length', echoed.text.length);\n\
                 const checked: number = env.text;\n\
                 return {{ leaked, same: echoed.text === '{PROGRAM_VALUE}', value: echoed.text }};"
            ),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let (otlp, exported) = receiver();
        let out = std::process::Command::new(BIN)
            .args(["run", "--events", "--typecheck", "report", "--mcp-config"])
            .arg(&config)
            .arg(&program)
            .env("CM_CANARY_SECRET", HOST_SECRET)
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", &otlp)
            .env_remove("RUST_LOG")
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        let _ = web.kill();
        let _ = web.wait();
        let (stdout, stderr) = (out.stdout, out.stderr);
        let shown = String::from_utf8_lossy(&stderr).into_owned();
        let result: serde_json::Value = serde_json::from_slice(&stdout)
            .unwrap_or_else(|e| panic!("{e}: {}\n{shown}", String::from_utf8_lossy(&stdout)));
        // It ran, with both upstreams, the check and the export.
        assert_eq!(result["result"]["same"], true, "{result}\n{shown}");
        assert_eq!(
            result["result"]["leaked"], false,
            "the stdio upstream inherited the host secret: {result}"
        );
        // The check ran (one deliberate mistake) and says nothing of either canary.
        let type_errors = result["typeErrors"].to_string();
        assert!(
            type_errors.contains("is not assignable to type 'number'"),
            "{result}"
        );
        assert!(
            !type_errors.contains(HOST_SECRET) && !type_errors.contains(PROGRAM_VALUE),
            "{type_errors}"
        );
        let exported: Vec<u8> = exported
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .flat_map(|(_, body)| body.clone())
            .collect();
        assert!(contains(&exported, "execute_tool"), "nothing was exported");
        // The host secret: nowhere.
        for (sink, text) in [
            ("stdout", &stdout),
            ("stderr (events and logs)", &stderr),
            ("the OTLP export", &exported),
        ] {
            assert!(
                !contains(text, HOST_SECRET),
                "the host secret reached {sink}"
            );
        }
        // The program's value: its result, and its tool call's events, only.
        assert!(
            !contains(&exported, PROGRAM_VALUE),
            "the program's value reached the OTLP export"
        );
        assert_eq!(result["result"]["value"], PROGRAM_VALUE);
        for line in shown.lines().filter(|l| l.contains(PROGRAM_VALUE)) {
            let event: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|_| {
                panic!("the program's value reached stderr outside the events: {line}")
            });
            let name = event["name"].as_str().unwrap_or_default();
            assert!(
                matches!(
                    name,
                    "code_mode:external_call" | "code_mode:external_result"
                ),
                "the program's value reached the event {name}: {line}"
            );
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
