//! The chat server's HTTP surface: `POST /api/chat` speaks the TanStack AI client's protocol
//! (request `{messages: [...]}`, response a `text/event-stream` of chunks), and `/` serves the
//! web page's built files when present.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use code_mode::{CodeMode, Tool, ToolError, now_ms};
use code_mode_chat::{Agent, Chunk, LlmAdapter, Message, sse_response};
use serde_json::{Value, json};

/// What the server needs.
#[derive(Clone)]
pub struct AppState {
    /// The agent, when a model is configured.
    pub agent: Option<Agent>,
    /// Why there is no agent (shown to the user).
    pub missing_model: String,
    /// The sandbox driver's name and the model's, shown by the page (`GET /api/info`).
    pub info: Value,
}

/// Demo tools with deterministic data.
pub fn tools() -> Vec<Tool> {
    let weather = Tool::new(
        "getWeather",
        "Current weather for a city.",
        json!({"type": "object", "properties": {"city": {"type": "string", "description": "City name."}}, "required": ["city"]}),
        |input, _| async move {
            let city = input["city"].as_str().unwrap_or_default().to_owned();
            let temp = city.bytes().map(u64::from).sum::<u64>() % 30;
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            Ok::<_, ToolError>(
                json!({"city": city, "tempC": temp, "condition": if temp > 15 { "sunny" } else { "cloudy" }}),
            )
        },
    );
    weather.into_iter().collect()
}

/// Builds the state from a model adapter (or the reason there is none) and a driver.
pub fn state(
    llm: Result<Arc<dyn LlmAdapter>, String>,
    driver: Arc<dyn code_mode::IsolateDriver>,
) -> Result<AppState, String> {
    let info = json!({
        "driver": driver.name(),
        "model": llm.as_ref().ok().map(|l| l.model().to_owned()),
    });
    let code_mode = CodeMode::builder()
        .tools(tools())
        .driver(driver)
        .build()
        .map_err(|e| e.to_string())?;
    Ok(match llm {
        Ok(llm) => AppState {
            agent: Some(Agent::new(
                llm,
                code_mode.as_tools(),
                vec![code_mode.system_prompt().to_owned()],
                8,
            )),
            missing_model: String::new(),
            info,
        },
        Err(why) => AppState {
            agent: None,
            missing_model: why,
            info,
        },
    })
}

/// Reads the conversation from the TanStack client's request body: `messages` with `role` and
/// either `content` (a string, or text parts) or `parts`.
pub fn conversation(body: &Value) -> Vec<Message> {
    let text_of = |m: &Value| -> String {
        let from_parts = |parts: &Value| {
            parts
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["type"] == "text")
                .filter_map(|p| p["content"].as_str().or_else(|| p["text"].as_str()))
                .collect::<Vec<_>>()
                .join("")
        };
        match &m["content"] {
            Value::String(s) => s.clone(),
            Value::Array(_) => from_parts(&m["content"]),
            _ => from_parts(&m["parts"]),
        }
    };
    body["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| match m["role"].as_str() {
            Some("user") => Some(Message::User { content: text_of(m) }),
            Some("assistant") => Some(Message::Assistant { content: text_of(m), tool_calls: Vec::new() }),
            _ => None,
        })
        .filter(|m| !matches!(m, Message::User { content } | Message::Assistant { content, .. } if content.is_empty()))
        .collect()
}

async fn chat(State(state): State<AppState>, Json(body): Json<Value>) -> Response {
    let messages = conversation(&body);
    let thread = body["threadId"]
        .as_str()
        .or_else(|| body["id"].as_str())
        .unwrap_or("thread")
        .to_owned();
    match state.agent {
        Some(agent) => match body["runId"].as_str() {
            Some(run_id) => sse_response(agent.run_as(thread, run_id, messages)),
            None => sse_response(agent.run(thread, messages)),
        },
        None => {
            let chunk = Chunk::run_error(
                None,
                now_ms(),
                state.missing_model.clone(),
                Some("no_model".into()),
            );
            sse_response(Box::pin(futures::stream::iter([chunk])))
        }
    }
}

/// The router: `/api/chat`, and the web page from `web_dir` when given.
pub fn router(state: AppState, web_dir: Option<std::path::PathBuf>) -> Router {
    let router = Router::new()
        .route("/api/chat", post(chat))
        .route(
            "/api/info",
            get(|State(state): State<AppState>| async move { Json(state.info) }),
        )
        .route("/healthz", get(|| async { "ok" }));
    let router = match web_dir {
        Some(dir) if dir.join("index.html").exists() => {
            router.fallback_service(tower_http::services::ServeDir::new(dir))
        }
        _ => router.route("/", get(|| async { no_page().into_response() })),
    };
    router.with_state(state)
}

fn no_page() -> axum::response::Html<&'static str> {
    axum::response::Html(
        "<!doctype html><title>code-mode chat</title><p>The web page is not built. POST TanStack AI chat requests to <code>/api/chat</code>.</p>",
    )
}
