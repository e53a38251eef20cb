//! The agent loop: model → tool calls → results → model, as a stream of [`Chunk`]s.
//!
//! Code Mode events of a running `execute_typescript` call are forwarded as CUSTOM chunks the
//! moment they happen (console lines included), tagged with the call's id, so the chat UI
//! shows the program's progress before its result arrives. Dropping the stream (a client that
//! disconnects) aborts the loop, and with it the model request and the sandbox execution.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tracing::Instrument;

use crate::approvals::{
    ChatApprovals, ChatApprover, Relay, answered_approval, approval_answer, response_stream,
    stale_approval,
};
#[cfg(feature = "durable")]
use crate::durable::DurableApprovals;
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
    #[cfg(feature = "durable")]
    durable: Option<DurableApprovals>,
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
            #[cfg(feature = "durable")]
            durable: None,
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

    /// Seals `execute_typescript` calls whose program waits for an approval into a store
    /// instead of keeping them in memory, so the answer may come after a restart or reach
    /// another process (see the `durable` module). `durable`'s `CodeMode` must be the one
    /// whose tools this agent has. Takes precedence over [`Agent::with_approvals`] for
    /// `execute_typescript`.
    #[cfg(feature = "durable")]
    #[must_use]
    pub fn with_durable_approvals(mut self, durable: DurableApprovals) -> Self {
        self.durable = Some(durable);
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
        // The response holds the run before it starts (a client that goes away cancels the
        // run, unless it parked waiting for an approval first). Taken after the spawn, the
        // hold could arrive after a run that parked at once, stay with the first response,
        // and abort the parked run when that response ended (seen under load: the follow-up's
        // stream ended right after the decision).
        let (abort, registration) = futures::future::AbortHandle::new_pair();
        let guard = relay.hold_task(abort);
        tokio::spawn(futures::future::Abortable::new(
            async move { agent.drive(thread_id, run_id, messages, driven).await }.instrument(span),
            registration,
        ));
        response_stream(rx, guard)
    }

    /// One run: the model is called until it answers without tool calls (or a call parks
    /// waiting for an approval), each turn streamed as it comes.
    async fn drive(
        &self,
        thread_id: String,
        run_id: String,
        mut messages: Vec<Message>,
        relay: Arc<Relay>,
    ) {
        let run = RunChunks {
            model: self.llm.model().to_owned(),
            run_id,
            thread_id,
            relay: relay.clone(),
        };
        let tools: Vec<LlmTool> = self
            .tools
            .iter()
            .map(|t| LlmTool {
                name: t.name().to_owned(),
                description: t.description().to_owned(),
                parameters: t.input_schema().clone(),
            })
            .collect();
        run.send(Chunk::RunStarted {
            run_id: run.run_id.clone(),
            thread_id: run.thread_id.clone(),
            timestamp: now_ms(),
            metadata: run.meta(json!({})),
        });
        if self.settle(&mut messages, &relay).await {
            return run.send(run.finished("tool_calls", None));
        }
        for _ in 0..self.max_iterations {
            let request = LlmRequest {
                system: self.system.clone(),
                messages: messages.clone(),
                tools: tools.clone(),
            };
            let turn = match self.model_turn(request, &run).await {
                Ok(turn) => turn,
                Err(error) => return run.send(error),
            };
            run.end_turn(&turn);
            messages.push(Message::Assistant {
                content: turn.text,
                tool_calls: turn.calls.clone(),
            });
            if turn.calls.is_empty() {
                return run.send(run.finished(&turn.finish.0, turn.finish.1));
            }
            // Tool calls of one turn run one after the other, each streaming its events live.
            // As in TanStack's server, this turn's RUN_FINISHED (`tool_calls`) follows those
            // events and precedes the results.
            let (results, paused) = self.call_tools(turn.calls, &relay).await;
            run.send(run.finished(&turn.finish.0, turn.finish.1));
            for (tool_call_id, content) in results {
                run.send(Chunk::ToolCallResult {
                    timestamp: now_ms(),
                    message_id: turn.message_id.clone(),
                    tool_call_id: tool_call_id.clone(),
                    content: content.clone(),
                    role: "tool".into(),
                });
                messages.push(Message::Tool {
                    tool_call_id,
                    content,
                });
            }
            if paused {
                return;
            }
        }
        run.send(run.error(
            format!(
                "stopped after {} model calls without a final answer",
                self.max_iterations
            ),
            Some("max_iterations".into()),
        ));
    }

    /// One model call, streamed to the client as it comes (text and tool-call chunks) in its
    /// `chat` span: what the model said, or the `RUN_ERROR` to end the run with.
    async fn model_turn(&self, request: LlmRequest, run: &RunChunks) -> Result<ModelTurn, Chunk> {
        let model = &run.model;
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
        let failed = |e: crate::llm::LlmError| {
            chat.record("error.type", e.code.as_deref().unwrap_or("error"));
            chat.record("otel.status_code", "ERROR");
            run.error(e.message, e.code)
        };
        let mut stream = self
            .llm
            .stream(request)
            .instrument(chat.clone())
            .await
            .map_err(failed)?;
        let mut turn = ModelTurn {
            message_id: next_id("msg"),
            text: String::new(),
            text_open: false,
            calls: Vec::new(),
            finish: ("stop".to_owned(), None),
        };
        while let Some(event) = stream.next().instrument(chat.clone()).await {
            match event.map_err(failed)? {
                LlmEvent::TextDelta(delta) => {
                    if !turn.text_open {
                        turn.text_open = true;
                        run.send(Chunk::TextMessageStart {
                            message_id: turn.message_id.clone(),
                            timestamp: now_ms(),
                            role: "assistant".into(),
                            metadata: run.meta(json!({})),
                        });
                    }
                    turn.text.push_str(&delta);
                    run.send(Chunk::TextMessageContent {
                        message_id: turn.message_id.clone(),
                        timestamp: now_ms(),
                        delta,
                    });
                }
                LlmEvent::ToolCallStart { index, id, name } => {
                    if turn.calls.len() <= index {
                        turn.calls.resize(
                            index + 1,
                            ToolCall {
                                id: String::new(),
                                name: String::new(),
                                arguments: String::new(),
                            },
                        );
                    }
                    turn.calls[index].id = id.clone();
                    turn.calls[index].name = name.clone();
                    run.send(Chunk::ToolCallStart {
                        tool_call_id: id,
                        tool_call_name: name,
                        parent_message_id: Some(turn.message_id.clone()),
                        timestamp: now_ms(),
                        metadata: run.meta(json!({"index": index})),
                    });
                }
                LlmEvent::ToolCallArgs { index, delta } => {
                    let Some(call) = turn.calls.get_mut(index) else {
                        return Err(run.error(
                            format!("the model sent arguments for unknown tool call #{index}"),
                            Some("malformed".into()),
                        ));
                    };
                    call.arguments.push_str(&delta);
                    run.send(Chunk::ToolCallArgs {
                        tool_call_id: call.id.clone(),
                        timestamp: now_ms(),
                        delta,
                    });
                }
                LlmEvent::Finish { reason, usage } => turn.finish = (reason, usage),
            }
        }
        chat.record("gen_ai.response.finish_reasons", turn.finish.0.as_str());
        if let Some(u) = &turn.finish.1 {
            chat.record("gen_ai.usage.input_tokens", u.input_tokens);
            chat.record("gen_ai.usage.output_tokens", u.output_tokens);
        }
        Ok(turn)
    }

    /// Runs a turn's tool calls one after the other: their results, and whether one parked
    /// (sealed until the client answers: the turn ends there; the calls after it run when
    /// the answer comes).
    async fn call_tools(
        &self,
        calls: Vec<ToolCall>,
        relay: &Arc<Relay>,
    ) -> (Vec<(String, String)>, bool) {
        let mut results = Vec::with_capacity(calls.len());
        for call in calls {
            match self.call_tool(&call, relay).await {
                Called::Content(content) => results.push((call.id, content)),
                Called::Parked => return (results, true),
            }
        }
        (results, false)
    }

    /// Runs one tool call, in its `execute_tool` span; failures become a JSON error the
    /// model can read.
    async fn call_tool(&self, call: &ToolCall, relay: &Arc<Relay>) -> Called {
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
    ) -> Called {
        let Some(tool) = self.tools.iter().find(|t| t.name() == call.name) else {
            return Called::error(format!("unknown tool {:?}", call.name));
        };
        let input: Value = match serde_json::from_str(if call.arguments.trim().is_empty() {
            "{}"
        } else {
            &call.arguments
        }) {
            Ok(v) => v,
            Err(e) => return Called::error(format!("the arguments are not valid JSON: {e}")),
        };
        let events = events_to(relay);
        #[cfg(feature = "durable")]
        if let Some(durable) = &self.durable
            && call.name == code_mode::EXECUTE_TOOL_NAME
        {
            let opts = code_mode::ExecuteOptions::new(call.id.as_str(), events);
            let outcome = durable
                .code_mode
                .call_execute_durable(&input, opts, DurableApprovals::options(&call.id))
                .await;
            return durable.after(call, outcome, relay).await;
        }
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
            Ok(v) => Called::Content(v.to_string()),
            Err(e) => {
                span.record("error.type", "ToolError");
                span.record("otel.status_code", "ERROR");
                Called::error(e.message())
            }
        }
    }

    /// Settles the tool calls of the conversation's last assistant turn before the model
    /// is asked again: an approval answer (`{"approved": bool}`) resumes its sealed
    /// execution, or becomes an error result when nothing waits for it any more; a call
    /// without a result runs now. Approval answers of earlier turns become error results.
    /// True when a call parked again (the response ends waiting for the client).
    async fn settle(&self, messages: &mut Vec<Message>, relay: &Arc<Relay>) -> bool {
        let last = messages
            .iter()
            .rposition(|m| !matches!(m, Message::Tool { .. }));
        let calls = match last.map(|i| &messages[i]) {
            Some(Message::Assistant { tool_calls, .. }) if !tool_calls.is_empty() => {
                tool_calls.clone()
            }
            _ => Vec::new(),
        };
        let mut known: Vec<(String, String)> = Vec::new();
        if !calls.is_empty()
            && let Some(i) = last
        {
            known = messages
                .drain(i + 1..)
                .filter_map(|m| match m {
                    Message::Tool {
                        tool_call_id,
                        content,
                    } => Some((tool_call_id, content)),
                    _ => None,
                })
                .collect();
        }
        for m in messages.iter_mut() {
            if let Message::Tool {
                tool_call_id,
                content,
            } = m
                && approval_answer(content).is_some()
            {
                *content = self.gone_answer(tool_call_id).await;
            }
        }
        let message_id = next_id("msg");
        let mut parked = false;
        for call in calls {
            let answered = known
                .iter()
                .position(|(id, _)| *id == call.id)
                .map(|i| known.remove(i).1);
            let called = match answered {
                Some(content) => match approval_answer(&content) {
                    Some(approved) => match self.resume_call(&call, approved, relay).await {
                        Some(called) => called,
                        // Nothing waits for it: the model reads why (the client already
                        // shows the answer it gave).
                        None => {
                            let content = self.gone_answer(&call.id).await;
                            messages.push(Message::Tool {
                                tool_call_id: call.id,
                                content,
                            });
                            continue;
                        }
                    },
                    None => {
                        messages.push(Message::Tool {
                            tool_call_id: call.id,
                            content,
                        });
                        continue;
                    }
                },
                None => self.call_tool(&call, relay).await,
            };
            let Called::Content(content) = called else {
                parked = true;
                break;
            };
            relay.send(Chunk::ToolCallResult {
                timestamp: now_ms(),
                message_id: message_id.clone(),
                tool_call_id: call.id.clone(),
                content: content.clone(),
                role: "tool".into(),
            });
            messages.push(Message::Tool {
                tool_call_id: call.id,
                content,
            });
        }
        parked
    }

    /// What the model reads for an approval answer nothing waits for: that it was answered
    /// before and used (never to run the program again), or that it came too late.
    async fn gone_answer(&self, tool_call_id: &str) -> String {
        let live = self
            .approvals
            .as_ref()
            .is_some_and(|a| a.was_answered(tool_call_id));
        #[cfg(feature = "durable")]
        let durable = match &self.durable {
            Some(d) if !live => d.was_answered(tool_call_id).await,
            _ => false,
        };
        #[cfg(not(feature = "durable"))]
        let durable = false;
        if live || durable {
            answered_approval()
        } else {
            stale_approval()
        }
    }

    /// Resumes the sealed execution of `call` with the client's decision; `None` when
    /// nothing waits for it any more.
    async fn resume_call(
        &self,
        call: &ToolCall,
        approved: bool,
        relay: &Arc<Relay>,
    ) -> Option<Called> {
        #[cfg(feature = "durable")]
        if let Some(durable) = &self.durable {
            return durable.resume(call, approved, relay).await;
        }
        let _ = (call, approved, relay);
        None
    }
}

/// The chunks of one run: each carries the run's ids and TanStack's `metadata` with the model.
struct RunChunks {
    model: String,
    run_id: String,
    thread_id: String,
    relay: Arc<Relay>,
}

impl RunChunks {
    fn send(&self, chunk: Chunk) {
        self.relay.send(chunk);
    }

    /// `{"tanstack": {"model": …, …extra}}`.
    fn meta(&self, extra: Value) -> Option<Value> {
        let mut tanstack = json!({"model": self.model});
        if let (Value::Object(t), Value::Object(e)) = (&mut tanstack, extra) {
            t.extend(e);
        }
        Some(json!({"tanstack": tanstack}))
    }

    fn finished(&self, reason: &str, usage: Option<Usage>) -> Chunk {
        Chunk::RunFinished {
            run_id: self.run_id.clone(),
            thread_id: self.thread_id.clone(),
            timestamp: now_ms(),
            usage: usage.map(|u| vec![u]),
            metadata: self.meta(json!({"finishReason": reason})),
            outcome: None,
        }
    }

    fn error(&self, message: String, code: Option<String>) -> Chunk {
        Chunk::run_error(Some(self.run_id.clone()), now_ms(), message, code)
    }

    /// Closes what a model turn opened: its text message and its tool calls (with their
    /// parsed input).
    fn end_turn(&self, turn: &ModelTurn) {
        if turn.text_open {
            self.send(Chunk::TextMessageEnd {
                message_id: turn.message_id.clone(),
                timestamp: now_ms(),
                metadata: self.meta(json!({})),
            });
        }
        for call in &turn.calls {
            let input: Value = serde_json::from_str(&call.arguments).unwrap_or(Value::Null);
            self.send(Chunk::ToolCallEnd {
                tool_call_id: call.id.clone(),
                timestamp: now_ms(),
                metadata: self.meta(
                    json!({"toolCallName": call.name, "toolName": call.name, "input": input}),
                ),
            });
        }
    }
}

/// What the model said in one turn.
struct ModelTurn {
    message_id: String,
    text: String,
    text_open: bool,
    calls: Vec<ToolCall>,
    /// The finish reason and token usage.
    finish: (String, Option<Usage>),
}

/// How a tool call ended for this response.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Called {
    /// Its result, as JSON text for the model.
    Content(String),
    /// It waits for the client's approval; its execution is sealed in the store.
    #[cfg_attr(not(feature = "durable"), allow(dead_code))]
    Parked,
}

impl Called {
    pub(crate) fn error(message: impl std::fmt::Display) -> Self {
        Self::Content(json!({"error": message.to_string()}).to_string())
    }
}

/// The events of one call's execution, forwarded to the response as CUSTOM chunks.
pub(crate) fn events_to(relay: &Arc<Relay>) -> EventSink {
    let forward = relay.clone();
    EventSink::from_fn(move |event| {
        forward.send(Chunk::from_event(&event, now_ms()));
    })
}
