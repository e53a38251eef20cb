//! The example chat server answers a TanStack AI client request with the SSE chunk stream,
//! driven by a scripted OpenAI-compatible model on 127.0.0.1.

#[path = "../chat-server/app.rs"]
mod app;

use std::sync::Arc;

use axum::Router;
use axum::response::IntoResponse;
use axum::routing::post;
use code_mode_chat::{Chunk, LlmAdapter, Message, OpenAiCompatible, sse};
use serde_json::{Value, json};

async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    format!("http://{addr}")
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

/// Scripted model: calls execute_typescript, then answers from the tool result.
async fn model(axum::Json(body): axum::Json<Value>) -> axum::response::Response {
    let last = body["messages"]
        .as_array()
        .and_then(|m| m.last())
        .cloned()
        .unwrap_or_default();
    let chunks = if last["role"] == "tool" {
        vec![
            json!({"choices": [{"delta": {"content": "Done: "}, "finish_reason": null}]}),
            json!({"choices": [{"delta": {"content": last["content"]}, "finish_reason": "stop"}]}),
        ]
    } else {
        let args = json!({"typescriptCode": "console.log('fetching');\nconst [a, b] = await Promise.all([external_getWeather({ city: 'Oslo' }), external_getWeather({ city: 'Lima' })]);\nreturn [a.tempC, b.tempC];"}).to_string();
        vec![
            json!({"choices": [{"delta": {"tool_calls": [{"index": 0, "id": "call_ui", "function": {"name": "execute_typescript", "arguments": args}}]}, "finish_reason": "tool_calls"}]}),
        ]
    };
    let mut out: String = chunks.iter().map(|c| format!("data: {c}\n\n")).collect();
    out.push_str("data: [DONE]\n\n");
    ([("content-type", "text/event-stream")], out).into_response()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_a_tanstack_client_request() {
    let model_base = serve(Router::new().route("/v1/chat/completions", post(model))).await;
    let llm: Arc<dyn LlmAdapter> = Arc::new(
        OpenAiCompatible::new(&format!("{model_base}/v1"), None, "scripted")
            .unwrap_or_else(|e| panic!("{e}")),
    );
    let driver = code_mode_drivers::default_driver().unwrap_or_else(|e| panic!("{e}"));
    let state = app::state(Ok(llm), driver).unwrap_or_else(|e| panic!("{e}"));
    let base = serve(app::router(state, None)).await;
    // The body the TanStack client sends: model messages with text content or parts.
    let request =
        json!({"messages": [{"role": "user", "content": "Compare Oslo and Lima"}], "data": {}});
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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explains_a_missing_model() {
    let driver = code_mode_drivers::default_driver().unwrap_or_else(|e| panic!("{e}"));
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
