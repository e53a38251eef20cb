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

use code_mode::{CodeMode, CodeModeResult, Event, EventSink, ExecuteOptions, Tool};
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

struct Inner {
    build: Box<Build>,
    local: Vec<Tool>,
    upstream: Option<Arc<McpTools>>,
    current: RwLock<Arc<CodeMode>>,
    refresh: tokio::sync::Mutex<()>,
}

/// The MCP server handler: serve it with [`serve_stdio`](crate::serve_stdio) or
/// [`serve_http`](crate::serve_http) (or any rmcp transport).
#[derive(Clone)]
pub struct CodeModeServer {
    inner: Arc<Inner>,
    /// This session's `logging/setLevel` (events are sent at `info`): true while `info`
    /// passes the client's level.
    info_logs: Arc<std::sync::atomic::AtomicBool>,
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
    /// use code_mode::CodeMode;
    /// use code_mode_mcp::CodeModeServer;
    /// let server = CodeModeServer::new(Vec::new(), None, |tools| {
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
                local,
                upstream,
                current: RwLock::new(Arc::new(code_mode)),
                refresh: tokio::sync::Mutex::new(()),
            }),
            info_logs: Arc::new(std::sync::atomic::AtomicBool::new(true)),
        })
    }

    /// The same server for another client session (with its own log level).
    pub fn session(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            info_logs: Arc::new(std::sync::atomic::AtomicBool::new(true)),
        }
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

    fn now(&self) -> Arc<CodeMode> {
        self.inner
            .current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The `tools/list` answer.
    pub async fn tools(&self) -> Vec<rmcp::model::Tool> {
        let cm = self.code_mode().await;
        cm.tool_specs()
            .into_iter()
            .map(|spec| {
                let object = |v: Value| match v {
                    Value::Object(m) => m,
                    _ => serde_json::Map::new(),
                };
                // MCP clients show a tool's description to the model but may ignore the
                // server's instructions: the declarations go in both.
                let description = if spec.name == code_mode::EXECUTE_TOOL_NAME {
                    format!("{}\n\n{}", spec.description, cm.system_prompt())
                } else {
                    spec.description
                };
                let mut tool = rmcp::model::Tool::new(
                    spec.name,
                    description,
                    Arc::new(object(spec.input_schema)),
                );
                tool.output_schema = spec.output_schema.map(|o| Arc::new(object(o)));
                tool
            })
            .collect()
    }
}

/// The MCP result of a run: a text block (the result as JSON) and the same object as
/// `structuredContent`; `isError` when the program failed.
pub fn call_result(result: &CodeModeResult) -> CallToolResult {
    let value = result.to_json();
    let text = serde_json::to_string(&value).unwrap_or_default();
    let mut out = if result.success {
        CallToolResult::success(vec![ContentBlock::text(text)])
    } else {
        CallToolResult::error(vec![ContentBlock::text(text)])
    };
    out.structured_content = Some(value);
    out
}

/// An event as the client sees it: `{"name": "code_mode:…", "value": {…}}`.
fn event_json(event: &Event) -> Value {
    json!({"name": event.name(), "value": event.value()})
}

impl ServerHandler for CodeModeServer {
    fn get_info(&self) -> InitializeAnswer {
        let cm = self.now();
        InitializeAnswer::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_logging()
                .build(),
        )
        .with_server_info(Implementation::new("code-mode", env!("CARGO_PKG_VERSION")))
        .with_instructions(cm.system_prompt().to_owned())
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
        Ok(ListToolsResult::with_all_items(self.tools().await))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let cm = self.code_mode().await;
        let input = Value::Object(request.arguments.clone().unwrap_or_default());
        match request.name.as_ref() {
            code_mode::EXECUTE_TOOL_NAME => {}
            code_mode::DISCOVER_TOOL_NAME if cm.discover_tool_spec().is_some() => {
                let found = cm.discover(&input);
                let mut r = CallToolResult::success(vec![ContentBlock::text(found.to_string())]);
                r.structured_content = Some(found);
                return Ok(CallToolResponse::Complete(r));
            }
            other => {
                return Err(ErrorData::invalid_params(
                    format!("unknown tool {other:?}: this server offers execute_typescript"),
                    None,
                ));
            }
        }
        // Events go to the client in order, through one forwarding task; the result is
        // answered after the last of them.
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Event>();
        let sink = EventSink::from_fn(move |e| {
            let _ = tx.send(e);
        });
        let peer = context.peer.clone();
        let token = context.meta.get_progress_token();
        let info_logs = self.info_logs.load(std::sync::atomic::Ordering::SeqCst);
        let (done, mut finished) = tokio::sync::oneshot::channel::<()>();
        let forward = tokio::spawn(async move {
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
        let id = context.id.to_string();
        let run = cm.call_execute_tool(&input, ExecuteOptions::new(id, sink));
        let result = tokio::select! {
            r = run => Some(r),
            () = context.ct.cancelled() => None,
        };
        let _ = done.send(());
        let _ = forward.await;
        match result {
            Some(r) => Ok(CallToolResponse::Complete(call_result(&r))),
            None => Err(ErrorData::internal_error(
                "the execution was cancelled by the client",
                None,
            )),
        }
    }
}
