//! `cargo xtask soak`: thousands of executions per driver (`benches/src/bin/soak.rs`), mixing
//! successes with every hostile program of the hardening round, and the figures that show
//! nothing accumulates (resident memory, threads, probe latency) in `docs/benchmarks.md`.
//!
//! Not part of `cargo xtask test`: it takes minutes per driver. The section it writes sits
//! between two markers, so `cargo xtask bench` keeps it when it rewrites the file.

use std::fmt::Write as _;
use std::process::Command;

use anyhow::{Context, bail};
use serde_json::Value;

pub(crate) const BEGIN: &str = "<!-- soak:begin -->";
pub(crate) const END: &str = "<!-- soak:end -->";

/// The soak section of `text` (markers included), if any.
pub(crate) fn section(text: &str) -> Option<&str> {
    let start = text.find(BEGIN)?;
    let end = text[start..].find(END)? + start + END.len();
    Some(&text[start..end])
}

pub fn run(runs: usize, concurrency: usize) -> anyhow::Result<()> {
    let root = crate::provision::root();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let drivers = crate::runtimes::bench_drivers("soaked")?;
    let out = root.join("target/soak.json");
    let status = Command::new(&cargo)
        .current_dir(&root)
        .args([
            "run",
            "--release",
            "-p",
            "code-mode-benches",
            "--bin",
            "soak",
        ])
        .args(["--features", &drivers.features, "--"])
        .args(["--runs", &runs.to_string()])
        .args(["--concurrency", &concurrency.to_string()])
        .arg("--out")
        .arg(&out)
        .envs(drivers.env)
        .status()
        .context("cannot run the soak")?;
    if !status.success() {
        bail!("the soak failed");
    }
    let reports: Vec<Value> = serde_json::from_str(&std::fs::read_to_string(&out)?)?;
    let md = render(&reports, runs, concurrency)?;
    let path = root.join("docs/benchmarks.md");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|_| "# Benchmarks\n".into());
    let text = match section(&text) {
        Some(old) => text.replace(old, md.trim_end()),
        None => format!("{}\n\n{}\n", text.trim_end(), md.trim_end()),
    };
    std::fs::write(&path, text)?;
    println!("wrote the soak section of {}", path.display());
    Ok(())
}

fn mib(kib: &Value) -> String {
    format!("{:.0} MiB", kib.as_f64().unwrap_or(0.0) / 1024.0)
}

fn ms(us: &Value) -> String {
    format!("{:.2} ms", us.as_f64().unwrap_or(0.0) / 1000.0)
}

fn render(reports: &[Value], runs: usize, concurrency: usize) -> anyhow::Result<String> {
    let mut md = String::new();
    writeln!(md, "{BEGIN}")?;
    writeln!(md, "## Soak (`cargo xtask soak`)\n")?;
    writeln!(
        md,
        "{runs} executions per driver through `CodeMode::execute` (fresh context each), {concurrency} at a time, limits 300 ms / 64 MiB. Even-numbered executions are the probe (`return 1 + 1`); odd-numbered ones rotate through 21 programs: tool calls, caught and uncaught tool errors, an infinite loop, a memory bomb, deep recursion, console and tool-call floods, a result over the size cap, values nested past the limit, odd strings, a 1 MiB error message, a recursing `Array.prototype` setter, `toJSON`/`then` hooks, a never-settling promise, unawaited rejections, syntax errors, deeply nested code and a runaway built-in (`benches/src/bin/soak.rs`). Memory and threads are those of the process and every process below it (sidecars, workerd), after a 100-execution warm-up and again 12 s after the last execution. Probe latencies compare the first and the last fifth of the run.\n"
    )?;
    writeln!(
        md,
        "| driver | time | RSS start → end | threads start → end | probe p50 first → last | probe p99 first → last | unexpected outcomes |"
    )?;
    writeln!(md, "|---|---|---|---|---|---|---|")?;
    for r in reports {
        let unexpected: u64 = r["unexpected"]
            .as_array()
            .map(|a| a.iter().filter_map(|u| u["count"].as_u64()).sum())
            .unwrap_or(0);
        writeln!(
            md,
            "| `{}` | {:.0} s | {} → {} | {} → {} | {} → {} | {} → {} | {} of {} |",
            r["driver"].as_str().unwrap_or("?"),
            r["seconds"].as_f64().unwrap_or(0.0),
            mib(&r["rss_start_kib"]),
            mib(&r["rss_end_kib"]),
            r["threads_start"],
            r["threads_end"],
            ms(&r["probe_first"]["p50_us"]),
            ms(&r["probe_last"]["p50_us"]),
            ms(&r["probe_first"]["p99_us"]),
            ms(&r["probe_last"]["p99_us"]),
            unexpected,
            r["runs"],
        )?;
    }
    writeln!(md)?;
    writeln!(md, "RSS after every tenth of the run (MiB):\n")?;
    for r in reports {
        let series: Vec<String> = r["samples"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|s| format!("{:.0}", s["rss_kib"].as_f64().unwrap_or(0.0) / 1024.0))
                    .collect()
            })
            .unwrap_or_default();
        writeln!(
            md,
            "- `{}`: {}",
            r["driver"].as_str().unwrap_or("?"),
            series.join(" → ")
        )?;
    }
    writeln!(md)?;
    let mut any = false;
    for r in reports {
        for u in r["unexpected"].as_array().into_iter().flatten() {
            if !any {
                writeln!(
                    md,
                    "Outcomes other than the program's own (kind: outcome × count, example):\n"
                )?;
                any = true;
            }
            writeln!(
                md,
                "- `{}` {}: {} × — {}",
                r["driver"].as_str().unwrap_or("?"),
                u["what"].as_str().unwrap_or("?"),
                u["count"],
                u["example"].as_str().unwrap_or("")
            )?;
        }
    }
    if !any {
        writeln!(md, "Every execution ended as its program must.")?;
    }
    writeln!(md, "\n{END}")?;
    Ok(md)
}
