//! The tracing part of `cargo xtask bench` (`benches/src/bin/otel_bench.rs`): an execution
//! with three tool calls with no subscriber, and with the OTLP exporter on.

use std::fmt::Write as _;

/// Builds and runs the tracing benchmark; returns its section of `docs/benchmarks.md`.
pub fn section(runs: usize) -> anyhow::Result<String> {
    let mut md = String::from("## Tracing (`code-mode-otel`)\n\n");
    let v = crate::bench_bin::run_report("otel_bench", runs, &[])?;
    let us = |k: &str| v[k].as_f64().unwrap_or(f64::NAN);
    writeln!(
        md,
        "A fresh-context execution making three sequential tool calls on the native QuickJS driver, through `CodeMode::execute`, 0.3 ms apart; medians of {} runs each (`benches/src/bin/otel_bench.rs`). Off: no subscriber installed (what an application that does not trace pays). On: `code_mode_otel::init_from_env` exporting spans (4 per run) and metrics over OTLP/HTTP to a receiver on 127.0.0.1 that discards them.\n",
        v["runs"]
    )?;
    writeln!(md, "| tracing | median | added |\n|---|---|---|")?;
    writeln!(md, "| off | {:.1} µs | |", us("off_us"))?;
    writeln!(
        md,
        "| OTLP exporter on | {:.1} µs | {:+.1} µs ({:+.0} %) |",
        us("on_us"),
        us("on_us") - us("off_us"),
        (us("on_us") / us("off_us") - 1.0) * 100.0
    )?;
    writeln!(
        md,
        "\nWith tracing off, core creates one disabled span per execution and per tool call (a callsite check each); compare the `quickjs` rows above with earlier runs of this file.\n"
    )?;
    Ok(md)
}
