//! Upstream servers' tools as code-mode [`Tool`]s.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use code_mode::{Tool, ToolError};
use serde_json::Value;

use crate::config::McpConfig;
use crate::content::{Refusal, content_schema, sandbox_value};
use crate::error::McpError;
use crate::names::Names;
use crate::upstream::Upstream;

/// Above this many tools in all, every upstream tool is lazy: the prompt lists names only
/// and the model reads the declarations it needs with `discover_tools`.
pub const DEFAULT_LAZY_THRESHOLD: usize = 40;

/// How upstreams are reached and offered.
#[derive(Debug, Clone)]
pub struct McpOptions {
    /// How long a server may take to start and answer `initialize` (default 30 s: `npx`
    /// may download the server on first use).
    pub startup_timeout: Duration,
    /// Tool count above which tools are lazy ([`DEFAULT_LAZY_THRESHOLD`]).
    pub lazy_threshold: usize,
    /// Fail [`McpTools::connect`] when any server cannot be used. By default such a server
    /// is left out ([`McpTools::unavailable`] says why), tried again in the background, and
    /// its tools are offered once it answers (a desktop client must not lose every tool to
    /// one broken server).
    pub strict: bool,
}

impl Default for McpOptions {
    fn default() -> Self {
        Self {
            startup_timeout: Duration::from_secs(30),
            lazy_threshold: DEFAULT_LAZY_THRESHOLD,
            strict: false,
        }
    }
}

/// The first wait before an unavailable server is tried again; it doubles up to
/// [`RETRY_MAX`].
pub const RETRY_FIRST: Duration = Duration::from_secs(2);
/// The longest wait between tries of an unavailable server.
pub const RETRY_MAX: Duration = Duration::from_secs(60);

/// The tools of every configured upstream server, ready for
/// [`CodeMode::builder().tools(...)`](code_mode::CodeModeBuilder::tools).
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use code_mode_mcp::{McpConfig, McpTools};
/// let config = McpConfig::load(std::path::Path::new("mcp.json"))?;
/// let upstream = McpTools::connect(&config, Default::default()).await?;
/// let code_mode = code_mode::CodeMode::builder()
///     .tools(upstream.tools())
///     .build()?;
/// // external_<server>_<tool>(...) in programs now calls the upstream tool.
/// # Ok(()) }
/// ```
pub struct McpTools {
    upstreams: Vec<Arc<Upstream>>,
    options: McpOptions,
    tools: std::sync::RwLock<Vec<Tool>>,
    /// Servers left out of the last listing, with why.
    unavailable: std::sync::RwLock<Vec<(String, String)>>,
}

impl std::fmt::Debug for McpTools {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpTools")
            .field(
                "servers",
                &self.upstreams.iter().map(|u| u.name()).collect::<Vec<_>>(),
            )
            .field("tools", &self.tools().len())
            .finish()
    }
}

impl McpTools {
    /// Starts every server (concurrently), completes `initialize`, lists their tools. A
    /// server that cannot be used is left out and tried again in the background
    /// ([`Self::unavailable`]), or, with [`McpOptions::strict`], fails the connection, naming
    /// it. A `requireApproval` entry naming a tool its server does not list fails it always
    /// ([`McpError::UnknownApproval`], with the closest names): that tool's calls would
    /// otherwise run unasked.
    pub async fn connect(config: &McpConfig, options: McpOptions) -> Result<Self, McpError> {
        let upstreams: Vec<Arc<Upstream>> = config
            .servers
            .iter()
            .map(|s| Arc::new(Upstream::new(s.clone(), options.startup_timeout)))
            .collect();
        let me = Self {
            upstreams,
            options,
            tools: std::sync::RwLock::default(),
            unavailable: std::sync::RwLock::default(),
        };
        me.rebuild(true).await?;
        Ok(me)
    }

    /// The current tools (all upstreams), in configuration order.
    pub fn tools(&self) -> Vec<Tool> {
        self.tools.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Names of the configured (enabled) servers.
    pub fn servers(&self) -> Vec<&str> {
        self.upstreams.iter().map(|u| u.name()).collect()
    }

    /// The servers left out of the current tools, each with why (empty when all answer).
    /// Each is tried again in the background; [`Self::changed`] turns true once one answers.
    ///
    /// ```no_run
    /// # async fn demo(config: code_mode_mcp::McpConfig) -> Result<(), code_mode_mcp::McpError> {
    /// let upstream = code_mode_mcp::McpTools::connect(&config, Default::default()).await?;
    /// for (server, why) in upstream.unavailable() {
    ///     eprintln!("{server} is left out for now: {why}");
    /// }
    /// # Ok(()) }
    /// ```
    pub fn unavailable(&self) -> Vec<(String, String)> {
        self.unavailable
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// True when a server announced `notifications/tools/list_changed` since its tools
    /// were last listed, or an unavailable server answers again.
    pub fn changed(&self) -> bool {
        self.upstreams
            .iter()
            .any(|u| u.changed.load(Ordering::SeqCst))
    }

    /// Lists every server's tools again and returns the new catalog (call it when
    /// [`Self::changed`], before the next execution). A tool named in `requireApproval`
    /// that is gone is not an error here: nothing can call it.
    pub async fn refresh(&self) -> Result<Vec<Tool>, McpError> {
        self.rebuild(false).await?;
        Ok(self.tools())
    }

    /// Lists the tools. A server that cannot be listed is left out (or, when strict, fails
    /// the listing). With `approvals_must_match` (at connect), a `requireApproval` naming
    /// no tool fails the listing; later, it leaves that server out, saying why.
    async fn rebuild(&self, approvals_must_match: bool) -> Result<(), McpError> {
        let listed = futures::future::join_all(self.upstreams.iter().map(|u| u.list_tools())).await;
        let mut names = Names::default();
        let mut tools = Vec::new();
        let mut unavailable = Vec::new();
        for (upstream, listed) in self.upstreams.iter().zip(listed) {
            let checked = listed.and_then(|l| check_approvals(upstream, &l).map(|()| l));
            let listed = match checked {
                Ok(listed) => listed,
                Err(e @ McpError::UnknownApproval { .. }) if approvals_must_match => {
                    return Err(e);
                }
                Err(e) if self.options.strict => return Err(e),
                Err(e) => {
                    unavailable.push((upstream.name().to_owned(), e.to_string()));
                    retry_in_background(upstream);
                    continue;
                }
            };
            for t in listed {
                tools.push(tool_of(upstream, &t, &mut names)?);
            }
        }
        if tools.len() > self.options.lazy_threshold {
            tools = tools.into_iter().map(|t| t.lazy(true)).collect();
        }
        *self.tools.write().unwrap_or_else(|p| p.into_inner()) = tools;
        *self.unavailable.write().unwrap_or_else(|p| p.into_inner()) = unavailable;
        Ok(())
    }
}

/// Tries `upstream` again, with growing waits, until it lists its tools; then marks it
/// changed, so the next execution's catalog has its tools. One task per upstream; it ends
/// when the upstream is dropped.
fn retry_in_background(upstream: &Arc<Upstream>) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    if upstream.reconnecting.swap(true, Ordering::SeqCst) {
        return;
    }
    let weak = Arc::downgrade(upstream);
    runtime.spawn(async move {
        let mut wait = RETRY_FIRST;
        loop {
            tokio::time::sleep(wait).await;
            let Some(upstream) = weak.upgrade() else {
                return;
            };
            if upstream.list_tools().await.is_ok() {
                upstream.reconnecting.store(false, Ordering::SeqCst);
                upstream.changed.store(true, Ordering::SeqCst);
                return;
            }
            wait = (wait * 2).min(RETRY_MAX);
        }
    });
}

/// Every tool named in the server's `requireApproval` is one it lists.
fn check_approvals(upstream: &Upstream, listed: &[Value]) -> Result<(), McpError> {
    let listed: Vec<&str> = listed
        .iter()
        .filter_map(|t| t.get("name").and_then(Value::as_str))
        .collect();
    for name in &upstream.config.require_approval.tools {
        if !listed.contains(&name.as_str()) {
            return Err(McpError::UnknownApproval {
                server: upstream.name().to_owned(),
                name: name.clone(),
                closest: crate::closest_names(name, listed.iter().copied(), 3),
            });
        }
    }
    Ok(())
}

/// The JSDoc text: title and description, where the tool comes from, and its hints.
fn description_of(server: &str, t: &Value) -> String {
    let name = t.get("name").and_then(Value::as_str).unwrap_or_default();
    let title = t
        .get("title")
        .or_else(|| t.get("annotations").and_then(|a| a.get("title")))
        .and_then(Value::as_str);
    let description = t.get("description").and_then(Value::as_str).unwrap_or("");
    let mut text = match title {
        Some(title) if !description.is_empty() => format!("{title}: {description}"),
        Some(title) => title.to_owned(),
        None => description.to_owned(),
    };
    let a = t.get("annotations");
    let hint = |k: &str| a.and_then(|a| a.get(k)).and_then(Value::as_bool);
    let mut hints = Vec::new();
    match hint("readOnlyHint") {
        Some(true) => hints.push("read-only"),
        Some(false) | None => {
            if hint("destructiveHint") == Some(true) {
                hints.push("destructive");
            }
        }
    }
    if hint("idempotentHint") == Some(true) {
        hints.push("idempotent");
    }
    if hint("openWorldHint") == Some(true) {
        hints.push("open-world");
    }
    if !text.is_empty() {
        text.push_str("\n\n");
    }
    text.push_str(&format!("MCP tool `{name}` of server `{server}`"));
    if !hints.is_empty() {
        text.push_str(&format!(" ({})", hints.join(", ")));
    }
    text.push('.');
    text
}

fn tool_of(upstream: &Arc<Upstream>, t: &Value, names: &mut Names) -> Result<Tool, McpError> {
    let server = upstream.name().to_owned();
    let name = t
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let fail = |message: String| McpError::Tool {
        server: server.clone(),
        tool: name.clone(),
        message,
    };
    if name.is_empty() {
        return Err(fail("it has no name".into()));
    }
    let id = names.assign(&server, &name)?;
    let input = t
        .get("inputSchema")
        .cloned()
        .unwrap_or_else(|| serde_json::json!({"type": "object"}));
    let output = t.get("outputSchema").filter(|o| o.is_object()).cloned();
    let structured = output.is_some();
    let function = format!("external_{id}");
    let handler = {
        let upstream = upstream.clone();
        let (server, name) = (server.clone(), name.clone());
        move |args: Value, ctx: code_mode::ToolContext| {
            let upstream = upstream.clone();
            let (server, name, function) = (server.clone(), name.clone(), function.clone());
            async move {
                let result = upstream
                    .call(&name, &function, args, ctx)
                    .await
                    .map_err(ToolError::new)?;
                sandbox_value(&result, structured).map_err(|r| match r {
                    Refusal::ToolFailed(text) if text.trim().is_empty() => ToolError::new(format!(
                        "{server}/{name} reported an error without a message"
                    )),
                    Refusal::ToolFailed(text) => ToolError::new(text),
                    Refusal::NoStructuredContent => ToolError::new(format!(
                        "{server}/{name} declares an outputSchema but returned no structuredContent"
                    )),
                })
            }
        }
    };
    let mut tool = Tool::new(id, description_of(&server, t), input, handler)
        .map_err(|e| fail(e.to_string()))?;
    if upstream.config.require_approval.covers(t) {
        tool = tool.require_approval(code_mode::ApprovalPolicy::Always);
    }
    tool.with_output_schema(output.unwrap_or_else(content_schema))
        .map_err(|e| fail(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn descriptions_carry_the_origin_and_the_hints() {
        let d = description_of(
            "everything",
            &json!({"name": "get-sum", "title": "Get Sum", "description": "Adds.",
                    "annotations": {"readOnlyHint": true, "idempotentHint": true}}),
        );
        assert_eq!(
            d,
            "Get Sum: Adds.\n\nMCP tool `get-sum` of server `everything` (read-only, idempotent)."
        );
        let d = description_of(
            "fs",
            &json!({"name": "rm", "annotations": {"destructiveHint": true}}),
        );
        assert_eq!(d, "MCP tool `rm` of server `fs` (destructive).");
    }
}
