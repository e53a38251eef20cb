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
use code_mode_chat::{Agent, Chunk, LlmAdapter, Message, ToolCall, sse_response};
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
    // Sending mail is the kind of call a person wants a say in: every call waits for an
    // Approve / Deny on the page (TanStack's approval flow) before it runs.
    let send = Tool::new(
        "sendReport",
        "Emails a short weather report. A person approves each email before it is sent.",
        json!({"type": "object", "properties": {
            "to": {"type": "string", "description": "Recipient address."},
            "text": {"type": "string", "description": "The report."}
        }, "required": ["to", "text"]}),
        |input, _| async move {
            Ok::<_, ToolError>(json!({"sent": true, "to": input["to"], "chars": input["text"].as_str().map_or(0, str::len)}))
        },
    )
    .map(|t| t.require_approval(code_mode::ApprovalPolicy::Always));
    weather.into_iter().chain(send).collect()
}

/// Builds the state from a model adapter (or the reason there is none) and a driver.
#[allow(dead_code)]
pub fn state(
    llm: Result<Arc<dyn LlmAdapter>, String>,
    driver: Arc<dyn code_mode::IsolateDriver>,
) -> Result<AppState, String> {
    state_with(llm, driver, None)
}

/// Like [`state`], type-checking every program with `type_check` (mode and checker).
pub fn state_with(
    llm: Result<Arc<dyn LlmAdapter>, String>,
    driver: Arc<dyn code_mode::IsolateDriver>,
    type_check: Option<(code_mode::TypeCheckMode, Arc<dyn code_mode::TypeChecker>)>,
) -> Result<AppState, String> {
    state_full(llm, driver, type_check, None)
}

/// Durable approvals: the vault that seals a program waiting for an approval and the store
/// where it waits, so the answer may come after a restart (feature `durable`).
#[cfg(feature = "durable")]
pub type Durable = code_mode_skills::DurableState;
/// Durable approvals (feature `durable`; without it, none).
#[cfg(not(feature = "durable"))]
pub type Durable = std::convert::Infallible;

/// Like [`state_with`], with `durable` approvals when given (the driver must be able to
/// pause durably: QuickJS-WASM).
pub fn state_full(
    llm: Result<Arc<dyn LlmAdapter>, String>,
    driver: Arc<dyn code_mode::IsolateDriver>,
    type_check: Option<(code_mode::TypeCheckMode, Arc<dyn code_mode::TypeChecker>)>,
    durable: Option<&Durable>,
) -> Result<AppState, String> {
    let info = json!({
        "driver": driver.name(),
        "model": llm.as_ref().ok().map(|l| l.model().to_owned()),
        "durableApprovals": durable.is_some(),
    });
    let mut builder = CodeMode::builder().tools(tools()).driver(driver);
    if let Some((mode, checker)) = type_check {
        builder = builder.type_check(mode, checker);
    }
    #[cfg(feature = "durable")]
    if let Some(d) = durable {
        builder = builder.snapshot_vault(d.vault().map_err(|e| e.to_string())?);
    }
    let code_mode = builder.build().map_err(|e| e.to_string())?;
    Ok(match llm {
        Ok(llm) => AppState {
            agent: Some({
                let agent = Agent::new(
                    llm,
                    code_mode.as_tools(),
                    vec![code_mode.system_prompt().to_owned()],
                    8,
                )
                .with_approvals(code_mode_chat::ChatApprovals::default());
                #[cfg(feature = "durable")]
                let agent = match durable {
                    Some(d) => agent.with_durable_approvals(code_mode_chat::DurableApprovals::new(
                        code_mode.clone(),
                        d.paused_store(),
                    )),
                    None => agent,
                };
                agent
            }),
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

/// Reads the conversation from the TanStack client's request body, tool history included.
///
/// The client sends AG-UI wire messages: `user` (`content` a string or content parts),
/// `assistant` (`content`, `toolCalls: [{id, function: {name, arguments}}]`) and `tool`
/// (`toolCallId`, `content`) fan-outs carrying each call's result; older clients send
/// `parts` (`text`, `tool-call`, `tool-result`) instead, which are read too. `system`,
/// `developer` and `reasoning` messages are ignored: the server owns the system prompt.
/// Tool calls without a result (an interrupted turn) and results without their call are
/// dropped, since a model API refuses such a history.
///
/// A body the model cannot answer (no `messages` array, no user message) is an error
/// naming what is wrong; the server answers it with 400 instead of starting a run.
pub fn conversation(body: &Value) -> Result<Vec<Message>, String> {
    let Some(raw) = body.get("messages") else {
        return Err("the request body has no `messages` array".into());
    };
    let Some(raw) = raw.as_array() else {
        return Err("`messages` must be an array of chat messages".into());
    };
    if raw.is_empty() {
        return Err("`messages` is empty: send at least one user message".into());
    }
    let text_of = |v: &Value| -> String {
        match v {
            Value::String(s) => s.clone(),
            Value::Array(parts) => parts
                .iter()
                .filter(|p| p["type"] == "text")
                .filter_map(|p| p["content"].as_str().or_else(|| p["text"].as_str()))
                .collect::<Vec<_>>()
                .join(""),
            _ => String::new(),
        }
    };
    let arguments_of = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Null => "{}".to_owned(),
        other => other.to_string(),
    };
    let mut messages = Vec::new();
    for m in raw {
        match m["role"].as_str() {
            Some("user") => {
                let content = if m.get("content").is_some() {
                    text_of(&m["content"])
                } else {
                    text_of(&m["parts"])
                };
                messages.push(Message::User { content });
            }
            Some("assistant") => {
                let mut content = text_of(&m["content"]);
                let mut tool_calls: Vec<ToolCall> = m["toolCalls"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|c| {
                        Some(ToolCall {
                            id: c["id"].as_str()?.to_owned(),
                            name: c["function"]["name"].as_str()?.to_owned(),
                            arguments: arguments_of(&c["function"]["arguments"]),
                        })
                    })
                    .collect();
                let mut results = Vec::new();
                for part in m["parts"].as_array().into_iter().flatten() {
                    match part["type"].as_str() {
                        Some("text") if content.is_empty() || m.get("content").is_none() => {
                            content.push_str(part["content"].as_str().unwrap_or_default());
                        }
                        Some("tool-call") => {
                            if let (Some(id), Some(name)) =
                                (part["id"].as_str(), part["name"].as_str())
                                && !tool_calls.iter().any(|c| c.id == id)
                            {
                                tool_calls.push(ToolCall {
                                    id: id.to_owned(),
                                    name: name.to_owned(),
                                    arguments: arguments_of(&part["arguments"]),
                                });
                                if let Some(output) = part.get("output").filter(|o| !o.is_null()) {
                                    results.push((id.to_owned(), arguments_of(output)));
                                }
                            }
                        }
                        Some("tool-result") => {
                            if let Some(id) = part["toolCallId"].as_str() {
                                results.retain(|(r, _)| r != id);
                                results.push((id.to_owned(), arguments_of(&part["content"])));
                            }
                        }
                        _ => {}
                    }
                }
                messages.push(Message::Assistant {
                    content,
                    tool_calls,
                });
                messages.extend(
                    results
                        .into_iter()
                        .map(|(tool_call_id, content)| Message::Tool {
                            tool_call_id,
                            content,
                        }),
                );
            }
            Some("tool") => {
                if let Some(id) = m["toolCallId"].as_str() {
                    let content = match (&m["content"], m["error"].as_str()) {
                        (Value::String(s), _) if !s.is_empty() => s.clone(),
                        (_, Some(err)) => json!({"error": err}).to_string(),
                        (other, None) => arguments_of(other),
                    };
                    messages.push(Message::Tool {
                        tool_call_id: id.to_owned(),
                        content,
                    });
                }
            }
            _ => {}
        }
    }
    let messages = consistent(messages);
    if !messages
        .iter()
        .any(|m| matches!(m, Message::User { content } if !content.is_empty()))
    {
        return Err(
            "no user message with text in `messages` (roles read: user, assistant, tool)".into(),
        );
    }
    Ok(messages)
}

/// Keeps tool calls that have a result and results that follow their call (once each),
/// results right after the assistant message that made the call, and drops empty messages.
fn consistent(messages: Vec<Message>) -> Vec<Message> {
    let mut results: std::collections::HashMap<String, String> = Default::default();
    for m in &messages {
        if let Message::Tool {
            tool_call_id,
            content,
        } = m
        {
            results
                .entry(tool_call_id.clone())
                .or_insert_with(|| content.clone());
        }
    }
    let mut out = Vec::new();
    for m in messages {
        match m {
            Message::Tool { .. } => {}
            Message::Assistant {
                content,
                tool_calls,
            } => {
                let calls: Vec<ToolCall> = tool_calls
                    .into_iter()
                    .filter(|c| results.contains_key(&c.id))
                    .collect();
                if content.is_empty() && calls.is_empty() {
                    continue;
                }
                let answers: Vec<Message> = calls
                    .iter()
                    .filter_map(|c| {
                        results.remove(&c.id).map(|content| Message::Tool {
                            tool_call_id: c.id.clone(),
                            content,
                        })
                    })
                    .collect();
                out.push(Message::Assistant {
                    content,
                    tool_calls: calls,
                });
                out.extend(answers);
            }
            Message::User { content } if content.is_empty() => {}
            other => out.push(other),
        }
    }
    out
}

async fn chat(
    State(state): State<AppState>,
    body: Result<Json<Value>, axum::extract::rejection::JsonRejection>,
) -> Response {
    // A body that is not JSON gets the same JSON error shape as any other bad request.
    let body = match body {
        Ok(Json(body)) => body,
        Err(rejection) => {
            return (
                rejection.status(),
                Json(json!({"error": format!("the request body is not usable JSON: {}", rejection.body_text())})),
            )
                .into_response();
        }
    };
    // A follow-up request answering an approval continues the paused run.
    if let Some(agent) = &state.agent {
        let run_id = body["runId"]
            .as_str()
            .map_or_else(|| format!("run-{}", now_ms()), str::to_owned);
        if let Some(rest) = agent.resume(&body, run_id) {
            return sse_response(rest);
        }
    }
    let messages = match conversation(&body) {
        Ok(m) => m,
        Err(why) => {
            return (
                axum::http::StatusCode::BAD_REQUEST,
                Json(json!({"error": why})),
            )
                .into_response();
        }
    };
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
