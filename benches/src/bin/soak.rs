//! `soak`: thousands of executions per driver, mixing successes with every kind of program
//! the hardening round found harmful, to show that nothing accumulates: no memory, no
//! threads, no slowdown, no hang. Run by `cargo xtask soak`, which provisions the runtimes
//! and writes the figures into `docs/benchmarks.md`.
//!
//! Every execution goes through the public [`CodeMode::execute`] (TypeScript stage, fresh
//! context, dispose), as an application's would. Even-numbered executions are the probe
//! (`return 1 + 1`), whose latency is compared between the first and the last fifth of the
//! run; odd-numbered ones rotate through [`HOSTILE`]. Each outcome is checked against what
//! its program must produce; anything else is reported as unexpected.
//!
//! Usage: `soak [--runs N] [--concurrency C] [--driver NAME] [--kinds a,b] [--out FILE]`;
//! prints one JSON object per driver and writes them all to `--out`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use code_mode::{CodeMode, ExecuteOptions, Limits, Tool, ToolError};
use serde_json::{Value, json};

/// The probe, measured.
const PROBE: &str = "return 1 + 1";

/// `(name, program, outcomes it may have)`: `ok` or an error name.
const HOSTILE: &[(&str, &str, &[&str])] = &[
    (
        "sequential_tool_calls",
        "let s = 0; for (let i = 0; i < 3; i++) s += (await external_echo({ i })).i; return s",
        &["ok"],
    ),
    (
        "parallel_tool_calls",
        "const r = await Promise.all(Array.from({ length: 20 }, (_, i) => external_echo({ i }))); return r.length",
        &["ok"],
    ),
    (
        "tool_error_caught",
        "try { await external_fail({}); } catch (e) { return (e as Error).message; }",
        &["ok"],
    ),
    (
        "tool_error_uncaught",
        "await external_fail({}); return 1",
        &["Error"],
    ),
    ("infinite_loop", "while (true) {}", &["TimeoutError"]),
    (
        "memory_bomb",
        "const a: number[][] = []; while (true) a.push(new Array(100000).fill(1));",
        // Filling 64 MiB may take longer than the deadline on a loaded machine.
        &["MemoryLimitError", "TimeoutError"],
    ),
    (
        "deep_recursion",
        "function f(n: number): number { return n === 0 ? 0 : 1 + f(n - 1); } return f(1e8);",
        &["StackOverflowError"],
    ),
    (
        "console_flood",
        "for (let i = 0; i < 20000; i++) console.log('x'.repeat(100)); return 1",
        // Heavy on purpose: on a loaded machine it may use up its 300 ms.
        &["ok", "TimeoutError"],
    ),
    (
        "tool_call_flood",
        "await Promise.all(Array.from({ length: 2000 }, () => external_echo({}))); return 1",
        &["ToolCallLimitError"],
    ),
    (
        "huge_result",
        "return 'x'.repeat(5 * 1024 * 1024)",
        // Serialising 5 MiB may use up the 300 ms on a loaded machine.
        &["ResultTooLargeError", "TimeoutError"],
    ),
    (
        "deep_value",
        "let v: unknown = 1; for (let i = 0; i < 100; i++) v = [v]; return v",
        &["ResultError"],
    ),
    (
        "deep_tool_input",
        "let v: unknown = 1; for (let i = 0; i < 100; i++) v = { v }; return await external_echo(v as object)",
        &["TypeError", "ValidationError", "Error"],
    ),
    (
        "odd_strings",
        "console.log('a\\uD800b'); return 'x\\u0000y\\uDC00'",
        &["ok"],
    ),
    (
        "huge_error_message",
        "throw new Error('m'.repeat(1 << 20))",
        &["Error"],
    ),
    (
        "recursing_setter",
        "Object.defineProperty(Array.prototype, '0', { set(v) { JSON.stringify(this); }, configurable: true }); return { x: [5] }",
        &["ok", "StackOverflowError"],
    ),
    (
        "inherited_hooks",
        "(Object.prototype as any).toJSON = () => 'x'; Object.defineProperty(Object.prototype, 'then', { value(ok: (v: unknown) => void) { ok(1); }, configurable: true, writable: true }); throw new RangeError('boom')",
        &["RangeError"],
    ),
    (
        "never_settles",
        "await new Promise(() => {}); return 1",
        &["DeadlockError", "TimeoutError"],
    ),
    (
        "unawaited_rejections",
        "for (let i = 0; i < 50; i++) { external_fail({}); Promise.reject(new Error('x')); } return 1",
        &["ok"],
    ),
    (
        "syntax_error",
        "return (",
        &["SyntaxError", "TypeScriptError"],
    ),
    (
        "deeply_nested_code",
        "DEEP_NESTING",
        &["TypeScriptError", "ValidationError"],
    ),
    (
        "long_builtin",
        "return Array.prototype.includes.call({ length: 2 ** 53 - 1 }, 1)",
        &["TimeoutError", "MemoryLimitError"],
    ),
];

fn tools() -> Vec<Tool> {
    let echo = Tool::new(
        "echo",
        "Returns its input.",
        json!({"type": "object"}),
        |input, _| async move { Ok::<_, ToolError>(input) },
    );
    let fail = Tool::new(
        "fail",
        "Always fails.",
        json!({"type": "object"}),
        |_, _| async move { Err::<Value, _>(ToolError::new("upstream 503")) },
    );
    [echo, fail].into_iter().filter_map(Result::ok).collect()
}

/// Resident memory of this process and every process below it (sidecars, workerd), in KiB,
/// and their thread count.
fn footprint() -> (u64, u64) {
    let me = std::process::id();
    let mut parent_of = std::collections::HashMap::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            // `pid (comm) state ppid ...`; comm may hold spaces and parentheses.
            let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
                continue;
            };
            if let Some(ppid) = rest.split_whitespace().nth(1).and_then(|p| p.parse().ok()) {
                parent_of.insert(pid, ppid);
            }
        }
    }
    let mine = |mut pid: u32| loop {
        if pid == me {
            return true;
        }
        match parent_of.get(&pid) {
            Some(&p) if p != 0 && p != pid => pid = p,
            _ => return false,
        }
    };
    let (mut rss, mut threads) = (0, 0);
    for &pid in parent_of.keys().filter(|&&p| mine(p)) {
        let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
            continue;
        };
        for line in status.lines() {
            let num = |l: &str| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0)
            };
            if line.starts_with("VmRSS:") {
                rss += num(line);
            } else if line.starts_with("Threads:") {
                threads += num(line);
            }
        }
    }
    (rss, threads)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn window_stats(mut v: Vec<f64>) -> Value {
    v.sort_by(f64::total_cmp);
    json!({"n": v.len(), "p50_us": percentile(&v, 0.5), "p99_us": percentile(&v, 0.99)})
}

struct Outcome {
    index: usize,
    kind: &'static str,
    micros: f64,
    name: String,
    expected: bool,
    message: String,
}

async fn soak_driver(
    name: &str,
    driver: Arc<dyn code_mode::IsolateDriver>,
    runs: usize,
    concurrency: usize,
    kinds: &[&'static (&'static str, &'static str, &'static [&'static str])],
) -> Value {
    let limits = match Limits::builder()
        .timeout(Duration::from_millis(300))
        .memory_mib(64)
        .build()
    {
        Ok(l) => l,
        Err(e) => return json!({"driver": name, "error": e.to_string()}),
    };
    let cm = match CodeMode::builder()
        .tools(tools())
        .driver(driver)
        .limits(limits)
        .build()
    {
        Ok(cm) => Arc::new(cm),
        Err(e) => return json!({"driver": name, "error": e.to_string()}),
    };
    let deep_code: Arc<str> = format!("return {}1{}", "(".repeat(5000), ")".repeat(5000)).into();
    // Warm-up: pools and caches filled before the first footprint.
    for _ in 0..100 {
        let _ = cm.execute(PROBE, ExecuteOptions::default()).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (rss_start, threads_start) = footprint();
    let started = Instant::now();
    let mut samples = vec![json!({"runs": 0, "rss_kib": rss_start, "threads": threads_start})];
    let mut outcomes: Vec<Outcome> = Vec::with_capacity(runs);
    let mut set = tokio::task::JoinSet::new();
    let mut next = 0;
    let step = (runs / 10).max(1);
    while next < runs || !set.is_empty() {
        while next < runs && set.len() < concurrency {
            let i = next;
            next += 1;
            let (kind, code, expect): (&'static str, Arc<str>, &'static [&'static str]) =
                if i % 2 == 0 {
                    ("probe", PROBE.into(), &["ok"])
                } else {
                    let (k, c, e) = *kinds[(i / 2) % kinds.len()];
                    let code = if c == "DEEP_NESTING" {
                        deep_code.clone()
                    } else {
                        c.into()
                    };
                    (k, code, e)
                };
            let cm = cm.clone();
            set.spawn(async move {
                let t = Instant::now();
                // A hang is a finding: the outer watchdog is far past every deadline.
                let r = tokio::time::timeout(
                    Duration::from_secs(60),
                    cm.execute(&code, ExecuteOptions::default()),
                )
                .await;
                let micros = t.elapsed().as_secs_f64() * 1e6;
                let (name, message) = match r {
                    Err(_) => ("Hang".to_owned(), "no answer within 60 s".to_owned()),
                    Ok(r) if r.success => ("ok".to_owned(), String::new()),
                    Ok(r) => match r.error {
                        Some(e) => (e.kind.name().to_owned(), e.message),
                        None => ("NoError".to_owned(), String::new()),
                    },
                };
                Outcome {
                    index: i,
                    kind,
                    micros,
                    expected: expect.contains(&name.as_str()),
                    name,
                    message,
                }
            });
        }
        if let Some(Ok(o)) = set.join_next().await {
            outcomes.push(o);
            if outcomes.len().is_multiple_of(step) {
                let (rss, threads) = footprint();
                samples.push(json!({"runs": outcomes.len(), "rss_kib": rss, "threads": threads}));
            }
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    // Let pools settle (retired engines freed, idle threads gone) before the last figure.
    tokio::time::sleep(Duration::from_secs(12)).await;
    let (rss_end, threads_end) = footprint();
    outcomes.sort_by_key(|o| o.index);
    let fifth = runs / 5;
    let probe = |range: std::ops::Range<usize>| {
        window_stats(
            outcomes
                .iter()
                .filter(|o| o.kind == "probe" && range.contains(&o.index) && o.name == "ok")
                .map(|o| o.micros)
                .collect(),
        )
    };
    let mut unexpected: std::collections::BTreeMap<String, (usize, String)> = Default::default();
    let mut by_kind: std::collections::BTreeMap<&str, std::collections::BTreeMap<String, usize>> =
        Default::default();
    for o in &outcomes {
        *by_kind
            .entry(o.kind)
            .or_default()
            .entry(o.name.clone())
            .or_default() += 1;
        if !o.expected {
            let e = unexpected
                .entry(format!("{}: {}", o.kind, o.name))
                .or_insert((0, o.message.chars().take(200).collect()));
            e.0 += 1;
        }
    }
    json!({
        "driver": name,
        "runs": outcomes.len(),
        "concurrency": concurrency,
        "seconds": elapsed,
        "rss_start_kib": rss_start,
        "rss_end_kib": rss_end,
        "threads_start": threads_start,
        "threads_end": threads_end,
        "samples": samples,
        "probe_first": probe(0..fifth),
        "probe_last": probe(runs - fifth..runs),
        "unexpected": unexpected.into_iter().map(|(k, (n, m))| json!({"what": k, "count": n, "example": m})).collect::<Vec<_>>(),
        "outcomes": by_kind,
    })
}

fn main() {
    let mut runs = 10_000;
    let mut concurrency = 4;
    let mut out = None;
    let mut only = None;
    let mut kinds: Vec<_> = HOSTILE.iter().collect();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().unwrap_or_default();
        match a.as_str() {
            "--runs" => runs = value().parse().unwrap_or(runs),
            "--concurrency" => concurrency = value().parse().unwrap_or(concurrency),
            "--out" => out = Some(value()),
            "--driver" => only = Some(value()),
            "--kinds" => {
                let wanted = value();
                kinds.retain(|k| wanted.split(',').any(|w| w == k.0));
            }
            other => {
                eprintln!("soak: unknown argument {other}");
                std::process::exit(2);
            }
        }
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("soak: cannot start a Tokio runtime: {e}");
            std::process::exit(1);
        }
    };
    let mut reports = Vec::new();
    for (name, driver) in code_mode_benches::drivers() {
        if only.as_deref().is_some_and(|o| o != name) {
            continue;
        }
        eprintln!("soak: {name}: {runs} executions, {concurrency} at a time");
        if kinds.is_empty() {
            eprintln!("soak: --kinds matches none of the programs");
            std::process::exit(2);
        }
        let report = rt.block_on(soak_driver(&name, driver, runs, concurrency, &kinds));
        println!("{report}");
        reports.push(report);
    }
    if let Some(path) = out
        && let Err(e) = std::fs::write(&path, Value::Array(reports).to_string())
    {
        eprintln!("soak: cannot write {path}: {e}");
        std::process::exit(1);
    }
}
