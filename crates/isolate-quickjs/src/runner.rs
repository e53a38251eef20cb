//! Engine threads: where guest code runs, so that no guest can hold up the caller.
//!
//! QuickJS stops bytecode at the deadline through its interrupt handler, but its built-ins
//! do not poll that handler: `Array.prototype.join`, `sort` or `concat` over a huge
//! array-like object run for as long as their loop lasts. Run on the caller's async worker,
//! such a call would block that worker, every task queued on it, and the very timer that is
//! meant to end it. So an execution runs on one of these threads, which drives the whole
//! host loop itself (tool futures included, through the caller's Tokio handle), while the
//! caller only awaits the answer with a hard deadline. If the deadline passes first, the
//! caller reports `TimeoutError` at once and the engine is *poisoned*: its thread is moved to
//! the lowest scheduling priority, frees the engine when the built-in finally returns, and
//! then exits instead of serving again. Other contexts run on other threads meanwhile.
//!
//! Threads are kept for [`IDLE`] after their last job, so back-to-back executions reuse a
//! warm thread; the pool grows with the number of executions running at once.
//!
//! A sleeping thread takes tens of microseconds to wake (more on a virtual machine), more
//! than a quick program takes to run. So [`expect_job`] (called when a context is created: its
//! first execution usually follows at once) wakes one idle thread ahead of time and lets it
//! spin for up to [`EXPECT`] watching for the job, which it then takes without a wake-up.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long an idle engine thread waits for work before it exits.
const IDLE: Duration = Duration::from_secs(10);
/// How long a thread woken by [`expect_job`] spins waiting for the job.
const EXPECT: Duration = Duration::from_micros(300);
/// Native stack of an engine thread (deeper QuickJS stack limits grow onto a fresh segment).
const THREAD_STACK: usize = 4 * 1024 * 1024;

type Job = Box<dyn FnOnce(&Worker) + Send>;

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    /// Threads waiting on the condition variable.
    idle: usize,
    /// Threads spinning for an expected job (at most one).
    spinning: usize,
    /// Until when a job is expected (see [`expect_job`]).
    expect_until: Option<Instant>,
}

/// The process-wide pool of engine threads.
struct Runner {
    queue: Mutex<Queue>,
    ready: Condvar,
    /// `queue.jobs.len()`, readable without the lock by a spinning thread.
    queued: AtomicUsize,
}

fn runner() -> &'static Runner {
    static RUNNER: OnceLock<Runner> = OnceLock::new();
    RUNNER.get_or_init(|| Runner {
        queue: Mutex::new(Queue::default()),
        ready: Condvar::new(),
        queued: AtomicUsize::new(0),
    })
}

/// A job is expected soon: wake an idle thread now, so that it is running (spinning, for up
/// to [`EXPECT`]) when the job comes. Does nothing when a thread already spins or none idles.
pub(crate) fn expect_job() {
    let r = runner();
    let mut q = r.queue.lock().unwrap_or_else(|p| p.into_inner());
    q.expect_until = Some(Instant::now() + EXPECT);
    if q.spinning == 0 && q.idle > 0 {
        drop(q);
        r.ready.notify_one();
    }
}

/// What a job knows about the thread running it.
pub(crate) struct Worker {
    retire: std::cell::Cell<bool>,
}

impl Worker {
    /// This thread must not serve again (it was demoted while running a poisoned engine).
    pub(crate) fn retire(&self) {
        self.retire.set(true);
    }
}

/// Runs `job` on an engine thread, starting one when none is idle.
pub(crate) fn spawn(job: impl FnOnce(&Worker) + Send + 'static) -> Result<(), String> {
    let r = runner();
    let mut q = r.queue.lock().unwrap_or_else(|p| p.into_inner());
    q.jobs.push_back(Box::new(job));
    r.queued.store(q.jobs.len(), Ordering::Release);
    // A spinning thread takes it without a wake-up.
    if q.spinning >= q.jobs.len() {
        return Ok(());
    }
    // Enough idle threads to take every queued job: wake one; else start another.
    if q.idle + q.spinning >= q.jobs.len() {
        drop(q);
        r.ready.notify_one();
        return Ok(());
    }
    drop(q);
    std::thread::Builder::new()
        .name("code-mode-quickjs".into())
        .stack_size(THREAD_STACK)
        .spawn(work)
        .map(drop)
        .map_err(|e| format!("cannot start a QuickJS engine thread: {e}"))
}

fn work() {
    let r = runner();
    let worker = Worker {
        retire: std::cell::Cell::new(false),
    };
    loop {
        let job = {
            let mut q = r.queue.lock().unwrap_or_else(|p| p.into_inner());
            loop {
                if let Some(job) = q.jobs.pop_front() {
                    r.queued.store(q.jobs.len(), Ordering::Release);
                    break job;
                }
                let expected = q.expect_until.filter(|until| *until > Instant::now());
                if let (Some(until), 0) = (expected, q.spinning) {
                    q.spinning += 1;
                    drop(q);
                    while r.queued.load(Ordering::Acquire) == 0 && Instant::now() < until {
                        std::thread::yield_now();
                    }
                    q = r.queue.lock().unwrap_or_else(|p| p.into_inner());
                    q.spinning -= 1;
                    continue;
                }
                q.idle += 1;
                let (guard, timeout) = r
                    .ready
                    .wait_timeout(q, IDLE)
                    .unwrap_or_else(|p| p.into_inner());
                q = guard;
                q.idle -= 1;
                if timeout.timed_out() && q.jobs.is_empty() {
                    return;
                }
            }
        };
        // A panicking job has already reported itself through its dropped channel.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(&worker)));
        if worker.retire.get() {
            return;
        }
    }
}

/// The OS thread id of the thread running a job, so the caller can demote it.
#[derive(Debug, Default)]
pub(crate) struct ThreadId(AtomicI32);

impl ThreadId {
    /// Records the calling thread.
    pub(crate) fn record(&self) {
        #[cfg(target_os = "linux")]
        {
            // SAFETY: `gettid` has no preconditions.
            let tid = unsafe { libc::gettid() };
            self.0.store(tid, Ordering::SeqCst);
        }
    }

    /// Moves the recorded thread to the lowest scheduling priority (Linux; a no-op
    /// elsewhere), so a runaway built-in competes as little as possible with live work.
    pub(crate) fn demote(&self) {
        #[cfg(target_os = "linux")]
        {
            let tid = self.0.load(Ordering::SeqCst);
            if tid > 0 {
                // SAFETY: plain syscall on a thread id of this process; failure is harmless.
                unsafe {
                    libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 19);
                }
            }
        }
    }
}

/// Shared between a job and its caller.
#[derive(Debug, Default)]
pub(crate) struct Watch {
    pub(crate) thread: ThreadId,
    /// Set by the caller when it gave up on the job.
    pub(crate) poisoned: std::sync::atomic::AtomicBool,
}

impl Watch {
    pub(crate) fn new() -> Arc<Self> {
        Arc::default()
    }
}
