//! The clock behind epoch interruption.
//!
//! wasmtime checks an engine's epoch counter at every loop back-edge and function entry; a
//! background thread advances it every [`TICK`]. On each tick a running store's callback
//! checks its wall-clock deadline (trap when passed) and otherwise yields to the async
//! executor, so a busy guest never monopolises a Tokio worker. The thread sleeps when no
//! execution has run for 100 ms.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::thread::Thread;
use std::time::Duration;

use wasmtime::Engine;

/// Epoch period: the timeout's granularity and the interval between yields.
pub(crate) const TICK: Duration = Duration::from_millis(2);
/// Ticks the clock keeps running after the last execution ends (100 ms).
const IDLE_TICKS: u32 = 50;

struct Ticker {
    engines: Mutex<Vec<Engine>>,
    active: AtomicUsize,
    thread: Thread,
}

fn ticker() -> &'static Ticker {
    static TICKER: OnceLock<Ticker> = OnceLock::new();
    TICKER.get_or_init(|| {
        let handle = std::thread::Builder::new()
            .name("code-mode-wasm-epoch".into())
            .spawn(|| {
                let mut idle_ticks = 0u32;
                loop {
                    let t = ticker();
                    if t.active.load(Ordering::Acquire) == 0 {
                        // Keep ticking a little after the last execution, so executions in
                        // quick succession do not pay for waking this thread.
                        idle_ticks += 1;
                        if idle_ticks > IDLE_TICKS {
                            std::thread::park_timeout(Duration::from_secs(1));
                            continue;
                        }
                    } else {
                        idle_ticks = 0;
                    }
                    std::thread::sleep(TICK);
                    let engines = t.engines.lock().unwrap_or_else(|p| p.into_inner());
                    for engine in engines.iter() {
                        engine.increment_epoch();
                    }
                }
            });
        Ticker {
            engines: Mutex::new(Vec::new()),
            active: AtomicUsize::new(0),
            // Without a thread nothing would ever be interrupted: fall back to the caller's
            // thread handle, which is harmless to unpark; deadlines are then enforced only
            // between guest calls. Spawning a thread does not fail in practice.
            thread: handle
                .map(|h| h.thread().clone())
                .unwrap_or_else(|_| std::thread::current()),
        }
    })
}

/// Adds an engine to those the clock advances; called once per compiled guest.
pub(crate) fn register(engine: &Engine) {
    let mut engines = ticker().engines.lock().unwrap_or_else(|p| p.into_inner());
    if !engines.iter().any(|e| Engine::same(e, engine)) {
        engines.push(engine.clone());
    }
}

/// Keeps the ticker running while an execution is in progress.
pub(crate) struct Active;

impl Active {
    pub(crate) fn new() -> Self {
        let t = ticker();
        t.active.fetch_add(1, Ordering::AcqRel);
        // Unparking a thread that is not parked is cheap (no system call) while it ticks.
        t.thread.unpark();
        Active
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        ticker().active.fetch_sub(1, Ordering::AcqRel);
    }
}
