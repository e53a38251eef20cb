//! The OpenAI-compatible adapter against a scripted model server on 127.0.0.1, and the agent
//! served over HTTP as Server-Sent Events.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
mod common;

use code_mode_chat::{
    Agent, Chunk, LlmAdapter, LlmEvent, LlmRequest, Message, OpenAiCompatible, sse, sse_response,
};
use futures::StreamExt;
use serde_json::{Value, json};

const PROGRAM: &str = "console.log('looking up');\nconst w = await external_weather({ city: 'Oslo' });\nreturn w.tempC;";

fn sse_body(chunks: &[Value]) -> Response {
    let mut body: String = chunks.iter().map(|c| format!("data: {c}\n\n")).collect();
    body.push_str("data: [DONE]\n\n");
    ([("content-type", "text/event-stream")], body).into_response()
}

/// The scripted model: a tool call first, then an answer quoting the tool result.
async fn model(body: axum::Json<Value>) -> Response {
    let messages = body["messages"].as_array().cloned().unwrap_or_default();
    let last = messages.last().cloned().unwrap_or(Value::Null);
    if body["model"] == "broken" {
        return (
            StatusCode::UNAUTHORIZED,
            "{\"error\":{\"message\":\"bad key\"}}",
        )
            .into_response();
    }
    if last["role"] == "tool" {
        let result: Value =
            serde_json::from_str(last["content"].as_str().unwrap_or("{}")).unwrap_or_default();
        return sse_body(&[
            json!({"choices": [{"delta": {"role": "assistant", "content": "It is "}}]}),
            json!({"choices": [{"delta": {"content": format!("{} °C.", result["result"])}, "finish_reason": "stop"}]}),
            json!({"choices": [], "usage": {"prompt_tokens": 20, "completion_tokens": 5, "total_tokens": 25}}),
        ]);
    }
    assert!(body["tools"].as_array().is_some_and(|t| {
        t.iter()
            .any(|t| t["function"]["name"] == "execute_typescript")
    }));
    assert_eq!(messages[0]["role"], "system");
    let args = json!({"typescriptCode": PROGRAM}).to_string();
    let (a, b) = args.split_at(20);
    sse_body(&[
        json!({"choices": [{"delta": {"tool_calls": [{"index": 0, "id": "call_x", "type": "function", "function": {"name": "execute_typescript", "arguments": a}}]}}]}),
        json!({"choices": [{"delta": {"tool_calls": [{"index": 0, "function": {"arguments": b}}]}, "finish_reason": "tool_calls"}]}),
    ])
}

/// The application's chat endpoint: runs `agent` on one user message, as SSE.
fn chat_app(agent: Agent, question: &'static str) -> Router {
    Router::new().route(
        "/api/chat",
        post(move || {
            let agent = agent.clone();
            async move {
                sse_response(agent.run(
                    "thread",
                    vec![Message::User {
                        content: question.into(),
                    }],
                ))
            }
        }),
    )
}

async fn serve(router: Router) -> String {
    let listener = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
        Ok(l) => l,
        Err(e) => panic!("bind: {e}"),
    };
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    format!("http://{addr}")
}

fn agent(base: &str, model_name: &str, delay: Duration, dropped: Arc<AtomicBool>) -> Agent {
    let cm = common::weather_code_mode(delay, dropped);
    let llm = OpenAiCompatible::new(&format!("{base}/v1"), Some("sk-test".into()), model_name)
        .unwrap_or_else(|e| panic!("{e}"));
    Agent::new(
        Arc::new(llm),
        cm.as_tools(),
        vec![cm.system_prompt().to_owned()],
        4,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adapter_streams_tool_calls_and_text() {
    let base = serve(Router::new().route("/v1/chat/completions", post(model))).await;
    let llm = OpenAiCompatible::new(&format!("{base}/v1"), None, "scripted")
        .unwrap_or_else(|e| panic!("{e}"));
    let req = LlmRequest {
        system: vec!["sys".into()],
        messages: vec![Message::User {
            content: "hi".into(),
        }],
        tools: vec![code_mode_chat::LlmTool {
            name: "execute_typescript".into(),
            description: "d".into(),
            parameters: json!({"type": "object"}),
        }],
    };
    let events: Vec<LlmEvent> = llm
        .stream(req)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .filter_map(|e| async move { e.ok() })
        .collect()
        .await;
    assert!(
        matches!(&events[0], LlmEvent::ToolCallStart { id, name, .. } if id == "call_x" && name == "execute_typescript")
    );
    let args: String = events
        .iter()
        .filter_map(|e| match e {
            LlmEvent::ToolCallArgs { delta, .. } => Some(delta.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        serde_json::from_str::<Value>(&args).unwrap_or_default()["typescriptCode"],
        json!(PROGRAM)
    );
    assert!(
        matches!(events.last(), Some(LlmEvent::Finish { reason, .. }) if reason == "tool_calls")
    );

    let bad = OpenAiCompatible::new(&format!("{base}/v1"), None, "broken")
        .unwrap_or_else(|e| panic!("{e}"));
    let err = bad
        .stream(LlmRequest::default())
        .await
        .err()
        .unwrap_or_else(|| panic!("expected an error"));
    assert_eq!(err.code.as_deref(), Some("http_401"));
    assert!(err.message.contains("bad key"));

    let nowhere =
        OpenAiCompatible::new("http://127.0.0.1:9/v1", None, "m").unwrap_or_else(|e| panic!("{e}"));
    let err = nowhere
        .stream(LlmRequest::default())
        .await
        .err()
        .unwrap_or_else(|| panic!("expected an error"));
    assert_eq!(err.code.as_deref(), Some("network"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_over_http_as_sse() {
    let model_base = serve(Router::new().route("/v1/chat/completions", post(model))).await;
    let agent = agent(
        &model_base,
        "scripted",
        Duration::from_millis(50),
        Arc::default(),
    );
    let app = chat_app(agent, "Weather in Oslo?");
    let app_base = serve(app).await;
    let response = reqwest::Client::new()
        .post(format!("{app_base}/api/chat"))
        .body("{}")
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    assert_eq!(response.headers()["cache-control"], "no-cache");
    let body = response.text().await.unwrap_or_else(|e| panic!("{e}"));
    let chunks = sse::decode(&body);
    let names: Vec<&str> = chunks.iter().map(Chunk::label).collect();
    let pos = |n: &str| {
        names
            .iter()
            .position(|x| *x == n)
            .unwrap_or_else(|| panic!("{n} missing in {names:?}"))
    };
    assert!(pos("code_mode:console") < pos("TOOL_CALL_RESULT"));
    assert!(pos("code_mode:external_result") < pos("TOOL_CALL_RESULT"));
    assert_eq!(names.last().copied(), Some("RUN_FINISHED"));
    let text: String = chunks
        .iter()
        .filter_map(|c| match c {
            Chunk::TextMessageContent { delta, .. } => Some(delta.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(text, "It is 4 °C.");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_disconnect_cancels_the_sandbox() {
    let model_base = serve(Router::new().route("/v1/chat/completions", post(model))).await;
    let dropped = Arc::new(AtomicBool::new(false));
    let agent = agent(
        &model_base,
        "scripted",
        Duration::from_secs(30),
        dropped.clone(),
    );
    let app = chat_app(agent, "hi");
    let app_base = serve(app).await;
    let response = reqwest::Client::new()
        .post(format!("{app_base}/api/chat"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut stream = response.bytes_stream();
    let mut seen = String::new();
    while let Some(Ok(bytes)) = stream.next().await {
        seen.push_str(&String::from_utf8_lossy(&bytes));
        if seen.contains("code_mode:external_call") {
            break;
        }
    }
    drop(stream);
    common::wait_for(
        &dropped,
        "the sandbox kept running after the client disconnected",
    )
    .await;
}
