//! Code Mode served over MCP: `execute_typescript` (and `discover_tools` when tools are
//! lazy) for any MCP client.
//!
//! MCP clients have no system prompt of ours, so the declarations the model needs (the
//! same text [`CodeMode::system_prompt`] gives) go in the server's `instructions` and in
//! `execute_typescript`'s description. The result carries a text block and
//! `structuredContent` matching the declared `outputSchema` (`{success, result, logs,
//! error}`); a failed program sets `isError`. While a program runs, its events reach the
//! client in order: as progress notifications when the request carried a progress token,
//! else as log notifications. A `notifications/cancelled` from the client drops the
//! execution (its tool calls, upstream calls included, are cancelled with it).

// Log notifications are deprecated by the 2026-07-28 specification (SEP-2577), but clients
// on the versions before it (most of them today) read them; they are only sent when the
// request carried no progress token.
#![allow(deprecated)]

use std::sync::{Arc, RwLock};

use code_mode::{CodeMode, CodeModeResult, Event, EventSink, Tool, ToolContext};
use futures::future::BoxFuture;
use rmcp::ErrorData;
use rmcp::handler::server::ServerHandler;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    ListToolsResult, LoggingLevel, LoggingMessageNotificationParam, PaginatedRequestParams,
    ProgressNotificationParam, ServerCapabilities, ServerConfig as InitializeAnswer,
    SetLevelRequestParams,
};
use rmcp::service::{RequestContext, RoleServer};
use serde_json::{Value, json};

use crate::catalog::McpTools;

/// Builds the [`CodeMode`] the server runs, from the current tools (the application's and
/// the upstream servers'). Called again when an upstream's tool list changed.
pub type Build = dyn Fn(Vec<Tool>) -> Result<CodeMode, String> + Send + Sync;

/// What the server offers its clients for one code-mode instance: the tools (by default
/// [`CodeMode::as_tools`]: `execute_typescript`, and `discover_tools` when tools are lazy)
/// and the instructions (by default the system prompt).
pub struct Offer {
    /// The MCP tools, with their handlers.
    pub tools: Vec<Tool>,
    /// The server's `instructions`, also appended to `execute_typescript`'s description.
    pub instructions: String,
}

impl std::fmt::Debug for Offer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Offer")
            .field("tools", &self.tools.len())
            .field("instructions", &self.instructions.len())
            .finish_non_exhaustive()
    }
}

/// Computes the [`Offer`] (the skills library adds its tools this way).
pub type OfferFn = dyn Fn(Arc<CodeMode>) -> BoxFuture<'static, Result<Offer, String>> + Send + Sync;

struct Inner {
    build: Box<Build>,
    offer: Option<Box<OfferFn>>,
    local: Vec<Tool>,
    upstream: Option<Arc<McpTools>>,
    current: RwLock<Arc<CodeMode>>,
    instructions: RwLock<String>,
    refresh: tokio::sync::Mutex<()>,
    /// Executions waiting, in memory, for a 2026-07-28 client's approvals (see `parked`).
    parked: crate::parked::Parked,
    /// Durable executions run as MCP tasks, for clients that asked for tasks.
    #[cfg(feature = "durable")]
    tasks: rmcp::task_manager::TaskManager,
}

/// The MCP server handler: serve it with [`serve_stdio`](crate::serve_stdio) or
/// [`serve_http`](crate::serve_http) (or any rmcp transport).
#[derive(Clone)]
pub struct CodeModeServer {
    inner: Arc<Inner>,
    /// This session's `logging/setLevel` (events are sent at `info`): true while `info`
    /// passes the client's level.
    info_logs: Arc<std::sync::atomic::AtomicBool>,
    /// This session's number: a parked execution resumes only in the session it began in
    /// (0: no binding, for transports whose requests carry no session).
    session: u64,
}

/// A number for a new session.
fn next_session() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

impl std::fmt::Debug for CodeModeServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CodeModeServer")
            .field("local_tools", &self.inner.local.len())
            .field("upstream", &self.inner.upstream)
            .finish_non_exhaustive()
    }
}

impl CodeModeServer {
    /// A server running programs with `build(tools)`, where `tools` are `local` followed by
    /// the upstream servers' tools.
    ///
    /// ```
    /// # fn demo() -> Result<(), String> {
    /// use code_mode::{CodeMode, Tool, ToolError};
    /// use code_mode_mcp::CodeModeServer;
    /// let echo = Tool::new("echo", "Returns its input.", serde_json::json!({"type": "object"}),
    ///     |input, _| async move { Ok::<_, ToolError>(input) }).map_err(|e| e.to_string())?;
    /// let server = CodeModeServer::new(vec![echo], None, |tools| {
    ///     CodeMode::builder()
    ///         .tools(tools)
    ///         .driver(code_mode_drivers::driver_by_name("quickjs", &Default::default()).map_err(|e| e.to_string())?)
    ///         .build()
    ///         .map_err(|e| e.to_string())
    /// })?;
    /// # Ok(()) }
    /// # demo().unwrap();
    /// ```
    pub fn new(
        local: Vec<Tool>,
        upstream: Option<Arc<McpTools>>,
        build: impl Fn(Vec<Tool>) -> Result<CodeMode, String> + Send + Sync + 'static,
    ) -> Result<Self, String> {
        let mut tools = local.clone();
        if let Some(u) = &upstream {
            tools.extend(u.tools());
        }
        let code_mode = build(tools)?;
        Ok(Self {
            inner: Arc::new(Inner {
                build: Box::new(build),
                offer: None,
                local,
                upstream,
                instructions: RwLock::new(code_mode.system_prompt().to_owned()),
                current: RwLock::new(Arc::new(code_mode)),
                refresh: tokio::sync::Mutex::new(()),
                parked: crate::parked::Parked::default(),
                #[cfg(feature = "durable")]
                tasks: rmcp::task_manager::TaskManager::new(),
            }),
            info_logs: Arc::new(std::sync::atomic::AtomicBool::new(true)),
            session: next_session(),
        })
    }

    /// Offers what `offer` computes instead of [`CodeMode::as_tools`] and the system
    /// prompt. Call before the server is shared (it is a construction step).
    pub fn with_offer(
        mut self,
        offer: impl Fn(Arc<CodeMode>) -> BoxFuture<'static, Result<Offer, String>>
        + Send
        + Sync
        + 'static,
    ) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.offer = Some(Box::new(offer));
        }
        self
    }

    /// The current offer (and the instructions `initialize` answers with, updated).
    pub async fn offer(&self) -> Result<Offer, String> {
        let cm = self.code_mode().await;
        let offer = match &self.inner.offer {
            Some(f) => f(cm).await?,
            None => Offer {
                tools: cm.as_tools(),
                instructions: cm.system_prompt().to_owned(),
            },
        };
        offer.instructions.clone_into(
            &mut self
                .inner
                .instructions
                .write()
                .unwrap_or_else(|p| p.into_inner()),
        );
        Ok(offer)
    }

    /// The code mode to run `tool` durably with, when this call can (see the `durable`
    /// module): not when an [`Offer`] of its own replaces the default tools (its
    /// `execute_typescript` may add sandbox functions a durable run would not have).
    #[cfg(feature = "durable")]
    async fn durable_code_mode(
        &self,
        context: &RequestContext<RoleServer>,
        tool: &str,
    ) -> Option<Arc<CodeMode>> {
        if self.inner.offer.is_some() {
            return None;
        }
        let code_mode = self.code_mode().await;
        // A client that cannot answer forms is not sent any: its calls run live, where
        // approvals are denied saying why.
        let can_elicit = crate::approval::can_elicit(context.client_capabilities().as_ref());
        (can_elicit && crate::durable::applies(context, &code_mode, tool)).then_some(code_mode)
    }

    /// The same server for another client session (with its own log level).
    pub fn session(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            info_logs: Arc::new(std::sync::atomic::AtomicBool::new(true)),
            session: next_session(),
        }
    }

    /// The same server for a transport whose requests carry no session (Streamable HTTP at
    /// protocol 2026-07-28): executions parked at approvals are not bound to a session.
    pub(crate) fn unbound(mut self) -> Self {
        self.session = 0;
        self
    }

    /// The code-mode instance the next call runs on (rebuilt first when an upstream
    /// announced that its tools changed).
    pub async fn code_mode(&self) -> Arc<CodeMode> {
        if let Some(u) = &self.inner.upstream
            && u.changed()
        {
            let _one = self.inner.refresh.lock().await;
            if u.changed() {
                match u.refresh().await {
                    Ok(fresh) => {
                        let mut tools = self.inner.local.clone();
                        tools.extend(fresh);
                        match (self.inner.build)(tools) {
                            Ok(cm) => {
                                *self
                                    .inner
                                    .current
                                    .write()
                                    .unwrap_or_else(|p| p.into_inner()) = Arc::new(cm);
                            }
                            Err(e) => eprintln!("code-mode: keeping the previous tools: {e}"),
                        }
                    }
                    Err(e) => eprintln!("code-mode: keeping the previous tools: {e}"),
                }
            }
        }
        self.inner
            .current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The `tools/list` answer.
    pub async fn tools(&self) -> Result<Vec<rmcp::model::Tool>, String> {
        let offer = self.offer().await?;
        Ok(offer
            .tools
            .iter()
            .map(|t| {
                let object = |v: &Value| match v {
                    Value::Object(m) => m.clone(),
                    _ => serde_json::Map::new(),
                };
                // MCP clients show a tool's description to the model but may ignore the
                // server's instructions: the declarations go in both.
                let description = if t.name() == code_mode::EXECUTE_TOOL_NAME {
                    format!("{}\n\n{}", t.description(), offer.instructions)
                } else {
                    t.description().to_owned()
                };
                let mut tool = rmcp::model::Tool::new(
                    t.name().to_owned(),
                    description,
                    Arc::new(object(t.input_schema())),
                );
                tool.output_schema = t.output_schema().map(|o| Arc::new(object(o)));
                tool
            })
            .collect())
    }
}

/// The MCP result of a run: a text block (the result as JSON) and the same object as
/// `structuredContent`; `isError` when the program failed.
pub fn call_result(result: &CodeModeResult) -> CallToolResult {
    value_result(result.to_json())
}

/// A tool's outcome as the call's result.
fn tool_result(outcome: Result<Value, code_mode::ToolError>) -> CallToolResult {
    match outcome {
        Ok(v) => value_result(v),
        Err(e) => CallToolResult::error(vec![ContentBlock::text(e.message().to_owned())]),
    }
}

/// The MCP result of a tool's value: a text block (the value as JSON) and, for an object,
/// the same as `structuredContent`; `isError` when it reports `success: false`.
fn value_result(value: Value) -> CallToolResult {
    let text = serde_json::to_string(&value).unwrap_or_default();
    let mut out = if value.get("success") == Some(&Value::Bool(false)) {
        CallToolResult::error(vec![ContentBlock::text(text)])
    } else {
        CallToolResult::success(vec![ContentBlock::text(text)])
    };
    if value.is_object() {
        out.structured_content = Some(value);
    }
    out
}

/// An event as the client sees it: `{"name": "code_mode:…", "value": {…}}`.
fn event_json(event: &Event) -> Value {
    json!({"name": event.name(), "value": event.value()})
}

/// The task that sends a call's events to its client, in order (as progress notifications
/// when the request has a progress token, else as log messages where the client opted in).
struct Forwarder {
    done: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Forwarder {
    /// Sends what is still queued, then ends: the call's result goes out after its last event.
    async fn finish(self) {
        let _ = self.done.send(());
        let _ = self.task.await;
    }
}

/// The call's span; it continues the client's trace when the request's `_meta` carries one
/// (W3C trace context, SEP-414).
fn call_span(
    request: &CallToolRequestParams,
    context: &RequestContext<RoleServer>,
) -> tracing::Span {
    let span = tracing::info_span!(
        target: "code_mode_mcp",
        "code_mode_mcp.tool_call",
        otel.name = format!("execute_tool {}", request.name),
        otel.kind = "server",
        gen_ai.operation.name = "execute_tool",
        gen_ai.tool.name = %request.name,
        mcp.request.id = %context.id,
    );
    if let Some(traceparent) = context.meta.get_traceparent() {
        code_mode::adopt_trace_context(
            &span,
            &code_mode::TraceContext {
                traceparent: traceparent.to_owned(),
                tracestate: context.meta.get_tracestate().map(str::to_owned),
            },
        );
    }
    span
}

/// Who decides the call's approvals: this client's user through elicitation during the call
/// (before protocol 2026-07-28); the parked execution's own rounds (`parks`: 2026-07-28 and
/// newer, which forbid requests during a call); or a denial saying why the client cannot be
/// asked (it declared no elicitation, or the program cannot be paused until its next request).
fn approver_for(
    context: &RequestContext<RoleServer>,
    parks: bool,
    modern: bool,
    can_elicit: bool,
) -> (
    Arc<dyn code_mode::Approver>,
    Option<crate::parked::ParkedAsks>,
) {
    if parks {
        let (approver, asks) = crate::parked::Parked::approver();
        return (approver, Some(asks));
    }
    if modern {
        let why = if can_elicit {
            crate::approval::NO_PAUSE
        } else {
            crate::approval::NO_ELICITATION
        };
        return (Arc::new(code_mode::DenyAll(why.into())), None);
    }
    if can_elicit {
        let approver = crate::approval::ElicitationApprover {
            peer: context.peer.clone(),
        };
        return (Arc::new(approver), None);
    }
    (
        Arc::new(code_mode::DenyAll(crate::approval::NO_ELICITATION.into())),
        None,
    )
}

impl CodeModeServer {
    /// Starts the task that forwards a call's events to its client (see [`Forwarder`]).
    fn forward_events(&self, context: &RequestContext<RoleServer>) -> (EventSink, Forwarder) {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Event>();
        let sink = EventSink::from_fn(move |e| {
            let _ = tx.send(e);
        });
        let peer = context.peer.clone();
        let token = context.meta.get_progress_token();
        // Events go out at `info`. From protocol 2026-07-28 a request opts in to log
        // notifications in its own `_meta` (`io.modelcontextprotocol/logLevel`); without it
        // none may be sent. Before, the session's `logging/setLevel` decides.
        let info_logs = if crate::approval::is_modern(context) {
            context
                .meta
                .log_level()
                .is_some_and(|l| matches!(l, LoggingLevel::Debug | LoggingLevel::Info))
        } else {
            self.info_logs.load(std::sync::atomic::Ordering::SeqCst)
        };
        let (done, mut finished) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let mut n = 0.0;
            let mut over = false;
            loop {
                // Events first; once the run is over, what is queued, then stop (tools may
                // keep clones of the sink).
                let event = if over {
                    match rx.try_recv() {
                        Ok(e) => e,
                        Err(_) => break,
                    }
                } else {
                    tokio::select! {
                        biased;
                        Some(e) = rx.recv() => e,
                        _ = &mut finished => {
                            over = true;
                            continue;
                        }
                    }
                };
                let data = event_json(&event);
                let sent = match &token {
                    Some(token) => {
                        n += 1.0;
                        let mut p = ProgressNotificationParam::new(token.clone(), n);
                        p.message = Some(data.to_string());
                        peer.notify_progress(p).await
                    }
                    None if !info_logs => Ok(()),
                    None => {
                        peer.notify_logging_message(
                            LoggingMessageNotificationParam::new(LoggingLevel::Info, data)
                                .with_logger("code_mode"),
                        )
                        .await
                    }
                };
                if sent.is_err() {
                    break;
                }
            }
        });
        (sink, Forwarder { done, task })
    }
}

impl CodeModeServer {
    /// A call on the durable path: for a client on protocol 2026-07-28 or newer, approvals
    /// travel as `input_required` rounds with the execution sealed in between, or as a task
    /// when the client has tasks (see the `durable` module).
    #[cfg(feature = "durable")]
    async fn call_durable(
        &self,
        code_mode: Arc<CodeMode>,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
        sink: EventSink,
        forwarder: Forwarder,
        span: tracing::Span,
    ) -> Result<CallToolResponse, ErrorData> {
        if context
            .client_capabilities()
            .is_some_and(|caps| caps.supports_tasks())
        {
            // The task outlives this request: its progress is its status.
            forwarder.finish().await;
            let id = context.id.to_string();
            let options = rmcp::task_manager::TaskOptions::new()
                .with_ttl_ms(Some(24 * 60 * 60 * 1000))
                .with_poll_interval_ms(500);
            let task = self.inner.tasks.spawn(options, move |task| {
                Box::pin(crate::durable::run_task(code_mode, request, id, task))
            });
            return Ok(CallToolResponse::Task(rmcp::model::CreateTaskResult::new(
                task,
            )));
        }
        let opts = code_mode::ExecuteOptions::new(context.id.to_string(), sink);
        let run = crate::durable::call(&code_mode, &request, opts);
        let response = tokio::select! {
            r = tracing::Instrument::instrument(run, span) => Some(r),
            () = context.ct.cancelled() => None,
        };
        forwarder.finish().await;
        response.ok_or_else(|| {
            ErrorData::internal_error("the execution was cancelled by the client", None)
        })
    }
}

impl ServerHandler for CodeModeServer {
    fn get_info(&self) -> InitializeAnswer {
        let instructions = self
            .inner
            .instructions
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let capabilities = ServerCapabilities::builder()
            .enable_tools()
            .enable_logging();
        // Durable executions can run as tasks when this server can pause them.
        #[cfg(feature = "durable")]
        let capabilities = if self.inner.offer.is_none()
            && self
                .inner
                .current
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .can_pause_durably()
        {
            capabilities.enable_tasks()
        } else {
            capabilities
        };
        InitializeAnswer::new(capabilities.build())
            .with_server_info(Implementation::new("code-mode", env!("CARGO_PKG_VERSION")))
            .with_instructions(instructions)
    }

    #[cfg(feature = "durable")]
    async fn get_task(
        &self,
        request: rmcp::model::GetTaskParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<rmcp::model::GetTaskResult, ErrorData> {
        self.inner
            .tasks
            .get_task(&request.task_id)
            .map(rmcp::model::GetTaskResult::new)
    }

    #[cfg(feature = "durable")]
    async fn update_task(
        &self,
        request: rmcp::model::UpdateTaskParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.inner
            .tasks
            .update_task(&request.task_id, request.input_responses)
    }

    #[cfg(feature = "durable")]
    async fn cancel_task(
        &self,
        request: rmcp::model::CancelTaskParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.inner.tasks.cancel_task(&request.task_id)
    }

    async fn set_level(
        &self,
        request: SetLevelRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        let info = matches!(request.level, LoggingLevel::Debug | LoggingLevel::Info);
        self.info_logs
            .store(info, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let tools = self
            .tools()
            .await
            .map_err(|e| ErrorData::internal_error(e, None))?;
        Ok(ListToolsResult::with_all_items(tools))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let offer = self
            .offer()
            .await
            .map_err(|e| ErrorData::internal_error(e, None))?;
        let input = Value::Object(request.arguments.clone().unwrap_or_default());
        let Some(tool) = offer
            .tools
            .into_iter()
            .find(|t| t.name() == request.name.as_ref())
        else {
            return Err(ErrorData::invalid_params(
                format!(
                    "unknown tool {:?}: this server offers execute_typescript",
                    request.name
                ),
                None,
            ));
        };
        let (sink, forwarder) = self.forward_events(&context);
        let span = call_span(&request, &context);
        // A client on protocol 2026-07-28 or newer is asked through `input_required`
        // rounds, the execution sealed in between (see the `durable` module).
        #[cfg(feature = "durable")]
        if let Some(code_mode) = self.durable_code_mode(&context, &request.name).await {
            return self
                .call_durable(code_mode, request, context, sink, forwarder, span)
                .await;
        }
        // Calls that need approval are asked of this client's user (elicitation during the
        // call, before protocol 2026-07-28), or denied saying why when the client cannot be
        // asked: it declared no elicitation, or (2026-07-28 and newer, which forbid requests
        // during a call) the program cannot be paused until its next request.
        let modern = crate::approval::is_modern(&context);
        let can_elicit = crate::approval::can_elicit(context.client_capabilities().as_ref());
        // 2026-07-28 and newer: the execution is parked in memory at its approvals, and the
        // client's retries with `requestState` answer them (see the `parked` module).
        let parks = modern && can_elicit && request.name.as_ref() == code_mode::EXECUTE_TOOL_NAME;
        if parks && let Some(state) = &request.request_state {
            let response = self
                .inner
                .parked
                .resume(self.session, state, request.input_responses.as_ref())
                .await;
            forwarder.finish().await;
            return Ok(response);
        }
        let (approver, parked_asks) = approver_for(&context, parks, modern, can_elicit);
        let ctx = ToolContext {
            tool_call_id: Some(context.id.to_string().into()),
            events: sink,
            span: span.clone(),
            approver: Some(approver),
            ..ToolContext::default()
        };
        let run = async move {
            tool_result(tracing::Instrument::instrument(tool.call(input, ctx), span).await)
        };
        let response = match parked_asks {
            // Runs on while this request answers with its approvals.
            Some(asks) => {
                let finished = tokio::spawn(run);
                let abort = finished.abort_handle();
                tokio::select! {
                    r = self.inner.parked.start(self.session, asks, finished) => Some(r),
                    () = context.ct.cancelled() => {
                        abort.abort();
                        None
                    }
                }
            }
            None => tokio::select! {
                r = run => Some(CallToolResponse::Complete(r)),
                () = context.ct.cancelled() => None,
            },
        };
        forwarder.finish().await;
        response.ok_or_else(|| {
            ErrorData::internal_error("the execution was cancelled by the client", None)
        })
    }
}
