//! Pre-created blank engines, so a fresh context skips QuickJS runtime and realm creation on
//! the critical path.
//!
//! Creating a QuickJS runtime with all intrinsics costs ~120 µs, several times the cost of
//! running a small program. A background thread keeps a few *blank* engines ready: a runtime
//! and a realm with the standard built-ins, on which no code has ever run. Taking one and
//! installing the context's console and bindings takes microseconds. Blank engines carry no
//! state of any earlier context, so a pooled context is exactly as fresh as a new one. When
//! the pool is empty (a burst of contexts), the engine is created inline.
//!
//! Freeing a QuickJS runtime costs about as much as creating one, so disposed engines are
//! handed to the same thread to be freed off the critical path (inline when too many wait).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::Duration;

use rquickjs::{Context, Runtime};

use crate::allocator::LimitedAllocator;

/// The guest heap budget shared by the allocator and the engine.
#[derive(Debug)]
pub(crate) struct Budget {
    /// Bytes the guest heap may use.
    pub(crate) limit: AtomicUsize,
    /// Set when an allocation did not fit.
    pub(crate) exhausted: AtomicBool,
}

/// A runtime and realm on which no code has run.
pub(crate) struct Blank {
    // Field order is drop order: the realm before its runtime.
    pub(crate) context: Context,
    pub(crate) runtime: Runtime,
    pub(crate) budget: Arc<Budget>,
}

impl Blank {
    pub(crate) fn create() -> Result<Self, String> {
        let budget = Arc::new(Budget {
            limit: AtomicUsize::new(usize::MAX),
            exhausted: AtomicBool::new(false),
        });
        let runtime = Runtime::new_with_alloc(LimitedAllocator::new(budget.clone()))
            .map_err(|e| format!("cannot create a QuickJS runtime: {e}"))?;
        let context =
            Context::full(&runtime).map_err(|e| format!("cannot create a QuickJS context: {e}"))?;
        Ok(Self {
            context,
            runtime,
            budget,
        })
    }
}

/// Disposed engines waiting to be freed; past this many, `retire` frees inline.
const MAX_RETIRED: usize = 16;

#[derive(Default)]
struct State {
    blanks: Vec<Blank>,
    retired: Vec<Box<dyn Send>>,
    refilling: bool,
}

/// A pool of blank engines refilled by one background thread.
pub(crate) struct Pool {
    target: usize,
    state: Mutex<State>,
    wake: Condvar,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("target", &self.target)
            .finish()
    }
}

impl Pool {
    pub(crate) fn new(target: usize) -> Arc<Self> {
        Arc::new(Self {
            target,
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
        })
    }

    /// Hands a disposed engine to the background thread to be freed. Frees it inline when
    /// the pool is disabled or too many wait.
    pub(crate) fn retire(&self, engine: Box<dyn Send>) {
        if self.target == 0 {
            drop(engine);
            return;
        }
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if !state.refilling || state.retired.len() >= MAX_RETIRED {
            drop(state);
            drop(engine);
            return;
        }
        state.retired.push(engine);
        self.wake.notify_one();
    }

    /// A blank engine if one is ready; starts the refill thread on first use.
    pub(crate) fn take(self: &Arc<Self>) -> Option<Blank> {
        if self.target == 0 {
            return None;
        }
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if !state.refilling {
            state.refilling = true;
            let weak = Arc::downgrade(self);
            let spawned = std::thread::Builder::new()
                .name("code-mode-quickjs-pool".into())
                .spawn(move || refill(weak));
            if spawned.is_err() {
                // No thread: work without a pool rather than fail.
                state.refilling = false;
                return None;
            }
        }
        let blank = state.blanks.pop();
        self.wake.notify_one();
        blank
    }
}

/// Niceness of the refill thread: its work is never on anyone's critical path, so when the
/// cores are busy it yields them to the engine threads and the caller.
const REFILL_NICENESS: i32 = 10;

fn refill(pool: Weak<Pool>) {
    #[cfg(target_os = "linux")]
    // SAFETY: plain syscalls on this thread's own id; failure is harmless (normal priority).
    unsafe {
        libc::setpriority(
            libc::PRIO_PROCESS,
            libc::gettid() as libc::id_t,
            REFILL_NICENESS,
        );
    }
    loop {
        let Some(pool) = pool.upgrade() else { return };
        let retired = {
            let mut state = pool.state.lock().unwrap_or_else(|p| p.into_inner());
            while state.blanks.len() >= pool.target && state.retired.is_empty() {
                let (guard, wait) = pool
                    .wake
                    .wait_timeout(state, Duration::from_secs(1))
                    .unwrap_or_else(|p| p.into_inner());
                state = guard;
                // Only this thread holds the pool: the driver is gone.
                if wait.timed_out() && Arc::strong_count(&pool) == 1 {
                    return;
                }
            }
            std::mem::take(&mut state.retired)
        };
        if !retired.is_empty() {
            drop(retired);
            continue;
        }
        match Blank::create() {
            Ok(blank) => pool
                .state
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .blanks
                .push(blank),
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// Reads the budget's limit (used by the allocator).
pub(crate) fn limit_of(budget: &Budget) -> usize {
    budget.limit.load(Ordering::Relaxed)
}
