//! The MCP example runs against the reference server installed by `cargo xtask test`
//! (`CODE_MODE_TEST_MCP_SERVERS`), through a config file written like `examples/mcp.json`.

#[path = "../mcp_upstream.rs"]
mod mcp_upstream;

mod upstream {
    use serde_json::json;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_mcp_example_calls_the_upstream_server() {
        let dir = std::env::var("CODE_MODE_TEST_MCP_SERVERS").unwrap_or_else(|_| {
            panic!("CODE_MODE_TEST_MCP_SERVERS is not set: run `cargo xtask test`")
        });
        let js =
            format!("{dir}/node_modules/@modelcontextprotocol/server-everything/dist/index.js");
        let config =
            std::env::temp_dir().join(format!("code-mode-example-mcp-{}.json", std::process::id()));
        let text =
            json!({"mcpServers": {"everything": {"command": "node", "args": [js, "stdio"]}}});
        std::fs::write(&config, text.to_string()).unwrap_or_else(|e| panic!("{e}"));
        let r = super::mcp_upstream::run(&config)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let _ = std::fs::remove_file(&config);
        assert_eq!(
            r.result,
            Some(json!({
                "sums": ["The sum of 1 and 10 is 11.", "The sum of 2 and 10 is 12.", "The sum of 3 and 10 is 13."],
                "chicago": "Light rain / drizzle"
            })),
            "{r:?}"
        );
    }
}
