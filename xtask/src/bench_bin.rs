//! Runs one of the benchmark binaries of `benches/src/bin` for `cargo xtask bench`: builds it
//! in release, runs it with `--out FILE`, and reads the JSON report it wrote.

use std::ffi::OsString;
use std::process::Command;

use anyhow::{Context, bail};
use serde_json::Value;

/// Builds `bin` (of `code-mode-benches`, plus what `also_build` names, as `cargo build`
/// arguments), runs it with `args` and `--out target/<bin>.json` under `env`, and returns
/// the report.
pub fn run(
    bin: &str,
    also_build: &[&str],
    args: &[OsString],
    env: &[(String, String)],
) -> anyhow::Result<Value> {
    let root = crate::provision::root();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(&cargo)
        .current_dir(&root)
        .args([
            "build",
            "--release",
            "-p",
            "code-mode-benches",
            "--bin",
            bin,
        ])
        .args(also_build)
        .status()
        .context("cannot run cargo build")?;
    if !status.success() {
        bail!("building {bin} failed");
    }
    let out = root.join(format!("target/{bin}.json"));
    let status = Command::new(root.join("target/release").join(bin))
        .args(args)
        .arg("--out")
        .arg(&out)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .status()
        .with_context(|| format!("cannot run {bin}"))?;
    if !status.success() {
        bail!("{bin} failed");
    }
    Ok(serde_json::from_str(&std::fs::read_to_string(&out)?)?)
}

/// Runs a report binary that takes only `--runs` (`otel_bench`, `prelude_bench`,
/// `typecheck_bench`) under `env`; returns its report.
pub fn run_report(bin: &str, runs: usize, env: &[(String, String)]) -> anyhow::Result<Value> {
    run(bin, &[], &["--runs".into(), runs.to_string().into()], env)
}
