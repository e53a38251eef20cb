//! The `code-mode` binary: output shape, exit codes, events, limits, demo.

use std::io::Write;

use assert_cmd::Command;
use serde_json::Value;

mod common;

fn code_mode() -> Command {
    match Command::cargo_bin("code-mode") {
        Ok(c) => c,
        Err(e) => panic!("binary not built: {e}"),
    }
}

fn json_stdout(out: &std::process::Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

fn temp_file(code: &str) -> tempfile_like::Temp {
    tempfile_like::Temp::new(code)
}

/// A minimal temporary file helper (no extra dependency).
mod tempfile_like {
    use super::Write;
    use std::path::PathBuf;

    pub struct Temp(pub PathBuf);

    impl Temp {
        pub fn new(content: &str) -> Self {
            static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
            let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let path = std::env::temp_dir()
                .join(format!("code-mode-cli-test-{}-{n}.ts", std::process::id()));
            let mut f = std::fs::File::create(&path).unwrap_or_else(|e| panic!("temp file: {e}"));
            f.write_all(content.as_bytes())
                .unwrap_or_else(|e| panic!("temp file: {e}"));
            Self(path)
        }
    }

    impl Drop for Temp {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

#[test]
fn run_file_prints_the_result_and_exits_0() {
    let file = temp_file(
        "const n: number = (await external_echo({ n: 20 })).n;\nconsole.info('n is', n);\nreturn { answer: n + 22 };",
    );
    let out = code_mode()
        .arg("run")
        .arg(&file.0)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.status.code(), Some(0));
    let v = json_stdout(&out);
    assert_eq!(v["success"], Value::Bool(true));
    assert_eq!(v["result"]["answer"], serde_json::json!(42));
    assert_eq!(v["logs"][0], serde_json::json!("INFO: n is 20"));
}

#[test]
fn failing_code_exits_1_with_the_error_and_line() {
    let out = code_mode()
        .args(["run", "-"])
        .write_stdin("const a = 1;\nthrow new RangeError('too big');")
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.status.code(), Some(1));
    let v = json_stdout(&out);
    assert_eq!(v["success"], Value::Bool(false));
    assert_eq!(
        v["error"],
        serde_json::json!({"name": "RangeError", "message": "too big", "line": 2})
    );
}

#[test]
fn infinite_loop_is_cut_by_the_timeout() {
    let out = code_mode()
        .args(["run", "-", "--timeout-ms", "200"])
        .write_stdin("while (true) {}")
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        json_stdout(&out)["error"]["name"],
        serde_json::json!("TimeoutError")
    );
}

#[test]
fn limits_are_checked() {
    for args in [
        ["--timeout-ms", "0"],
        ["--memory-mb", "0"],
        ["--stack-kb", "1"],
        ["--max-tool-calls", "0"],
    ] {
        let out = code_mode()
            .args(["run", "-"])
            .args(args)
            .write_stdin("return 1")
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("out of range"),
            "{args:?}"
        );
    }
}

#[test]
fn usage_errors_exit_2() {
    let out = code_mode()
        .args(["run", "/nonexistent/file.ts"])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read"));
    let disabled = code_mode_drivers::ALL_DRIVERS
        .iter()
        .find(|d| !code_mode_drivers::enabled_drivers().contains(d));
    if let Some(disabled) = disabled {
        let out = code_mode()
            .args(["run", "-", "--driver", disabled])
            .write_stdin("return 1")
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(out.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&out.stderr).contains("not enabled"));
    }
    let out = code_mode()
        .args(["frobnicate"])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn events_stream_as_json_lines_on_stderr() {
    let out = code_mode()
        .args(["run", "-", "--events"])
        .write_stdin("console.log('hello');\nawait external_sleep({ ms: 5 });\nreturn 1;")
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.status.code(), Some(0));
    let names: Vec<String> = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .map(|v| v["name"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(
        names,
        [
            "code_mode:execution_started",
            "code_mode:console",
            "code_mode:external_call",
            "code_mode:external_result",
            "code_mode:execution_finished"
        ]
    );
}

#[test]
fn demo_runs_and_shows_prompt_events_and_result() {
    let out = code_mode()
        .arg("demo")
        .env("NO_COLOR", "1")
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "== System prompt given to the model ==",
        "declare function external_listProducts",
        "→ external_listProducts({\"category\":\"keyboards\"})",
        "[console.log] 3 of 6 products are low on stock",
        "→ external_createReorder",
        "execution finished: success",
        "\"stockValueEur\": 11321",
    ] {
        assert!(
            text.contains(needle),
            "demo output lacks {needle:?}:\n{text}"
        );
    }
}

/// `--driver quickjs-wasm` runs the program in QuickJS inside wasmtime, with the same result
/// shape; a memory bomb is a structured `MemoryLimitError`, not a crash.
#[test]
#[cfg(feature = "quickjs-wasm")]
fn the_quickjs_wasm_driver_is_selectable() {
    let out = code_mode()
        .args(["run", "-", "--driver", "quickjs-wasm"])
        .write_stdin("const n: number = 6; console.log('in wasm'); return n * 7")
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json = json_stdout(&out);
    assert_eq!(json["result"], serde_json::json!(42));
    assert!(json.to_string().contains("in wasm"), "{json}");
    let bomb = code_mode()
        .args(["run", "-", "--driver", "quickjs-wasm"])
        .write_stdin("const a = []; while (true) a.push(new Array(100000).fill(1));")
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(String::from_utf8_lossy(&bomb.stdout).contains("MemoryLimitError"));
}

/// `--driver v8` runs the program on the V8 sidecar (built with `--features v8`; the
/// runtime is installed by `cargo xtask test`).
#[test]
#[cfg(feature = "v8")]
fn the_v8_driver_is_selectable() {
    let out = code_mode()
        .args(["run", "-", "--driver", "v8"])
        .write_stdin("const n: number = 6; return n * 7")
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(json_stdout(&out)["result"], serde_json::json!(42));
}

/// `--driver cloudflare --worker-url URL` runs the program in the crate's Worker on a local
/// workerd; the authorization comes from the environment, never from a flag.
#[test]
#[cfg(feature = "cloudflare")]
fn the_cloudflare_driver_is_selectable() {
    use code_mode_isolate_cloudflare::LocalWorkerd;
    let binary = LocalWorkerd::locate().unwrap_or_else(|e| panic!("{e}"));
    let workerd = LocalWorkerd::start(&binary, Some("cli-token")).unwrap_or_else(|e| panic!("{e}"));
    let url = workerd.url();
    let out = code_mode()
        .args(["run", "-", "--driver", "cloudflare", "--worker-url", &url])
        .env("CODE_MODE_WORKER_AUTHORIZATION", "Bearer cli-token")
        .write_stdin("const n: number = 6; return n * 7")
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(json_stdout(&out)["result"], serde_json::json!(42));
    let refused = code_mode()
        .args(["run", "-", "--driver", "cloudflare", "--worker-url", &url])
        .env_remove("CODE_MODE_WORKER_AUTHORIZATION")
        .write_stdin("return 1")
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stdout).contains("refused the authorization"));
}

/// `--typecheck`: needs the compiler (`cargo xtask test` skips `compiler::` without npm).
mod compiler {
    use super::*;

    const MISTAKE: &str = "const s = await external_sleep({ ms: '5' });\nreturn s.slept;\n";

    #[test]
    fn typecheck_block_runs_nothing_and_report_runs_anyway() {
        let file = temp_file(MISTAKE);
        let out = code_mode()
            .args(["run", "--typecheck", "block"])
            .arg(&file.0)
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(out.status.code(), Some(1));
        let v = json_stdout(&out);
        assert_eq!(v["error"]["name"], "TypeCheckError", "{v}");
        assert_eq!(v["error"]["line"], 1, "{v}");
        let out = code_mode()
            .args(["run", "--typecheck", "report"])
            .arg(&file.0)
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        let v = json_stdout(&out);
        // It ran: the tool refused the string at run time, and the check said so before.
        assert!(
            v["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("is not of type")),
            "{v}"
        );
        assert_eq!(v["typeErrors"][0]["code"], 2322, "{v}");
        assert_eq!(v["typeErrors"][0]["line"], 1, "{v}");
    }

    /// `CODE_MODE_TYPESCRIPT` given relative to the working directory works (it failed with
    /// "No such file or directory" once the helper ran in the runtime's folder), and with
    /// nothing set and an empty user cache, the runtime `cargo xtask test` provisioned in the
    /// checkout's `.cache/typescript` is found: the README's command works after the tests.
    #[test]
    fn the_runtime_is_found_from_a_relative_path_or_the_checkout() {
        let runtime =
            std::path::PathBuf::from(std::env::var_os("CODE_MODE_TYPESCRIPT").unwrap_or_else(
                || panic!("CODE_MODE_TYPESCRIPT is not set: run `cargo xtask test`"),
            ));
        let (Some(parent), Some(name)) = (runtime.parent(), runtime.file_name()) else {
            panic!("{}", runtime.display());
        };
        let file = temp_file(MISTAKE);
        let blocked = |out: std::process::Output| {
            let v = json_stdout(&out);
            assert_eq!(
                v["error"]["name"],
                "TypeCheckError",
                "{v} {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        blocked(
            code_mode()
                .args(["run", "--typecheck", "block"])
                .arg(&file.0)
                .current_dir(parent)
                .env("CODE_MODE_TYPESCRIPT", name)
                .output()
                .unwrap_or_else(|e| panic!("{e}")),
        );
        let checkout =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.cache/typescript");
        if checkout.join("node_modules/typescript").is_dir() {
            blocked(
                code_mode()
                    .args(["run", "--typecheck", "block"])
                    .arg(&file.0)
                    .env_remove("CODE_MODE_TYPESCRIPT")
                    .env_remove("XDG_CACHE_HOME")
                    .env(
                        "HOME",
                        std::env::temp_dir().join("code-mode-test-empty-home"),
                    )
                    .output()
                    .unwrap_or_else(|e| panic!("{e}")),
            );
        }
    }

    #[test]
    fn the_demo_program_passes_a_blocking_check() {
        let out = code_mode()
            .args(["demo", "--typecheck", "block"])
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("3 of 6 products are low on stock"));
    }
}

#[test]
fn typecheck_block_without_the_compiler_refuses_to_start() {
    let file = temp_file("return 1");
    let out = code_mode()
        .args(["run", "--typecheck", "block"])
        .arg(&file.0)
        .env(
            "CODE_MODE_TYPESCRIPT",
            std::env::temp_dir().join("code-mode-no-typescript"),
        )
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("code-mode-typecheck-setup"));
    // `report` runs it unchecked, with one warning.
    let out = code_mode()
        .args(["run", "--typecheck", "report"])
        .arg(&file.0)
        .env(
            "CODE_MODE_TYPESCRIPT",
            std::env::temp_dir().join("code-mode-no-typescript"),
        )
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(json_stdout(&out)["result"], 1);
    assert!(String::from_utf8_lossy(&out.stderr).contains("without a type check"));
}

/// With OTEL_EXPORTER_OTLP_ENDPOINT set, `code-mode run` exports its spans and metrics to
/// that collector (here a bare HTTP receiver on 127.0.0.1 that keeps the request bodies;
/// OTLP protobuf carries names as plain bytes).
#[test]
fn run_exports_traces_and_metrics_to_an_otlp_endpoint() {
    let (endpoint, bodies) = common::receiver();
    let file = temp_file("return (await external_echo({ a: 1 })).a");
    let out = code_mode()
        .arg("run")
        .arg(&file.0)
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)
        .env("OTEL_SERVICE_NAME", "cli-otlp-test")
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bodies = bodies.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let posted = |path: &str, needle: &str| {
        bodies
            .iter()
            .any(|(p, b)| p == path && common::contains(b, needle))
    };
    assert!(
        posted("/v1/traces", "execute_tool execute_typescript"),
        "{:?}",
        bodies.iter().map(|(p, b)| (p, b.len())).collect::<Vec<_>>()
    );
    assert!(posted("/v1/traces", "execute_tool external_echo"));
    assert!(posted("/v1/traces", "cli-otlp-test"));
    assert!(posted("/v1/metrics", "code_mode.executions"));
}

/// Without OTEL_EXPORTER_OTLP_ENDPOINT nothing is exported and nothing is said.
#[test]
fn run_is_silent_without_an_otlp_endpoint() {
    let file = temp_file("return 1");
    let out = code_mode()
        .arg("run")
        .arg(&file.0)
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(out.status.success());
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `--require-approval echo` with `--approve ask`: each call asks on the terminal
/// (standard error), and the answers typed on standard input decide: an unreadable answer
/// asks again, `y` approves, `e {json}` approves an edited input, `n reason` denies, and the
/// program sees the denial as a catchable `ApprovalDeniedError`.
#[test]
fn run_asks_for_approval_on_the_terminal() {
    let file = temp_file(
        "const a = await external_echo({ n: 1 });\nconst b = await external_echo({ n: 2 });\nlet c;\ntry { await external_echo({ n: 3 }); } catch (e) { c = [e.name, e.message]; }\nreturn [a, b, c];",
    );
    let out = code_mode()
        .args(["run", "--require-approval", "echo"])
        .arg(&file.0)
        .write_stdin("maybe\ny\ne {\"n\": 20}\nn not today\n")
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let v = json_stdout(&out);
    assert_eq!(
        v["result"],
        serde_json::json!([
            {"n": 1},
            {"n": 20},
            ["ApprovalDeniedError", "external_echo was not approved: not today"]
        ]),
        "{v}\n{stderr}"
    );
    assert_eq!(
        stderr
            .matches("code-mode: approve external_echo with")
            .count(),
        3,
        "{stderr}"
    );
    assert!(
        stderr.contains("{\"n\":1}") && stderr.contains("{\"n\":3}"),
        "{stderr}"
    );
    assert!(
        stderr.contains("expected y, n [reason] or e {json}"),
        "{stderr}"
    );
    assert_eq!(out.status.code(), Some(0));

    // End of input denies; `--approve all` and `--approve none` never ask.
    let file = temp_file("return await external_echo({ n: 1 });");
    let out = code_mode()
        .args(["run", "--require-approval", "echo"])
        .arg(&file.0)
        .write_stdin("")
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let v = json_stdout(&out);
    assert_eq!(v["error"]["name"], "ApprovalDeniedError", "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("end of input"),
        "{v}"
    );
    let out = code_mode()
        .args(["run", "--require-approval", "echo", "--approve", "all"])
        .arg(&file.0)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(json_stdout(&out)["result"], serde_json::json!({"n": 1}));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("approve external_echo"));
    let out = code_mode()
        .args(["run", "--require-approval", "echo", "--approve", "none"])
        .arg(&file.0)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let v = json_stdout(&out);
    assert_eq!(
        v["error"]["message"], "external_echo was not approved: denied by --approve none",
        "{v}"
    );
    assert_eq!(out.status.code(), Some(1));
}

/// `--require-approval` naming no tool (a typo, another case, the sandbox spelling with a
/// prefix of a tool that is not there) refuses to run, naming the closest tools: the tool
/// meant would otherwise run unasked. Nothing runs.
#[test]
fn require_approval_naming_no_tool_is_refused() {
    let file = temp_file("return await external_echo({ n: 1 });");
    for (name, closest) in [
        ("ecko", Some("`echo`")),
        ("ECHO", Some("`echo`")),
        ("external_slep", Some("`sleep`")),
        ("write_file", None),
    ] {
        let out = code_mode()
            .args([
                "run",
                "--require-approval",
                "echo",
                "--require-approval",
                name,
            ])
            .arg(&file.0)
            .write_stdin("y\n")
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}: {stderr}");
        assert!(out.stdout.is_empty(), "{name}: ran anyway");
        let name = name.strip_prefix("external_").unwrap_or(name);
        assert!(
            stderr.contains(&format!("--require-approval {name}: no tool has that name")),
            "{stderr}"
        );
        match closest {
            Some(c) => assert!(stderr.contains(&format!("the closest: {c}")), "{stderr}"),
            None => assert!(!stderr.contains("the closest"), "{stderr}"),
        }
    }
}

/// A collector that is down (nothing listens) or silent (accepts, never answers): the result
/// is printed, and the CLI says once that telemetry was not exported instead of waiting for
/// the exporter's retries (10 s per attempt for a silent one) and saying nothing.
#[test]
fn an_unreachable_collector_is_said_once_and_does_not_hold_the_result() {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    let silent_addr = silent.local_addr().unwrap_or_else(|e| panic!("{e}"));
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in silent.incoming().flatten() {
            held.push(stream);
        }
    });
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap_or_else(|e| panic!("{e}"));
    for endpoint in [format!("http://{closed}"), format!("http://{silent_addr}")] {
        let out = code_mode()
            .args(["run", "-"])
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)
            .write_stdin("return 7")
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(json_stdout(&out)["result"], 7, "{endpoint}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            stderr.matches("warning: telemetry not exported").count(),
            1,
            "{endpoint}: {stderr}"
        );
        assert_eq!(out.status.code(), Some(0));
    }
}

/// `--approve ask` never holds other output while a question waits: with standard input left
/// open and unanswered, a program that leaves its approval behind finishes, its events (and
/// its other tool calls) go on, the question is said withdrawn, and the result is printed
/// (it waited for standard input to close before).
#[test]
fn an_open_question_holds_nothing_back() {
    use std::io::Read;
    let file = temp_file(
        "external_echo({ n: 1 }).catch(() => {});\nconst s = await external_sleep({ ms: 5 });\nreturn s.slept;",
    );
    let bin = assert_cmd::cargo::cargo_bin("code-mode");
    for events in [false, true] {
        let mut command = std::process::Command::new(&bin);
        command
            .args(["run", "--require-approval", "echo"])
            .args(events.then_some("--events"))
            .arg(&file.0)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = command.spawn().unwrap_or_else(|e| panic!("{e}"));
        // Kept open (never written, never closed) until the end of the test.
        let stdin = child.stdin.take();
        let (tx, rx) = std::sync::mpsc::channel();
        let mut stdout = child.stdout.take().unwrap_or_else(|| panic!("no stdout"));
        let mut stderr = child.stderr.take().unwrap_or_else(|| panic!("no stderr"));
        std::thread::spawn(move || {
            let (mut out, mut err) = (String::new(), String::new());
            let _ = stdout.read_to_string(&mut out);
            let _ = stderr.read_to_string(&mut err);
            let _ = tx.send((out, err));
        });
        let got = rx.recv_timeout(std::time::Duration::from_secs(30));
        let _ = child.kill();
        let _ = child.wait();
        drop(stdin);
        let (out, err) =
            got.unwrap_or_else(|_| panic!("events={events}: the result waited for standard input"));
        let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}\n{err}"));
        assert_eq!(v["result"], 5, "{v}\n{err}");
        assert!(err.contains("code-mode: approve external_echo"), "{err}");
        assert!(err.contains("withdrawn"), "{err}");
        if events {
            assert!(err.contains("code_mode:external_call"), "{err}");
        }
    }
}
