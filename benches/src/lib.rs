//! Shared scenarios of the driver benchmarks (`benches/drivers.rs`): each is one fresh
//! context created, one program executed, the context disposed, all through the public
//! [`IsolateDriver`] API, so the bridging cost of every driver is included.

use std::sync::Arc;

use code_mode::{Binding, Bindings, ContextConfig, GuestError, IsolateDriver, Limits};

/// `(name, program)` pairs measured with a fresh context per run.
pub const SCENARIOS: &[(&str, &str)] = &[
    ("return_1_plus_1", "return 1 + 1"),
    (
        "sequential_tool_calls_3",
        "let s = 0; for (let i = 0; i < 3; i++) s += (await external_echo({i})).i; return s",
    ),
    (
        "sequential_tool_calls_8",
        "let s = 0; for (let i = 0; i < 8; i++) s += (await external_echo({i})).i; return s",
    ),
    (
        "parallel_tool_calls_100",
        "const r = await Promise.all(Array.from({length: 100}, (_, i) => external_echo({i}))); return r.length",
    ),
    (
        "fib_20",
        "function fib(n) { return n < 2 ? n : fib(n - 1) + fib(n - 2); } return fib(20)",
    ),
    (
        "fib_25",
        "function fib(n) { return n < 2 ? n : fib(n - 1) + fib(n - 2); } return fib(25)",
    ),
    (
        "json_5000_rows",
        "const rows = Array.from({length: 5000}, (_, i) => ({id: i, name: 'row' + i, tags: ['a', 'b']})); return JSON.parse(JSON.stringify(rows)).length",
    ),
    (
        // Just under the default 4 MiB result cap, with two-byte characters: measured in
        // full before it leaves the sandbox.
        "result_4_mib",
        "return 'é'.repeat(2 * 1024 * 1024 - 16)",
    ),
    (
        "result_over_the_cap",
        "return 'é'.repeat(2 * 1024 * 1024 + 16)",
    ),
];

/// The `echo` binding used by the tool-call scenarios.
pub fn bindings() -> Bindings {
    let echo = Binding::new("external_echo", |args| {
        Box::pin(async move { Ok::<_, GuestError>(args) })
    });
    let mut b = Bindings::new();
    if let Ok(echo) = echo {
        let _ = b.insert(echo);
    }
    b
}

/// Context configuration of every scenario.
pub fn config() -> ContextConfig {
    ContextConfig::new(bindings()).with_limits(Limits::default())
}

/// Failed executions during the benchmarks, by driver: `(driver, error)`. A benchmark keeps
/// going when one execution fails (a local workerd may reset a connection under load), and
/// the report lists every failure instead of hiding it.
pub static FAILURES: std::sync::Mutex<Vec<(String, String)>> = std::sync::Mutex::new(Vec::new());

/// One fresh-context run; a failure is recorded in [`FAILURES`].
pub async fn run_fresh(driver: &Arc<dyn IsolateDriver>, code: &str) {
    let outcome = match driver.create_context(config()).await {
        Ok(ctx) => {
            let r = ctx.execute(code).await;
            ctx.dispose().await;
            r.outcome.map(|_| ()).map_err(|e| e.to_string())
        }
        Err(e) => Err(format!("cannot create a context: {e}")),
    };
    if let Err(e) = outcome
        && let Ok(mut f) = FAILURES.lock()
    {
        f.push((driver.name().to_owned(), e));
    }
}

/// Every driver enabled by this crate's features, by name; the Cloudflare driver against the
/// crate's Worker on a local workerd when it is installed (`CODE_MODE_WORKERD`).
pub fn drivers() -> Vec<(String, Arc<dyn IsolateDriver>)> {
    let options = code_mode_drivers::DriverOptions::from_env();
    let mut out: Vec<(String, Arc<dyn IsolateDriver>)> = code_mode_drivers::enabled_drivers()
        .into_iter()
        .filter_map(|name| {
            code_mode_drivers::driver_by_name(name, &options)
                .ok()
                .map(|d| (name.to_owned(), d))
        })
        .collect();
    out.extend(cloudflare());
    out
}

#[cfg(feature = "cloudflare")]
fn cloudflare() -> Option<(String, Arc<dyn IsolateDriver>)> {
    use code_mode_isolate_cloudflare::{LocalWorkerd, LocalWorkerdPool};
    let binary = LocalWorkerd::locate().ok()?;
    let pool =
        LocalWorkerdPool::start(&binary, Some("bench"), LocalWorkerdPool::default_size()).ok()?;
    let driver = pool.driver().ok()?;
    Some(("cloudflare".to_owned(), Arc::new(driver)))
}

#[cfg(not(feature = "cloudflare"))]
fn cloudflare() -> Option<(String, Arc<dyn IsolateDriver>)> {
    None
}

/// The arguments of the report binaries (`otel_bench`, `typecheck_bench`, `prelude_bench`):
/// `--runs N` (else `default_runs`) and `--out FILE` (else the report goes to stdout).
pub fn report_args(default_runs: usize) -> (usize, Option<String>) {
    let mut args = std::env::args().skip(1);
    let (mut runs, mut out) = (default_runs, None);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--runs" => runs = args.next().and_then(|v| v.parse().ok()).unwrap_or(runs),
            "--out" => out = args.next(),
            other => panic!("unknown argument {other}"),
        }
    }
    (runs, out)
}

/// Writes a report binary's JSON to `out` (as `cargo xtask bench` reads it) or to stdout.
pub fn write_report(out: Option<String>, report: &serde_json::Value) {
    match out {
        Some(path) => {
            std::fs::write(&path, report.to_string()).unwrap_or_else(|e| panic!("{path}: {e}"))
        }
        None => println!("{report}"),
    }
}

/// The median of `v` (NaN when empty).
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}
