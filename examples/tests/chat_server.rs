//! The example chat server answers a TanStack AI client request with the SSE chunk stream,
//! driven by a scripted OpenAI-compatible model on 127.0.0.1.

#[path = "../chat-server/app.rs"]
mod app;

mod support;

use code_mode_chat::{Chunk, Message, sse};
use serde_json::{Value, json};
use support::{scripted_model, serve};

/// The example's server on native QuickJS with a scripted model writing `code`; its base URL.
async fn quickjs_server(code: &'static str) -> String {
    let llm = scripted_model(code).await;
    let driver =
        code_mode_drivers::driver_by_name("quickjs", &code_mode_drivers::DriverOptions::default())
            .unwrap_or_else(|e| panic!("{e}"));
    let state = app::state(Ok(llm), driver).unwrap_or_else(|e| panic!("{e}"));
    serve(app::router(state, None)).await
}

/// The first `TOOL_CALL_RESULT`'s content among `chunks`.
fn tool_result(chunks: &[Chunk]) -> Option<String> {
    chunks.iter().find_map(|c| match c {
        Chunk::ToolCallResult { content, .. } => Some(content.clone()),
        _ => None,
    })
}

/// Posts a chat request the way the TanStack client does and decodes the SSE answer.
async fn post_chat(base: &str, request: &Value) -> Vec<Chunk> {
    let response = reqwest::Client::new()
        .post(format!("{base}/api/chat"))
        .json(request)
        .send()
        .await;
    let body = response
        .unwrap_or_else(|e| panic!("{e}"))
        .text()
        .await
        .unwrap_or_default();
    sse::decode(&body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_a_tanstack_client_request() {
    let llm = scripted_model("console.log('fetching');\nconst [a, b] = await Promise.all([external_getWeather({ city: 'Oslo' }), external_getWeather({ city: 'Lima' })]);\nreturn [a.tempC, b.tempC];").await;
    let driver =
        code_mode_drivers::driver_by_name("quickjs", &code_mode_drivers::DriverOptions::default())
            .unwrap_or_else(|e| panic!("{e}"));
    let state = app::state(Ok(llm), driver).unwrap_or_else(|e| panic!("{e}"));
    let base = serve(app::router(state, None)).await;
    // The body the TanStack client sends: model messages with text content or parts.
    let request = json!({"threadId": "t1", "runId": "run-from-client", "messages": [{"role": "user", "content": "Compare Oslo and Lima"}], "data": {}});
    let chunks = post_chat(&base, &request).await;
    let names: Vec<&str> = chunks.iter().map(Chunk::label).collect();
    let at = |n: &str| {
        names
            .iter()
            .position(|x| *x == n)
            .unwrap_or_else(|| panic!("{n} missing: {names:?}"))
    };
    assert!(at("code_mode:external_call") < at("TOOL_CALL_RESULT"));
    // Each event once, then the turn's RUN_FINISHED, then the result (TanStack's order).
    let count = |n: &str| names.iter().filter(|x| **x == n).count();
    assert_eq!(count("code_mode:external_call"), 2, "{names:?}");
    assert_eq!(count("code_mode:execution_finished"), 1, "{names:?}");
    assert!(at("code_mode:execution_finished") < at("RUN_FINISHED"));
    assert_eq!(at("RUN_FINISHED") + 1, at("TOOL_CALL_RESULT"), "{names:?}");
    assert!(at("code_mode:console") < at("TOOL_CALL_RESULT"));
    assert_eq!(names.last().copied(), Some("RUN_FINISHED"));
    match chunks.first() {
        Some(Chunk::RunStarted {
            run_id, thread_id, ..
        }) => {
            assert_eq!(
                (run_id.as_str(), thread_id.as_str()),
                ("run-from-client", "t1")
            );
        }
        other => panic!("expected RUN_STARTED first, got {other:?}"),
    }
    let info: Value = reqwest::get(format!("{base}/api/info"))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .json()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        info,
        json!({"driver": "quickjs", "model": "scripted", "durableApprovals": false})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explains_a_missing_model() {
    let driver =
        code_mode_drivers::driver_by_name("quickjs", &code_mode_drivers::DriverOptions::default())
            .unwrap_or_else(|e| panic!("{e}"));
    let state =
        app::state(Err("set OPENAI_MODEL".into()), driver).unwrap_or_else(|e| panic!("{e}"));
    let base = serve(app::router(state, None)).await;
    let chunks = post_chat(
        &base,
        &json!({"messages": [{"role": "user", "content": "hello"}]}),
    )
    .await;
    match chunks.as_slice() {
        [Chunk::RunError { message, .. }] => assert!(message.contains("OPENAI_MODEL")),
        other => panic!("expected one RUN_ERROR, got {other:?}"),
    }
    let page = reqwest::get(format!("{base}/"))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .text()
        .await
        .unwrap_or_default();
    assert!(page.contains("/api/chat"));
}

#[test]
fn reads_the_tool_history_in_both_message_shapes() {
    // AG-UI wire messages, as `@tanstack/ai-client` 0.58 sends them.
    let body = json!({"messages": [
        {"role": "user", "id": "u1", "content": "hi"},
        {"role": "assistant", "id": "a1", "content": "checking", "toolCalls": [
            {"id": "call_1", "type": "function", "function": {"name": "execute_typescript", "arguments": "{\"typescriptCode\":\"return 1\"}"}},
            {"id": "call_lost", "type": "function", "function": {"name": "execute_typescript", "arguments": "{}"}}
        ]},
        {"role": "tool", "id": "t1", "toolCallId": "call_1", "content": "{\"success\":true,\"result\":1}"},
        {"role": "tool", "id": "t2", "toolCallId": "call_unknown", "content": "{}"},
        {"role": "assistant", "id": "a2", "content": "It is 1."},
        {"role": "system", "content": "ignored"},
        {"role": "reasoning", "content": "ignored"},
        {"role": "user", "content": [{"type": "text", "text": "again"}]},
        {"role": "user", "content": ""}
    ]});
    let call = |id: &str, arguments: &str| code_mode_chat::ToolCall {
        id: id.into(),
        name: "execute_typescript".into(),
        arguments: arguments.into(),
    };
    assert_eq!(
        app::conversation(&body),
        Ok(vec![
            Message::User {
                content: "hi".into()
            },
            Message::Assistant {
                content: "checking".into(),
                tool_calls: vec![call("call_1", "{\"typescriptCode\":\"return 1\"}")]
            },
            Message::Tool {
                tool_call_id: "call_1".into(),
                content: "{\"success\":true,\"result\":1}".into()
            },
            Message::Assistant {
                content: "It is 1.".into(),
                tool_calls: vec![]
            },
            Message::User {
                content: "again".into()
            },
        ])
    );
    // UIMessage parts (older clients): a tool call with its output, and text.
    let body = json!({"messages": [
        {"role": "user", "parts": [{"type": "text", "content": "hi"}]},
        {"role": "assistant", "parts": [
            {"type": "text", "content": "hello"},
            {"type": "tool-call", "id": "x", "name": "execute_typescript", "arguments": "{}", "output": {"success": true}},
            {"type": "tool-call", "id": "pending", "name": "execute_typescript", "arguments": "{}"}
        ]},
        {"role": "user", "content": "more"}
    ]});
    assert_eq!(
        app::conversation(&body),
        Ok(vec![
            Message::User {
                content: "hi".into()
            },
            Message::Assistant {
                content: "hello".into(),
                tool_calls: vec![call("x", "{}")]
            },
            Message::Tool {
                tool_call_id: "x".into(),
                content: "{\"success\":true}".into()
            },
            Message::User {
                content: "more".into()
            },
        ])
    );
}

#[test]
fn unusable_requests_are_refused_with_the_reason() {
    for (body, expected) in [
        (json!({}), "no `messages`"),
        (json!({"messages": []}), "empty"),
        (json!({"messages": "hi"}), "must be an array"),
        (
            json!({"messages": [{"role": "robot", "content": "x"}, {"role": "system", "content": "y"}]}),
            "no user message",
        ),
    ] {
        match app::conversation(&body) {
            Err(why) => assert!(why.contains(expected), "{body}: {why}"),
            Ok(m) => panic!("{body} accepted as {m:?}"),
        }
    }
}

/// An unusable request gets 400 (a body that is not JSON, its 4xx) with a JSON error, and
/// no run: the model is never called.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unusable_requests_get_400_without_a_model_call() {
    let (llm, recorded) = support::scripted_model_recording("return 1").await;
    let driver =
        code_mode_drivers::driver_by_name("quickjs", &code_mode_drivers::DriverOptions::default())
            .unwrap_or_else(|e| panic!("{e}"));
    let state = app::state(Ok(llm), driver).unwrap_or_else(|e| panic!("{e}"));
    let base = serve(app::router(state, None)).await;
    for body in [
        json!({}),
        json!({"messages": []}),
        json!({"messages": {"role": "user"}}),
        json!({"messages": [{"role": "tool", "toolCallId": "x", "content": "1"}]}),
    ] {
        let response = reqwest::Client::new()
            .post(format!("{base}/api/chat"))
            .json(&body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(response.status(), 400, "{body}");
        let answer: Value = response.json().await.unwrap_or_default();
        assert!(
            answer["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{answer}"
        );
    }
    // Bodies that are not JSON (or not sent as JSON) get the same JSON error shape.
    for (body, content_type) in [
        ("{\"messages\": [", "application/json"),
        ("not json", "application/json"),
        ("{\"messages\": []}", "text/plain"),
    ] {
        let response = reqwest::Client::new()
            .post(format!("{base}/api/chat"))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let status = response.status();
        assert!(status.is_client_error(), "{body}: {status}");
        let answer: Value = response.json().await.unwrap_or_default();
        assert!(
            answer["error"]
                .as_str()
                .is_some_and(|e| e.contains("not usable JSON")),
            "{body}: {answer}"
        );
    }
    assert!(
        recorded
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty()
    );
}

/// `CODE_MODE_TYPECHECK=block`: needs the compiler (`cargo xtask test` skips `compiler::`
/// without npm).
mod compiler {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_blocking_type_check_answers_the_model_with_the_compiler_errors() {
        let llm = scripted_model(
            "const w = await external_getWeather({ town: 'Oslo' });\nreturn w.tempC;",
        )
        .await;
        let driver = code_mode_drivers::driver_by_name(
            "quickjs",
            &code_mode_drivers::DriverOptions::default(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let checker =
            code_mode_typecheck::TypeScriptChecker::new().unwrap_or_else(|e| panic!("{e}"));
        let state = app::state_with(
            Ok(llm),
            driver,
            Some((
                code_mode::TypeCheckMode::Block,
                std::sync::Arc::new(checker),
            )),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let base = serve(app::router(state, None)).await;
        let request = json!({"threadId": "t1", "runId": "r1", "messages": [{"role": "user", "content": "Weather in Oslo?"}], "data": {}});
        let chunks = post_chat(&base, &request).await;
        let text =
            serde_json::to_string(&chunks.iter().map(|c| format!("{c:?}")).collect::<Vec<_>>())
                .unwrap_or_default();
        assert!(text.contains("TypeCheckError"), "{text}");
        assert!(
            text.contains("'town' does not exist in type 'GetWeatherInput'"),
            "{text}"
        );
        // Nothing ran: no tool call event.
        assert!(
            !chunks
                .iter()
                .any(|c| c.label() == "code_mode:external_call"),
            "{text}"
        );
    }
}

/// An approval inside a program, on the wire TanStack's client speaks: the first response
/// names the `execute_typescript` call in `approval-requested` and ends (`tool_calls`) while
/// the execution waits; the follow-up carrying `{"approved": ...}` for that call streams the
/// rest of the same execution under its own run id. The same follow-up sent again tells the
/// model the approval was already answered and used (never to run the program again).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_pauses_the_run_and_the_follow_up_resumes_it() {
    let code = "const w = await external_getWeather({ city: 'Oslo' });\ntry {\n  const r = await external_sendReport({ to: 'a@b.c', text: 'hi' });\n  return { sent: r.sent, temp: w.tempC };\n} catch (e) {\n  return { denied: (e as Error).message };\n}";
    let base = quickjs_server(code).await;
    for approved in [true, false] {
        let user = json!({"role": "user", "content": format!("send it ({approved})")});
        let first = post_chat(
            &base,
            &json!({"threadId": "t", "runId": "run-1", "messages": [user.clone()]}),
        )
        .await;
        let names: Vec<&str> = first.iter().map(Chunk::label).collect();
        assert!(names.contains(&"code_mode:approval_requested"), "{names:?}");
        assert!(!names.contains(&"TOOL_CALL_RESULT"), "{names:?}");
        assert!(
            !names.contains(&"code_mode:execution_finished"),
            "{names:?}"
        );
        let request = first
            .iter()
            .find_map(|c| match c {
                Chunk::Custom { name, value, .. } if name == "approval-requested" => {
                    Some(value.clone())
                }
                _ => None,
            })
            .unwrap_or_else(|| panic!("no approval-requested: {names:?}"));
        assert_eq!(request["toolCallId"], "call_ui");
        assert_eq!(request["toolName"], "execute_typescript");
        assert_eq!(request["input"]["function"], "external_sendReport");
        assert_eq!(request["input"]["input"]["to"], "a@b.c");
        assert_eq!(request["approval"]["needsApproval"], true);
        assert!(
            matches!(first.last(), Some(Chunk::RunFinished { run_id, metadata, .. })
            if run_id == "run-1" && metadata.as_ref().is_some_and(|m| m["tanstack"]["finishReason"] == "tool_calls"))
        );
        // What the client sends after `addToolApprovalResponse`.
        let decision = json!({"approved": approved, "message": "User approved this action"});
        let follow_up = json!({"threadId": "t", "runId": "run-2", "messages": [
            user,
            {"role": "assistant", "toolCalls": [{"id": "call_ui", "type": "function", "function": {"name": "execute_typescript", "arguments": json!({"typescriptCode": code}).to_string()}}]},
            {"role": "tool", "toolCallId": "call_ui", "content": decision.to_string()},
        ]});
        let rest = post_chat(&base, &follow_up).await;
        let names: Vec<&str> = rest.iter().map(Chunk::label).collect();
        assert!(
            matches!(rest.first(), Some(Chunk::RunStarted { run_id, .. }) if run_id == "run-2"),
            "{names:?}"
        );
        assert!(names.contains(&"code_mode:approval_resolved"), "{names:?}");
        assert!(
            !names.contains(&"code_mode:approval_requested"),
            "{names:?}"
        );
        let result = tool_result(&rest).unwrap_or_else(|| panic!("no result: {rest:?}"));
        if approved {
            assert!(result.contains("\"sent\":true"), "{result}");
        } else {
            assert!(
                result.contains("not approved: denied in the chat"),
                "{result}"
            );
        }
        assert!(
            matches!(rest.last(), Some(Chunk::RunFinished { run_id, .. }) if run_id == "run-2"),
            "{rest:?}"
        );
        // Sent again, the decision answers no parked run.
        let again = post_chat(&base, &follow_up).await;
        let result = tool_result(&again);
        assert!(result.is_none(), "{again:?}");
        let told: String = again
            .iter()
            .filter_map(|c| match c {
                Chunk::TextMessageContent { delta, .. } => Some(delta.as_str()),
                _ => None,
            })
            .collect();
        // It was answered and used: the model is told so, and never to run it again.
        assert!(told.contains("already answered"), "{told}");
        assert!(!told.contains("run it again if"), "{told}");
    }
}

/// A `PORT` that is not a port number, or one already taken, stops the example server with
/// a message naming `PORT` (exit 2), not a raw error. (`cargo test` builds the example
/// beside this test binary.)
#[test]
fn a_bad_port_is_named() {
    let bin = support::chat_server_binary();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    let busy = taken
        .local_addr()
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("{e}"));
    for (port, said) in [
        ("not-a-port", "PORT must be a port number"),
        (&*busy.to_string(), "(PORT)"),
    ] {
        let out = std::process::Command::new(&bin)
            .env("PORT", port)
            .env_remove("OPENAI_MODEL")
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{port}: {stderr}");
        assert!(stderr.contains(said), "{port}: {stderr}");
    }
    drop(taken);
}

/// The interrupt protocol of current TanStack clients (AG-UI): each approval ends its
/// response with `RUN_FINISHED` carrying `outcome: {type: "interrupt"}` keyed by the
/// approval id (beside the `approval-requested` event older clients read), and a follow-up
/// with a `resume` entry for that id — without any tool message — answers it. Two approvals
/// in one program come in two responses; `cancelled` denies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approvals_arrive_as_interrupts_and_resume_entries_answer_them() {
    let code = "const out = [];\nfor (const to of ['a@x.com', 'b@x.com']) {\n  try { await external_sendReport({ to, text: 'r' }); out.push(`sent ${to}`); }\n  catch (e) { out.push(`denied ${to}: ${(e as Error).message}`); }\n}\nreturn out;";
    let base = quickjs_server(code).await;
    let user = json!({"role": "user", "content": "mail both"});
    let interrupt_of = |chunks: &[Chunk]| -> Value {
        match chunks.last() {
            Some(Chunk::RunFinished {
                outcome: Some(outcome),
                ..
            }) => {
                assert_eq!(outcome["type"], "interrupt", "{outcome}");
                let interrupts = outcome["interrupts"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                assert_eq!(interrupts.len(), 1, "{outcome}");
                interrupts[0].clone()
            }
            other => panic!("the response did not end with an interrupt: {other:?}"),
        }
    };
    let first = post_chat(
        &base,
        &json!({"threadId": "t", "runId": "run-1", "messages": [user.clone()]}),
    )
    .await;
    let one = interrupt_of(&first);
    assert_eq!(one["reason"], "approval_required");
    assert_eq!(one["toolCallId"], "call_ui");
    assert_eq!(one["metadata"]["kind"], "approval");
    assert_eq!(one["metadata"]["toolName"], "execute_typescript");
    assert_eq!(one["metadata"]["input"]["input"]["to"], "a@x.com");
    let asked = first.iter().find_map(|c| match c {
        Chunk::Custom { name, value, .. } if name == "approval-requested" => {
            Some(value["approval"]["id"].clone())
        }
        _ => None,
    });
    assert_eq!(
        asked.as_ref(),
        Some(&one["id"]),
        "the interrupt id is the approval id"
    );
    let resume = |run_id: &str, parent: &str, entry: Value| {
        json!({"threadId": "t", "runId": run_id, "parentRunId": parent, "resume": [entry], "messages": [
            user.clone(),
            {"role": "assistant", "toolCalls": [{"id": "call_ui", "type": "function", "function": {"name": "execute_typescript", "arguments": json!({"typescriptCode": code}).to_string()}}]},
        ]})
    };
    let second = post_chat(
        &base,
        &resume(
            "run-2",
            "run-1",
            json!({"interruptId": one["id"], "status": "resolved", "payload": {"approved": true}}),
        ),
    )
    .await;
    assert!(matches!(second.first(), Some(Chunk::RunStarted { run_id, .. }) if run_id == "run-2"));
    assert!(
        !second
            .iter()
            .any(|c| matches!(c, Chunk::ToolCallResult { .. })),
        "{second:?}"
    );
    let two = interrupt_of(&second);
    assert_ne!(two["id"], one["id"]);
    assert_eq!(two["metadata"]["input"]["input"]["to"], "b@x.com");
    let last = post_chat(
        &base,
        &resume(
            "run-3",
            "run-2",
            json!({"interruptId": two["id"], "status": "cancelled"}),
        ),
    )
    .await;
    let result = tool_result(&last).unwrap_or_else(|| panic!("no result: {last:?}"));
    assert!(
        result.contains("sent a@x.com")
            && result.contains("denied b@x.com")
            && result.contains("cancelled in the chat"),
        "{result}"
    );
    assert!(
        matches!(last.last(), Some(Chunk::RunFinished { run_id, outcome: None, .. }) if run_id == "run-3"),
        "{last:?}"
    );
}

/// Durable approvals that cannot be set up stop the example (exit 2) with a message naming
/// the setting, never repeating the key: a malformed key, a driver that cannot seal a
/// program, a state folder that is a file.
#[cfg(feature = "durable")]
#[test]
fn a_durable_setting_that_cannot_be_used_is_named() {
    let bin = support::chat_server_binary();
    let file = std::env::temp_dir().join(format!("chat-state-file-{}", std::process::id()));
    std::fs::write(&file, b"x").unwrap_or_else(|e| panic!("{e}"));
    let good = "5a".repeat(32);
    for (key, driver, dir, said) in [
        (
            "not-a-secret-key",
            None,
            None,
            "CODE_MODE_SNAPSHOT_KEY must be 64 hexadecimal characters",
        ),
        (
            good.as_str(),
            Some("quickjs"),
            None,
            "need CODE_MODE_DRIVER=quickjs-wasm",
        ),
        (
            good.as_str(),
            None,
            Some(&file),
            "CODE_MODE_STATE_DIR: the state folder",
        ),
    ] {
        let mut command = std::process::Command::new(&bin);
        command
            .env("PORT", "0")
            .env("CODE_MODE_SNAPSHOT_KEY", key)
            .env_remove("CODE_MODE_STATE_URL")
            .env_remove("OPENAI_MODEL")
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT");
        match driver {
            Some(d) => command.env("CODE_MODE_DRIVER", d),
            None => command.env_remove("CODE_MODE_DRIVER"),
        };
        match dir {
            Some(d) => command.env("CODE_MODE_STATE_DIR", d),
            None => command.env(
                "CODE_MODE_STATE_DIR",
                std::env::temp_dir().join("chat-state-unused"),
            ),
        };
        let out = command.output().unwrap_or_else(|e| panic!("{e}"));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{said}: {stderr}");
        assert!(stderr.contains(said), "{said}: {stderr}");
        assert!(
            !stderr.contains("not-a-secret-key") && !stderr.contains(&good),
            "{stderr}"
        );
    }
    let _ = std::fs::remove_file(&file);
}
