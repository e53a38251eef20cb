//! What only this driver has: sidecar processes that can die or wedge, a pool shared by many
//! executions, and isolated-vm handles that must never reach the guest.

use std::sync::Arc;
use std::time::{Duration, Instant};

use code_mode::{
    Binding, Bindings, ContextConfig, ErrorKind, GuestError, IsolateContext, IsolateDriver, Limits,
};
use code_mode_isolate_v8::{V8Driver, V8Options};
use serde_json::{Value, json};

fn driver(pool_size: usize, grace: Duration) -> V8Driver {
    V8Driver::with_options(V8Options {
        pool_size,
        grace,
        ..V8Options::default()
    })
    .unwrap_or_else(|e| panic!("{e}"))
}

fn bindings() -> Bindings {
    let wait = Binding::new("external_wait", |_| {
        Box::pin(async { futures::future::pending::<Result<Value, GuestError>>().await })
    });
    let echo = Binding::new("external_echo", |args| {
        Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(args["ms"].as_u64().unwrap_or(0))).await;
            Ok(args)
        })
    });
    let mut b = Bindings::new();
    for binding in [wait, echo] {
        b.insert(binding.unwrap_or_else(|e| panic!("{e}")))
            .unwrap_or_else(|e| panic!("{e}"));
    }
    b
}

async fn context(d: &V8Driver, timeout: Duration) -> Box<dyn IsolateContext> {
    let limits = Limits::builder()
        .timeout(timeout)
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    d.create_context(ContextConfig::new(bindings()).with_limits(limits))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

fn signal(sig: &str, pid: u32) {
    let ok = std::process::Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "kill {sig} {pid} failed");
}

async fn assert_works(d: &V8Driver) {
    let ctx = context(d, Duration::from_secs(10)).await;
    let r = ctx
        .execute("return (await external_echo({v: 41})).v + 1")
        .await;
    assert_eq!(r.outcome, Ok(Some(json!(42))), "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_sidecar_fails_its_executions_and_is_replaced() {
    let d = driver(1, Duration::from_secs(2));
    let ctx = context(&d, Duration::from_secs(20)).await;
    let pids = d.sidecar_pids().await;
    assert_eq!(pids.len(), 1);
    let pid = pids[0];
    let started = Instant::now();
    let (r, ()) = tokio::join!(ctx.execute("await external_wait(); return 1"), async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        signal("-KILL", pid);
    });
    let e = r.error().cloned().unwrap_or_else(|| panic!("{r:?}"));
    assert_eq!(e.kind.name(), "InternalError", "{e}");
    assert!(e.message.starts_with("V8 driver: "), "{e}");
    assert!(e.message.contains("exited unexpectedly"), "{e}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "noticed too late"
    );
    // The context is gone with its sidecar; a new context gets a new sidecar.
    assert_eq!(
        ctx.execute("return 1")
            .await
            .error()
            .map(|e| e.kind.clone()),
        Some(ErrorKind::Disposed)
    );
    assert_works(&d).await;
    let now = d.sidecar_pids().await;
    assert_eq!(now.len(), 1);
    assert_ne!(now[0], pid);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wedged_sidecar_is_killed_at_the_hard_deadline() {
    let grace = Duration::from_millis(700);
    let d = driver(1, grace);
    let ctx = context(&d, Duration::from_millis(300)).await;
    let pid = d.sidecar_pids().await[0];
    let started = Instant::now();
    // SIGSTOP freezes the whole process, its own timers included: only the driver's
    // deadline can end this execution.
    let (r, ()) = tokio::join!(ctx.execute("await external_wait(); return 1"), async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        signal("-STOP", pid);
    });
    let elapsed = started.elapsed();
    let e = r.error().cloned().unwrap_or_else(|| panic!("{r:?}"));
    assert_eq!(e.kind, ErrorKind::Timeout, "{e}");
    // The caller hears it 100 ms after the deadline, not after the grace.
    assert!(
        elapsed >= Duration::from_millis(400) && elapsed < Duration::from_millis(900),
        "{elapsed:?}"
    );
    // A context created meanwhile goes to a sidecar that answers (a new one, since the
    // stopped one is the pool's only sidecar and is killed at deadline + grace).
    assert_works(&d).await;
    tokio::time::sleep(Duration::from_millis(300 + 700 + 300).saturating_sub(started.elapsed()))
        .await;
    assert_ne!(d.sidecar_pids().await, vec![pid]);
    // The stopped process was killed, not left behind.
    let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    assert!(
        state.is_empty() || state.contains(") Z "),
        "pid {pid} still there: {state}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_concurrent_executions_do_not_cross_talk() {
    let d = Arc::new(driver(2, Duration::from_secs(2)));
    let runs = (0..64).map(|i| {
        let d = d.clone();
        async move {
            let ctx = context(&d, Duration::from_secs(30)).await;
            let code = format!(
                "globalThis.me = {i}; console.log('me', me);
                 const rs = await Promise.all([1, 2, 3].map((k) => external_echo({{i: me, k, ms: (me * 7 + k) % 20}})));
                 let s = 0; for (let n = 0; n < 200000; n++) s += n % (me + 1);
                 return {{me, echoed: rs.map((r) => r.i), ks: rs.map((r) => r.k), s}}"
            );
            (i, ctx.execute(&code).await)
        }
    });
    for (i, r) in futures::future::join_all(runs).await {
        let expected_s: u64 = (0..200_000u64).map(|n| n % (i + 1)).sum();
        assert_eq!(
            r.outcome,
            Ok(Some(
                json!({"me": i, "echoed": [i, i, i], "ks": [1, 2, 3], "s": expected_s})
            )),
            "context {i}"
        );
        assert_eq!(r.logs.len(), 1);
        assert_eq!(r.logs[0].message, format!("me {i}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_isolated_vm_handle_or_host_path_reaches_the_guest() {
    let d = driver(1, Duration::from_secs(2));
    let ctx = context(&d, Duration::from_secs(10)).await;
    let r = ctx
        .execute(
            "const names = Object.getOwnPropertyNames(globalThis);
             const odd = names.filter((n) => {
               const v = globalThis[n];
               const ctor = v && v.constructor && v.constructor.name;
               return /Reference|Callback|ExternalCopy|Isolate/.test(String(ctor)) || n.startsWith('__cm_') && n !== '__cm_run';
             });
             const stack = String(new Error('x').stack);
             return { odd, stack, hasIvm: typeof ivm, refs: names.filter((n) => n.startsWith('_') && n !== '__cm_run') };",
        )
        .await;
    let v = r.value().cloned().unwrap_or_else(|| panic!("{r:?}"));
    assert_eq!(v["odd"], json!([]), "{v}");
    assert_eq!(v["hasIvm"], json!("undefined"));
    assert_eq!(v["refs"], json!([]), "{v}");
    let stack = v["stack"].as_str().unwrap_or_default();
    assert!(
        !stack.contains('/') && !stack.contains("sidecar"),
        "host path in guest stack: {stack}"
    );
}

#[test]
fn a_missing_runtime_says_what_to_install() {
    let err = V8Driver::with_options(V8Options {
        runtime_dir: Some(std::env::temp_dir().join("code-mode-v8-nothing-here")),
        ..V8Options::default()
    })
    .unwrap_err();
    assert!(err.message.contains("code-mode-v8-setup"), "{err}");
    assert!(err.message.contains("24.21.0"), "{err}");
}

#[test]
fn the_probe_reports_node_24() {
    let d = driver(1, Duration::from_secs(2));
    assert!(d.node_version().starts_with("v24."), "{}", d.node_version());
}

/// Guest code runs on its isolate's own thread, never on the sidecar's main thread: a
/// context created while a program spins on the same (only) sidecar is answered while the
/// first program is still spinning.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spinning_program_does_not_hold_up_a_new_context() {
    let d = Arc::new(driver(1, Duration::from_secs(2)));
    d.warm_up().await.unwrap_or_else(|e| panic!("{e}"));
    let spinning = {
        let d = d.clone();
        tokio::spawn(async move {
            let ctx = context(&d, Duration::from_secs(3)).await;
            ctx.execute("while (true) {}").await
        })
    };
    // Let the spinning program start.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ctx = context(&d, Duration::from_secs(10)).await;
    let r = ctx.execute("return (await external_echo({v: 1})).v").await;
    assert_eq!(r.outcome, Ok(Some(json!(1))), "{r:?}");
    assert!(
        !spinning.is_finished(),
        "the new context was answered only after the spinning program ended"
    );
    let spun = spinning.await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(spun.outcome.err().map(|e| e.kind), Some(ErrorKind::Timeout));
    assert_works(&d).await;
}

/// An execution that is waiting for a tool when a neighbour on its sidecar starts computing
/// until its deadline gets its tool result and finishes, well before that deadline (the
/// soak found such executions timing out when guest code ran on the main thread).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_execution_is_not_held_by_a_computing_neighbour() {
    let d = Arc::new(driver(1, Duration::from_secs(2)));
    d.warm_up().await.unwrap_or_else(|e| panic!("{e}"));
    let waiting = context(&d, Duration::from_millis(1500)).await;
    let spinning = context(&d, Duration::from_secs(4)).await;
    let (r, spun) = tokio::join!(
        waiting.execute("const a = await external_echo({ms: 300, v: 1}); const b = await external_echo({v: 2}); return a.v + b.v"),
        async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            spinning.execute("while (true) {}").await
        }
    );
    assert_eq!(r.outcome, Ok(Some(json!(3))), "{r:?}");
    assert_eq!(spun.outcome.err().map(|e| e.kind), Some(ErrorKind::Timeout));
    assert_works(&d).await;
}

/// Ten thousand calls fired without awaiting, in one synchronous stretch: past the cap the guest
/// refuses them itself (`ToolCallLimitError`), so the host sees exactly the cap and the
/// sidecar stays healthy. (Not more: isolated-vm's tracking of rejected promises is
/// quadratic, 1e5 refusals take seconds; the timeout bounds that as any other computation.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unawaited_call_flood_is_capped_inside_the_sidecar() {
    let d = driver(1, Duration::from_secs(2));
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = calls.clone();
    let count = Binding::new("external_count", move |args| {
        counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Box::pin(async move { Ok::<_, GuestError>(args) })
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let mut b = Bindings::new();
    b.insert(count).unwrap_or_else(|e| panic!("{e}"));
    let limits = Limits::builder()
        .max_tool_calls(50)
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let ctx = d
        .create_context(ContextConfig::new(b).with_limits(limits))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let r = ctx
        .execute(
            "let refused = 0, name = '';
             for (let i = 0; i < 1e4; i++) external_count({i}).catch((e) => { refused++; name = e.name; });
             await external_count({last: true}).catch(() => {});
             return {refused, name}",
        )
        .await;
    assert_eq!(
        r.outcome,
        Ok(Some(
            json!({"refused": 10_000 - 50, "name": "ToolCallLimitError"})
        )),
        "{r:?}"
    );
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 50);
    assert_works(&d).await;
}

/// Guest code runs on the sidecar's main thread: a program blocking it in `Atomics.wait`
/// (which a timer could not interrupt) still ends at its deadline, and the sidecar works on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn atomics_wait_ends_at_the_deadline() {
    let d = driver(1, Duration::from_secs(2));
    let ctx = context(&d, Duration::from_millis(300)).await;
    let r = ctx
        .execute("Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0); return 1")
        .await;
    assert_eq!(r.outcome.err().map(|e| e.kind), Some(ErrorKind::Timeout));
    assert_works(&d).await;
}

/// Unawaited rejected promises (plain, from failing calls, many of them) never disturb the
/// sidecar: the program's own outcome stands and the sidecar keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unawaited_rejections_leave_the_sidecar_alone() {
    let d = driver(1, Duration::from_secs(2));
    for code in [
        "Promise.reject(new Error('x')); return 1",
        "for (let i = 0; i < 1000; i++) Promise.reject(new Error('x' + i)); return 2",
        "external_echo({ms: 1}).then(() => { throw new Error('late'); }); return 3",
        "Promise.reject(new Error('a')); await external_echo({ms: 5}); return 4",
        "(async () => { await null; throw new Error('later'); })(); await external_echo({ms: 5}); return 5",
    ] {
        let ctx = context(&d, Duration::from_secs(5)).await;
        let r = ctx.execute(code).await;
        assert!(r.outcome.is_ok(), "{code}: {:?}", r.outcome);
        ctx.dispose().await;
    }
    assert_works(&d).await;
}

/// A V8 C++ built-in ignores termination and holds its isolate's thread past the deadline.
/// The caller hears `TimeoutError`; an execution started meanwhile on the same sidecar is
/// answered; the sidecar then retires (it ends itself, freeing the held thread) and a new
/// one takes its place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runaway_builtin_neither_holds_its_caller_nor_loses_queued_executions() {
    let d = driver(1, Duration::from_millis(500));
    let runaway = context(&d, Duration::from_millis(300)).await;
    let pid = d.sidecar_pids().await[0];
    let started = Instant::now();
    let (r, queued) = tokio::join!(
        runaway.execute("return Array.prototype.includes.call({ length: 2 ** 53 - 1 }, 1)"),
        async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let ctx = context(&d, Duration::from_secs(10)).await;
            ctx.execute("return (await external_echo({v: 41})).v + 1")
                .await
        }
    );
    let took = started.elapsed();
    let e = r.error().cloned().unwrap_or_else(|| panic!("{r:?}"));
    assert_eq!(e.kind, ErrorKind::Timeout, "{e}");
    assert!(took < Duration::from_secs(3), "{took:?}");
    assert_eq!(queued.outcome, Ok(Some(json!(42))), "{queued:?}");
    let retired = Instant::now();
    while std::path::Path::new(&format!("/proc/{pid}/cmdline"))
        .metadata()
        .is_ok()
        && std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "))
    {
        assert!(
            retired.elapsed() < Duration::from_secs(10),
            "the held sidecar (pid {pid}) is still running"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_works(&d).await;
    assert_ne!(d.sidecar_pids().await, vec![pid]);
}

/// A sidecar retiring after a runaway built-in ends itself only once the output of the runs
/// it finished is out: a run that floods the console and ends as the last one in flight gets
/// its result (writes to a pipe are asynchronous in Node; the kill used to drop the buffered
/// `done` line, and the run was reported lost). A context created while the sidecar retires
/// starts on another one, never on the retiring process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retiring_sidecar_loses_no_run_that_ended_or_had_not_started() {
    for round in 0..3 {
        let d = driver(1, Duration::from_millis(500));
        let runaway = context(&d, Duration::from_millis(300)).await;
        let flood = context(&d, Duration::from_secs(10)).await;
        let pid = d.sidecar_pids().await[0];
        let (r, flooded, fresh) = tokio::join!(
            runaway.execute("return Array.prototype.includes.call({ length: 2 ** 53 - 1 }, 1)"),
            flood.execute(
                "await external_echo({ms: 50}); const line = 'x'.repeat(90); \
                 await external_echo({ms: 700}); \
                 for (let i = 0; i < 9000; i++) console.log(i, line); return 'flooded'"
            ),
            async {
                // Placed while the sidecar retires (after 300 ms + 250 ms).
                tokio::time::sleep(Duration::from_millis(650)).await;
                let ctx = context(&d, Duration::from_secs(10)).await;
                ctx.execute("console.log('started'); return (await external_echo({v: 1, ms: 300})).v")
                    .await
            }
        );
        assert_eq!(r.error().map(|e| e.kind.clone()), Some(ErrorKind::Timeout), "round {round}: {r:?}");
        assert_eq!(flooded.outcome, Ok(Some(json!("flooded"))), "round {round}: {:?}", flooded.outcome);
        assert_eq!(fresh.outcome, Ok(Some(json!(1))), "round {round}: {:?}", fresh.outcome);
        assert_ne!(d.sidecar_pids().await, vec![pid], "round {round}");
    }
}

/// Pollutes everything a program can reach, leaves a finalizer and a timed wait behind, and
/// reports what it found of an earlier program.
const POLLUTE_AND_CHECK: &str = r#"
const seen = [];
if (typeof globalThis.leak !== 'undefined') seen.push('a global');
if ([].leak !== undefined) seen.push('Array.prototype');
if (({}).polluted !== undefined) seen.push('Object.prototype');
if (JSON.stringify.patched) seen.push('JSON');
if (console.log.patched) seen.push('console');
if (typeof external_echo.patched !== 'undefined') seen.push('a binding');
globalThis.leak = 1;
Array.prototype.leak = 1;
Object.defineProperty(Object.prototype, 'polluted', { value: 1, enumerable: false, configurable: true });
JSON.stringify.patched = true;
console.log.patched = true;
external_echo.patched = true;
const registry = new FinalizationRegistry(() => {
  console.log('a finalizer of an earlier context');
  external_echo({ late: true });
});
for (let i = 0; i < 1000; i++) registry.register({ big: new Array(100).fill(i) }, i);
globalThis.keep = registry;
const wait = Atomics.waitAsync(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1);
if (wait.async) wait.value.then(() => console.log('a timed wait of an earlier context'));
let junk = [];
for (let i = 0; i < 200; i++) junk.push(new Array(5000).fill(i));
junk = null;
console.log('ran');
return { seen };
"#;

/// Contexts one after another share isolates (far fewer are made than contexts served), and
/// a later context sees nothing of an earlier one: its globals, patched built-ins and
/// bindings, finalizers and timed waits it left behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recycled_isolates_keep_nothing_of_earlier_contexts() {
    let d = driver(1, Duration::from_secs(2));
    assert_works(&d).await;
    let before = d.isolates_made().await;
    assert!(before >= 1, "the sidecar reports the isolates it made");
    const CONTEXTS: u64 = 24;
    for i in 0..CONTEXTS {
        let ctx = context(&d, Duration::from_secs(10)).await;
        let r = ctx.execute(POLLUTE_AND_CHECK).await;
        assert_eq!(
            r.outcome,
            Ok(Some(json!({"seen": []}))),
            "context {i}: {r:?}"
        );
        let logs: Vec<&str> = r.logs.iter().map(|l| l.message.as_str()).collect();
        assert_eq!(logs, ["ran"], "context {i}");
        ctx.dispose().await;
    }
    // Spares are refilled in the background: let the last report arrive.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let made = d.isolates_made().await - before;
    assert!(
        made <= CONTEXTS / 4,
        "{made} isolates made for {CONTEXTS} contexts"
    );
}

/// With `contexts_per_isolate: 1` every context gets an isolate of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_context_per_isolate_makes_an_isolate_per_context() {
    let d = V8Driver::with_options(V8Options {
        pool_size: 1,
        contexts_per_isolate: 1,
        ..V8Options::default()
    })
    .unwrap_or_else(|e| panic!("{e}"));
    assert_works(&d).await;
    let before = d.isolates_made().await;
    const CONTEXTS: u64 = 8;
    for _ in 0..CONTEXTS {
        assert_works(&d).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let made = d.isolates_made().await - before;
    assert!(
        made >= CONTEXTS,
        "{made} isolates made for {CONTEXTS} contexts"
    );
}

#[test]
fn contexts_per_isolate_out_of_range_is_refused() {
    for n in [0, code_mode_isolate_v8::MAX_CONTEXTS_PER_ISOLATE + 1] {
        let err = V8Driver::with_options(V8Options {
            contexts_per_isolate: n,
            ..V8Options::default()
        })
        .unwrap_err();
        assert!(
            err.message.contains("contexts_per_isolate") && err.message.contains("between 1"),
            "{err}"
        );
    }
}
