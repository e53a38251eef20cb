//! An MCP server's tools as sandbox functions: connect the servers of an `mcpServers` file
//! and run one program that calls them.
//!
//! `cargo run -p code-mode-examples --example mcp_upstream -- examples/mcp.json`
//! (the file runs `@modelcontextprotocol/server-everything` with `npx`).

use std::path::Path;

use code_mode::{CodeMode, CodeModeResult, ExecuteOptions};
use code_mode_mcp::{McpConfig, McpTools};

/// The program: three upstream calls at once, then structured content.
pub const PROGRAM: &str = r#"
const sums = await Promise.all([1, 2, 3].map((n) => external_everything_get_sum({ a: n, b: 10 })));
const weather = await external_everything_get_structured_content({ location: "Chicago" });
return { sums: sums.map((s) => s.text), chicago: weather.conditions };
"#;

/// Connects the servers of `config` and runs [`PROGRAM`].
pub async fn run(config: &Path) -> Result<CodeModeResult, Box<dyn std::error::Error>> {
    let config = McpConfig::load(config)?;
    let upstream = McpTools::connect(&config, Default::default()).await?;
    let code_mode = CodeMode::builder()
        .driver(code_mode_drivers::default_driver()?)
        .tools(upstream.tools())
        .build()?;
    Ok(code_mode.execute(PROGRAM, ExecuteOptions::default()).await)
}

#[allow(dead_code)]
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "examples/mcp.json".into());
    let result = run(Path::new(&path)).await?;
    println!("{}", serde_json::to_string_pretty(&result.to_json())?);
    Ok(())
}
