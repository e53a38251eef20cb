//! Upstream MCP servers as sandbox functions, against the official
//! `@modelcontextprotocol/server-everything` (pinned in `tests/servers/`), over stdio and
//! over Streamable HTTP on 127.0.0.1. `cargo xtask test` installs it and sets
//! `CODE_MODE_TEST_MCP_SERVERS`; without it these tests fail with the command to run.

mod upstream {
    use std::path::PathBuf;
    use std::sync::Arc;
    use std::time::Duration;

    use code_mode::{CodeMode, CodeModeResult, Event, EventSink, ExecuteOptions, Limits};
    use code_mode_mcp::{McpConfig, McpError, McpOptions, McpTools, PROGRESS_EVENT};
    use serde_json::{Value, json};

    fn servers() -> PathBuf {
        let dir = std::env::var_os("CODE_MODE_TEST_MCP_SERVERS").map(PathBuf::from).unwrap_or_else(|| {
            panic!("CODE_MODE_TEST_MCP_SERVERS is not set: run `cargo xtask test` (it installs the test MCP servers from npm into .cache/mcp-servers)")
        });
        assert!(
            dir.join("node_modules").is_dir(),
            "{} has no node_modules",
            dir.display()
        );
        dir
    }

    /// A free port on 127.0.0.1.
    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Starts `node ARGS` serving HTTP on 127.0.0.1:`port` (as `PORT`) and waits until it
    /// listens; killed when dropped.
    async fn node_http<S: AsRef<std::ffi::OsStr>>(args: &[S], port: u16) -> tokio::process::Child {
        let server = tokio::process::Command::new("node")
            .args(args)
            .env("PORT", port.to_string())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("{e}"));
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "the HTTP server did not start"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        server
    }

    fn everything_js() -> String {
        servers()
            .join("node_modules/@modelcontextprotocol/server-everything/dist/index.js")
            .to_string_lossy()
            .into_owned()
    }

    /// A stdio configuration; `marker` is an extra argument that lets a test find the process.
    fn stdio_config(marker: &str) -> McpConfig {
        let text = json!({"mcpServers": {"everything": {
            "command": "node",
            "args": [everything_js(), "stdio", marker],
            "env": {"CONFIGURED": "${CODE_MODE_MCP_TEST_CONFIGURED:-from-config}"}
        }}});
        McpConfig::parse(&text.to_string()).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Native QuickJS with `tools` and `timeout`.
    fn code_mode(tools: Vec<code_mode::Tool>, timeout: Duration) -> CodeMode {
        CodeMode::builder()
            .driver(
                code_mode_drivers::driver_by_name("quickjs", &Default::default())
                    .unwrap_or_else(|e| panic!("{e}")),
            )
            .tools(tools)
            .limits(
                Limits::builder()
                    .timeout(timeout)
                    .build()
                    .unwrap_or_else(|e| panic!("{e}")),
            )
            .build()
            .unwrap_or_else(|e| panic!("{e}"))
    }

    async fn run(cm: &CodeMode, code: &str) -> (CodeModeResult, Vec<Event>) {
        let (sink, mut rx) = EventSink::channel();
        let r = cm.execute(code, ExecuteOptions::new("t1", sink)).await;
        let mut events = Vec::new();
        while let Ok(e) = rx.try_recv() {
            events.push(e);
        }
        (r, events)
    }

    fn ok(r: &CodeModeResult) -> Value {
        assert!(r.success, "{r:?}");
        r.result.clone().unwrap_or(Value::Null)
    }

    /// Over stdio: typed stubs, a sum, structured content, an image, a catchable upstream
    /// error, progress events before the result, and a clean environment.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn stdio_upstream_tools_work_from_a_program() {
        // SAFETY: set before any thread of this test reads the environment.
        unsafe { std::env::set_var("CODE_MODE_MCP_TEST_SECRET", "hunter2-host-only") };
        let tools = McpTools::connect(&stdio_config("--stdio-test"), McpOptions::default())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(tools.servers(), vec!["everything"]);
        let cm = code_mode(tools.tools(), Duration::from_secs(20));
        let prompt = cm.system_prompt();
        assert!(prompt.contains("external_everything_get_sum"), "{prompt}");
        assert!(prompt.contains("read-only"), "hints reach the JSDoc");

        let (r, _) = run(
            &cm,
            "const r = await external_everything_get_sum({ a: 2, b: 3 }); return r.text",
        )
        .await;
        assert_eq!(ok(&r), json!("The sum of 2 and 3 is 5."));

        let (r, _) = run(&cm, "const w = await external_everything_get_structured_content({ location: 'Chicago' }); return w.temperature + w.humidity").await;
        assert_eq!(ok(&r), json!(36 + 82));

        let (r, _) = run(&cm, "const r = await external_everything_get_tiny_image({}); return r.content.filter((b) => b.type === 'image').map((b) => [b.mimeType, b.bytes > 0, typeof b.data])").await;
        assert_eq!(ok(&r), json!([["image/png", true, "string"]]));

        let (r, _) = run(&cm, "try { await external_everything_gzip_file_as_resource({ name: 'x.gz', data: 'file:///etc/hostname', outputType: 'resource' }); return 'no error'; } catch (e) { return (e as Error).message; }").await;
        let message = ok(&r);
        assert!(
            message
                .as_str()
                .is_some_and(|m| m.contains("Unsupported URL protocol")),
            "{message}"
        );

        let (r, events) = run(&cm, "const r = await external_everything_trigger_long_running_operation({ duration: 0.6, steps: 3 }); return r.text").await;
        assert!(
            ok(&r).as_str().is_some_and(|t| t.contains("completed")),
            "{r:?}"
        );
        let names: Vec<&str> = events.iter().map(Event::name).collect();
        let progress: Vec<&Event> = events
            .iter()
            .filter(|e| e.name() == PROGRESS_EVENT)
            .collect();
        assert_eq!(progress.len(), 3, "{names:?}");
        let first_progress = names.iter().position(|n| *n == PROGRESS_EVENT);
        let result = names.iter().position(|n| *n == "code_mode:external_result");
        assert!(first_progress < result, "{names:?}");
        assert_eq!(
            progress[0].value()["function"],
            "external_everything_trigger_long_running_operation"
        );
        assert_eq!(progress[0].value()["toolCallId"], "t1");
        assert_eq!(progress[2].value()["total"], json!(3.0));

        // The child got its configured env, and none of this process's other variables.
        let (r, _) = run(&cm, "return (await external_everything_get_env({})).text").await;
        let env: Value = serde_json::from_str(ok(&r).as_str().unwrap_or("{}")).unwrap_or_default();
        assert_eq!(env["CONFIGURED"], "from-config");
        assert!(env.get("CODE_MODE_MCP_TEST_SECRET").is_none(), "{env}");
        assert!(env.get("CODE_MODE_TEST_MCP_SERVERS").is_none(), "{env}");
    }

    /// An upstream killed during a call: the call fails with a clear, catchable error, and
    /// the next execution starts the server again.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_killed_upstream_fails_its_call_and_restarts() {
        let marker = format!("code-mode-kill-test-{}", std::process::id());
        let tools = McpTools::connect(&stdio_config(&marker), McpOptions::default())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let cm = code_mode(tools.tools(), Duration::from_secs(20));
        let killer = tokio::spawn({
            let marker = marker.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(700)).await;
                let status = tokio::process::Command::new("pkill")
                    .args(["-KILL", "-f", &marker])
                    .status()
                    .await;
                assert!(status.is_ok_and(|s| s.success()), "pkill found no upstream");
            }
        });
        let (r, _) = run(&cm, "try { await external_everything_trigger_long_running_operation({ duration: 10, steps: 2 }); return 'finished'; } catch (e) { return (e as Error).message; }").await;
        killer.await.unwrap_or_else(|e| panic!("{e}"));
        let message = ok(&r);
        assert!(
            message
                .as_str()
                .is_some_and(|m| m.contains("everything") && m.contains("restarted on next use")),
            "{message}"
        );
        let (r, _) = run(
            &cm,
            "return (await external_everything_get_sum({ a: 20, b: 22 })).text",
        )
        .await;
        assert_eq!(ok(&r), json!("The sum of 20 and 22 is 42."));
    }

    /// Over Streamable HTTP, with a header taken from the environment.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn http_upstream_tools_work_from_a_program() {
        let port = free_port();
        let loopback = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/servers/loopback.mjs");
        let mut server = node_http(
            &[
                "--import".to_owned(),
                format!("file://{}", loopback.display()),
                everything_js(),
                "streamableHttp".to_owned(),
            ],
            port,
        )
        .await;
        let text = json!({"mcpServers": {"remote": {
            "url": format!("http://127.0.0.1:{port}/mcp"),
            "headers": {"X-Test": "${CODE_MODE_MCP_TEST_HEADER:-on}"}
        }}});
        let config = McpConfig::parse(&text.to_string()).unwrap_or_else(|e| panic!("{e}"));
        let tools = McpTools::connect(&config, McpOptions::default())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let cm = code_mode(tools.tools(), Duration::from_secs(20));
        let (r, _) = run(&cm, "const [a, b] = await Promise.all([external_remote_get_sum({ a: 1, b: 2 }), external_remote_get_structured_content({ location: 'Los Angeles' })]); return [a.text, b.conditions]").await;
        assert_eq!(ok(&r), json!(["The sum of 1 and 2 is 3.", "Sunny / Clear"]));
        let (r, events) = run(&cm, "return (await external_remote_trigger_long_running_operation({ duration: 0.4, steps: 2 })).text").await;
        assert!(
            ok(&r).as_str().is_some_and(|t| t.contains("completed")),
            "{r:?}"
        );
        assert_eq!(
            events.iter().filter(|e| e.name() == PROGRESS_EVENT).count(),
            2
        );
        let _ = server.kill().await;
    }

    /// Bad upstreams are clear errors naming the server, never a hang or a panic.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn unusable_upstreams_are_named() {
        let options = McpOptions {
            startup_timeout: Duration::from_secs(3),
            strict: true,
            ..McpOptions::default()
        };
        for (config, needle) in [
            (
                json!({"mcpServers": {"ghost": {"command": "/nonexistent/mcp-server"}}}),
                "cannot start",
            ),
            // A program that is not an MCP server: prints text and exits.
            (
                json!({"mcpServers": {"echo": {"command": "sh", "args": ["-c", "echo not-mcp; echo oops >&2"]}}}),
                "not a working MCP server",
            ),
            // One that never answers.
            (
                json!({"mcpServers": {"mute": {"command": "sleep", "args": ["30"]}}}),
                "no answer to `initialize`",
            ),
            // Nothing listens: the cause in words, no Rust type names, no credentials.
            (
                json!({"mcpServers": {"nothing": {"url": "http://user:s3cret@127.0.0.1:9/mcp?key=s3cret"}}}),
                "cannot reach http://127.0.0.1:9/mcp: Connection refused",
            ),
        ] {
            let config = McpConfig::parse(&config.to_string()).unwrap_or_else(|e| panic!("{e}"));
            let started = std::time::Instant::now();
            let e = McpTools::connect(&config, options.clone())
                .await
                .err()
                .unwrap_or_else(|| panic!("{config:?} connected"));
            assert!(matches!(e, McpError::Start { .. }), "{e:?}");
            let text = e.to_string();
            assert!(text.contains(&config.servers[0].name), "{text}");
            assert!(text.contains(needle), "{text}");
            assert!(
                !text.contains("rmcp::") && !text.contains("Transport ["),
                "{text}"
            );
            assert!(!text.contains("s3cret"), "{text}");
            assert!(started.elapsed() < Duration::from_secs(10), "{text}");
        }
    }

    /// Without `strict`, servers that cannot be used are left out, each named with why, the
    /// others' tools are offered, and a server that comes up later is tried again in the
    /// background: its tools are offered after the next refresh.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn unusable_upstreams_are_left_out_and_tried_again() {
        let port = free_port();
        let odd = servers()
            .join("odd-server.mjs")
            .to_string_lossy()
            .into_owned();
        let text = json!({"mcpServers": {
            "ghost": {"command": "/nonexistent/mcp-server"},
            "good": {"command": "node", "args": [odd.clone(), "tolerant-good"]},
            "late": {"url": format!("http://127.0.0.1:{port}/mcp")}
        }});
        let config = McpConfig::parse(&text.to_string()).unwrap_or_else(|e| panic!("{e}"));
        let tools = McpTools::connect(
            &config,
            McpOptions {
                startup_timeout: Duration::from_secs(5),
                ..McpOptions::default()
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        let names: Vec<String> = tools.tools().iter().map(|t| t.name().to_owned()).collect();
        assert!(names.iter().any(|n| n == "good_trace"), "{names:?}");
        assert!(
            !names
                .iter()
                .any(|n| n.starts_with("late_") || n.starts_with("ghost_")),
            "{names:?}"
        );
        let unavailable = tools.unavailable();
        let servers: Vec<&str> = unavailable.iter().map(|(s, _)| s.as_str()).collect();
        assert_eq!(servers, ["ghost", "late"], "{unavailable:?}");
        assert!(unavailable[0].1.contains("cannot start"), "{unavailable:?}");
        assert!(
            unavailable[1].1.contains("Connection refused"),
            "{unavailable:?}"
        );
        // The late server comes up: the background retry finds it.
        let mut server = node_http(&[odd.as_str(), "--http"], port).await;
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !tools.changed() {
            assert!(
                std::time::Instant::now() < deadline,
                "the late server was never tried again"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let fresh = tools.refresh().await.unwrap_or_else(|e| panic!("{e}"));
        let names: Vec<String> = fresh.iter().map(|t| t.name().to_owned()).collect();
        assert!(names.iter().any(|n| n == "late_trace"), "{names:?}");
        let unavailable = tools.unavailable();
        assert_eq!(unavailable.len(), 1, "{unavailable:?}");
        let cm = code_mode(fresh, Duration::from_secs(20));
        let r = cm
            .execute(
                "return (await external_late_r_sum__v2_tool({})).text",
                ExecuteOptions::default(),
            )
            .await;
        assert_eq!(r.result, Some(json!("odd name works")), "{r:?}");
        let _ = server.kill().await;
    }

    /// Two servers whose tools map to one name: an error naming both tools.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn colliding_names_are_refused() {
        let js = everything_js();
        let text = json!({"mcpServers": {
            "a-b": {"command": "node", "args": [js.clone(), "stdio"]},
            "a_b": {"command": "node", "args": [js, "stdio"]}
        }});
        let config = McpConfig::parse(&text.to_string()).unwrap_or_else(|e| panic!("{e}"));
        let e = McpTools::connect(&config, McpOptions::default())
            .await
            .err()
            .unwrap_or_else(|| panic!("connected"));
        let text = e.to_string();
        assert!(
            text.contains("a-b/echo") && text.contains("a_b/echo"),
            "{text}"
        );
    }

    /// Past the lazy threshold, the prompt lists names and `discover_tools` gives the rest.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn large_catalogs_become_lazy() {
        let options = McpOptions {
            lazy_threshold: 3,
            ..McpOptions::default()
        };
        let tools = McpTools::connect(&stdio_config("--lazy-test"), options)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(tools.tools().iter().all(|t| t.is_lazy()));
        let cm = Arc::new(code_mode(tools.tools(), Duration::from_secs(20)));
        assert!(cm.discover_tool_spec().is_some());
        let found = cm.discover(&json!({"toolNames": ["everything_get_sum"]}));
        assert!(
            found.to_string().contains("external_everything_get_sum"),
            "{found}"
        );
        let (r, _) = run(
            &cm,
            "return (await external_everything_get_sum({ a: 1, b: 1 })).text",
        )
        .await;
        assert_eq!(ok(&r), json!("The sum of 1 and 1 is 2."));
    }

    /// Tests against a small SDK-based server (`tests/servers/odd-server.mjs`).
    mod odd {
        use std::time::Duration;

        use code_mode::ExecuteOptions;
        use code_mode_mcp::{McpConfig, McpError, McpOptions, McpTools};
        use serde_json::json;

        use super::{code_mode, free_port, node_http, servers};

        fn config(extra: &[&str], marker: &str) -> McpConfig {
            let dir = servers();
            let mut args = vec![
                dir.join("odd-server.mjs").to_string_lossy().into_owned(),
                marker.to_owned(),
            ];
            args.extend(extra.iter().map(|s| (*s).to_owned()));
            let text = json!({"mcpServers": {"odd": {"command": "node", "args": args}}});
            McpConfig::parse(&text.to_string()).unwrap_or_else(|e| panic!("{e}"))
        }

        /// A call from a traced execution carries its trace context to the upstream server in
        /// `_meta` (SEP-414): the tool call's own span is the remote parent.
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn trace_context_reaches_the_upstream_server() {
            code_mode_otel::install_propagation();
            let tools = McpTools::connect(&config(&[], "odd-trace"), McpOptions::default())
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            let cm = code_mode(tools.tools(), Duration::from_secs(20));
            let seen = std::sync::Arc::new(std::sync::Mutex::new(None));
            let sink = seen.clone();
            let run = async move {
                let r = cm
                    .execute(
                        "return JSON.parse((await external_odd_trace({})).text)",
                        ExecuteOptions::default(),
                    )
                    .await;
                *sink.lock().unwrap_or_else(|e| e.into_inner()) = r.result;
            };
            let Some((_root, spans)) = code_mode_conformance::spans::record(2, run).await else {
                panic!("no span exporter in this process");
            };
            let got = seen.lock().unwrap_or_else(|e| e.into_inner()).clone();
            let traceparent = got
                .as_ref()
                .and_then(|v| v["traceparent"].as_str())
                .unwrap_or_else(|| panic!("no traceparent reached the server: {got:?}"))
                .to_owned();
            let call = spans
                .iter()
                .find(|s| s.name == "execute_tool external_odd_trace")
                .unwrap_or_else(|| panic!("{spans:#?}"));
            let parts: Vec<&str> = traceparent.split('-').collect();
            assert_eq!(parts.len(), 4, "{traceparent}");
            assert_eq!(parts[2], format!("{:016x}", call.id), "{traceparent}");
        }

        /// A `requireApproval` entry naming no tool of its server (another spelling, a typo,
        /// another case, the sandbox's spelling) refuses the configuration, naming the closest
        /// tools: the tool would otherwise run unasked. Exact names connect and are marked.
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn approvals_naming_no_tool_are_refused() {
            let with = |names: serde_json::Value| {
                let odd = servers()
                    .join("odd-server.mjs")
                    .to_string_lossy()
                    .into_owned();
                let text = json!({"mcpServers": {"odd": {"command": "node", "args": [odd, "odd-approvals"], "requireApproval": names}}});
                McpConfig::parse(&text.to_string()).unwrap_or_else(|e| panic!("{e}"))
            };
            for (name, closest) in [
                ("add-tool", Some("add_tool")),
                ("ADD_TOOL", Some("add_tool")),
                ("tracer", Some("trace")),
                ("r_sum__v2_tool", Some("résumé.v2 tool")),
                ("external_odd_fail", None),
                ("nothing-like-it-at-all", None),
            ] {
                let e = McpTools::connect(&with(json!(["trace", name])), McpOptions::default())
                    .await
                    .err()
                    .unwrap_or_else(|| panic!("{name}: accepted"));
                let McpError::UnknownApproval {
                    server,
                    name: got,
                    closest: near,
                } = &e
                else {
                    panic!("{name}: {e:?}");
                };
                assert_eq!((server.as_str(), got.as_str()), ("odd", name));
                let text = e.to_string();
                assert!(text.contains(&format!("`{name}`")), "{text}");
                match closest {
                    Some(c) => assert_eq!(near.first().map(String::as_str), Some(c), "{text}"),
                    None => assert!(!near.iter().any(|n| n == "trace"), "{text}"),
                }
            }
            let tools = McpTools::connect(
                &with(json!(["add_tool", "résumé.v2 tool"])),
                McpOptions::default(),
            )
            .await
            .unwrap_or_else(|e| panic!("{e}"));
            let marked: Vec<String> = tools
                .tools()
                .iter()
                .filter(|t| !t.approval_policy().is_never())
                .map(|t| t.name().to_owned())
                .collect();
            assert!(marked.contains(&"odd_add_tool".to_owned()), "{marked:?}");
            assert!(
                marked.contains(&"odd_r_sum__v2_tool".to_owned()),
                "{marked:?}"
            );
            assert_eq!(marked.len(), 2, "{marked:?}");
        }

        /// A tool output nested past the value limit is the program's catchable nesting error
        /// at every depth, including past the JSON parser's own recursion limit (the response
        /// used to be dropped there, and the call waited for the execution's timeout); the
        /// connection keeps working afterwards. (2,000 is about the deepest the TypeScript SDK
        /// server itself can send; `stdio.rs` tests deeper lines.)
        /// With `unreadable_is_enough`, an answer too deep for the JSON parser may instead fail
        /// as unreadable (plain JSON bodies, which rmcp parses before anything can check them).
        async fn deep_outputs_are_refused(tools: McpTools, unreadable_is_enough: bool) {
            let cm = code_mode(tools.tools(), Duration::from_secs(30));
            let r = cm
                .execute(
                    "return (await external_odd_deep({ levels: 40 })).structuredContent.value.length",
                    ExecuteOptions::default(),
                )
                .await;
            assert_eq!(r.result, Some(json!(1)), "{r:?}");
            for levels in [
                70, 100, 115, 116, 117, 118, 119, 120, 121, 122, 123, 124, 125, 126, 127, 128, 129,
                300, 2000,
            ] {
                let r = cm
                    .execute(
                        &format!("try {{ await external_odd_deep({{ levels: {levels} }}); return 'no error'; }} catch (e) {{ return (e as Error).message; }}"),
                        ExecuteOptions::default(),
                    )
                    .await;
                let message = r
                    .result
                    .as_ref()
                    .and_then(|v| v.as_str())
                    .unwrap_or_else(|| panic!("{levels} levels: {r:?}"));
                assert!(
                    message.contains("levels of arrays and objects deep; the limit is 64")
                        || (unreadable_is_enough
                            && message.contains("the MCP server's answer cannot be read")
                            && message.contains("recursion limit exceeded")),
                    "{levels} levels: {message}"
                );
            }
            let r = cm
                .execute(
                    "return (await external_odd_r_sum__v2_tool({})).text",
                    ExecuteOptions::default(),
                )
                .await;
            assert_eq!(r.result, Some(json!("odd name works")), "{r:?}");
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn deep_outputs_are_refused_over_stdio() {
            let tools = McpTools::connect(&config(&[], "odd-deep"), McpOptions::default())
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            deep_outputs_are_refused(tools, false).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn deep_outputs_are_refused_over_http_event_streams() {
            deep_outputs_are_refused_over_http(false).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn deep_outputs_are_refused_over_http_json_bodies() {
            deep_outputs_are_refused_over_http(true).await;
        }

        async fn deep_outputs_are_refused_over_http(json_bodies: bool) {
            let port = free_port();
            let odd = servers()
                .join("odd-server.mjs")
                .to_string_lossy()
                .into_owned();
            let mut args = vec![odd.as_str(), "--http"];
            args.extend(json_bodies.then_some("--json"));
            let mut server = node_http(&args, port).await;
            let text =
                json!({"mcpServers": {"odd": {"url": format!("http://127.0.0.1:{port}/mcp")}}});
            let config = McpConfig::parse(&text.to_string()).unwrap_or_else(|e| panic!("{e}"));
            let tools = McpTools::connect(&config, McpOptions::default())
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            deep_outputs_are_refused(tools, json_bodies).await;
            let _ = server.kill().await;
        }

        /// Names that are not identifiers are mapped; an `isError` result is catchable; a tool
        /// added by the server (with `notifications/tools/list_changed`) is offered after a
        /// refresh.
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn odd_names_errors_and_list_changes() {
            let tools = McpTools::connect(&config(&[], "odd-names"), McpOptions::default())
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            let cm = code_mode(tools.tools(), Duration::from_secs(20));
            let r = cm.execute("const a = await external_odd_r_sum__v2_tool({}); try { await external_odd_fail({}); return 'no'; } catch (e) { return [a.text, (e as Error).message]; }", ExecuteOptions::default()).await;
            assert_eq!(
                r.result,
                Some(json!(["odd name works", "the odd tool failed on purpose"])),
                "{r:?}"
            );
            assert!(!tools.changed());
            let r = cm
                .execute(
                    "return (await external_odd_add_tool({})).text",
                    ExecuteOptions::default(),
                )
                .await;
            assert_eq!(r.result, Some(json!("added")), "{r:?}");
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            while !tools.changed() {
                assert!(
                    std::time::Instant::now() < deadline,
                    "list_changed never arrived"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let cm = code_mode(
                tools.refresh().await.unwrap_or_else(|e| panic!("{e}")),
                Duration::from_secs(20),
            );
            assert!(!tools.changed());
            let r = cm
                .execute(
                    "return (await external_odd_added({})).text",
                    ExecuteOptions::default(),
                )
                .await;
            assert_eq!(r.result, Some(json!("the added tool runs")), "{r:?}");
        }

        /// An inputSchema that is not a valid JSON Schema: an error naming the tool.
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn an_invalid_input_schema_names_the_tool() {
            let e = McpTools::connect(&config(&["--bad-schema"], "odd-bad"), McpOptions::default())
                .await
                .err()
                .unwrap_or_else(|| panic!("connected"));
            assert!(matches!(e, McpError::Tool { .. }), "{e:?}");
            let text = e.to_string();
            assert!(
                text.contains("odd/broken") && text.contains("input"),
                "{text}"
            );
        }

        /// An upstream that stops answering (SIGSTOP) during a call: the execution ends at its
        /// deadline, and the next use finds it silent (a ping), starts a fresh one and works.
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn a_hung_upstream_is_restarted_on_next_use() {
            let marker = format!("code-mode-hang-test-{}", std::process::id());
            let tools = McpTools::connect(&config(&[], &marker), McpOptions::default())
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            let status = std::process::Command::new("pkill")
                .args(["-STOP", "-f", &marker])
                .status();
            assert!(status.is_ok_and(|s| s.success()), "no upstream to stop");
            let short = code_mode(tools.tools(), Duration::from_millis(800));
            let r = short
                .execute(
                    "return (await external_odd_fail({})).text",
                    ExecuteOptions::default(),
                )
                .await;
            assert_eq!(r.error.map(|e| e.kind), Some(code_mode::ErrorKind::Timeout));
            let cm = code_mode(tools.tools(), Duration::from_secs(20));
            let r = cm
                .execute(
                    "return (await external_odd_r_sum__v2_tool({})).text",
                    ExecuteOptions::default(),
                )
                .await;
            assert_eq!(r.result, Some(json!("odd name works")), "{r:?}");
            let _ = std::process::Command::new("pkill")
                .args(["-KILL", "-f", &marker])
                .status();
        }
    }
}
