//! Errors of the MCP layer, each naming the server (and tool) at fault.

/// Why upstream servers cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum McpError {
    /// The configuration is unusable.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// A server did not start or did not complete `initialize`.
    #[error("the MCP server {server} cannot be used: {message}")]
    Start {
        /// Its name in the configuration.
        server: String,
        /// What happened.
        message: String,
    },
    /// A server broke the protocol or failed a request.
    #[error("the MCP server {server}: {message}")]
    Protocol {
        /// Its name in the configuration.
        server: String,
        /// What happened.
        message: String,
    },
    /// A tool cannot be offered in the sandbox.
    #[error("the MCP tool {server}/{tool} cannot be offered: {message}")]
    Tool {
        /// Its server.
        server: String,
        /// Its name on that server.
        tool: String,
        /// Why (an invalid schema, ...).
        message: String,
    },
    /// An approval rule names a tool the server does not have: its calls would run unasked
    /// under any other spelling, so the configuration is refused.
    #[error("the MCP server {server} has no tool `{name}` (named in its requireApproval){hint}", hint = crate::closest::closest_hint(closest))]
    UnknownApproval {
        /// Its name in the configuration.
        server: String,
        /// The name that matched nothing.
        name: String,
        /// The server's tool names closest to it (closest first; may be empty).
        closest: Vec<String>,
    },
    /// Two tools would share one sandbox name.
    #[error(transparent)]
    Collision(#[from] crate::names::NameCollision),
}
