//! Durable pause on the QuickJS-WASM driver: a program paused at held calls, sealed to
//! bytes, its instance dropped, and resumed from the bytes (once in another process) must
//! end exactly as the same program run without a pause; sealed bytes that were tampered
//! with, expired, replayed, or meant for another key, context, guest or binding set are
//! refused before they reach a sandbox.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use code_mode::durable::{
    DurableDriver, Park, Reply, ResumeError, SnapshotKey, SnapshotVault, Step, durable_driver,
    resume,
};
use code_mode::{
    Binding, Bindings, ContextConfig, ErrorKind, ExecutionResult, GuestError, IsolateDriver, Limits,
};
use code_mode_isolate_quickjs_wasm::QuickJsWasmDriver;
use serde_json::{Value, json};

/// The tools of every program: `external_fast` echoes, `external_slow` echoes after 30 ms,
/// `external_big` returns `rows` rows, `external_approve` is the call that waits for a
/// person. Every run of a tool is recorded, so a replayed call would show.
#[derive(Clone, Default)]
struct Tools {
    ran: Arc<Mutex<Vec<String>>>,
}

/// The answer a person gives to `external_approve(args)`; the uninterrupted run's tool
/// answers the same inline.
fn answer(args: &Value) -> Result<Value, GuestError> {
    if args["deny"] == json!(true) {
        return Err(GuestError {
            name: "ApprovalDeniedError".into(),
            message: "not today".into(),
        });
    }
    Ok(json!({ "approved": args }))
}

impl Tools {
    fn bindings(&self) -> Bindings {
        let mut b = Bindings::new();
        for name in [
            "external_fast",
            "external_slow",
            "external_big",
            "external_approve",
        ] {
            let ran = self.ran.clone();
            let binding = Binding::new(name, move |args: Value| {
                ran.lock().unwrap().push(format!("{name} {args}"));
                Box::pin(async move {
                    match name {
                        "external_slow" => {
                            tokio::time::sleep(Duration::from_millis(30)).await;
                            Ok(args)
                        }
                        "external_big" => {
                            let n = args["rows"].as_u64().unwrap_or(0);
                            let rows: Vec<Value> = (0..n)
                                .map(|i| json!({"id": i, "name": format!("row {i}"), "tags": ["a", "b"]}))
                                .collect();
                            Ok(json!({ "rows": rows }))
                        }
                        "external_approve" => answer(&args),
                        _ => Ok(args),
                    }
                })
            })
            .unwrap();
            b.insert(binding).unwrap();
        }
        b
    }

    fn ran(&self) -> Vec<String> {
        let mut ran = self.ran.lock().unwrap().clone();
        // Calls started together (Promise.all) may run in any order.
        ran.sort();
        ran
    }
}

fn vault() -> SnapshotVault {
    SnapshotVault::new(SnapshotKey::new(1, [7; 32]))
}

const AAD: &[u8] = b"tenant-1/session-9";

fn config(tools: &Tools, limits: &Limits) -> ContextConfig {
    ContextConfig::new(tools.bindings()).with_limits(*limits)
}

fn park() -> Park {
    Park::functions(["external_approve"])
}

/// What a run shows: outcome, logs, tools that ran.
#[derive(Debug, PartialEq)]
struct Seen {
    outcome: Result<Option<Value>, (ErrorKind, String)>,
    logs: Vec<String>,
    ran: Vec<String>,
}

fn seen(r: ExecutionResult, tools: &Tools) -> Seen {
    Seen {
        outcome: r.outcome.map_err(|e| (e.kind, e.message)),
        logs: r.logs.iter().map(|l| l.to_line()).collect(),
        ran: tools.ran(),
    }
}

async fn uninterrupted(code: &str, limits: &Limits) -> Seen {
    let tools = Tools::default();
    let ctx = QuickJsWasmDriver::new()
        .create_context(config(&tools, limits))
        .await
        .unwrap();
    let r = ctx.execute(code).await;
    ctx.dispose().await;
    seen(r, &tools)
}

/// Runs `code` durably: at each pause, seals, drops everything, and resumes from the bytes
/// with answers to the first `per_round` waiting calls (all when 0). Returns what it saw
/// and the sealed sizes.
async fn paused(code: &str, limits: &Limits, per_round: usize) -> (Seen, Vec<usize>) {
    let tools = Tools::default();
    let driver = QuickJsWasmDriver::new();
    let vault = vault();
    let mut step = DurableDriver::start(&driver, config(&tools, limits), code, park())
        .await
        .unwrap();
    let mut sizes = Vec::new();
    loop {
        let paused = match step {
            Step::Finished(r) => return (seen(r, &tools), sizes),
            Step::Paused(p) => p,
        };
        let sealed = paused.seal(&vault, AAD).unwrap();
        sizes.push(sealed.len());
        let take = if per_round == 0 {
            usize::MAX
        } else {
            per_round
        };
        let answers: Vec<_> = paused
            .pending()
            .iter()
            .take(take)
            .map(|c| {
                // The person approves (the tool runs now, inside the resumed execution)
                // or denies (it never runs).
                let reply = match answer(&c.args) {
                    Ok(_) => Reply::run(c.args.clone()),
                    denied => Reply::Deliver(denied),
                };
                (c.call_id, reply)
            })
            .collect();
        drop(paused);
        step = resume(
            &QuickJsWasmDriver::new(),
            &vault,
            &sealed,
            AAD,
            config(&tools, limits),
            answers,
            park(),
        )
        .await
        .unwrap();
    }
}

/// An uninterrupted run runs a denied `external_approve` (which throws); a durable run
/// never starts a denied call, so compare without those.
fn without_denied(mut s: Seen) -> Seen {
    s.ran
        .retain(|r| !(r.starts_with("external_approve") && r.contains("\"deny\":true")));
    s
}

async fn equivalent(code: &str, limits: &Limits, per_round: usize) -> Vec<usize> {
    let a = without_denied(uninterrupted(code, limits).await);
    let (b, sizes) = paused(code, limits, per_round).await;
    assert_eq!(a, b, "program:\n{code}");
    assert!(!sizes.is_empty(), "the program never paused:\n{code}");
    sizes
}

#[tokio::test]
async fn sequential_pause_resumes_where_it_stopped() {
    let code = "const a = await external_fast({ n: 1 });\nconsole.log('before', a.n);\nconst b = await external_approve({ a: a.n });\nconsole.log('after', JSON.stringify(b));\nreturn await external_fast({ b, last: true });";
    let sizes = equivalent(code, &Limits::default(), 0).await;
    assert_eq!(sizes.len(), 1);
}

#[tokio::test]
async fn a_pause_inside_promise_all_waits_for_the_calls_that_run() {
    // `external_slow` finishes after `external_approve` is held: the pause comes only once
    // it has been delivered, and it is not run again after the resume.
    let code = "const r = await Promise.all([external_fast({ i: 1 }), external_approve({ x: 1 }), external_slow({ s: 1 })]);\nreturn r;";
    equivalent(code, &Limits::default(), 0).await;
}

#[tokio::test]
async fn two_held_calls_answered_one_at_a_time_chain_two_snapshots() {
    let code = "const [a, b] = await Promise.all([external_approve({ k: 'a' }), external_approve({ k: 'b' })]);\nconsole.log('both');\nreturn [a, b];";
    let sizes = equivalent(code, &Limits::default(), 1).await;
    assert_eq!(sizes.len(), 2, "one snapshot per answer");
}

#[tokio::test]
async fn a_denial_is_caught_or_fails_the_program_as_inline() {
    let caught = "try { await external_approve({ deny: true }); return 'no'; } catch (e) { return e.name + ': ' + e.message; }";
    equivalent(caught, &Limits::default(), 0).await;
    let uncaught =
        "await external_fast({});\nawait external_approve({ deny: true });\nreturn 'unreachable';";
    equivalent(uncaught, &Limits::default(), 0).await;
}

#[tokio::test]
async fn fifty_pauses_in_a_loop_keep_a_flat_size() {
    let code = "let s = 0;\nfor (let i = 0; i < 50; i++) {\n  const r = await external_approve({ i });\n  s += r.approved.i;\n  if (i % 10 === 0) console.log('at', i);\n}\nreturn s;";
    let sizes = equivalent(code, &Limits::default(), 0).await;
    assert_eq!(sizes.len(), 50);
    // No leak across cycles: the last snapshot is not much larger than the second.
    assert!(sizes[49] < sizes[1] + sizes[1] / 4, "sizes grew: {sizes:?}");
}

#[tokio::test]
async fn heavy_heap_and_globals_survive_a_pause() {
    let code = "globalThis.kept = new Map();\nconst big = await external_big({ rows: 40000 });\nfor (const r of big.rows) kept.set(r.id, r.name);\nconst ok = await external_approve({ n: kept.size });\nreturn [kept.size, kept.get(39999), ok.approved.n, Math.random() < 1];";
    equivalent(code, &Limits::default(), 0).await;
}

#[tokio::test]
async fn caps_straddle_the_pause() {
    // Console: 3 lines before, 5 after, cap 5: the marker appears once.
    let logs = Limits::builder().max_log_entries(5).build().unwrap();
    let code = "for (let i = 0; i < 3; i++) console.log('before', i);\nawait external_approve({});\nfor (let i = 0; i < 5; i++) console.log('after', i);\nreturn 1;";
    equivalent(code, &logs, 0).await;
    // Tool calls: 2 before, the held one, then calls past the budget of 4 fail alike.
    let calls = Limits::builder().max_tool_calls(4).build().unwrap();
    let code = "await external_fast({ a: 1 }); await external_fast({ a: 2 });\nawait external_approve({});\nconst out = [];\nfor (let i = 0; i < 3; i++) { try { await external_fast({ i }); out.push('ok'); } catch (e) { out.push(e.name); } }\nreturn out;";
    equivalent(code, &calls, 0).await;
}

#[tokio::test]
async fn the_timeout_continues_across_the_pause_and_the_pause_does_not_count() {
    let tools = Tools::default();
    let limits = Limits::builder()
        .timeout(Duration::from_millis(1500))
        .build()
        .unwrap();
    let driver = QuickJsWasmDriver::new();
    let vault = vault();
    // About 1 s of work before the pause.
    let code = "const t = Date.now(); while (Date.now() - t < 1000) {}\nconst r = await external_approve({});\nif (r.approved.spin) { for (;;) {} }\nreturn 'done';";
    let Step::Paused(p) = DurableDriver::start(&driver, config(&tools, &limits), code, park())
        .await
        .unwrap()
    else {
        panic!("expected a pause")
    };
    assert!(
        p.time_used() >= Duration::from_millis(950),
        "{:?}",
        p.time_used()
    );
    let sealed = p.seal(&vault, AAD).unwrap();
    // The pause is longer than the whole timeout; it does not count.
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let call = p.pending()[0].call_id;
    let done = resume(
        &driver,
        &vault,
        &sealed,
        AAD,
        config(&tools, &limits),
        vec![(call, Reply::value(json!({"approved": {}})))],
        park(),
    )
    .await
    .unwrap();
    let Step::Finished(r) = done else {
        panic!("expected the end")
    };
    assert_eq!(r.value(), Some(&json!("done")));

    // The same pause, then an endless loop: it times out with what was left (about
    // 0.5 s), and the error names the whole timeout.
    let Step::Paused(p) = DurableDriver::start(&driver, config(&tools, &limits), code, park())
        .await
        .unwrap()
    else {
        panic!("expected a pause")
    };
    let sealed = p.seal(&vault, AAD).unwrap();
    let call = p.pending()[0].call_id;
    let started = Instant::now();
    let Step::Finished(r) = resume(
        &driver,
        &vault,
        &sealed,
        AAD,
        config(&tools, &limits),
        vec![(call, Reply::value(json!({"approved": {"spin": true}})))],
        park(),
    )
    .await
    .unwrap() else {
        panic!("expected the end")
    };
    let after = started.elapsed();
    let e = r.error().unwrap();
    assert_eq!(e.kind, ErrorKind::Timeout, "{e:?}");
    assert_eq!(e.message, "Code execution timed out after 1500 ms");
    assert!(
        after < Duration::from_millis(1400),
        "the resumed run got a fresh budget: {after:?}"
    );
}

/// A driver that keeps the trait's default: no durable side.
struct NotDurable;

#[code_mode::async_trait]
impl IsolateDriver for NotDurable {
    fn name(&self) -> &str {
        "not-durable"
    }
    async fn create_context(
        &self,
        _: ContextConfig,
    ) -> Result<Box<dyn code_mode::IsolateContext>, code_mode::DriverError> {
        Err(code_mode::DriverError::new("not-durable", "no contexts"))
    }
}

/// A paused execution of the sequential program, sealed, with its waiting call's id.
async fn sealed_one(
    driver: &QuickJsWasmDriver,
    tools: &Tools,
    vault: &SnapshotVault,
) -> (Vec<u8>, u32) {
    let code = "const b = await external_approve({ a: 1 });\nreturn b;";
    let Step::Paused(p) =
        DurableDriver::start(driver, config(tools, &Limits::default()), code, park())
            .await
            .unwrap()
    else {
        panic!("expected a pause")
    };
    (p.seal(vault, AAD).unwrap(), p.pending()[0].call_id)
}

async fn refused(
    vault: &SnapshotVault,
    sealed: &[u8],
    aad: &[u8],
    bindings: Bindings,
    driver: &dyn IsolateDriver,
    answers: Vec<(u32, Reply)>,
) -> ResumeError {
    match resume(
        driver,
        vault,
        sealed,
        aad,
        ContextConfig::new(bindings),
        answers,
        park(),
    )
    .await
    {
        Err(e) => e,
        Ok(step) => panic!("expected a refusal, got {step:?}"),
    }
}

#[tokio::test]
async fn refusals_name_what_is_wrong() {
    let driver = QuickJsWasmDriver::new();
    let tools = Tools::default();
    let v = vault();
    let (sealed, call) = sealed_one(&driver, &tools, &v).await;
    let ok = || vec![(call, Reply::value(json!(1)))];
    let b = || tools.bindings();

    // Another key with the same id, another id, another context.
    let other = SnapshotVault::new(SnapshotKey::new(1, [8; 32]));
    assert_eq!(
        refused(&other, &sealed, AAD, b(), &driver, ok()).await,
        ResumeError::Forged
    );
    let rotated = SnapshotVault::new(SnapshotKey::new(2, [7; 32]));
    assert_eq!(
        refused(&rotated, &sealed, AAD, b(), &driver, ok()).await,
        ResumeError::UnknownKey(1)
    );
    assert_eq!(
        refused(&v, &sealed, b"tenant-2", b(), &driver, ok()).await,
        ResumeError::Forged
    );
    // A rotated vault still opening the old key resumes it (checked last, it is single use).

    // Another binding set, another guest (the fuel engine), another driver.
    let fewer = Bindings::new()
        .with(Binding::new("external_approve", |a| Box::pin(async move { Ok(a) })).unwrap())
        .unwrap();
    assert_eq!(
        refused(&v, &sealed, AAD, fewer, &driver, ok()).await,
        ResumeError::Mismatch {
            what: "binding set"
        }
    );
    let fuel = QuickJsWasmDriver::builder()
        .fuel_per_execution(1_000_000_000)
        .build()
        .unwrap();
    assert_eq!(
        refused(&v, &sealed, AAD, b(), &fuel, ok()).await,
        ResumeError::Mismatch {
            what: "guest module"
        }
    );
    let e = refused(&v, &sealed, AAD, b(), &NotDurable, ok()).await;
    assert_eq!(
        e,
        ResumeError::Unsupported {
            driver: "not-durable".into()
        }
    );
    assert!(
        e.to_string()
            .contains("not-durable driver does not support durable pause")
    );
    assert!(durable_driver(&NotDurable).is_err());

    // Answers to calls that are not waiting.
    assert_eq!(
        refused(
            &v,
            &sealed,
            AAD,
            b(),
            &driver,
            vec![(call + 100, Reply::value(json!(1)))]
        )
        .await,
        ResumeError::UnknownCall(call + 100)
    );
    assert_eq!(
        refused(
            &v,
            &sealed,
            AAD,
            b(),
            &driver,
            vec![
                (call, Reply::value(json!(1))),
                (call, Reply::value(json!(2)))
            ]
        )
        .await,
        ResumeError::UnknownCall(call)
    );

    // Truncated, not a snapshot, a future version.
    assert!(matches!(
        refused(&v, &sealed[..sealed.len() / 2], AAD, b(), &driver, ok()).await,
        ResumeError::Forged | ResumeError::Malformed(_)
    ));
    assert!(matches!(
        refused(&v, b"hello", AAD, b(), &driver, ok()).await,
        ResumeError::Malformed(_)
    ));
    let mut future = sealed.clone();
    future[8] = 9;
    assert_eq!(
        refused(&v, &future, AAD, b(), &driver, ok()).await,
        ResumeError::Version {
            found: 9,
            supported: 1
        }
    );

    // Expired: the vault's clock moved past the time-to-live.
    let later = SnapshotVault::builder(SnapshotKey::new(1, [7; 32]))
        .clock(|| SystemTime::now() + Duration::from_secs(8 * 24 * 3600))
        .build()
        .unwrap();
    assert!(matches!(
        refused(&later, &sealed, AAD, b(), &driver, ok()).await,
        ResumeError::Expired { .. }
    ));

    // Too large for a smaller vault.
    let (big, _) = {
        let code = "const big = await external_big({ rows: 30000 });\nawait external_approve({});\nreturn big.rows.length;";
        let Step::Paused(p) =
            DurableDriver::start(&driver, config(&tools, &Limits::default()), code, park())
                .await
                .unwrap()
        else {
            panic!()
        };
        let small = SnapshotVault::builder(SnapshotKey::new(1, [7; 32]))
            .max_bytes(1 << 20)
            .build()
            .unwrap();
        assert!(matches!(
            p.seal(&small, AAD),
            Err(code_mode::durable::SealError::TooLarge { .. })
        ));
        (p.seal(&v, AAD).unwrap(), ())
    };
    let small = SnapshotVault::builder(SnapshotKey::new(1, [7; 32]))
        .max_bytes(1 << 20)
        .build()
        .unwrap();
    assert!(matches!(
        refused(&small, &big, AAD, b(), &driver, ok()).await,
        ResumeError::TooLarge { .. }
    ));

    // Valid: it resumes once, then it is refused as replayed.
    let rotating = SnapshotVault::builder(SnapshotKey::new(2, [9; 32]))
        .also_open(SnapshotKey::new(1, [7; 32]))
        .build()
        .unwrap();
    let Step::Finished(r) = resume(
        &driver,
        &rotating,
        &sealed,
        AAD,
        ContextConfig::new(b()),
        ok(),
        park(),
    )
    .await
    .unwrap() else {
        panic!()
    };
    assert_eq!(r.value(), Some(&json!(1)));
    assert_eq!(
        refused(&rotating, &sealed, AAD, b(), &driver, ok()).await,
        ResumeError::AlreadyResumed
    );
    // The sealed bytes never ran a tool.
    assert!(
        tools
            .ran()
            .iter()
            .all(|r| !r.starts_with("external_approve")),
        "{:?}",
        tools.ran()
    );
}

#[tokio::test]
async fn no_mutation_of_sealed_bytes_gets_through() {
    let driver = QuickJsWasmDriver::new();
    let tools = Tools::default();
    let v = vault();
    let (sealed, call) = sealed_one(&driver, &tools, &v).await;
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for round in 0..2000 {
        let mut bytes = sealed.clone();
        match round % 4 {
            // One flipped bit anywhere (header, body or tag).
            0 | 1 => {
                let at = (next() as usize) % bytes.len();
                bytes[at] ^= 1 << (next() % 8);
            }
            // A cut.
            2 => bytes.truncate((next() as usize) % bytes.len()),
            // Random bytes spliced in.
            _ => {
                let at = (next() as usize) % bytes.len();
                let n = 1 + (next() as usize) % 16;
                for i in 0..n.min(bytes.len() - at) {
                    bytes[at + i] = next() as u8;
                }
                if bytes == sealed {
                    continue;
                }
            }
        }
        let r = resume(
            &driver,
            &v,
            &bytes,
            AAD,
            ContextConfig::new(tools.bindings()),
            vec![(call, Reply::value(json!(1)))],
            park(),
        )
        .await;
        assert!(r.is_err(), "round {round}: a changed snapshot was accepted");
    }
}

/// Authentic snapshots whose guest image is garbage (a forged key holder, a bug): the
/// sandbox contains them. Every outcome is a refusal or a failed execution, never a crash
/// or a hang, and a healthy context keeps working alongside.
#[tokio::test]
async fn garbage_images_stay_inside_the_sandbox() {
    let driver = QuickJsWasmDriver::new();
    let tools = Tools::default();
    let limits = Limits::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let code = "const kept = []; for (let i = 0; i < 100; i++) kept.push({ i, s: 'x'.repeat(i) });\nconst b = await external_approve({ a: 1 });\nreturn [kept.length, b];";
    let Step::Paused(p) = DurableDriver::start(&driver, config(&tools, &limits), code, park())
        .await
        .unwrap()
    else {
        panic!()
    };
    let healthy = driver
        .create_context(ContextConfig::default())
        .await
        .unwrap();
    let original = p.suspended().clone();
    let call = original.pending[0].call_id;
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut outcomes = std::collections::BTreeMap::<String, u32>::new();
    for round in 0..150 {
        let mut s = original.clone();
        // Scribble over the heap (past the 4-byte page count).
        for _ in 0..(1 + round % 64) {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let at = 4 + (seed as usize) % (s.image.len() - 4);
            s.image[at] = (seed >> 32) as u8;
        }
        let step = driver
            .resume_suspended(
                config(&tools, &limits),
                s,
                vec![(call, Reply::value(json!(1)))],
                park(),
            )
            .await;
        let label = match step {
            Err(e) => format!("refused: {e}"),
            Ok(Step::Paused(_)) => "paused".into(),
            Ok(Step::Finished(r)) => match r.error() {
                Some(e) => format!("{:?}", e.kind),
                None => "finished".into(),
            },
        };
        *outcomes.entry(label).or_default() += 1;
        let r = healthy.execute("return 1 + 1").await;
        assert_eq!(r.value(), Some(&json!(2)), "round {round}: {r:?}");
    }
    eprintln!("outcomes: {outcomes:?}");
    healthy.dispose().await;
}

/// The child's role in `resumes_in_another_process`: resume the sealed file, with its own
/// freshly built guest image (no compiled cache), and write what it saw.
#[tokio::test]
async fn child_resumes_sealed_file() {
    let Ok(path) = std::env::var("CODE_MODE_DURABLE_CHILD") else {
        return;
    };
    let sealed = std::fs::read(&path).unwrap();
    let tools = Tools::default();
    let v = vault();
    let driver = QuickJsWasmDriver::new();
    let pending = v.pending(&sealed, AAD).unwrap();
    let answers = pending
        .iter()
        .map(|c| (c.call_id, Reply::run(c.args.clone())))
        .collect();
    let Step::Finished(r) = resume(
        &driver,
        &v,
        &sealed,
        AAD,
        config(&tools, &Limits::default()),
        answers,
        park(),
    )
    .await
    .unwrap() else {
        panic!("expected the end")
    };
    let s = seen(r, &tools);
    let out = json!({
        "outcome": s.outcome.map_err(|(k, m)| format!("{k:?}: {m}")),
        "logs": s.logs,
        "ran": s.ran,
    });
    std::fs::write(format!("{path}.out"), out.to_string()).unwrap();
}

#[tokio::test]
async fn resumes_in_another_process() {
    if std::env::var("CODE_MODE_DURABLE_CHILD").is_ok() {
        return;
    }
    let code = "const a = await external_fast({ n: 1 });\nconsole.log('before');\nconst b = await external_approve({ a: a.n });\nconsole.log('after');\nreturn [a, b, await external_fast({ z: 2 })];";
    let tools = Tools::default();
    let driver = QuickJsWasmDriver::new();
    let Step::Paused(p) =
        DurableDriver::start(&driver, config(&tools, &Limits::default()), code, park())
            .await
            .unwrap()
    else {
        panic!()
    };
    let sealed = p.seal(&vault(), AAD).unwrap();
    let before = tools.ran();
    let dir = std::env::temp_dir().join(format!("code-mode-durable-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("paused.bin");
    std::fs::write(&path, &sealed).unwrap();
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_resumes_sealed_file", "--nocapture"])
        .env("CODE_MODE_DURABLE_CHILD", &path)
        .env("CODE_MODE_QUICKJS_WASM_CACHE", "off")
        .status()
        .unwrap();
    assert!(status.success());
    let out: Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{}.out", path.display())).unwrap())
            .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let whole = without_denied(uninterrupted(code, &Limits::default()).await);
    assert_eq!(
        out["outcome"]["Ok"],
        whole.outcome.clone().unwrap().unwrap()
    );
    assert_eq!(out["logs"], json!(whole.logs));
    // The first process ran the first call, the second only the last one: none twice.
    let mut ran: Vec<String> = before;
    ran.extend(
        out["ran"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_owned()),
    );
    ran.sort();
    assert_eq!(ran, whole.ran);
}

#[tokio::test]
async fn held_calls_count_against_the_call_budget() {
    let limits = Limits::builder().max_tool_calls(2).build().unwrap();
    let code = "await external_fast({});\nawait external_approve({});\ntry { await external_approve({ again: true }); } catch (e) { return e.name; }\nreturn 'no';";
    let a = without_denied(uninterrupted(code, &limits).await);
    let (b, sizes) = paused(code, &limits, 0).await;
    assert_eq!(a, b);
    assert_eq!(sizes.len(), 1);
    assert_eq!(b.outcome, Ok(Some(json!("ToolCallLimitError"))));
}

#[tokio::test]
async fn a_program_that_never_holds_a_call_just_finishes() {
    let tools = Tools::default();
    let driver = QuickJsWasmDriver::new();
    let step = DurableDriver::start(
        &driver,
        config(&tools, &Limits::default()),
        "return await external_fast({ x: 1 })",
        park(),
    )
    .await
    .unwrap();
    let Step::Finished(r) = step else {
        panic!("{step:?}")
    };
    assert_eq!(r.value(), Some(&json!({"x": 1})));
}
