//! The type-check part of `cargo xtask bench` (`benches/src/bin/typecheck_bench.rs`): the
//! first check of a new checker, and warm checks against 10 and 200 tool declarations.

use std::fmt::Write as _;

use serde_json::Value;

use crate::matrix::Provision;

/// Builds and runs the type-check benchmark; returns its section of `docs/benchmarks.md`.
pub fn section(runs: usize) -> anyhow::Result<String> {
    let mut md = String::from("## Type check (`code-mode-typecheck`)\n\n");
    let env = match crate::runtimes::typescript() {
        Ok(env) => env,
        Err(Provision::Skip(why)) => {
            writeln!(md, "Not measured: {why}.\n")?;
            return Ok(md);
        }
        Err(Provision::Fail(e)) => return Err(e),
    };
    let v = crate::bench_bin::run_report("typecheck_bench", runs, &env)?;
    let ms = |k: &str| v[k].as_f64().unwrap_or(f64::NAN);
    writeln!(
        md,
        "TypeScript {} (native, through its API) in the checker's long-lived helper; a 20-line program (ten tool calls, each result used) through `CodeMode` in `report` mode on the native QuickJS driver. Warm figures are medians of {} checks, each of a new program, minus the same execution without the check (`benches/src/bin/typecheck_bench.rs`).\n",
        code_mode_typecheck_version(),
        v["runs"]
    )?;
    writeln!(md, "| measure | this run | target |\n|---|---|---|")?;
    writeln!(
        md,
        "| first check of a new checker (helper start, compiler load, check; median of 5) | {:.1} ms | |",
        ms("cold_ms")
    )?;
    for n in [10, 200] {
        let warm = ms(&format!("warm_{n}_ms"));
        writeln!(
            md,
            "| warm check, {n} tool declarations (the execution alone: {:.2} ms) | {warm:.2} ms | ≤ 30 ms {} |",
            ms(&format!("run_{n}_ms")),
            if warm <= 30.0 { "✅" } else { "❌" }
        )?;
    }
    writeln!(md)?;
    Ok(md)
}

/// The TypeScript version the checker's runtime pins.
fn code_mode_typecheck_version() -> String {
    let path = crate::provision::root().join("crates/code-mode-typecheck/runtime/package.json");
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        .and_then(|v| v["dependencies"]["typescript"].as_str().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}
