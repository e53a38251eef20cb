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
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new("node")
            .arg(script)
            .arg(&base)
            .arg(&screenshot)
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
