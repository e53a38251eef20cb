//! The agent loop: model → tool calls → results → model, as a stream of [`Chunk`]s.
//!
//! Code Mode events of a running `execute_typescript` call are forwarded as CUSTOM chunks the
//! moment they happen (console lines included), tagged with the call's id, so the chat UI
//! shows the program's progress before its result arrives. Dropping the stream (a client that
//! disconnects) aborts the loop, and with it the model request and the sandbox execution.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tracing::Instrument;

use crate::approvals::{ChatApprovals, ChatApprover, Relay, response_stream};
use crate::llm::{LlmAdapter, LlmEvent, LlmRequest, LlmTool, Message, ToolCall};
use crate::{Chunk, Usage};
use code_mode::{EventSink, Tool, ToolContext, now_ms};
use futures::StreamExt;
use futures::stream::BoxStream;
use serde_json::{Value, json};

/// Runs conversations with a model and tools.
#[derive(Clone)]
pub struct Agent {
    llm: Arc<dyn LlmAdapter>,
    tools: Vec<Tool>,
    system: Vec<String>,
    max_iterations: usize,
    approvals: Option<ChatApprovals>,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("model", &self.llm.model())
            .field(
                "tools",
                &self.tools.iter().map(Tool::name).collect::<Vec<_>>(),
            )
            .field("max_iterations", &self.max_iterations)
            .finish()
    }
}

fn next_id(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{prefix}-{}-{}",
        now_ms(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

impl Agent {
    /// An agent with `tools` (e.g. `code_mode.as_tools()` plus ordinary tools) and the
    /// system prompts (e.g. `code_mode.system_prompt()`); at most `max_iterations` model calls
    /// per run.
    pub fn new(
        llm: Arc<dyn LlmAdapter>,
        tools: Vec<Tool>,
        system: Vec<String>,
        max_iterations: usize,
    ) -> Self {
        Self {
            llm,
            tools,
            system,
            max_iterations: max_iterations.max(1),
            approvals: None,
        }
    }

    /// Lets programs ask for approval through the client (see the `approvals` module):
    /// runs waiting for a decision are parked in `approvals` between requests. Without it,
    /// calls that need approval are denied (no one can be asked).
    #[must_use]
    pub fn with_approvals(mut self, approvals: ChatApprovals) -> Self {
        self.approvals = Some(approvals);
        self
    }

    /// The follow-up request `body` answers a parked run's approval: the rest of that run,
    /// streamed under `run_id`. `None` when it answers none (start a new run then).
    pub fn resume(
        &self,
        body: &Value,
        run_id: impl Into<String>,
    ) -> Option<BoxStream<'static, Chunk>> {
        crate::approvals::resume(self.approvals.as_ref()?, body, run_id.into())
    }

    /// Runs the conversation; must be called inside a Tokio runtime. The stream ends after the
    /// final `RUN_FINISHED`, or with a `RUN_ERROR`.
    pub fn run(
        &self,
        thread_id: impl Into<String>,
        messages: Vec<Message>,
    ) -> BoxStream<'static, Chunk> {
        self.run_as(thread_id, next_id("run"), messages)
    }

    /// Like [`Agent::run`], with the run id the client chose (the TanStack client sends
    /// `runId` in its request body and matches it against `RUN_STARTED`).
    pub fn run_as(
        &self,
        thread_id: impl Into<String>,
        run_id: impl Into<String>,
        messages: Vec<Message>,
    ) -> BoxStream<'static, Chunk> {
        let agent = self.clone();
        let thread_id = thread_id.into();
        let run_id = run_id.into();
        let (relay, rx) = Relay::new(run_id.clone(), thread_id.clone());
        // One `invoke_agent` span per run: the model calls and tool calls are its children,
        // and Code Mode's execution spans nest under the tool calls.
        let span = tracing::info_span!(
            target: "code_mode_chat",
            "code_mode_chat.run",
            otel.name = "invoke_agent",
            gen_ai.operation.name = "invoke_agent",
            gen_ai.conversation.id = %thread_id,
            code_mode_chat.run_id = %run_id,
            gen_ai.request.model = agent.llm.model(),
        );
        let driven = relay.clone();
        let task = tokio::spawn(
            async move { agent.drive(thread_id, run_id, messages, driven).await }.instrument(span),
        );
        // The response holds the task: a client that goes away cancels the run (unless it
        // parked waiting for an approval first).
        let guard = relay.hold_task(task.abort_handle());
        response_stream(rx, guard)
    }

    async fn drive(
        &self,
        thread_id: String,
        run_id: String,
        mut messages: Vec<Message>,
        relay: Arc<Relay>,
    ) {
        let model = self.llm.model().to_owned();
        let meta = |extra: Value| {
            let mut tanstack = json!({"model": model});
            if let (Value::Object(t), Value::Object(e)) = (&mut tanstack, extra) {
                t.extend(e);
            }
            Some(json!({"tanstack": tanstack}))
        };
        let send = |chunk: Chunk| relay.send(chunk);
        let tools: Vec<LlmTool> = self
            .tools
            .iter()
            .map(|t| LlmTool {
                name: t.name().to_owned(),
                description: t.description().to_owned(),
                parameters: t.input_schema().clone(),
            })
            .collect();
        send(Chunk::RunStarted {
            run_id: run_id.clone(),
            thread_id: thread_id.clone(),
            timestamp: now_ms(),
            metadata: meta(json!({})),
        });
        for _ in 0..self.max_iterations {
            let request = LlmRequest {
                system: self.system.clone(),
                messages: messages.clone(),
                tools: tools.clone(),
            };
            let chat = tracing::info_span!(
                target: "code_mode_chat",
                "code_mode_chat.model_call",
                otel.name = format!("chat {model}"),
                otel.status_code = tracing::field::Empty,
                gen_ai.operation.name = "chat",
                gen_ai.request.model = %model,
                gen_ai.response.finish_reasons = tracing::field::Empty,
                gen_ai.usage.input_tokens = tracing::field::Empty,
                gen_ai.usage.output_tokens = tracing::field::Empty,
                error.type = tracing::field::Empty,
            );
            let mut stream = match self.llm.stream(request).instrument(chat.clone()).await {
                Ok(s) => s,
                Err(e) => {
                    chat.record("error.type", e.code.as_deref().unwrap_or("error"));
                    chat.record("otel.status_code", "ERROR");
                    return send(Chunk::run_error(Some(run_id), now_ms(), e.message, e.code));
                }
            };
            let message_id = next_id("msg");
            let mut text = String::new();
            let mut text_open = false;
            let mut calls: Vec<ToolCall> = Vec::new();
            let mut finish = ("stop".to_owned(), None);
            while let Some(event) = stream.next().instrument(chat.clone()).await {
                match event {
                    Err(e) => {
                        chat.record("error.type", e.code.as_deref().unwrap_or("error"));
                        chat.record("otel.status_code", "ERROR");
                        return send(Chunk::run_error(Some(run_id), now_ms(), e.message, e.code));
                    }
                    Ok(LlmEvent::TextDelta(delta)) => {
                        if !text_open {
                            text_open = true;
                            send(Chunk::TextMessageStart {
                                message_id: message_id.clone(),
                                timestamp: now_ms(),
                                role: "assistant".into(),
                                metadata: meta(json!({})),
                            });
                        }
                        text.push_str(&delta);
                        send(Chunk::TextMessageContent {
                            message_id: message_id.clone(),
                            timestamp: now_ms(),
                            delta,
                        });
                    }
                    Ok(LlmEvent::ToolCallStart { index, id, name }) => {
                        if calls.len() <= index {
                            calls.resize(
                                index + 1,
                                ToolCall {
                                    id: String::new(),
                                    name: String::new(),
                                    arguments: String::new(),
                                },
                            );
                        }
                        calls[index].id = id.clone();
                        calls[index].name = name.clone();
                        send(Chunk::ToolCallStart {
                            tool_call_id: id,
                            tool_call_name: name,
                            parent_message_id: Some(message_id.clone()),
                            timestamp: now_ms(),
                            metadata: meta(json!({"index": index})),
                        });
                    }
                    Ok(LlmEvent::ToolCallArgs { index, delta }) => {
                        let Some(call) = calls.get_mut(index) else {
                            return send(Chunk::run_error(
                                Some(run_id),
                                now_ms(),
                                format!("the model sent arguments for unknown tool call #{index}"),
                                Some("malformed".into()),
                            ));
                        };
                        call.arguments.push_str(&delta);
                        send(Chunk::ToolCallArgs {
                            tool_call_id: call.id.clone(),
                            timestamp: now_ms(),
                            delta,
                        });
                    }
                    Ok(LlmEvent::Finish { reason, usage }) => finish = (reason, usage),
                }
            }
            chat.record("gen_ai.response.finish_reasons", finish.0.as_str());
            if let Some(u) = &finish.1 {
                chat.record("gen_ai.usage.input_tokens", u.input_tokens);
                chat.record("gen_ai.usage.output_tokens", u.output_tokens);
            }
            drop(chat);
            if text_open {
                send(Chunk::TextMessageEnd {
                    message_id: message_id.clone(),
                    timestamp: now_ms(),
                    metadata: meta(json!({})),
                });
            }
            for call in &calls {
                let input: Value = serde_json::from_str(&call.arguments).unwrap_or(Value::Null);
                send(Chunk::ToolCallEnd {
                    tool_call_id: call.id.clone(),
                    timestamp: now_ms(),
                    metadata: meta(
                        json!({"toolCallName": call.name, "toolName": call.name, "input": input}),
                    ),
                });
            }
            messages.push(Message::Assistant {
                content: text,
                tool_calls: calls.clone(),
            });
            let finished = |reason: &str, usage: Option<Usage>| Chunk::RunFinished {
                run_id: run_id.clone(),
                thread_id: thread_id.clone(),
                timestamp: now_ms(),
                usage: usage.map(|u| vec![u]),
                metadata: meta(json!({"finishReason": reason})),
            };
            if calls.is_empty() {
                return send(finished(&finish.0, finish.1));
            }
            // Tool calls of one turn run one after the other, each streaming its events live.
            // As in TanStack's server, this turn's RUN_FINISHED (`tool_calls`) follows those
            // events and precedes the results.
            let mut results = Vec::with_capacity(calls.len());
            for call in calls {
                let content = self.call_tool(&call, &relay).await;
                results.push((call.id, content));
            }
            send(finished(&finish.0, finish.1));
            for (tool_call_id, content) in results {
                send(Chunk::ToolCallResult {
                    timestamp: now_ms(),
                    message_id: message_id.clone(),
                    tool_call_id: tool_call_id.clone(),
                    content: content.clone(),
                    role: "tool".into(),
                });
                messages.push(Message::Tool {
                    tool_call_id,
                    content,
                });
            }
        }
        send(Chunk::run_error(
            Some(run_id),
            now_ms(),
            format!(
                "stopped after {} model calls without a final answer",
                self.max_iterations
            ),
            Some("max_iterations".into()),
        ));
    }

    /// Runs one tool call, in its `execute_tool` span; failures become a JSON error the
    /// model can read.
    async fn call_tool(&self, call: &ToolCall, relay: &Arc<Relay>) -> String {
        let span = tracing::info_span!(
            target: "code_mode_chat",
            "code_mode_chat.tool_call",
            otel.name = format!("execute_tool {}", call.name),
            otel.status_code = tracing::field::Empty,
            gen_ai.operation.name = "execute_tool",
            gen_ai.tool.name = %call.name,
            gen_ai.tool.call.id = %call.id,
            error.type = tracing::field::Empty,
        );
        self.call_tool_in(call, relay, &span)
            .instrument(span.clone())
            .await
    }

    async fn call_tool_in(
        &self,
        call: &ToolCall,
        relay: &Arc<Relay>,
        span: &tracing::Span,
    ) -> String {
        let Some(tool) = self.tools.iter().find(|t| t.name() == call.name) else {
            return json!({"error": format!("unknown tool {:?}", call.name)}).to_string();
        };
        let input: Value = match serde_json::from_str(if call.arguments.trim().is_empty() {
            "{}"
        } else {
            &call.arguments
        }) {
            Ok(v) => v,
            Err(e) => {
                return json!({"error": format!("the arguments are not valid JSON: {e}")})
                    .to_string();
            }
        };
        let forward = relay.clone();
        let events = EventSink::from_fn(move |event| {
            forward.send(Chunk::from_event(&event, now_ms()));
        });
        // Approvals are asked of the client when the server keeps parked runs.
        let approver = self.approvals.as_ref().map(|approvals| {
            Arc::new(ChatApprover {
                approvals: approvals.clone(),
                relay: relay.clone(),
                tool_call_id: call.id.clone(),
                tool_name: call.name.clone(),
                one_at_a_time: tokio::sync::Mutex::new(()),
            }) as Arc<dyn code_mode::Approver>
        });
        let ctx = ToolContext {
            tool_call_id: Some(call.id.as_str().into()),
            events,
            span: span.clone(),
            approver,
            ..ToolContext::default()
        };
        match tool.call(input, ctx).await {
            Ok(v) => v.to_string(),
            Err(e) => {
                span.record("error.type", "ToolError");
                span.record("otel.status_code", "ERROR");
                json!({"error": e.message()}).to_string()
            }
        }
    }
}
