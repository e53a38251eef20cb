//! `prelude_bench`: what evaluating the core's guest prelude would cost the native QuickJS
//! driver (`cargo xtask bench` runs it and writes its section of `docs/benchmarks.md`).
//!
//! The QuickJS-WASM, V8 and Cloudflare drivers run `code_mode::driver::GUEST_PRELUDE` in
//! every sandbox; the native QuickJS driver converts values in Rust instead. This measures
//! the choice on the same engine (rquickjs, as the driver builds it): a new realm, the
//! prelude evaluated and set up in a new realm (what a fresh context would pay on top), and a
//! whole fresh-context `return 1 + 1` through the driver for scale.
//!
//! Usage: prelude_bench --runs N --out FILE

use std::sync::Arc;
use std::time::Instant;

use code_mode::{ContextConfig, IsolateDriver};
use code_mode_benches::median;
use serde_json::{Value, json};

/// The prelude with hooks that go nowhere, set up with three bindings.
fn script() -> String {
    let hooks = "(prelude) => { const api = prelude({ call: () => true, log: () => {}, frames: /<code>:(\\d+)/g }); api.setup({ bindings: ['external_a', 'external_b', 'external_c'], maxLogs: 1001, maxLogBytes: 1048577, maxCalls: 1000, maxResultBytes: 1048576 }); return api; }";
    format!("({hooks})({})", code_mode::driver::GUEST_PRELUDE)
}

fn realms(runs: usize, script: Option<&str>) -> f64 {
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let rt = rquickjs::Runtime::new().unwrap_or_else(|e| panic!("{e}"));
        let ctx = rquickjs::Context::full(&rt).unwrap_or_else(|e| panic!("{e}"));
        let start = Instant::now();
        match script {
            None => drop(rquickjs::Context::full(&rt).unwrap_or_else(|e| panic!("{e}"))),
            Some(s) => ctx.with(|c| {
                let _: rquickjs::Value<'_> = c.eval(s).unwrap_or_else(|e| panic!("{e}"));
            }),
        }
        times.push(start.elapsed().as_secs_f64() * 1e6);
    }
    median(times)
}

async fn fresh_contexts(runs: usize) -> f64 {
    let driver = Arc::new(code_mode_isolate_quickjs::QuickJsDriver::new());
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let start = Instant::now();
        let ctx = driver
            .create_context(ContextConfig::default())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let r = ctx.execute("return 1 + 1").await;
        assert_eq!(r.outcome.ok().flatten(), Some(json!(2)));
        ctx.dispose().await;
        times.push(start.elapsed().as_secs_f64() * 1e6);
        // Spaced like the driver benchmarks, so the pool refills between runs.
        tokio::time::sleep(std::time::Duration::from_micros(300)).await;
    }
    median(times)
}

fn main() {
    let (runs, out) = code_mode_benches::report_args(2000);
    let script = script();
    let realm = realms(runs, None);
    let prelude = realms(runs, Some(&script));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let fresh = rt.block_on(fresh_contexts(runs));
    let report: Value = json!({
        "runs": runs, "realm_us": realm, "prelude_us": prelude, "fresh_us": fresh,
        "prelude_bytes": code_mode::driver::GUEST_PRELUDE.len(),
    });
    code_mode_benches::write_report(out, &report);
}
