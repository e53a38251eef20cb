//! The MCP part of `cargo xtask bench` (`benches/src/bin/mcp_bench.rs`): the cost code-mode
//! adds per upstream call, `code-mode mcp`'s start, and a 50-call fan-out.

use std::fmt::Write as _;

use anyhow::Context;

use crate::matrix::Provision;

/// Builds and runs the MCP benchmark; returns its section of `docs/benchmarks.md`.
pub fn section(runs: usize) -> anyhow::Result<String> {
    let mut md = String::from("## MCP (`code-mode-mcp`)\n\n");
    let servers = match crate::runtimes::mcp_servers() {
        Ok(env) => env
            .into_iter()
            .find(|(k, _)| k == "CODE_MODE_TEST_MCP_SERVERS")
            .map(|(_, v)| v)
            .context("no MCP servers folder")?,
        Err(Provision::Skip(why)) => {
            writeln!(md, "Not measured: {why}.\n")?;
            return Ok(md);
        }
        Err(Provision::Fail(e)) => return Err(e),
    };
    let root = crate::provision::root();
    let v = crate::bench_bin::run(
        "mcp_bench",
        &["-p", "code-mode-cli", "--bin", "code-mode"],
        &[
            "--servers".into(),
            servers.into(),
            "--code-mode".into(),
            root.join("target/release/code-mode").into(),
            "--runs".into(),
            runs.to_string().into(),
        ],
        &[],
    )?;
    let us = |k: &str| v[k].as_f64().unwrap_or(f64::NAN);
    let ms = |k: &str| us(k) / 1000.0;
    writeln!(
        md,
        "Against `@modelcontextprotocol/server-everything` over stdio (Node 24), the QuickJS driver, medians of {} runs (`benches/src/bin/mcp_bench.rs`).\n",
        v["runs"]
    )?;
    writeln!(md, "| measure | this run | target |\n|---|---|---|")?;
    writeln!(
        md,
        "| upstream call from a program (`get-sum`, 100 in a row) | {:.1} µs | |",
        us("sandbox_call_us")
    )?;
    writeln!(
        md,
        "| the same call from an rmcp client | {:.1} µs | |",
        us("direct_call_us")
    )?;
    let added = us("added_per_call_us");
    writeln!(
        md,
        "| added by code-mode per call | {} | ≤ 100 µs: {} |",
        if added < 0.0 {
            format!("none measurable ({added:.1} µs: within the noise)")
        } else {
            format!("{added:.1} µs")
        },
        if added <= 100.0 { "met" } else { "missed" }
    )?;
    writeln!(
        md,
        "| `code-mode mcp` start → `initialize` answered (no upstream) | {:.2} ms | ≤ 30 ms: {} |",
        ms("start_to_initialize_us"),
        if ms("start_to_initialize_us") <= 30.0 {
            "met"
        } else {
            "missed"
        }
    )?;
    writeln!(
        md,
        "| one program, 50 upstream calls in `Promise.all` | {:.2} ms | |",
        ms("fan_out_50_sandbox_us")
    )?;
    writeln!(
        md,
        "| 50 `tools/call` from a client, one after another | {:.2} ms ({:.1}× the program) | |",
        ms("fan_out_50_direct_sequential_us"),
        us("fan_out_50_direct_sequential_us") / us("fan_out_50_sandbox_us")
    )?;
    writeln!(
        md,
        "| 50 `tools/call` from a client, all at once | {:.2} ms | |\n",
        ms("fan_out_50_direct_concurrent_us")
    )?;
    writeln!(
        md,
        "The client-side figures leave out what makes separate calls expensive for an agent: a model round trip per call (seconds), which the program replaces with one.\n"
    )?;
    Ok(md)
}
