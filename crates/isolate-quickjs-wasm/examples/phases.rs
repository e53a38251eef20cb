//! Where a fresh context's time goes: `cargo run --release -p code-mode-isolate-quickjs-wasm --example phases`.

use std::time::{Duration, Instant};

use code_mode::{ContextConfig, IsolateDriver};
use code_mode_isolate_quickjs_wasm::QuickJsWasmDriver;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let driver = QuickJsWasmDriver::new();
    let started = Instant::now();
    if let Err(e) = driver.warm_up().await {
        eprintln!("{e}");
        std::process::exit(1);
    }
    println!("compile + snapshot: {:?}", started.elapsed());
    for pause in [
        Duration::ZERO,
        Duration::from_micros(300),
        Duration::from_millis(5),
    ] {
        let (mut create, mut exec, mut dispose) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..400 {
            std::thread::sleep(pause);
            let t = Instant::now();
            let Ok(ctx) = driver.create_context(ContextConfig::default()).await else {
                std::process::exit(1);
            };
            let t1 = Instant::now();
            let r = ctx.execute("return 1 + 1").await;
            assert!(r.is_success());
            let t2 = Instant::now();
            drop(ctx);
            let t3 = Instant::now();
            create.push(t1 - t);
            exec.push(t2 - t1);
            dispose.push(t3 - t2);
        }
        let median = |v: &mut Vec<Duration>| {
            v.sort();
            v[v.len() / 2]
        };
        println!(
            "pause {pause:?}: create {:?}, execute {:?}, drop {:?}",
            median(&mut create),
            median(&mut exec),
            median(&mut dispose)
        );
    }
}
