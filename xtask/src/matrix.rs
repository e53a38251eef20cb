//! The test run: provision every runtime, then **one** `cargo test --workspace` with the
//! drivers' and databases' features on, attributing each test binary to its package so the
//! per-driver matrix can be printed.
//!
//! Why one invocation: cargo unifies features over the packages it builds, so a separate
//! `cargo test -p <driver>` resolves a different feature set and recompiles the shared
//! dependency tree (swc, tokio, rustls…) — minutes each on two cores.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use anyhow::{Context, bail};

use crate::e2e;

/// Installs what a driver's tests need; returns the environment they run with.
type ProvisionFn = fn() -> Result<Vec<(String, String)>, Provision>;

/// A driver crate and how to get it ready.
struct DriverEntry {
    /// Name shown in the matrix (`--driver` value).
    name: &'static str,
    /// Cargo package holding the driver and its `tests/conformance.rs`.
    package: &'static str,
    /// Installs what the driver needs at run time. `Ok(env)` for its tests, or
    /// `Err(Skip(reason))` when this machine cannot have it (the row says why).
    provision: ProvisionFn,
    /// Workspace features that test the driver elsewhere (e.g. the CLI's `--driver`).
    features: &'static [&'static str],
}

/// Why a runtime is not there.
pub enum Provision {
    /// This machine cannot have it (the row is skipped, with the reason).
    Skip(String),
    /// It should work and failed (the row fails).
    Fail(anyhow::Error),
}

const DRIVERS: &[DriverEntry] = &[
    DriverEntry {
        name: "quickjs",
        package: "code-mode-isolate-quickjs",
        provision: || Ok(Vec::new()),
        features: &[],
    },
    DriverEntry {
        name: "quickjs-wasm",
        package: "code-mode-isolate-quickjs-wasm",
        provision: crate::runtimes::wasi_toolchain,
        // The chat example's durable approvals seal programs with this driver.
        features: &["code-mode-cli/quickjs-wasm", "code-mode-examples/durable"],
    },
    DriverEntry {
        name: "v8",
        package: "code-mode-isolate-v8",
        provision: crate::runtimes::v8,
        features: &["code-mode-cli/v8"],
    },
    DriverEntry {
        name: "cloudflare",
        package: "code-mode-isolate-cloudflare",
        provision: crate::runtimes::workerd,
        features: &["code-mode-cli/cloudflare"],
    },
];

#[derive(Default, Clone, Copy)]
struct Counts {
    passed: u64,
    failed: u64,
    ignored: u64,
}

impl Counts {
    fn add(&mut self, o: Counts) {
        self.passed += o.passed;
        self.failed += o.failed;
        self.ignored += o.ignored;
    }
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

/// Test executable file name (`conformance-1a2b…`) → package name, from the build's JSON.
fn executables(
    args: &[String],
    env: &[(String, String)],
) -> anyhow::Result<BTreeMap<String, String>> {
    let out = Command::new(cargo())
        .args(args)
        .args(["--no-run", "--message-format=json"])
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stderr(Stdio::inherit())
        .output()
        .context("cannot run cargo")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let messages = stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok());
    if !out.status.success() {
        // With JSON output, the compiler's diagnostics are on stdout: show the errors.
        for v in messages {
            if v["reason"] == "compiler-message"
                && v["message"]["level"] == "error"
                && let Some(text) = v["message"]["rendered"].as_str()
            {
                eprintln!("{}: {text}", v["target"]["name"].as_str().unwrap_or("?"));
            }
        }
        bail!("the tests do not build (compiler errors above)");
    }
    let mut map = BTreeMap::new();
    for v in messages {
        let (Some(exe), Some(id)) = (v["executable"].as_str(), v["package_id"].as_str()) else {
            continue;
        };
        let package = package_of(id);
        if let Some(file) = std::path::Path::new(exe).file_name() {
            map.insert(file.to_string_lossy().into_owned(), package);
        }
    }
    Ok(map)
}

/// The package name in a cargo package id: `path+file:///…/crates/isolate-v8#code-mode-isolate-v8@0.1.0`,
/// or `…/code-mode#0.1.0` when the folder is named like the package.
fn package_of(id: &str) -> String {
    let after = id.rsplit('#').next().unwrap_or(id);
    match after.split_once('@') {
        Some((name, _)) => name.to_owned(),
        None => id
            .split('#')
            .next()
            .and_then(|p| p.rsplit('/').next())
            .unwrap_or(id)
            .to_owned(),
    }
}

fn number_before(s: &str, label: &str) -> u64 {
    s.find(label)
        .and_then(|end| s[..end].rsplit([' ', '.', ';']).next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

/// Per-package results of one run.
#[derive(Default)]
struct Results {
    /// All tests, per package (doc tests under the crate name with `_` → `-`).
    all: BTreeMap<String, Counts>,
    /// Tests named `conformance::…`, per package.
    suite: BTreeMap<String, Counts>,
    total: Counts,
    /// Tests left out by `--skip` (libtest's "filtered out").
    filtered: u64,
}

fn run_tests(
    args: &[String],
    env: &[(String, String)],
    exes: &BTreeMap<String, String>,
) -> anyhow::Result<(bool, Results)> {
    // Cargo prints `Running <binary>` on stderr and libtest its results on stdout: read both
    // from one pipe, in order, to know which binary each result belongs to.
    let (stdout, writer) = std::io::pipe().context("cannot create a pipe")?;
    let mut command = Command::new(cargo());
    command
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdout(writer.try_clone().context("cannot clone a pipe")?)
        .stderr(writer);
    let mut child = command.spawn().context("cannot run cargo")?;
    drop(command);
    let mut results = Results::default();
    let mut current = String::from("?");
    let mut out = std::io::stdout().lock();
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        writeln!(out, "{line}")?;
        let trimmed = line.trim_start();
        if let Some(rest) = trimmed.strip_prefix("Running ") {
            // `Running tests/x.rs (target/debug/deps/x-hash)`
            let exe = rest
                .rsplit(['/', '\\'])
                .next()
                .unwrap_or("")
                .trim_end_matches(')');
            current = exes.get(exe).cloned().unwrap_or_else(|| "?".into());
        } else if let Some(krate) = trimmed.strip_prefix("Doc-tests ") {
            current = krate.trim().replace('_', "-");
        } else if let Some(rest) = trimmed.strip_prefix("test result: ") {
            results.filtered += number_before(rest, " filtered out");
        } else if let Some(name) = trimmed.strip_prefix("test ") {
            let c = if name.ends_with("... ok") {
                Counts {
                    passed: 1,
                    ..Counts::default()
                }
            } else if name.ends_with("FAILED") {
                Counts {
                    failed: 1,
                    ..Counts::default()
                }
            } else if name.contains("... ignored") {
                Counts {
                    ignored: 1,
                    ..Counts::default()
                }
            } else {
                continue;
            };
            results.all.entry(current.clone()).or_default().add(c);
            if name.starts_with("conformance::") {
                results.suite.entry(current.clone()).or_default().add(c);
            }
            results.total.add(c);
        }
    }
    let status = child.wait()?;
    Ok((status.success(), results))
}

pub fn run(matrix_only: bool) -> anyhow::Result<()> {
    let mut all_ok = true;
    // A test run builds once: incremental compilation would only add gigabytes of session
    // files to the target directory (a quarter of a cold run's disk), and CI disks are small.
    let mut env: Vec<(String, String)> = vec![("CARGO_INCREMENTAL".to_owned(), "0".to_owned())];
    let mut features: Vec<&str> = Vec::new();
    let mut excluded: Vec<&str> = Vec::new();
    let mut skip_filters: Vec<String> = Vec::new();
    let mut rows_status: BTreeMap<&str, String> = BTreeMap::new();
    let mut skipped_rows = 0u64;

    for d in DRIVERS {
        println!("== driver {}: provisioning ==", d.name);
        match (d.provision)() {
            Ok(more) => {
                env.extend(more);
                features.extend(d.features);
            }
            Err(Provision::Skip(why)) => {
                println!("driver {} skipped: {why}", d.name);
                skipped_rows += 1;
                excluded.push(d.package);
                rows_status.insert(d.name, format!("skipped: {why}"));
            }
            Err(Provision::Fail(e)) => {
                println!("driver {}: provisioning failed: {e:#}", d.name);
                all_ok = false;
                excluded.push(d.package);
                rows_status.insert(d.name, format!("FAIL: provisioning: {e}"));
            }
        }
    }

    let mut _postgres = None;
    if !matrix_only {
        println!("== PostgreSQL for the skills storage tests ==");
        match crate::runtimes::postgres() {
            Ok(server) => {
                env.push(("CODE_MODE_TEST_POSTGRES".to_owned(), server.config.clone()));
                features.push("code-mode-skills/postgres");
                _postgres = Some(server);
            }
            Err(Provision::Skip(why)) => println!("PostgreSQL skipped: {why}"),
            Err(Provision::Fail(e)) => {
                println!("PostgreSQL could not be started: {e:#}");
                all_ok = false;
            }
        }
        features.push("code-mode-skills/mongo");
        // Durable chat approvals (their test needs the quickjs-wasm driver, enabled above).
        features.push("code-mode-chat/durable");
        features.push("code-mode-mcp/durable");
        features.push("code-mode-skills/durable");
        if std::env::var_os("MONGODB_URI").is_none() {
            println!(
                "MongoDB storage cases skipped: MONGODB_URI is not set (no MongoDB server can be installed here)"
            );
            skip_filters.push("mongo::".into());
        }
        // Runtimes some tests need: installed, or those tests skipped (with why) or failed.
        let mut provide = |heading: &str,
                           result: Result<Vec<(String, String)>, Provision>,
                           tests: &str,
                           what: &str,
                           filter: &str| {
            println!("== {heading} ==");
            match result {
                Ok(more) => env.extend(more),
                Err(Provision::Skip(why)) => {
                    println!("{tests} skipped: {why}");
                    skip_filters.push(filter.into());
                }
                Err(Provision::Fail(e)) => {
                    println!("{what} could not be installed: {e:#}");
                    all_ok = false;
                    skip_filters.push(filter.into());
                }
            }
        };
        provide(
            "MCP servers for the code-mode-mcp tests (npm)",
            crate::runtimes::mcp_servers(),
            "MCP upstream tests",
            "the MCP test servers",
            "upstream::",
        );
        provide(
            "Python MCP SDK for the client tests (PyPI)",
            crate::runtimes::python_mcp(),
            "Python MCP client tests",
            "the Python MCP SDK",
            "python_client::",
        );
        provide(
            "TypeScript compiler for the type-check tests (npm)",
            crate::runtimes::typescript(),
            "type-check tests",
            "the TypeScript compiler",
            "compiler::",
        );
        println!("== chat page: npm packages, build, Chromium ==");
        match e2e::provision() {
            Ok(more) => env.extend(more),
            Err(e) => {
                println!("the chat page cannot be tested: {e:#}");
                all_ok = false;
                skip_filters.extend(e2e::TEST_NAMES.iter().map(|n| (*n).to_owned()));
            }
        }
    }

    // Every package's tests run even when an earlier one fails.
    let mut args: Vec<String> = vec!["test".into(), "--no-fail-fast".into()];
    if matrix_only {
        for d in DRIVERS.iter().filter(|d| !excluded.contains(&d.package)) {
            args.extend(["-p".into(), d.package.into()]);
        }
    } else {
        args.push("--workspace".into());
        for p in &excluded {
            args.extend(["--exclude".into(), (*p).into()]);
        }
    }
    // Feature flags name workspace packages, which `--matrix-only` does not select.
    if !features.is_empty() && !matrix_only {
        args.extend(["--features".into(), features.join(",")]);
    }
    println!("== building the tests ==");
    let exes = executables(&args, &env)?;
    args.extend(["--".into(), "--include-ignored".into()]);
    for f in &skip_filters {
        args.extend(["--skip".into(), f.clone()]);
    }
    println!("== running the tests: cargo {} ==", args.join(" "));
    let (ok, results) = run_tests(&args, &env, &exes)?;
    all_ok &= ok;
    if let Some(server) = _postgres.take() {
        let port = server.port();
        server.stop();
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            println!("PostgreSQL test server still listening on 127.0.0.1:{port} after stop");
            all_ok = false;
        } else {
            println!("PostgreSQL test server stopped (127.0.0.1:{port} closed)");
        }
    }

    // The Node-API addon is built outside the workspace; its tests run on Node itself.
    let mut addon = (0, 0);
    if !matrix_only {
        match crate::node::build().and_then(|()| crate::node::test(&env)) {
            Ok(counts) => addon = counts,
            Err(e) => {
                println!("the Node-API addon could not be built or tested: {e:#}");
                all_ok = false;
            }
        }
        if addon.1 > 0 {
            all_ok = false;
        }
    }

    println!();
    println!("Conformance matrix (behaviour + escape-attempt suite, one row per driver)");
    println!("| driver | status | suite passed | suite failed | all driver tests passed |");
    println!("|---|---|---|---|---|");
    for d in DRIVERS {
        let suite = results.suite.get(d.package).copied().unwrap_or_default();
        let all = results.all.get(d.package).copied().unwrap_or_default();
        let status = rows_status.get(d.name).cloned().unwrap_or_else(|| {
            if all.failed == 0 && suite.passed > 0 {
                "pass"
            } else {
                "FAIL"
            }
            .to_owned()
        });
        if status == "FAIL" {
            all_ok = false;
        }
        println!(
            "| {} | {status} | {} | {} | {} |",
            d.name, suite.passed, suite.failed, all.passed
        );
    }
    println!();
    let total = results.total;
    let skipped_cases = total.ignored + results.filtered + skipped_rows;
    println!(
        "{} passed, {} failed, {} skipped",
        total.passed, total.failed, skipped_cases
    );
    if !matrix_only {
        println!(
            "Node-API addon: its tests passed on {} Node version(s), failed on {}",
            addon.0, addon.1
        );
    }
    if !all_ok || total.failed > 0 {
        bail!("some tests failed");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{number_before, package_of};

    #[test]
    fn package_names_come_from_package_ids() {
        assert_eq!(
            package_of("path+file:///w/crates/isolate-v8#code-mode-isolate-v8@0.1.0"),
            "code-mode-isolate-v8"
        );
        assert_eq!(
            package_of("path+file:///w/crates/code-mode#0.1.0"),
            "code-mode"
        );
    }

    #[test]
    fn parses_libtest_summaries() {
        let line =
            "ok. 41 passed; 2 failed; 3 ignored; 0 measured; 6 filtered out; finished in 2.44s";
        assert_eq!(number_before(line, " passed"), 41);
        assert_eq!(number_before(line, " failed"), 2);
        assert_eq!(number_before(line, " ignored"), 3);
        assert_eq!(number_before(line, " filtered out"), 6);
    }
}
