//! `durable_bench`: what a durable pause costs on the QuickJS-WASM driver (`cargo xtask
//! bench` runs it and writes its section of `docs/benchmarks.md`).
//!
//! Two programs pause at a call waiting for approval: a small one (one call before it) and
//! a heap-heavy one (a 40,000-entry `Map` kept across the pause). For each, the guest image
//! size (raw) and the sealed size (LZ4 + ChaCha20-Poly1305), the time to seal a paused
//! execution, and the time to resume the sealed bytes to the program's result (open and
//! check, restore the guest, run the approved call and the rest of the program).
//!
//! Usage: durable_bench --runs N --out FILE

use std::sync::Arc;
use std::time::Instant;

use code_mode::durable::{
    DurableDriver, Park, Paused, Reply, SnapshotKey, SnapshotVault, Step, durable_driver, resume,
};
use code_mode::{Binding, Bindings, ContextConfig, GuestError, IsolateDriver, Limits};
use code_mode_benches::median;
use serde_json::{Value, json};

const SMALL: &str = "const a = await external_fast({ n: 1 });\nconst b = await external_approve({ a: a.n });\nreturn [a, b];";
const HEAVY: &str = "const kept = new Map();\nfor (let i = 0; i < 40000; i++) kept.set(i, { id: i, name: 'row ' + i });\nconst b = await external_approve({ n: kept.size });\nreturn [kept.size, kept.get(39999).name, b.n];";

fn config() -> ContextConfig {
    let mut bindings = Bindings::new();
    for name in ["external_fast", "external_approve"] {
        let echo = Binding::new(name, |args| {
            Box::pin(async move { Ok::<_, GuestError>(args) })
        })
        .unwrap_or_else(|e| panic!("{e}"));
        bindings.insert(echo).unwrap_or_else(|e| panic!("{e}"));
    }
    ContextConfig::new(bindings).with_limits(Limits::default())
}

fn park() -> Park {
    Park::functions(["external_approve"])
}

async fn pause(durable: &dyn DurableDriver, code: &str) -> Paused {
    match durable.start(config(), code, park()).await {
        Ok(Step::Paused(p)) => p,
        other => panic!("the program did not pause: {other:?}"),
    }
}

async fn measure(driver: &Arc<dyn IsolateDriver>, code: &str, runs: usize) -> Value {
    let durable = durable_driver(driver.as_ref()).unwrap_or_else(|e| panic!("{e}"));
    let vault = SnapshotVault::new(SnapshotKey::new(1, [7; 32]));
    let (mut seal, mut resumed) = (Vec::with_capacity(runs), Vec::with_capacity(runs));
    let (mut image, mut sealed_bytes) = (0, 0);
    for _ in 0..runs {
        let paused = pause(durable, code).await;
        image = paused.image_bytes();
        let start = Instant::now();
        let sealed = paused
            .seal(&vault, b"bench")
            .unwrap_or_else(|e| panic!("{e}"));
        seal.push(start.elapsed().as_secs_f64() * 1e6);
        sealed_bytes = sealed.len();
        let call = paused.pending()[0].clone();
        drop(paused);
        let start = Instant::now();
        let step = resume(
            driver.as_ref(),
            &vault,
            &sealed,
            b"bench",
            config(),
            vec![(call.call_id, Reply::run(call.args))],
            park(),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        resumed.push(start.elapsed().as_secs_f64() * 1e6);
        match step {
            Step::Finished(r) => assert!(r.outcome.is_ok(), "{:?}", r.outcome),
            Step::Paused(_) => panic!("paused again"),
        }
    }
    let (seal, resumed) = (median(seal), median(resumed));
    json!({
        "image_bytes": image, "sealed_bytes": sealed_bytes,
        "seal_us": seal, "resume_us": resumed, "total_us": seal + resumed,
    })
}

async fn fresh_return(driver: &Arc<dyn IsolateDriver>, runs: usize) -> f64 {
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let start = Instant::now();
        let ctx = driver
            .create_context(config())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let r = ctx.execute("return 1 + 1").await;
        assert!(r.outcome.is_ok());
        ctx.dispose().await;
        times.push(start.elapsed().as_secs_f64() * 1e6);
        tokio::time::sleep(std::time::Duration::from_micros(300)).await;
    }
    median(times)
}

fn main() {
    let (runs, out) = code_mode_benches::report_args(200);
    let driver = code_mode_drivers::driver_by_name("quickjs-wasm", &Default::default())
        .unwrap_or_else(|e| panic!("{e}"));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let report = rt.block_on(async {
        // Warm the driver (module compiled, pools filled) before measuring.
        let _ = measure(&driver, SMALL, 5).await;
        json!({
            "runs": runs,
            "small": measure(&driver, SMALL, runs).await,
            "heavy": measure(&driver, HEAVY, runs.div_ceil(4)).await,
            "fresh_us": fresh_return(&driver, runs).await,
        })
    });
    code_mode_benches::write_report(out, &report);
}
