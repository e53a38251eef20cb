//! What the example tests share: a loopback server helper and the scripted OpenAI-compatible
//! model (the only stand-in: no real model is reachable from the test machine).

use std::sync::Arc;

use axum::Router;
use axum::response::IntoResponse;
use axum::routing::post;
use code_mode_chat::{LlmAdapter, OpenAiCompatible};
use serde_json::{Value, json};

/// Serves `router` on an ephemeral 127.0.0.1 port; returns its base URL.
pub async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    format!("http://{addr}")
}

/// Requests the scripted model received, in order.
pub type Recorded = Arc<std::sync::Mutex<Vec<Value>>>;

/// Starts a model that answers each user turn with one `execute_typescript` call running
/// `code` (id `call_ui` in the first turn, `call_ui_<n>` in the n-th), and the turn after the
/// tool result with `Done: <result>`.
#[allow(dead_code)]
pub async fn scripted_model(code: &'static str) -> Arc<dyn LlmAdapter> {
    scripted_model_recording(code).await.0
}

/// [`scripted_model`], also returning every request body it receives.
#[allow(dead_code)]
pub async fn scripted_model_recording(code: &'static str) -> (Arc<dyn LlmAdapter>, Recorded) {
    let (base, recorded) = scripted_model_server(code).await;
    let llm: Arc<dyn LlmAdapter> =
        Arc::new(OpenAiCompatible::new(&base, None, "scripted").unwrap_or_else(|e| panic!("{e}")));
    (llm, recorded)
}

/// The scripted model's server alone: its OpenAI-compatible base URL (`.../v1`, for a chat
/// server run as its own process through `OPENAI_BASE_URL`) and the requests it receives.
#[allow(dead_code)]
pub async fn scripted_model_server(code: &'static str) -> (String, Recorded) {
    let recorded: Recorded = Arc::default();
    let seen = recorded.clone();
    let handler = move |axum::Json(body): axum::Json<Value>| async move {
        seen.lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(body.clone());
        let turn = body["messages"]
            .as_array()
            .map(|m| m.iter().filter(|m| m["role"] == "user").count())
            .unwrap_or(1);
        let id = if turn <= 1 {
            "call_ui".to_owned()
        } else {
            format!("call_ui_{turn}")
        };
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
            let args = json!({ "typescriptCode": code }).to_string();
            vec![
                json!({"choices": [{"delta": {"tool_calls": [{"index": 0, "id": id, "function": {"name": "execute_typescript", "arguments": args}}]}, "finish_reason": "tool_calls"}]}),
            ]
        };
        let mut out: String = chunks.iter().map(|c| format!("data: {c}\n\n")).collect();
        out.push_str("data: [DONE]\n\n");
        ([("content-type", "text/event-stream")], out).into_response()
    };
    let base = serve(Router::new().route("/v1/chat/completions", post(handler))).await;
    (format!("{base}/v1"), recorded)
}

/// The chat-server example's binary, which `cargo test` builds beside the test binaries.
#[allow(dead_code)]
pub fn chat_server_binary() -> std::path::PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.join("examples/chat-server")))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| panic!("the chat-server example was not built beside the tests"))
}
