//! An OpenAI-compatible chat-completions adapter (OpenAI, and local servers such as Ollama,
//! vLLM or llama.cpp that speak the same API), streaming over Server-Sent Events.

use std::time::Duration;

use async_trait::async_trait;
use eventsource_stream::Eventsource;
use futures::StreamExt;
use futures::stream::BoxStream;
use serde_json::{Value, json};

use crate::Usage;
use crate::llm::{LlmAdapter, LlmError, LlmEvent, LlmRequest, Message};

/// How long the model may stay silent in the middle of a response.
const IDLE_TIMEOUT: Duration = Duration::from_secs(120);
/// Most of an error body quoted in an error message.
const MAX_ERROR_BODY: usize = 2000;

/// A model behind an OpenAI-compatible `/chat/completions` endpoint.
///
/// ```
/// use code_mode_chat::OpenAiCompatible;
/// let llm = OpenAiCompatible::new("http://127.0.0.1:11434/v1", None, "qwen2.5-coder").unwrap();
/// assert!(OpenAiCompatible::new("not a url", None, "m").is_err());
/// ```
#[derive(Debug, Clone)]
pub struct OpenAiCompatible {
    client: reqwest::Client,
    endpoint: reqwest::Url,
    api_key: Option<String>,
    model: String,
}

impl OpenAiCompatible {
    /// `base_url` is the API root (`https://api.openai.com/v1`, `http://localhost:11434/v1`).
    pub fn new(
        base_url: &str,
        api_key: Option<String>,
        model: impl Into<String>,
    ) -> Result<Self, LlmError> {
        let base = reqwest::Url::parse(base_url.trim_end_matches('/'))
            .map_err(|e| LlmError::new("config", format!("invalid base URL {base_url:?}: {e}")))?;
        let endpoint = reqwest::Url::parse(&format!(
            "{}/chat/completions",
            base.as_str().trim_end_matches('/')
        ))
        .map_err(|e| LlmError::new("config", format!("invalid base URL {base_url:?}: {e}")))?;
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| LlmError::new("config", format!("cannot build the HTTP client: {e}")))?;
        Ok(Self {
            client,
            endpoint,
            api_key,
            model: model.into(),
        })
    }

    /// Reads `OPENAI_BASE_URL` (default `https://api.openai.com/v1`), `OPENAI_API_KEY` and
    /// `OPENAI_MODEL`; `None` when no model is configured.
    pub fn from_env() -> Option<Result<Self, LlmError>> {
        let model = std::env::var("OPENAI_MODEL")
            .ok()
            .filter(|m| !m.is_empty())?;
        let base =
            std::env::var("OPENAI_BASE_URL").unwrap_or_else(|_| "https://api.openai.com/v1".into());
        let key = std::env::var("OPENAI_API_KEY")
            .ok()
            .filter(|k| !k.is_empty());
        Some(Self::new(&base, key, model))
    }

    fn body(&self, request: &LlmRequest) -> Value {
        let mut messages: Vec<Value> = request
            .system
            .iter()
            .map(|s| json!({"role": "system", "content": s}))
            .collect();
        for m in &request.messages {
            messages.push(match m {
                Message::User { content } => json!({"role": "user", "content": content}),
                Message::Assistant { content, tool_calls } => {
                    let mut v = json!({"role": "assistant", "content": content});
                    if !tool_calls.is_empty() {
                        v["tool_calls"] = tool_calls
                            .iter()
                            .map(|c| json!({"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}))
                            .collect();
                    }
                    v
                }
                Message::Tool { tool_call_id, content } => json!({"role": "tool", "tool_call_id": tool_call_id, "content": content}),
            });
        }
        let mut body = json!({
            "model": self.model,
            "stream": true,
            "stream_options": {"include_usage": true},
            "messages": messages,
        });
        if !request.tools.is_empty() {
            body["tools"] = request
                .tools
                .iter()
                .map(|t| json!({"type": "function", "function": {"name": t.name, "description": t.description, "parameters": t.parameters}}))
                .collect();
        }
        body
    }
}

/// Turns one streamed completion chunk into events; `started` tracks which tool-call
/// indexes were announced.
fn chunk_events(
    chunk: &Value,
    started: &mut Vec<usize>,
    finish: &mut Option<String>,
    usage: &mut Option<Usage>,
) -> Vec<LlmEvent> {
    let mut out = Vec::new();
    if let Some(u) = chunk.get("usage").filter(|u| u.is_object()) {
        let n = |k: &str| u.get(k).and_then(Value::as_u64).unwrap_or(0);
        *usage = Some(Usage {
            input_tokens: n("prompt_tokens"),
            output_tokens: n("completion_tokens"),
            total_tokens: n("total_tokens"),
        });
    }
    let Some(choice) = chunk
        .get("choices")
        .and_then(Value::as_array)
        .and_then(|c| c.first())
    else {
        return out;
    };
    let delta = choice.get("delta").cloned().unwrap_or(Value::Null);
    if let Some(text) = delta
        .get("content")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
    {
        out.push(LlmEvent::TextDelta(text.to_owned()));
    }
    for call in delta
        .get("tool_calls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let index = call.get("index").and_then(Value::as_u64).unwrap_or(0) as usize;
        if !started.contains(&index) {
            started.push(index);
            let id = call
                .get("id")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .unwrap_or_else(|| format!("call_{index}"));
            let name = call
                .pointer("/function/name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            out.push(LlmEvent::ToolCallStart { index, id, name });
        }
        if let Some(args) = call
            .pointer("/function/arguments")
            .and_then(Value::as_str)
            .filter(|a| !a.is_empty())
        {
            out.push(LlmEvent::ToolCallArgs {
                index,
                delta: args.to_owned(),
            });
        }
    }
    if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
        *finish = Some(reason.to_owned());
    }
    out
}

#[async_trait]
impl LlmAdapter for OpenAiCompatible {
    fn model(&self) -> &str {
        &self.model
    }

    async fn stream(
        &self,
        request: LlmRequest,
    ) -> Result<BoxStream<'static, Result<LlmEvent, LlmError>>, LlmError> {
        let mut req = self
            .client
            .post(self.endpoint.clone())
            .json(&self.body(&request));
        if let Some(key) = &self.api_key {
            req = req.bearer_auth(key);
        }
        let response = req.send().await.map_err(|e| {
            LlmError::new(
                "network",
                format!("cannot reach the model at {}: {e}", self.endpoint),
            )
        })?;
        let status = response.status();
        if !status.is_success() {
            let mut body = response.text().await.unwrap_or_default();
            body.truncate(
                body.char_indices()
                    .nth(MAX_ERROR_BODY)
                    .map_or(body.len(), |(i, _)| i),
            );
            return Err(LlmError::new(
                format!("http_{}", status.as_u16()),
                format!("the model endpoint answered {status}: {body}"),
            ));
        }
        let mut events = response.bytes_stream().eventsource();
        let stream = async_stream(move |tx| async move {
            let (mut started, mut finish, mut usage) = (Vec::new(), None, None);
            loop {
                let next = match tokio::time::timeout(IDLE_TIMEOUT, events.next()).await {
                    Err(_) => {
                        return tx(Err(LlmError::new(
                            "timeout",
                            "the model stopped sending for 120 s",
                        )));
                    }
                    Ok(None) => break,
                    Ok(Some(Err(e))) => {
                        return tx(Err(LlmError::new(
                            "network",
                            format!("the model stream broke: {e}"),
                        )));
                    }
                    Ok(Some(Ok(event))) => event,
                };
                if next.data.trim() == "[DONE]" {
                    break;
                }
                let chunk: Value = match serde_json::from_str(&next.data) {
                    Ok(v) => v,
                    Err(e) => {
                        return tx(Err(LlmError::new(
                            "malformed",
                            format!(
                                "the model sent a malformed chunk ({e}): {}",
                                next.data.chars().take(200).collect::<String>()
                            ),
                        )));
                    }
                };
                if let Some(err) = chunk.get("error") {
                    return tx(Err(LlmError::new(
                        "model_error",
                        err.get("message")
                            .and_then(Value::as_str)
                            .unwrap_or("model error")
                            .to_owned(),
                    )));
                }
                for event in chunk_events(&chunk, &mut started, &mut finish, &mut usage) {
                    if !tx(Ok(event)) {
                        return false;
                    }
                }
            }
            tx(Ok(LlmEvent::Finish {
                reason: finish.unwrap_or_else(|| "stop".into()),
                usage,
            }))
        });
        Ok(stream)
    }
}

/// A stream fed by an async producer through a channel; the producer stops when the stream
/// is dropped (its send returns false).
fn async_stream<F, Fut>(producer: F) -> BoxStream<'static, Result<LlmEvent, LlmError>>
where
    F: FnOnce(Box<dyn Fn(Result<LlmEvent, LlmError>) -> bool + Send + Sync>) -> Fut,
    Fut: std::future::Future<Output = bool> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let send = Box::new(move |item| tx.send(item).is_ok());
    let task = tokio::spawn(producer(send));
    let guard = AbortOnDrop(task);
    futures::stream::unfold((rx, guard), |(mut rx, guard)| async move {
        let item = rx.recv().await?;
        Some((item, (rx, guard)))
    })
    .boxed()
}

struct AbortOnDrop(tokio::task::JoinHandle<bool>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_deltas() {
        let (mut started, mut finish, mut usage) = (Vec::new(), None, None);
        let c1 = json!({"choices": [{"delta": {"tool_calls": [{"index": 0, "id": "call_a", "function": {"name": "execute_typescript", "arguments": "{\"ty"}}]}}]});
        let c2 = json!({"choices": [{"delta": {"tool_calls": [{"index": 0, "function": {"arguments": "pescriptCode\":\"1\"}"}}]}, "finish_reason": "tool_calls"}]});
        let c3 = json!({"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}});
        let mut events = chunk_events(&c1, &mut started, &mut finish, &mut usage);
        events.extend(chunk_events(&c2, &mut started, &mut finish, &mut usage));
        events.extend(chunk_events(&c3, &mut started, &mut finish, &mut usage));
        assert_eq!(
            events,
            vec![
                LlmEvent::ToolCallStart {
                    index: 0,
                    id: "call_a".into(),
                    name: "execute_typescript".into()
                },
                LlmEvent::ToolCallArgs {
                    index: 0,
                    delta: "{\"ty".into()
                },
                LlmEvent::ToolCallArgs {
                    index: 0,
                    delta: "pescriptCode\":\"1\"}".into()
                },
            ]
        );
        assert_eq!(finish.as_deref(), Some("tool_calls"));
        assert_eq!(usage.map(|u| u.total_tokens), Some(7));
    }
}
