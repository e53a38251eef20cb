//! End to end in a real browser: the chat page (Vite + `@tanstack/ai-react`) in headless
//! Debian Chromium, driven by `playwright-core`, against the example server and a scripted
//! model on 127.0.0.1. The page must show the sandbox's events live, grouped under their
//! `execute_typescript` call, before that call's result, then the final answer.
//!
//! Needs the page's npm packages, its build and Chromium: `cargo xtask test` provisions them
//! and runs this test (`cargo xtask e2e` runs it alone).

mod support;

use std::path::{Path, PathBuf};

use serde_json::Value;
use support::{scripted_model_recording, serve};

const CODE: &str = "console.log('fetching weather');
const oslo = await external_getWeather({ city: 'Oslo' });
console.log(`Oslo is ${oslo.condition}`);
const [lima, rome] = await Promise.all([
  external_getWeather({ city: 'Lima' }),
  external_getWeather({ city: 'Rome' }),
]);
return { oslo: oslo.tempC, lima: lima.tempC, rome: rome.tempC };";

fn web_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("chat-server/web")
}

/// Serves the page with a scripted model writing `code`, runs the browser script `script`
/// against it (its screenshot at `$screenshot_var`, else `default_png` in the target's
/// temporary folder), and returns what the script saw and the model's requests.
async fn browse(
    script: &str,
    code: &'static str,
    screenshot_var: &str,
    default_png: &str,
    args: &[&str],
) -> (Value, support::Recorded) {
    let web = web_dir();
    assert!(
        web.join("dist/index.html").exists() && web.join("node_modules/playwright-core").exists(),
        "the page is not built: run `cargo xtask e2e` (it installs and builds what is needed)"
    );
    let (llm, requests) = scripted_model_recording(code).await;
    let driver =
        code_mode_drivers::driver_by_name("quickjs", &code_mode_drivers::DriverOptions::default())
            .unwrap_or_else(|e| panic!("{e}"));
    let state = app::state(Ok(llm), driver).unwrap_or_else(|e| panic!("{e}"));
    let base = serve(app::router(state, Some(web.join("dist")))).await;
    let screenshot = std::env::var_os(screenshot_var)
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_TARGET_TMPDIR")).join(default_png));
    let script = script.to_owned();
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new("node")
            .arg(script)
            .arg(&base)
            .arg(&screenshot)
            .args(&args)
            .current_dir(web_dir())
            .output()
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"))
    .unwrap_or_else(|e| panic!("cannot run node: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the browser run failed ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let seen: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("bad output from the browser run ({e}): {stdout}"));
    (seen, requests)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs npm packages and Debian chromium; run by `cargo xtask test` after provisioning"]
async fn page_shows_live_events_before_the_result() {
    let (seen, requests) = browse(
        "e2e/chat.e2e.mjs",
        CODE,
        "CODE_MODE_E2E_SCREENSHOT",
        "chat-e2e.png",
        &[],
    )
    .await;
    assert!(
        seen["info"]
            .as_str()
            .unwrap_or_default()
            .contains("driver quickjs"),
        "{seen}"
    );
    assert!(
        seen["code"]
            .as_str()
            .unwrap_or_default()
            .contains("external_getWeather"),
        "{seen}"
    );
    let appeared = seen["appeared"].as_array().cloned().unwrap_or_default();
    let what = |i: &Value| i["what"].as_str().unwrap_or_default().to_owned();
    let result_at = appeared
        .iter()
        .position(|i| what(i) == "tool-result")
        .unwrap_or_else(|| panic!("no tool result shown: {seen}"));
    for (kind, expected) in [
        ("code_mode:external_call", 3),
        ("code_mode:external_result", 3),
        ("code_mode:console", 2),
    ] {
        let before: Vec<&Value> = appeared[..result_at]
            .iter()
            .filter(|i| what(i) == kind)
            .collect();
        assert_eq!(
            before.len(),
            expected,
            "{kind} rows shown before the result: {seen}"
        );
        assert!(
            before.iter().all(|i| i["toolCallId"] == "call_ui"),
            "{kind} not grouped: {seen}"
        );
    }
    // The result arrived visibly later than the first live events (the tools take 300 ms).
    let first_call = appeared
        .iter()
        .find(|i| what(i) == "code_mode:external_call")
        .and_then(|i| i["at"].as_f64())
        .unwrap_or_default();
    let result_time = appeared[result_at]["at"].as_f64().unwrap_or_default();
    assert!(
        result_time - first_call >= 300.0,
        "events were not live: {seen}"
    );
    assert!(
        appeared
            .iter()
            .any(|i| what(i) == "code_mode:external_result"
                && i["text"].as_str().unwrap_or_default().contains(" ms")),
        "durations are shown: {seen}"
    );
    let answer = seen["answer"].as_str().unwrap_or_default();
    assert!(
        answer.starts_with("Done:") && answer.contains("oslo"),
        "{seen}"
    );
    // Three turns were answered, and from the second on the model saw the earlier turns'
    // tool calls and results, as TanStack's client sent them back.
    assert_eq!(seen["answers"], 3, "{seen}");
    let requests = requests.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let users = |r: &Value| {
        r["messages"]
            .as_array()
            .map(|m| m.iter().filter(|m| m["role"] == "user").count())
            .unwrap_or(0)
    };
    for (turn, earlier_calls) in [(2, vec!["call_ui"]), (3, vec!["call_ui", "call_ui_2"])] {
        let opening = requests
            .iter()
            .find(|r| users(r) == turn)
            .unwrap_or_else(|| panic!("no request for turn {turn}: {requests:?}"));
        let messages = opening["messages"].as_array().cloned().unwrap_or_default();
        for id in earlier_calls {
            let call = messages.iter().position(|m| {
                m["role"] == "assistant"
                    && m["tool_calls"].as_array().is_some_and(|c| {
                        c.iter().any(|c| {
                            c["id"] == id
                                && c["function"]["arguments"]
                                    .as_str()
                                    .is_some_and(|a| a.contains("external_getWeather"))
                        })
                    })
            });
            let result = messages.iter().position(|m| {
                m["role"] == "tool"
                    && m["tool_call_id"] == id
                    && m["content"]
                        .as_str()
                        .is_some_and(|c| c.contains("\"success\":true") && c.contains("oslo"))
            });
            match (call, result) {
                (Some(c), Some(r)) => assert!(c < r, "turn {turn}: result before call"),
                _ => panic!("turn {turn}: call {id} or its result missing: {opening}"),
            }
        }
    }
}

#[path = "../chat-server/app.rs"]
mod app;

const APPROVAL_CODE: &str = "const oslo = await external_getWeather({ city: 'Oslo' });
console.log('asking to send');
try {
  const sent = await external_sendReport({ to: 'ops@example.com', text: `Oslo: ${oslo.tempC} C` });
  return { sent: sent.sent, temp: oslo.tempC };
} catch (e) {
  return { sent: false, error: (e as Error).name, reason: (e as Error).message };
}";

/// An approval inside a program, through TanStack's own approval flow in the browser: the
/// page shows the pending call and its input with Approve / Deny, nothing is sent before the
/// click, and the same execution continues after it (approved in the first turn, denied in
/// the second). The screenshot of the pending approval goes to `docs/` through
/// `CODE_MODE_E2E_APPROVAL_SCREENSHOT`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs npm packages and Debian chromium; run by `cargo xtask test` after provisioning"]
async fn page_approves_and_denies_a_call_inside_a_program() {
    let (seen, requests) = browse(
        "e2e/approval.e2e.mjs",
        APPROVAL_CODE,
        "CODE_MODE_E2E_APPROVAL_SCREENSHOT",
        "chat-approval.png",
        &[],
    )
    .await;
    let turn = |n: usize| seen["turns"][n].clone();
    for n in 0..2 {
        let t = turn(n);
        let pending = t["pendingText"].as_str().unwrap_or_default();
        assert!(pending.contains("external_sendReport"), "{seen}");
        let input = t["pendingInput"].as_str().unwrap_or_default();
        assert!(
            input.contains("ops@example.com") && input.contains("Oslo:"),
            "{seen}"
        );
        assert_eq!(
            t["resultsWhilePending"], n,
            "a result was shown while waiting: {seen}"
        );
        assert_eq!(t["approvalBoxesAfter"], 0, "{seen}");
    }
    let first = turn(0);
    let events = first["eventsWhilePending"].to_string();
    assert!(events.contains("code_mode:approval_requested"), "{seen}");
    assert!(
        !events.contains("code_mode:execution_finished"),
        "the run did not wait: {seen}"
    );
    let answer = first["answer"].as_str().unwrap_or_default();
    assert!(answer.contains("\"sent\":true"), "{seen}");
    assert!(first["events"].to_string().contains("approved"), "{seen}");
    let second = turn(1);
    let answer = second["answer"].as_str().unwrap_or_default();
    assert!(
        answer.contains("ApprovalDeniedError") && answer.contains("denied in the chat"),
        "{seen}"
    );
    // The program ran once per turn: one model request per tool call made, one per answer;
    // the follow-up that carried the decision resumed the run instead of asking the model.
    let requests = requests.lock().unwrap_or_else(|p| p.into_inner()).clone();
    assert_eq!(requests.len(), 4, "{requests:?}");
    let ran = requests
        .iter()
        .filter(|r| {
            r["messages"]
                .as_array()
                .and_then(|m| m.last())
                .is_some_and(|m| m["role"] == "user")
        })
        .count();
    assert_eq!(ran, 2, "each turn's program was written once: {requests:?}");
}

/// A program asking one approval per address of `$list`, one after the other.
macro_rules! in_turn {
    ($list:literal) => {
        concat!(
            "const out = [];\nfor (const to of ",
            $list,
            ") {\n  try {\n    await external_sendReport({ to, text: 'report' });\n    out.push(`sent ${to}`);\n  } catch (e) {\n    out.push(`denied ${to}`);\n  }\n}\nreturn out;"
        )
    };
}

/// Two approvals one after the other.
const TWO_IN_TURN: &str = in_turn!("['a@x.com', 'b@x.com']");

/// Three approvals one after the other.
const THREE_IN_TURN: &str = in_turn!("['a@x.com', 'b@x.com', 'c@x.com']");

/// Two approvals asked at once.
const TWO_AT_ONCE: &str = "const send = (to: string) => external_sendReport({ to, text: 'report' }).then(() => `sent ${to}`, () => `denied ${to}`);
return await Promise.all([send('a@x.com'), send('b@x.com')]);";

/// Several approvals in one program through TanStack's client: each reaches the page in
/// turn, the answers reach the same execution, and the program ran once.
async fn approvals_in_turn(code: &'static str, png: &str, answers: &[&str], expected: &[&str]) {
    let (seen, requests) = browse(
        "e2e/approvals.e2e.mjs",
        code,
        "CODE_MODE_E2E_APPROVALS_SCREENSHOT",
        png,
        answers,
    )
    .await;
    assert!(
        seen["stalled"].is_null(),
        "an approval never reached the page: {seen}"
    );
    assert_eq!(
        seen["asked"].as_array().map(Vec::len),
        Some(answers.len()),
        "{seen}"
    );
    for (n, asked) in seen["asked"].as_array().into_iter().flatten().enumerate() {
        // One box at a time, for the next address.
        assert_eq!(asked["boxes"], 1, "{seen}");
        let to = ["a@x.com", "b@x.com", "c@x.com"][n];
        assert!(
            asked["input"].as_str().unwrap_or_default().contains(to),
            "approval {n}: {seen}"
        );
    }
    let answer = seen["answer"].as_str().unwrap_or_default();
    for part in expected {
        assert!(answer.contains(part), "{part} missing: {seen}");
    }
    assert_eq!(seen["boxesAfter"], 0, "{seen}");
    // Written once by the model, answered once: the follow-ups resumed the same execution.
    let requests = requests.lock().unwrap_or_else(|p| p.into_inner()).clone();
    assert_eq!(requests.len(), 2, "{requests:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs npm packages and Debian chromium; run by `cargo xtask test` after provisioning"]
async fn page_answers_two_approvals_in_one_program() {
    approvals_in_turn(
        TWO_IN_TURN,
        "chat-two-approvals.png",
        &["approve", "deny"],
        &["sent a@x.com", "denied b@x.com"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs npm packages and Debian chromium; run by `cargo xtask test` after provisioning"]
async fn page_answers_three_approvals_in_one_program() {
    approvals_in_turn(
        THREE_IN_TURN,
        "chat-three-approvals.png",
        &["deny", "approve", "approve"],
        &["denied a@x.com", "sent b@x.com", "sent c@x.com"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs npm packages and Debian chromium; run by `cargo xtask test` after provisioning"]
async fn page_answers_approvals_asked_at_once() {
    approvals_in_turn(
        TWO_AT_ONCE,
        "chat-approvals-at-once.png",
        &["approve", "deny"],
        &["sent a@x.com", "denied b@x.com"],
    )
    .await;
}

/// What the restart test's model writes: one call that runs before the pause, then one that
/// waits for an approval.
#[cfg(feature = "durable")]
const RESTART_CODE: &str = "const oslo = await external_getWeather({ city: 'Oslo' });
console.log('weather fetched');
const sent = await external_sendReport({ to: 'ops@example.com', text: `Oslo: ${oslo.tempC} C` });
return { sent: sent.sent, temp: oslo.tempC };";

/// The chat server as its own process, with durable approvals in `state` (a folder).
#[cfg(feature = "durable")]
fn start_server(model: &str, port: u16, state: &Path) -> std::process::Child {
    let bin = support::chat_server_binary();
    std::process::Command::new(bin)
        .env("OPENAI_BASE_URL", model)
        .env("OPENAI_MODEL", "scripted")
        .env("PORT", port.to_string())
        .env("CODE_MODE_SNAPSHOT_KEY", "5a".repeat(32))
        .env("CODE_MODE_STATE_DIR", state)
        .env_remove("CODE_MODE_DRIVER")
        .env_remove("CODE_MODE_STATE_URL")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start the chat server: {e}"))
}

/// Waits until the server on `port` answers `/healthz` (at most 30 s).
#[cfg(feature = "durable")]
async fn until_up(port: u16) {
    for _ in 0..300 {
        if let Ok(r) = reqwest::get(format!("http://127.0.0.1:{port}/healthz")).await
            && r.status().is_success()
        {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the chat server did not come up on port {port}");
}

/// Durable approvals across a restart, through TanStack's client in Chromium: the server
/// process is killed (SIGKILL) while the page shows the pending approval, started again on
/// the same port and state folder, and the click on the page it had resumes the same
/// program: its result arrives, and the call before the pause did not run again.
#[cfg(feature = "durable")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs npm packages and Debian chromium; run by `cargo xtask test` after provisioning"]
async fn page_resumes_an_approval_after_the_server_restarts() {
    use std::io::{BufRead, Write};
    let web = web_dir();
    assert!(
        web.join("dist/index.html").exists(),
        "the page is not built: run `cargo xtask e2e`"
    );
    let (model, requests) = support::scripted_model_server(RESTART_CODE).await;
    let state =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("chat-restart-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&state);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("{e}"));
    let mut server = start_server(&model, port, &state);
    until_up(port).await;
    let screenshot = std::env::var_os("CODE_MODE_E2E_RESTART_SCREENSHOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_TARGET_TMPDIR")).join("chat-restart.png"));
    let mut browser = std::process::Command::new("node")
        .arg("e2e/restart.e2e.mjs")
        .arg(format!("http://127.0.0.1:{port}"))
        .arg(&screenshot)
        .current_dir(&web)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run node: {e}"));
    let stdout = browser.stdout.take().unwrap_or_else(|| panic!("no stdout"));
    let mut input = browser.stdin.take().unwrap_or_else(|| panic!("no stdin"));
    let (lines_tx, lines_rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = lines_tx.send(line);
        }
    });
    let next_line = |what: &str| {
        lines_rx
            .recv_timeout(std::time::Duration::from_secs(90))
            .unwrap_or_else(|_| panic!("the browser run printed no {what}"))
    };
    assert_eq!(next_line("PENDING"), "PENDING");
    // The approval is pending in the page; the program is sealed in the state folder.
    let _ = server.kill();
    let _ = server.wait();
    let mut server = start_server(&model, port, &state);
    until_up(port).await;
    writeln!(input, "restarted").unwrap_or_else(|e| panic!("{e}"));
    let seen: Value = serde_json::from_str(&next_line("result"))
        .unwrap_or_else(|e| panic!("bad output from the browser run: {e}"));
    let _ = browser.wait();
    let _ = server.kill();
    let _ = server.wait();
    let _ = std::fs::remove_dir_all(&state);
    let count = |list: &Value, kind: &str| {
        list.as_array()
            .map_or(0, |l| l.iter().filter(|e| *e == kind).count())
    };
    assert_eq!(
        count(&seen["before"], "code_mode:external_call"),
        1,
        "{seen}"
    );
    assert!(
        seen["pendingInput"]
            .as_str()
            .is_some_and(|i| i.contains("ops@example.com")),
        "{seen}"
    );
    let answer = seen["answer"].as_str().unwrap_or_default();
    assert!(answer.contains("\"sent\":true"), "{seen}");
    // Nothing before the pause ran twice: one getWeather call in all, one console line,
    // and the approved call ran once, after the restart.
    assert_eq!(
        count(&seen["after"], "code_mode:external_call"),
        2,
        "{seen}"
    );
    assert_eq!(count(&seen["after"], "code_mode:console"), 1, "{seen}");
    // Sealed before the kill, resumed by the new process.
    assert_eq!(
        count(&seen["before"], "code_mode:execution_paused"),
        1,
        "{seen}"
    );
    assert_eq!(
        count(&seen["after"], "code_mode:execution_resumed"),
        1,
        "{seen}"
    );
    assert_eq!(seen["errors"], 0, "{seen}");
    let requests = requests.lock().unwrap_or_else(|p| p.into_inner()).clone();
    assert_eq!(
        requests.len(),
        2,
        "the model wrote the program once: {requests:?}"
    );
}
