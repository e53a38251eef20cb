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
}

impl Default for McpOptions {
    fn default() -> Self {
        Self {
            startup_timeout: Duration::from_secs(30),
            lazy_threshold: DEFAULT_LAZY_THRESHOLD,
        }
    }
}

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
    /// Starts every server (concurrently), completes `initialize`, lists their tools.
    /// Fails on the first server that cannot be used, naming it.
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
        };
        me.rebuild().await?;
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

    /// True when a server announced `notifications/tools/list_changed` since its tools
    /// were last listed.
    pub fn changed(&self) -> bool {
        self.upstreams
            .iter()
            .any(|u| u.changed.load(Ordering::SeqCst))
    }

    /// Lists every server's tools again and returns the new catalog (call it when
    /// [`Self::changed`], before the next execution).
    pub async fn refresh(&self) -> Result<Vec<Tool>, McpError> {
        self.rebuild().await?;
        Ok(self.tools())
    }

    async fn rebuild(&self) -> Result<(), McpError> {
        let listed = futures::future::join_all(self.upstreams.iter().map(|u| u.list_tools())).await;
        let mut names = Names::default();
        let mut tools = Vec::new();
        for (upstream, listed) in self.upstreams.iter().zip(listed) {
            for t in listed? {
                tools.push(tool_of(upstream, &t, &mut names)?);
            }
        }
        if tools.len() > self.options.lazy_threshold {
            tools = tools.into_iter().map(|t| t.lazy(true)).collect();
        }
        *self.tools.write().unwrap_or_else(|p| p.into_inner()) = tools;
        Ok(())
    }
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
