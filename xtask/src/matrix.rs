//! The test matrix: workspace tests, then the conformance suite per driver.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use anyhow::{Context, bail};

use crate::e2e;

/// A driver crate and how to get it ready.
struct DriverEntry {
    /// Name shown in the matrix (`--driver` value).
    name: &'static str,
    /// Cargo package holding the driver and its `tests/conformance.rs`.
    package: &'static str,
    /// Installs what the driver needs at run time. `Ok(env)` for its tests, or
    /// `Err(Skip(reason))` when this machine cannot have it (the row says why).
    provision: fn() -> Result<Vec<(String, String)>, Provision>,
    /// Further `cargo test` runs with the same environment (e.g. the CLI with the driver).
    extra: &'static [&'static [&'static str]],
}

/// Why a driver's runtime is not there.
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
        extra: &[],
    },
    DriverEntry {
        name: "v8",
        package: "code-mode-isolate-v8",
        provision: crate::runtimes::v8,
        extra: &[&[
            "test",
            "-p",
            "code-mode-cli",
            "--features",
            "v8",
            "--test",
            "cli",
        ]],
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

/// Runs `cargo` with `args`, echoing its output. Returns success, the counts of every
/// `test result:` line, and the counts of the tests whose name starts with `suite`
/// (the conformance macro puts every case in a `conformance` module).
fn cargo_test(
    args: &[&str],
    env: &[(String, String)],
    suite: &str,
) -> anyhow::Result<(bool, Counts, Counts)> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut child = Command::new(cargo)
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("cannot run cargo")?;
    let stdout = child.stdout.take().context("no stdout")?;
    let mut counts = Counts::default();
    let mut suite_counts = Counts::default();

    let mut out = std::io::stdout().lock();
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        writeln!(out, "{line}")?;
        let trimmed = line.trim_start();
        if let Some(name) = trimmed
            .strip_prefix("test ")
            .filter(|n| n.starts_with(suite))
        {
            if name.ends_with("... ok") {
                suite_counts.passed += 1;
            } else if name.ends_with("FAILED") {
                suite_counts.failed += 1;
            } else if name.ends_with("ignored") {
                suite_counts.ignored += 1;
            }
        }
        if let Some(rest) = trimmed.strip_prefix("test result: ") {
            let c = Counts {
                passed: number_before(rest, " passed"),
                failed: number_before(rest, " failed"),
                ignored: number_before(rest, " ignored"),
            };
            counts.add(c);
        }
    }
    let status = child.wait()?;
    Ok((status.success(), counts, suite_counts))
}

fn number_before(s: &str, label: &str) -> u64 {
    s.find(label)
        .and_then(|end| s[..end].rsplit([' ', '.', ';']).next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

pub fn run(matrix_only: bool) -> anyhow::Result<()> {
    let mut all_ok = true;
    let mut total = Counts::default();
    if !matrix_only {
        println!("== workspace tests (drivers' conformance suites run next) ==");
        let mut args = vec!["test", "--workspace"];
        for d in DRIVERS {
            args.push("--exclude");
            args.push(d.package);
        }
        // The skills crate runs below with its database features, against a real server.
        args.extend(["--exclude", "code-mode-skills"]);
        // The browser test is ignored by default; it runs in its own phase below.
        args.extend(["--", "--skip", e2e::TEST_NAME]);
        let (ok, counts, _) = cargo_test(&args, &[], "conformance::")?;
        all_ok &= ok;
        total.add(counts);

        println!("== skills storage on PostgreSQL (and the MongoDB mapping) ==");
        match crate::runtimes::postgres() {
            Ok(server) => {
                let env = vec![("CODE_MODE_TEST_POSTGRES".to_owned(), server.config.clone())];
                let (ok, counts, _) = cargo_test(
                    &[
                        "test",
                        "-p",
                        "code-mode-skills",
                        "--features",
                        "postgres,mongo",
                    ],
                    &env,
                    "conformance::",
                )?;
                all_ok &= ok && counts.passed > 0;
                total.add(counts);
                drop(server);
            }
            Err(Provision::Skip(why)) => println!("skipped: {why}"),
            Err(Provision::Fail(e)) => {
                println!("PostgreSQL could not be started: {e:#}");
                all_ok = false;
            }
        }

        println!("== chat page in headless Chromium ==");
        let env = e2e::provision()?;
        let (ok, counts, _) = cargo_test(&e2e::test_args(), &env, "conformance::")?;
        all_ok &= ok && counts.passed > 0;
        total.add(counts);
    }
    let mut rows = Vec::new();
    let mut skipped = 0u64;
    for d in DRIVERS {
        println!("== driver {}: provisioning ==", d.name);
        let env = match (d.provision)() {
            Ok(env) => env,
            Err(Provision::Skip(why)) => {
                println!("driver {} skipped: {why}", d.name);
                skipped += 1;
                rows.push((
                    d.name,
                    format!("skipped: {why}"),
                    Counts::default(),
                    Counts::default(),
                ));
                continue;
            }
            Err(Provision::Fail(e)) => {
                println!("driver {}: provisioning failed: {e:#}", d.name);
                all_ok = false;
                rows.push((
                    d.name,
                    format!("FAIL: provisioning: {e}"),
                    Counts::default(),
                    Counts::default(),
                ));
                continue;
            }
        };
        println!("== driver {}: all tests of {} ==", d.name, d.package);
        let (mut ok, mut all, suite) =
            cargo_test(&["test", "-p", d.package], &env, "conformance::")?;
        for args in d.extra {
            let (extra_ok, extra, _) = cargo_test(args, &env, "conformance::")?;
            ok &= extra_ok;
            all.add(extra);
        }
        all_ok &= ok;
        total.add(all);
        rows.push((
            d.name,
            if ok { "pass" } else { "FAIL" }.to_owned(),
            suite,
            all,
        ));
    }
    println!();
    println!("Conformance matrix (behaviour + escape-attempt suite, one row per driver)");
    println!("| driver | status | suite passed | suite failed | all driver tests passed |");
    println!("|---|---|---|---|---|");
    for (name, status, suite, all) in &rows {
        println!(
            "| {name} | {status} | {} | {} | {} |",
            suite.passed, suite.failed, all.passed
        );
    }
    println!();
    println!(
        "{} passed, {} failed, {} skipped",
        total.passed,
        total.failed,
        total.ignored + skipped
    );
    if !all_ok || total.failed > 0 {
        bail!("some tests failed");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::number_before;

    #[test]
    fn parses_libtest_summaries() {
        let line =
            "ok. 41 passed; 2 failed; 3 ignored; 0 measured; 0 filtered out; finished in 2.44s";
        assert_eq!(number_before(line, " passed"), 41);
        assert_eq!(number_before(line, " failed"), 2);
        assert_eq!(number_before(line, " ignored"), 3);
    }
}
