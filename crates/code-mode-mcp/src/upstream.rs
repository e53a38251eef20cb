//! One upstream MCP server: its connection (made on first use, remade after it failed), its
//! tool list, and the calls made to it.
//!
//! Why connections are remade lazily: an upstream that exits or hangs must fail only the
//! calls made to it, clearly, and work again on the next use, without a supervisor. A call
//! whose connection broke drops the connection; a call abandoned at the execution's
//! deadline marks the upstream suspect, and the next use pings it first (an upstream that
//! does not answer within [`PING_TIMEOUT`] is restarted).

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use code_mode::ToolContext;
use rmcp::model::{
    CallToolRequest, CallToolRequestParams, CancelledNotificationParam, ClientCapabilities,
    ClientConfig, ClientRequest, Implementation, NumberOrString, ProgressNotificationParam,
    ProgressToken, RequestId, ServerResult,
};
use rmcp::service::{NotificationContext, Peer, PeerRequestOptions, RoleClient, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{ClientHandler, ServiceExt};
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;

use crate::cause::{cause, init_cause, shown_url};
use crate::config::{ServerConfig, Transport};
use crate::error::McpError;
use crate::http::CheckedHttp;
use crate::stdio::StdioServer;

/// How long a suspect upstream has to answer a ping before it is restarted.
pub const PING_TIMEOUT: Duration = Duration::from_secs(2);

/// Variables of this process a stdio upstream inherits (besides its configured `env`): what
/// programs need to start, never credentials. Desktop MCP clients pass a similar set.
pub const INHERITED_ENV: &[&str] = &[
    "PATH", "HOME", "USER", "LOGNAME", "SHELL", "TERM", "LANG", "LC_ALL", "LC_CTYPE", "TMPDIR",
    "TZ",
];

/// Name of the event an upstream progress notification becomes.
pub const PROGRESS_EVENT: &str = "code_mode:external_progress";

/// A progress token as a map key.
fn token_key(token: &ProgressToken) -> String {
    match &token.0 {
        NumberOrString::String(s) => format!("s:{s}"),
        NumberOrString::Number(n) => format!("n:{n}"),
    }
}

/// Where a call's progress goes, and how far it got.
struct CallProgress {
    ctx: ToolContext,
    function: String,
    /// Last `(progress, total)` emitted.
    seen: Mutex<Option<(f64, Option<f64>)>>,
    more: tokio::sync::Notify,
}

impl CallProgress {
    /// True when the last progress emitted did not reach its announced total.
    fn incomplete(&self) -> bool {
        matches!(
            *self.seen.lock().unwrap_or_else(|p| p.into_inner()),
            Some((progress, Some(total))) if progress < total
        )
    }
}

/// How long a finished call waits for progress announced but not yet handled (rmcp handles
/// each notification in a task of its own, which may run after the response arrived).
const PROGRESS_SETTLE: Duration = Duration::from_millis(50);

/// Calls in flight, by progress token.
type Progress = Arc<Mutex<HashMap<String, Arc<CallProgress>>>>;

/// The client side of one connection: routes progress, notes list changes.
#[derive(Clone)]
struct Handler {
    server: Arc<str>,
    progress: Progress,
    changed: Arc<AtomicBool>,
}

impl ClientHandler for Handler {
    fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) -> impl Future<Output = ()> + Send + '_ {
        let token = token_key(&params.progress_token);
        let target = self
            .progress
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&token)
            .cloned();
        if let Some(call) = target {
            let mut value = json!({
                "function": call.function,
                "server": &*self.server,
                "progress": params.progress,
            });
            if let Some(total) = params.total {
                value["total"] = json!(total);
            }
            if let Some(message) = &params.message {
                value["message"] = json!(message);
            }
            call.ctx.emit_custom(PROGRESS_EVENT, value);
            *call.seen.lock().unwrap_or_else(|p| p.into_inner()) =
                Some((params.progress, params.total));
            call.more.notify_waiters();
        }
        std::future::ready(())
    }

    fn on_tool_list_changed(
        &self,
        _context: NotificationContext<RoleClient>,
    ) -> impl Future<Output = ()> + Send + '_ {
        self.changed.store(true, Ordering::SeqCst);
        std::future::ready(())
    }

    fn get_info(&self) -> ClientConfig {
        ClientConfig::new(
            ClientCapabilities::default(),
            Implementation::new("code-mode", env!("CARGO_PKG_VERSION")),
        )
    }
}

struct Connection {
    service: RunningService<RoleClient, Handler>,
    /// The last lines the process wrote on stderr (stdio upstreams).
    stderr: Arc<Mutex<String>>,
}

/// One configured upstream server.
pub(crate) struct Upstream {
    pub(crate) config: ServerConfig,
    startup: Duration,
    conn: tokio::sync::Mutex<Option<Arc<Connection>>>,
    progress: Progress,
    /// Set by `notifications/tools/list_changed`.
    pub(crate) changed: Arc<AtomicBool>,
    /// A call was abandoned (its execution ended first): ping before the next use.
    suspect: Arc<AtomicBool>,
    /// A background task is trying to reach it again (see `McpTools`).
    pub(crate) reconnecting: AtomicBool,
}

/// Keeps at most the last 4 KiB of a stream.
fn keep_tail(buf: &mut String, more: &str) {
    buf.push_str(more);
    if buf.len() > 4096 {
        let mut cut = buf.len() - 4096;
        while !buf.is_char_boundary(cut) {
            cut += 1;
        }
        buf.drain(..cut);
    }
}

/// If dropped before [`Self::done`] (the execution ended while the call was in flight):
/// tells the server the request is cancelled and marks the upstream suspect.
struct Abandon<'a> {
    suspect: &'a AtomicBool,
    progress: &'a Progress,
    token: String,
    peer: Peer<RoleClient>,
    id: RequestId,
    finished: bool,
}

impl Abandon<'_> {
    fn done(mut self) {
        self.finished = true;
    }
}

impl Drop for Abandon<'_> {
    fn drop(&mut self) {
        self.progress
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.token);
        if !self.finished {
            self.suspect.store(true, Ordering::SeqCst);
            let peer = self.peer.clone();
            let param = CancelledNotificationParam::new(
                Some(self.id.clone()),
                Some("the code-mode execution that made this call ended".into()),
            );
            if let Ok(handle) = tokio::runtime::Handle::try_current() {
                handle.spawn(async move {
                    let _ = peer.notify_cancelled(param).await;
                });
            }
        }
    }
}

impl Upstream {
    pub(crate) fn new(config: ServerConfig, startup: Duration) -> Self {
        Self {
            config,
            startup,
            conn: tokio::sync::Mutex::new(None),
            progress: Arc::default(),
            changed: Arc::default(),
            suspect: Arc::default(),
            reconnecting: AtomicBool::new(false),
        }
    }

    pub(crate) fn name(&self) -> &str {
        &self.config.name
    }

    /// Starts a connection (process or HTTP session) and completes `initialize`.
    async fn connect(&self) -> Result<Connection, McpError> {
        let handler = Handler {
            server: self.config.name.as_str().into(),
            progress: self.progress.clone(),
            changed: self.changed.clone(),
        };
        let server = self.config.name.clone();
        let stderr = Arc::new(Mutex::new(String::new()));
        let service = match &self.config.transport {
            Transport::Stdio {
                command,
                args,
                env,
                cwd,
            } => {
                let mut cmd = tokio::process::Command::new(command);
                cmd.args(args).env_clear();
                for key in INHERITED_ENV {
                    if let Some(v) = std::env::var_os(key) {
                        cmd.env(key, v);
                    }
                }
                cmd.envs(env);
                if let Some(cwd) = cwd {
                    cmd.current_dir(cwd);
                }
                cmd.stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .kill_on_drop(true);
                let mut child = cmd.spawn().map_err(|e| McpError::Start {
                    server: server.clone(),
                    message: format!("cannot start `{command}`: {e}"),
                })?;
                if let Some(mut err) = child.stderr.take() {
                    let tail = stderr.clone();
                    tokio::spawn(async move {
                        let mut buf = [0u8; 1024];
                        while let Ok(n) = err.read(&mut buf).await {
                            if n == 0 {
                                break;
                            }
                            let text = String::from_utf8_lossy(&buf[..n]);
                            keep_tail(&mut tail.lock().unwrap_or_else(|p| p.into_inner()), &text);
                        }
                    });
                }
                let process = StdioServer::new(child).map_err(|e| McpError::Start {
                    server: server.clone(),
                    message: format!("cannot talk to `{command}`: {e}"),
                })?;
                tokio::time::timeout(self.startup, handler.serve(process)).await
            }
            Transport::Http { url, headers } => {
                let mut custom = HashMap::new();
                for (k, v) in headers {
                    // Both were checked when the configuration was read.
                    if let (Ok(k), Ok(v)) = (
                        http::HeaderName::from_bytes(k.as_bytes()),
                        http::HeaderValue::from_str(v),
                    ) {
                        custom.insert(k, v);
                    }
                }
                let config = StreamableHttpClientTransportConfig::with_uri(url.as_str())
                    .custom_headers(custom);
                let client = CheckedHttp::new().map_err(|e| McpError::Start {
                    server: server.clone(),
                    message: format!("cannot make an HTTP client: {e}"),
                })?;
                let transport = StreamableHttpClientTransport::with_client(client, config);
                tokio::time::timeout(self.startup, handler.serve(transport)).await
            }
        };
        let service = match service {
            Err(_) => {
                return Err(McpError::Start {
                    server,
                    message: format!(
                        "no answer to `initialize` within {} s{}",
                        self.startup.as_secs_f64(),
                        stderr_note(&stderr)
                    ),
                });
            }
            Ok(Err(e)) => {
                let message = match &self.config.transport {
                    Transport::Http { url, .. } => {
                        format!("cannot reach {}: {}", shown_url(url), init_cause(&e))
                    }
                    Transport::Stdio { .. } => format!(
                        "it is not a working MCP server ({}){}",
                        init_cause(&e),
                        stderr_note(&stderr)
                    ),
                };
                return Err(McpError::Start { server, message });
            }
            Ok(Ok(s)) => s,
        };
        Ok(Connection { service, stderr })
    }

    /// The live connection, made (or remade) when needed.
    async fn connection(&self) -> Result<Arc<Connection>, McpError> {
        let mut conn = self.conn.lock().await;
        if let Some(c) = conn.as_ref() {
            let usable =
                !c.service.is_closed()
                    && (!self.suspect.swap(false, Ordering::SeqCst) || {
                        matches!(
                            tokio::time::timeout(
                                PING_TIMEOUT,
                                c.service.peer().send_request(
                                    rmcp::model::ClientRequest::PingRequest(Default::default())
                                )
                            )
                            .await,
                            Ok(Ok(_))
                        )
                    });
            if usable {
                return Ok(c.clone());
            }
            *conn = None;
        }
        let fresh = Arc::new(self.connect().await?);
        *conn = Some(fresh.clone());
        Ok(fresh)
    }

    /// Drops the connection (if it is still `c`): the next use starts a new one.
    async fn discard(&self, c: &Arc<Connection>) {
        let mut conn = self.conn.lock().await;
        if conn.as_ref().is_some_and(|x| Arc::ptr_eq(x, c)) {
            *conn = None;
        }
    }

    /// The server's tools, as MCP JSON (`name`, `description`, `inputSchema`, …).
    pub(crate) async fn list_tools(&self) -> Result<Vec<Value>, McpError> {
        let c = self.connection().await?;
        self.changed.store(false, Ordering::SeqCst);
        match c.service.peer().list_all_tools().await {
            Ok(tools) => tools
                .into_iter()
                .map(|t| {
                    serde_json::to_value(t).map_err(|e| McpError::Protocol {
                        server: self.config.name.clone(),
                        message: format!("a tool description cannot be read: {e}"),
                    })
                })
                .collect(),
            Err(e) => {
                self.discard(&c).await;
                Err(McpError::Protocol {
                    server: self.config.name.clone(),
                    message: format!("tools/list failed: {}", cause(&e)),
                })
            }
        }
    }

    /// Calls `tool` with `args`; progress goes to `ctx` as [`PROGRESS_EVENT`] events naming
    /// `function`. Returns the result as MCP JSON, or a message for the guest.
    pub(crate) async fn call(
        &self,
        tool: &str,
        function: &str,
        args: Value,
        ctx: ToolContext,
    ) -> Result<Value, String> {
        let server = &self.config.name;
        let c = self.connection().await.map_err(|e| e.to_string())?;
        let mut params = CallToolRequestParams::new(tool.to_owned());
        if let Value::Object(map) = args {
            params = params.with_arguments(map);
        }
        // The trace goes on to the upstream server in `_meta` (W3C trace context, SEP-414),
        // on every transport.
        if let Some(trace) = ctx.trace_context() {
            let meta = rmcp::model::RequestParamsMeta::meta_or_default(&mut params);
            meta.set_traceparent(trace.traceparent);
            if let Some(state) = trace.tracestate {
                meta.set_tracestate(state);
            }
        }
        let peer = c.service.peer().clone();
        // rmcp gives every request a progress token of its own; progress is routed by it.
        let sent = peer
            .send_request_with_option(
                ClientRequest::CallToolRequest(CallToolRequest::new(params)),
                PeerRequestOptions::no_options(),
            )
            .await;
        let result = match sent {
            Ok(handle) => {
                let token = token_key(&handle.progress_token);
                let call = Arc::new(CallProgress {
                    ctx,
                    function: function.to_owned(),
                    seen: Mutex::new(None),
                    more: tokio::sync::Notify::new(),
                });
                self.progress
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(token.clone(), call.clone());
                let guard = Abandon {
                    suspect: &self.suspect,
                    progress: &self.progress,
                    token,
                    peer,
                    id: handle.id.clone(),
                    finished: false,
                };
                let result = handle.await_response().await;
                // rmcp hands each notification to a task of its own, spawned before the
                // response is delivered: progress that announced a total and has not reached
                // it yet is given a moment, so it is emitted before the result.
                let settle = tokio::time::Instant::now() + PROGRESS_SETTLE;
                while call.incomplete() {
                    let more = call.more.notified();
                    tokio::pin!(more);
                    more.as_mut().enable();
                    if !call.incomplete() || tokio::time::timeout_at(settle, more).await.is_err() {
                        break;
                    }
                }
                guard.done();
                result
            }
            Err(e) => Err(e),
        };
        match result {
            Ok(ServerResult::CallToolResult(r)) => serde_json::to_value(r).map_err(|e| {
                format!("the MCP server {server} sent a result that cannot be read: {e}")
            }),
            Ok(_) => Err(format!(
                "the MCP server {server} answered {tool} with something other than a tool result"
            )),
            Err(e) => {
                let closed =
                    c.service.is_closed() || matches!(e, rmcp::ServiceError::TransportClosed);
                if closed {
                    self.discard(&c).await;
                }
                Err(match e {
                    rmcp::ServiceError::McpError(e) => {
                        format!("{server}/{tool} failed: {}", e.message)
                    }
                    other if closed => format!(
                        "the MCP server {server} stopped during the call ({}){}; it is restarted on next use",
                        cause(&other),
                        stderr_note(&c.stderr)
                    ),
                    other => format!(
                        "the call to the MCP server {server} failed: {}",
                        cause(&other)
                    ),
                })
            }
        }
    }
}

fn stderr_note(stderr: &Mutex<String>) -> String {
    let tail = stderr
        .lock()
        .map(|t| t.trim().to_owned())
        .unwrap_or_default();
    if tail.is_empty() {
        String::new()
    } else {
        let last: Vec<&str> = tail.lines().rev().take(5).collect();
        let last: Vec<&str> = last.into_iter().rev().collect();
        format!("; its last output: {}", last.join(" | "))
    }
}
