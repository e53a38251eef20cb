//! The example chat server answers a TanStack AI client request with the SSE chunk stream,
//! driven by a scripted OpenAI-compatible model on 127.0.0.1.

#[path = "../chat-server/app.rs"]
mod app;

mod support;

use code_mode_chat::{Chunk, Message, sse};
use serde_json::{Value, json};
use support::{scripted_model, serve};

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
    assert_eq!(info, json!({"driver": "quickjs", "model": "scripted"}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explains_a_missing_model() {
    let driver =
        code_mode_drivers::driver_by_name("quickjs", &code_mode_drivers::DriverOptions::default())
            .unwrap_or_else(|e| panic!("{e}"));
    let state =
        app::state(Err("set OPENAI_MODEL".into()), driver).unwrap_or_else(|e| panic!("{e}"));
    let base = serve(app::router(state, None)).await;
    let chunks = post_chat(&base, &json!({"messages": []})).await;
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
fn reads_both_message_shapes() {
    let body = json!({"messages": [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "parts": [{"type": "text", "content": "hello"}, {"type": "tool-call", "id": "x"}]},
        {"role": "user", "content": [{"type": "text", "text": "again"}]},
        {"role": "system", "content": "ignored"},
        {"role": "user", "content": ""}
    ]});
    assert_eq!(
        app::conversation(&body),
        vec![
            Message::User {
                content: "hi".into()
            },
            Message::Assistant {
                content: "hello".into(),
                tool_calls: vec![]
            },
            Message::User {
                content: "again".into()
            },
        ]
    );
}
