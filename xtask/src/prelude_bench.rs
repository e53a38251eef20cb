//! The guest-prelude part of `cargo xtask bench` (`benches/src/bin/prelude_bench.rs`): what
//! evaluating the core's guest prelude would cost the native QuickJS driver, which converts
//! values in Rust instead.

use std::fmt::Write as _;

/// Builds and runs the prelude benchmark; returns its section of `docs/benchmarks.md`.
pub fn section(runs: usize) -> anyhow::Result<String> {
    let mut md = String::from("## Guest prelude on the native QuickJS driver\n\n");
    let v = crate::bench_bin::run_report("prelude_bench", runs, &[])?;
    let us = |k: &str| v[k].as_f64().unwrap_or(f64::NAN);
    writeln!(
        md,
        "The QuickJS-WASM, V8 and Cloudflare drivers run the core's guest prelude (`code_mode::driver::GUEST_PRELUDE`, {} bytes) in every sandbox: once into the WASM snapshot, once per prepared V8 isolate (with V8's code cache), once per Worker program. The native QuickJS driver would have to evaluate it in every new realm, on the critical path of a fresh context; it converts values in Rust instead, and the shared conformance suite holds both to the same behaviour. Medians of {} runs on rquickjs as the driver builds it (`benches/src/bin/prelude_bench.rs`).\n",
        v["prelude_bytes"], v["runs"]
    )?;
    writeln!(md, "| measure | median |\n|---|---|")?;
    writeln!(md, "| a new QuickJS realm | {:.1} µs |", us("realm_us"))?;
    writeln!(
        md,
        "| the prelude evaluated and set up (three bindings) in a new realm | {:.1} µs |",
        us("prelude_us")
    )?;
    writeln!(
        md,
        "| a whole fresh-context `return 1 + 1` through the driver, 0.3 ms apart | {:.1} µs |",
        us("fresh_us")
    )?;
    writeln!(
        md,
        "\nEvaluating the prelude would add {:.1}× the cost of a whole fresh execution today.\n",
        us("prelude_us") / us("fresh_us")
    )?;
    Ok(md)
}
