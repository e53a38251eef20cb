//! `cargo xtask`: project automation.
//!
//! - `cargo xtask test`: builds and runs every test of the workspace, then the conformance
//!   (behaviour + escape-attempt) suite once per driver, and prints a driver × result matrix.
//!   Drivers whose runtime cannot be provisioned on this machine are reported as skipped with
//!   the reason, never as passed. This is the command CI runs.
//! - `cargo xtask e2e [--screenshot docs/chat-e2e.png]`: the chat page's headless-Chromium
//!   test alone (it also runs as part of `test`), after installing its npm packages and
//!   Debian Chromium.
//! - `cargo xtask workerd`: the Cloudflare driver's Worker on a local workerd, to try the
//!   driver without a Cloudflare account.
//! - `cargo xtask bench`: runs the criterion benchmarks and writes the medians into
//!   `docs/benchmarks.md`.
//! - `cargo xtask soak [--runs N] [--concurrency C]`: thousands of executions per driver,
//!   hostile programs mixed with successes; resident memory, threads and latency drift go
//!   into `docs/benchmarks.md`.
//! - `cargo xtask fuzz [--secs N] [--seed S]`: fuzzes the TypeScript stage with deeply nested
//!   programs generated from the grammar (the short round runs in `test`).

mod bench;
mod bench_bin;
mod durable_bench;
mod e2e;
mod matrix;
mod mcp_bench;
mod node;
mod otel_bench;
mod prelude_bench;
mod provision;
mod runtimes;
mod soak;
mod tanstack;
mod typecheck_bench;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "xtask", about = "code-mode project automation")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run all tests and the per-driver conformance matrix.
    Test {
        /// Only run the conformance matrix, not the rest of the workspace tests.
        #[arg(long)]
        matrix_only: bool,
    },
    /// Build the Node-API addon (crates/code-mode-node, a TanStack isolate driver) and run
    /// its tests on every Node found.
    Node,
    /// Provision and run the chat page's headless-browser test.
    E2e {
        /// Where to save the page's screenshot (e.g. docs/chat-e2e.png).
        #[arg(long)]
        screenshot: Option<std::path::PathBuf>,
    },
    /// Install the V8 driver's runtime (Node 24 + isolated-vm) into .cache/v8-runtime.
    V8Runtime,
    /// Run the Cloudflare driver's Worker on a local workerd (installed from npm if needed).
    Workerd,
    /// Install the toolchain that compiles the QuickJS-WASM guest (Debian clang-19, lld-19,
    /// libclang-rt-19-dev-wasm32, wasi-libc), when clang cannot build wasm32-wasi yet.
    WasiToolchain,
    /// Release step: build the QuickJS-WASM guest from source and store it in
    /// crates/isolate-quickjs-wasm/guest/prebuilt/, so the packaged crate builds without a
    /// WASI toolchain.
    GuestWasm,
    /// Start the throwaway PostgreSQL server of the tests and print its connection settings
    /// (it stops when you press Enter).
    Postgres,
    /// Fuzz the TypeScript stage with grammar-generated deeply nested programs (release
    /// build) for `--secs` seconds and print how many ran and crashed.
    Fuzz {
        /// How long to fuzz, in seconds.
        #[arg(long, default_value_t = 600)]
        secs: u64,
        /// Seed (a different one explores other programs).
        #[arg(long, default_value_t = 20261130)]
        seed: u64,
    },
    /// Run thousands of executions per driver, hostile programs mixed with successes, and
    /// record memory, threads and latency drift in docs/benchmarks.md.
    Soak {
        /// Executions per driver.
        #[arg(long, default_value_t = 10_000)]
        runs: usize,
        /// Executions in flight at once.
        #[arg(long, default_value_t = 2)]
        concurrency: usize,
    },
    /// Run the benchmarks and record medians in docs/benchmarks.md.
    Bench {
        /// Criterion measurement time per benchmark, in seconds.
        #[arg(long, default_value_t = 3)]
        measurement_secs: u64,
        /// Run only the durable-pause benchmark and replace its section of
        /// docs/benchmarks.md, keeping the rest of the file.
        #[arg(long)]
        durable_only: bool,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Cmd::Test { matrix_only } => matrix::run(matrix_only),
        Cmd::V8Runtime => match runtimes::v8() {
            Ok(env) => {
                for (k, v) in env {
                    println!("export {k}={v}");
                }
                Ok(())
            }
            Err(matrix::Provision::Skip(why)) => anyhow::bail!("cannot install: {why}"),
            Err(matrix::Provision::Fail(e)) => Err(e),
        },
        Cmd::Workerd => match runtimes::workerd() {
            Ok(env) => {
                let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
                provision::run(
                    std::process::Command::new(cargo)
                        .args([
                            "run",
                            "--quiet",
                            "-p",
                            "code-mode-isolate-cloudflare",
                            "--bin",
                            "code-mode-workerd",
                        ])
                        .envs(env),
                )
            }
            Err(matrix::Provision::Skip(why)) => anyhow::bail!("cannot install: {why}"),
            Err(matrix::Provision::Fail(e)) => Err(e),
        },
        Cmd::Postgres => match runtimes::postgres() {
            Ok(server) => {
                println!("export CODE_MODE_TEST_POSTGRES='{}'", server.config);
                println!("(press Enter to stop the server)");
                let mut line = String::new();
                let _ = std::io::stdin().read_line(&mut line);
                Ok(())
            }
            Err(matrix::Provision::Skip(why)) => anyhow::bail!("cannot start: {why}"),
            Err(matrix::Provision::Fail(e)) => Err(e),
        },
        Cmd::WasiToolchain => match runtimes::wasi_toolchain() {
            Ok(_) => {
                println!("clang-19 builds wasm32-wasi modules");
                Ok(())
            }
            Err(matrix::Provision::Skip(why)) => anyhow::bail!("cannot install: {why}"),
            Err(matrix::Provision::Fail(e)) => Err(e),
        },
        Cmd::GuestWasm => guest_wasm(),
        Cmd::E2e { screenshot } => e2e::run(screenshot.as_deref()),
        Cmd::Node => node::run(),
        Cmd::Bench {
            durable_only: true, ..
        } => durable_bench::replace_section(),
        Cmd::Bench {
            measurement_secs, ..
        } => bench::run(measurement_secs),
        Cmd::Soak { runs, concurrency } => soak::run(runs, concurrency),
        Cmd::Fuzz { secs, seed } => {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            provision::run(
                std::process::Command::new(cargo)
                    .args([
                        "test",
                        "--release",
                        "-p",
                        "code-mode",
                        "--test",
                        "nesting_fuzz",
                        "deep_programs",
                        "--",
                        "--nocapture",
                    ])
                    .env("CODE_MODE_FUZZ_SECS", secs.to_string())
                    .env("CODE_MODE_FUZZ_SEED", seed.to_string()),
            )
        }
    }
}

/// Builds the QuickJS-WASM guest from source and copies it into the crate's `guest/prebuilt/`.
fn guest_wasm() -> anyhow::Result<()> {
    use anyhow::Context as _;
    if let Err(e) = runtimes::wasi_toolchain() {
        match e {
            matrix::Provision::Skip(why) => anyhow::bail!("cannot install the toolchain: {why}"),
            matrix::Provision::Fail(e) => return Err(e),
        }
    }
    let crate_dir = provision::root().join("crates/isolate-quickjs-wasm");
    let prebuilt = crate_dir.join("guest/prebuilt/quickjs-guest.wasm");
    // The build script prefers a prebuilt module: remove it so this build compiles the guest.
    let _ = std::fs::remove_file(&prebuilt);
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = std::process::Command::new(cargo)
        .args([
            "build",
            "--release",
            "-p",
            "code-mode-isolate-quickjs-wasm",
            "--message-format=json",
        ])
        .env_remove("CODE_MODE_QUICKJS_WASM")
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("cannot run cargo")?;
    anyhow::ensure!(out.status.success(), "the crate does not build");
    let out_dir = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["reason"] == "build-script-executed")
        .filter(|v| {
            v["package_id"]
                .as_str()
                .is_some_and(|p| p.contains("isolate-quickjs-wasm"))
        })
        .find_map(|v| v["out_dir"].as_str().map(std::path::PathBuf::from))
        .context("cargo did not report the build script's output folder")?;
    std::fs::create_dir_all(prebuilt.parent().context("no parent")?)?;
    std::fs::copy(out_dir.join("quickjs-guest.wasm"), &prebuilt)?;
    let size = std::fs::metadata(&prebuilt)?.len();
    println!(
        "wrote {} ({size} bytes); `cargo package -p code-mode-isolate-quickjs-wasm` now ships it",
        prebuilt.display()
    );
    Ok(())
}
