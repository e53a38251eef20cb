//! Driver benchmarks: every enabled driver × every scenario, plus a reused context, the full
//! `execute_typescript` path and the cold start of the first context of the process.

use std::time::{Duration, Instant};

/// Untimed pause between spaced runs.
const PAUSE: Duration = Duration::from_micros(300);

use code_mode::{CodeMode, EventSink, ExecuteOptions, Tool, ToolError};
use code_mode_benches::{SCENARIOS, config, drivers, run_fresh};
use criterion::{Criterion, criterion_group, criterion_main};

fn runtime() -> tokio::runtime::Runtime {
    match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => panic!("tokio runtime: {e}"),
    }
}

/// Cold start: the first context of the process and `return 1`, written for the report.
fn cold_start(rt: &tokio::runtime::Runtime) {
    let mut out = serde_json::Map::new();
    for (name, driver) in drivers() {
        let started = Instant::now();
        rt.block_on(run_fresh(&driver, "return 1"));
        out.insert(
            name,
            serde_json::json!(started.elapsed().as_secs_f64() * 1e9),
        );
    }
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/criterion");
    let _ = std::fs::create_dir_all(&dir);
    let _ = std::fs::write(
        dir.join("cold_start.json"),
        serde_json::Value::Object(out).to_string(),
    );
}

/// The scenarios, for harnesses outside Rust (the TanStack baseline) to run the same code.
fn write_scenarios() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/criterion");
    let _ = std::fs::create_dir_all(&dir);
    let map: serde_json::Map<String, serde_json::Value> = SCENARIOS
        .iter()
        .map(|(name, code)| ((*name).to_owned(), serde_json::json!(code)))
        .collect();
    let _ = std::fs::write(
        dir.join("scenarios.json"),
        serde_json::Value::Object(map).to_string(),
    );
}

/// `cargo xtask bench` runs this binary a second time with `CODE_MODE_BENCH_LOADED` set,
/// while a fixed background job keeps one core busy: only the loaded scenarios run then.
fn loaded() -> bool {
    std::env::var_os("CODE_MODE_BENCH_LOADED").is_some()
}

/// The loaded scenarios: what a busy server sees. Fresh context per run, 0.3 ms apart.
fn loaded_benches(c: &mut Criterion) {
    let rt = runtime();
    for (name, driver) in drivers() {
        if name == "cloudflare" {
            continue;
        }
        let mut group = c.benchmark_group(name.as_str());
        group.bench_function("return_1_plus_1_loaded", |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    std::thread::sleep(PAUSE);
                    let started = Instant::now();
                    rt.block_on(run_fresh(&driver, "return 1 + 1"));
                    total += started.elapsed();
                }
                total
            })
        });
        group.finish();
    }
}

fn benches(c: &mut Criterion) {
    if loaded() {
        return loaded_benches(c);
    }
    let rt = runtime();
    write_scenarios();
    cold_start(&rt);
    for (name, driver) in drivers() {
        let mut group = c.benchmark_group(name.as_str());
        if name == "cloudflare" {
            // A fresh Dynamic Worker per execution takes milliseconds: fewer samples.
            group.sample_size(10);
        }
        // Fresh context per run, runs spaced as in a chat (the model takes seconds between
        // executions): drivers that keep engines ready (QuickJS's pool) refill between runs.
        // The pause is not timed.
        for (scenario, code) in SCENARIOS {
            group.bench_function(*scenario, |b| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        std::thread::sleep(PAUSE);
                        let started = Instant::now();
                        rt.block_on(run_fresh(&driver, code));
                        total += started.elapsed();
                    }
                    total
                })
            });
        }
        // Spaced by 5 ms: enough for drivers whose engines take milliseconds to prepare
        // (V8 isolates) to have one ready, still far denser than a chat.
        let fib_25 = SCENARIOS
            .iter()
            .find(|(n, _)| *n == "fib_25")
            .map_or("", |(_, code)| *code);
        for (name, code) in [
            ("return_1_plus_1_spaced_5ms", "return 1 + 1"),
            ("fib_25_spaced_5ms", fib_25),
        ] {
            group.bench_function(name, |b| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        std::thread::sleep(Duration::from_millis(5));
                        let started = Instant::now();
                        rt.block_on(run_fresh(&driver, code));
                        total += started.elapsed();
                    }
                    total
                })
            });
        }
        // Back to back: no pause, so engine creation and teardown are on the critical path.
        group.bench_function("return_1_plus_1_back_to_back", |b| {
            b.to_async(&rt).iter(|| run_fresh(&driver, "return 1 + 1"))
        });
        let ctx = match rt.block_on(driver.create_context(config())) {
            Ok(c) => c,
            Err(e) => panic!("context: {e}"),
        };
        group.bench_function("reused_context_return_1_plus_1", |b| {
            b.to_async(&rt)
                .iter(|| async { ctx.execute("return 1 + 1").await })
        });
        // Engine speed without context creation: each run still compiles a new `fib`, so a
        // JIT warms up every time, as it would for a model's program.
        group.bench_function("reused_context_fib_25", |b| {
            b.to_async(&rt).iter(|| async { ctx.execute(fib_25).await })
        });
        // The bridge cost of a tool call, without context creation in the measurement.
        group.bench_function("reused_context_sequential_tool_calls_100", |b| {
            b.to_async(&rt).iter(|| async {
                ctx.execute("let s = 0; for (let i = 0; i < 100; i++) s += (await external_echo({i})).i; return s").await
            })
        });
        rt.block_on(ctx.dispose());

        let echo = Tool::new(
            "echo",
            "Echo.",
            serde_json::json!({"type": "object"}),
            |v, _| async move { Ok::<_, ToolError>(v) },
        );
        let code_mode =
            match echo.map(|t| CodeMode::builder().tool(t).driver(driver.clone()).build()) {
                Ok(Ok(cm)) => cm,
                _ => panic!("code mode"),
            };
        let ts = "interface R { i: number }\nconst r: R[] = await Promise.all([1, 2, 3].map((i) => external_echo({ i })));\nconsole.log('got', r.length);\nreturn r.map((x) => x.i * 2);";
        group.bench_function("execute_typescript_full_path", |b| {
            b.to_async(&rt).iter(|| async {
                let (sink, mut rx) = EventSink::channel();
                let r = code_mode
                    .execute(ts, ExecuteOptions::new("bench", sink))
                    .await;
                assert!(r.success);
                while rx.try_recv().is_ok() {}
            })
        });
        group.finish();
    }
}

/// Writes the failed executions (if any) for the report.
fn write_failures(_: &mut Criterion) {
    if loaded() {
        return;
    }
    let failures = code_mode_benches::FAILURES
        .lock()
        .map(|f| f.clone())
        .unwrap_or_default();
    let list: Vec<serde_json::Value> = failures
        .iter()
        .map(|(driver, error)| serde_json::json!({"driver": driver, "error": error}))
        .collect();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/criterion");
    let _ = std::fs::create_dir_all(&dir);
    let _ = std::fs::write(
        dir.join("failures.json"),
        serde_json::Value::Array(list).to_string(),
    );
}

criterion_group!(drivers_group, benches, write_failures);
criterion_main!(drivers_group);
