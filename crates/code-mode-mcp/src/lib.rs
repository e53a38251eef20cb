//! code-mode over MCP.
//!
//! **Consume**: the servers of an `mcpServers` file (the format desktop and IDE MCP clients
//! use) become sandbox functions: each upstream tool is `external_<server>_<tool>(input)`
//! inside the program, typed from its `inputSchema`/`outputSchema`, documented with its
//! description and hints. [`McpConfig`] reads the file, [`McpTools`] connects the servers
//! and hands their tools to [`code_mode::CodeMode::builder`].
//!
//! **Serve**: [`CodeModeServer`] offers `execute_typescript` (and `discover_tools` when
//! tools are lazy) to any MCP client, over stdio ([`serve_stdio`]) or Streamable HTTP
//! ([`HttpServer`]); `code-mode mcp --config FILE` is the command-line front end.
//!
//! Why on `rmcp`: it is the official Rust SDK of the Model Context Protocol, kept in step
//! with the specification (this release speaks protocol 2026-07-28 and negotiates older
//! versions), with the stdio and Streamable HTTP transports both sides need.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use code_mode_mcp::{McpConfig, McpTools};
//! let config = McpConfig::parse(r#"{"mcpServers": {"everything": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-everything"]}}}"#)?;
//! let upstream = McpTools::connect(&config, Default::default()).await?;
//! let code_mode = code_mode::CodeMode::builder().tools(upstream.tools()).build()?;
//! let r = code_mode
//!     .execute("return (await external_everything_get_sum({ a: 2, b: 3 })).text", Default::default())
//!     .await;
//! # Ok(()) }
//! ```

mod approval;
mod catalog;
mod cause;
mod closest;
mod config;
mod content;
#[cfg(feature = "durable")]
mod durable;
mod error;
mod http;
mod names;
mod parked;
mod serve;
mod server;
mod stdio;
mod upstream;

pub use catalog::{DEFAULT_LAZY_THRESHOLD, McpOptions, McpTools, RETRY_FIRST, RETRY_MAX};
pub use closest::{closest_hint, closest_names};
pub use config::{ConfigError, McpConfig, RequireApproval, ServerConfig, Transport};
pub use content::{CONTENT_SCHEMA, MAX_INLINE_BASE64, content_schema};
pub use error::McpError;
pub use names::{NameCollision, tool_identifier};
pub use parked::PARKED_TTL;
pub use serve::{HttpOptions, HttpServer, ServeError, serve_stdio};
pub use server::{Build, CodeModeServer, Offer, OfferFn, call_result};
pub use upstream::{INHERITED_ENV, PING_TIMEOUT, PROGRESS_EVENT};
