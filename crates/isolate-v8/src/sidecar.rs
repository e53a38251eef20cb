//! One sidecar process: Node 24 running `sidecar.js`, spoken to over stdio.
//!
//! Reading and writing happen on two plain threads with blocking pipes, so the sidecar does
//! not depend on whichever Tokio runtime created it (a driver may outlive a runtime, as in a
//! test binary). Lines are routed to executions by run id; when the process ends, every
//! execution it held receives [`RunEvent::Gone`] with the reason.
//!
//! Tool calls start on the reader thread itself, inside the execution's runtime context: a
//! tool that finishes at once (a lookup, a cache hit, `echo`) is answered from there, without
//! waking the execution's task; only a call still pending after its first poll is handed to
//! the execution, which drives it to completion. That saves a thread wake-up per call, the
//! largest cost of a round trip on a small machine.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::panic::AssertUnwindSafe;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use code_mode::driver::{BindingFuture, HostBridge, LogBuffer};
use code_mode::{DriverError, GuestError, LogLevel};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use crate::protocol::{self, Incoming};
use crate::runtime::V8Runtime;

/// What an execution receives.
pub(crate) enum RunEvent {
    /// A line of this run: its end (console lines go to the [`RunHost`], tool calls start
    /// there and come as [`RunEvent::Call`] when still pending).
    Line(Incoming),
    /// A tool call still pending after its first poll: the execution drives it and replies.
    Call { call: u64, future: BindingFuture },
    /// The sidecar is gone; the reason is for the user.
    Gone(String),
    /// Another execution on this sidecar passed its deadline without an answer: the
    /// sidecar's main thread is held (a stopped or broken process) and it may be killed
    /// soon. An execution that has not started can move elsewhere.
    Wedged,
}

/// The host side of one run, shared with the reader thread: it starts the run's tool calls
/// and keeps its console lines (both on the reader thread, so console and tool events reach
/// the application in the order the program produced them).
pub(crate) struct RunHost {
    /// The context's bridge (bindings and the call budget).
    pub bridge: Arc<HostBridge>,
    /// The runtime of the execution, entered while a call starts, so tools may use Tokio.
    pub handle: tokio::runtime::Handle,
    /// The context the replies go to.
    pub ctx: u64,
    /// The run's console lines.
    pub logs: Mutex<LogBuffer>,
    /// Set by its first console line or tool call: from then on the run has visibly
    /// started and cannot be moved to another sidecar.
    pub touched: AtomicBool,
}

impl RunHost {
    fn log(&self, level: &str, msg: String) {
        self.touched.store(true, Ordering::SeqCst);
        let mut logs = self.logs.lock().unwrap_or_else(|p| p.into_inner());
        logs.push(LogLevel::from_method(level).unwrap_or(LogLevel::Log), msg);
    }

    /// The console lines kept so far.
    pub(crate) fn take_logs(&self) -> Vec<code_mode::LogEntry> {
        self.logs.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    /// Starts call `name(args)` and polls it once: its result, or the future still pending.
    fn start(&self, name: &str, args: Value) -> Result<Result<Value, GuestError>, BindingFuture> {
        self.touched.store(true, Ordering::SeqCst);
        let _runtime = self.handle.enter();
        let mut future = self.bridge.call(name, args);
        match future
            .as_mut()
            .poll(&mut Context::from_waker(Waker::noop()))
        {
            Poll::Ready(result) => Ok(result),
            Poll::Pending => Err(future),
        }
    }
}

/// A registered run: where its events go and who starts its tool calls.
struct Route {
    events: mpsc::UnboundedSender<RunEvent>,
    host: Arc<RunHost>,
}

/// Routes lines to executions; shared with the reader thread.
#[derive(Default)]
struct Routes {
    runs: Mutex<HashMap<u64, Route>>,
    /// Bytes written directly since the sidecar's last output line.
    unacked: AtomicUsize,
    alive: AtomicBool,
    /// Isolates the sidecar has ready for new contexts, and in the making (its last report).
    ready: AtomicUsize,
    making: AtomicUsize,
    /// Isolates made since the sidecar started (its last report).
    made: AtomicU64,
    /// Why the process ended, once it has.
    gone: Mutex<Option<String>>,
    /// An execution passed its deadline without an answer and no line came since.
    wedged: AtomicBool,
    /// The sidecar said it is retiring (it ends itself once its runs are done).
    retiring: AtomicBool,
    /// Lines read so far (a line proves the main thread was free when it was written).
    lines: AtomicU64,
}

impl Routes {
    fn runs(&self) -> MutexGuard<'_, HashMap<u64, Route>> {
        self.runs.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Bytes written straight from the caller since the sidecar last printed a line. Below this,
/// a pipe (64 KiB on Linux) cannot be full, so a direct write cannot block; above it (the
/// sidecar may be stopped), lines go through the writer thread, which may block harmlessly.
const DIRECT_BUDGET: usize = 16 * 1024;

/// The sidecar's input: direct writes while the pipe surely has room, else the writer thread.
struct Input {
    /// The pipe, shared by direct writes and the writer thread.
    stdin: Arc<Mutex<ChildStdin>>,
    writer: mpsc::UnboundedSender<String>,
    routes: Arc<Routes>,
}

impl Input {
    /// Sends one line (ending in `\n`). Small lines are written at once from the caller
    /// (saving a thread wake-up per tool-call reply) while the pipe surely has room; the
    /// rest go through the writer thread. Lines of one context never overtake each other:
    /// each is sent only after the sidecar answered the one before.
    fn send(&self, line: String) {
        let unacked = self.routes.unacked.load(Ordering::Relaxed);
        if line.len() <= 4096
            && unacked + line.len() <= DIRECT_BUDGET
            && let Ok(mut stdin) = self.stdin.try_lock()
        {
            self.routes.unacked.fetch_add(line.len(), Ordering::Relaxed);
            if stdin
                .write_all(line.as_bytes())
                .and_then(|()| stdin.flush())
                .is_err()
            {
                drop(stdin);
                mark_gone(
                    &self.routes,
                    "the V8 sidecar stopped reading its input".into(),
                );
            }
            return;
        }
        let _ = self.writer.send(line);
    }
}

/// A running sidecar process.
pub(crate) struct Sidecar {
    pid: u32,
    input: Arc<Input>,
    routes: Arc<Routes>,
    child: Mutex<Child>,
    /// Live contexts placed on this sidecar.
    contexts: AtomicUsize,
}

/// How suitable a sidecar is for a new context; the pool takes the greatest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Preference {
    /// Answering: not known to be held by a built-in past its deadline.
    answering: bool,
    /// Fewer executions in flight first: programs of one sidecar share its process (its
    /// isolate threads, its main thread's compiling and messaging).
    fewer_runs: std::cmp::Reverse<usize>,
    /// No live context and no isolate in the making: the main thread is free.
    idle: bool,
    /// Isolates ready, so the first execution does not create one.
    ready: usize,
    /// Fewer live contexts first: contexts of one sidecar share its process.
    fewer_contexts: std::cmp::Reverse<usize>,
}

impl Preference {
    /// False while the sidecar is known to be held past an execution's deadline.
    pub(crate) fn answering(&self) -> bool {
        self.answering
    }
}

impl std::fmt::Debug for Sidecar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sidecar")
            .field("pid", &self.pid)
            .field("alive", &self.is_alive())
            .finish()
    }
}

const STARTUP: Duration = Duration::from_secs(15);

impl Sidecar {
    /// Starts a sidecar and waits for its `ready` line.
    pub(crate) async fn spawn(
        runtime: &V8Runtime,
        contexts_per_isolate: u32,
    ) -> Result<Arc<Self>, DriverError> {
        let fail = |m: String| DriverError::new(crate::DRIVER_NAME, m);
        let script = runtime.sidecar_script().map_err(|e| fail(e.to_string()))?;
        let mut child = Command::new(runtime.node())
            .arg("--no-node-snapshot")
            .arg(&script)
            .arg(format!("--contexts-per-isolate={contexts_per_isolate}"))
            .current_dir(runtime.dir())
            // The sidecar needs nothing from the host environment; it gets nothing.
            .env_clear()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| fail(format!("cannot start {}: {e}", runtime.node().display())))?;
        let pid = child.id();
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            let _ = child.kill();
            return Err(fail("the sidecar's pipes could not be opened".into()));
        };
        let routes = Arc::new(Routes::default());
        routes.alive.store(true, Ordering::SeqCst);
        let (ready_tx, ready_rx) = oneshot::channel();
        let stderr_tail = Arc::new(Mutex::new(String::new()));
        let (writer, rx) = mpsc::unbounded_channel();
        let stdin = Arc::new(Mutex::new(stdin));
        let input = Arc::new(Input {
            stdin: stdin.clone(),
            writer,
            routes: routes.clone(),
        });
        let started = spawn_stderr(stderr, stderr_tail.clone())
            .and_then(|()| spawn_writer(stdin, rx, routes.clone()))
            .and_then(|()| spawn_reader(stdout, input.clone(), ready_tx, stderr_tail, pid));
        if let Err(e) = started {
            let _ = child.kill();
            let _ = child.wait();
            return Err(e);
        }
        let sidecar = Arc::new(Self {
            pid,
            input,
            routes,
            child: Mutex::new(child),
            contexts: AtomicUsize::new(0),
        });
        match tokio::time::timeout(STARTUP, ready_rx).await {
            Ok(Ok(Ok(_node))) => Ok(sidecar),
            Ok(Ok(Err(why))) => Err(fail(why)),
            Ok(Err(_)) => Err(fail("the sidecar exited before it was ready".into())),
            Err(_) => {
                sidecar.kill("it did not start within 15 s");
                Err(fail("the sidecar did not start within 15 s".into()))
            }
        }
    }

    /// The process id.
    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    /// True until the process ends or is killed.
    pub(crate) fn is_alive(&self) -> bool {
        self.routes.alive.load(Ordering::SeqCst)
    }

    /// Why the process ended, if it has.
    pub(crate) fn gone_reason(&self) -> Option<String> {
        self.routes
            .gone
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Whether the sidecar said it is retiring: it takes no new context and ends itself once
    /// its runs in flight are done.
    pub(crate) fn is_retiring(&self) -> bool {
        self.routes.retiring.load(Ordering::SeqCst)
    }

    /// How suitable this sidecar is for a new context now.
    pub(crate) fn preference(&self) -> Preference {
        let contexts = self.contexts.load(Ordering::Relaxed);
        let making = self.routes.making.load(Ordering::Relaxed);
        Preference {
            answering: !self.routes.wedged.load(Ordering::SeqCst)
                && !self.routes.retiring.load(Ordering::SeqCst),
            fewer_runs: std::cmp::Reverse(self.routes.runs().len()),
            idle: contexts == 0 && making == 0,
            ready: self.routes.ready.load(Ordering::Relaxed),
            fewer_contexts: std::cmp::Reverse(contexts),
        }
    }

    /// Isolates this sidecar made since it started (its last report).
    pub(crate) fn isolates_made(&self) -> u64 {
        self.routes.made.load(Ordering::Relaxed)
    }

    /// Counts a context placed here (until [`Self::context_closed`]).
    pub(crate) fn context_opened(&self) {
        self.contexts.fetch_add(1, Ordering::Relaxed);
        // Until the sidecar reports again, assume the new context takes a ready isolate.
        let _ = self
            .routes
            .ready
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |r| r.checked_sub(1));
    }

    /// Uncounts a context.
    pub(crate) fn context_closed(&self) {
        let _ = self
            .contexts
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |c| c.checked_sub(1));
    }

    /// Sends one line (ending in `\n`); see [`Input::send`].
    pub(crate) fn send(&self, line: String) {
        self.input.send(line);
    }

    /// Registers run `run`, whose calls and console lines `host` takes; its other events
    /// arrive on the returned receiver.
    pub(crate) fn register(
        &self,
        run: u64,
        host: Arc<RunHost>,
    ) -> mpsc::UnboundedReceiver<RunEvent> {
        let (events, rx) = mpsc::unbounded_channel();
        if let Some(why) = self.gone_reason() {
            let _ = events.send(RunEvent::Gone(why));
        } else {
            self.routes.runs().insert(run, Route { events, host });
        }
        rx
    }

    /// Records that an execution here passed its deadline without an answer: new contexts
    /// go elsewhere while no line comes, and the runs waiting here hear [`RunEvent::Wedged`].
    /// Returns the line count to compare with later ([`Self::lines`]).
    pub(crate) fn mark_wedged(&self) -> u64 {
        let seen = self.routes.lines.load(Ordering::SeqCst);
        self.routes.wedged.store(true, Ordering::SeqCst);
        for route in self.routes.runs().values() {
            let _ = route.events.send(RunEvent::Wedged);
        }
        self.send(protocol::ping_line(seen));
        seen
    }

    /// Lines read from the sidecar so far.
    pub(crate) fn lines(&self) -> u64 {
        self.routes.lines.load(Ordering::SeqCst)
    }

    /// Forgets run `run`.
    pub(crate) fn unregister(&self, run: u64) {
        self.routes.runs().remove(&run);
    }

    /// Kills the process (SIGKILL by PID): every execution it holds ends with `why`.
    pub(crate) fn kill(&self, why: &str) {
        let reason = format!("the V8 sidecar (pid {}) was killed: {why}", self.pid);
        mark_gone(&self.routes, reason);
        let mut child = self.child.lock().unwrap_or_else(|p| p.into_inner());
        let _ = child.kill();
        let _ = child.try_wait();
    }
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        let child = self.child.get_mut().unwrap_or_else(|p| p.into_inner());
        let _ = child.kill();
        let _ = child.wait();
    }
}

fn mark_gone(routes: &Routes, reason: String) {
    routes.alive.store(false, Ordering::SeqCst);
    {
        let mut gone = routes.gone.lock().unwrap_or_else(|p| p.into_inner());
        if gone.is_none() {
            *gone = Some(reason.clone());
        }
    }
    for (_, route) in routes.runs().drain() {
        let _ = route.events.send(RunEvent::Gone(reason.clone()));
    }
}

fn thread(name: &str, f: impl FnOnce() + Send + 'static) -> Result<(), DriverError> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(f)
        .map(|_| ())
        .map_err(|e| {
            DriverError::new(
                crate::DRIVER_NAME,
                format!("cannot start a sidecar thread: {e}"),
            )
        })
}

fn spawn_reader(
    stdout: std::process::ChildStdout,
    input: Arc<Input>,
    ready: oneshot::Sender<Result<String, String>>,
    stderr_tail: Arc<Mutex<String>>,
    pid: u32,
) -> Result<(), DriverError> {
    thread("code-mode-v8-reader", move || {
        let routes = input.routes.clone();
        let mut ready = Some(ready);
        let mut reader = BufReader::with_capacity(64 * 1024, stdout);
        let mut line = String::new();
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            // The sidecar is alive and reading: direct writes may go on.
            routes.unacked.store(0, Ordering::Relaxed);
            routes.lines.fetch_add(1, Ordering::SeqCst);
            routes.wedged.store(false, Ordering::SeqCst);
            let Some(msg) = Incoming::decode(line.trim_end()) else {
                continue;
            };
            if let Incoming::Ready { node } = &msg {
                if let Some(tx) = ready.take() {
                    let _ = tx.send(Ok(node.clone()));
                }
                continue;
            }
            match msg {
                Incoming::Call {
                    run,
                    call,
                    name,
                    args,
                } => {
                    start_call(&input, run, call, &name, args);
                    continue;
                }
                Incoming::Retiring => {
                    routes.retiring.store(true, Ordering::SeqCst);
                    continue;
                }
                Incoming::Spares {
                    ready,
                    making,
                    made,
                } => {
                    routes.ready.store(ready, Ordering::Relaxed);
                    routes.making.store(making, Ordering::Relaxed);
                    routes.made.store(made, Ordering::Relaxed);
                    continue;
                }
                Incoming::Log { run, level, msg } => {
                    let host = routes.runs().get(&run).map(|r| r.host.clone());
                    if let Some(host) = host {
                        host.log(&level, msg);
                    }
                    continue;
                }
                _ => {}
            }
            let Some(run) = msg.run() else { continue };
            let done = matches!(msg, Incoming::Done { .. } | Incoming::Refused { .. });
            if matches!(msg, Incoming::Refused { .. }) {
                routes.retiring.store(true, Ordering::SeqCst);
            }
            let mut runs = routes.runs();
            if let Some(route) = runs.get(&run) {
                let _ = route.events.send(RunEvent::Line(msg));
            }
            if done {
                runs.remove(&run);
            }
        }
        // EOF: the process ended (or closed its output). Give stderr a moment to arrive.
        std::thread::sleep(Duration::from_millis(20));
        let tail = stderr_tail.lock().map(|t| t.clone()).unwrap_or_default();
        let reason = if tail.trim().is_empty() {
            format!("the V8 sidecar (pid {pid}) exited unexpectedly")
        } else {
            format!(
                "the V8 sidecar (pid {pid}) exited unexpectedly: {}",
                tail.trim()
            )
        };
        if let Some(tx) = ready.take() {
            let _ = tx.send(Err(reason.clone()));
        }
        mark_gone(&routes, reason);
    })
}

/// Starts call `call` of run `run` on this (the reader) thread: answers it at once if the
/// tool finished in its first poll, else hands it to the execution.
fn start_call(input: &Input, run: u64, call: u64, name: &str, args: Value) {
    let route = input
        .routes
        .runs()
        .get(&run)
        .map(|r| (r.events.clone(), r.host.clone()));
    let Some((events, host)) = route else { return };
    // A tool whose constructor panics must not take the reader thread down.
    let started = std::panic::catch_unwind(AssertUnwindSafe(|| host.start(name, args)))
        .unwrap_or_else(|_| {
            Ok(Err(GuestError::error(
                "The tool failed unexpectedly (its handler panicked)",
            )))
        });
    match started {
        Ok(result) => {
            let outcome = result.map_err(|e| (e.name, e.message));
            input.send(protocol::reply_line(host.ctx, call, outcome));
        }
        Err(future) => {
            let _ = events.send(RunEvent::Call { call, future });
        }
    }
}

fn spawn_writer(
    stdin: Arc<Mutex<ChildStdin>>,
    mut rx: mpsc::UnboundedReceiver<String>,
    routes: Arc<Routes>,
) -> Result<(), DriverError> {
    thread("code-mode-v8-writer", move || {
        let mut batch = String::new();
        while let Some(first) = rx.blocking_recv() {
            // Batch whatever else is already queued into one write.
            batch.clear();
            batch.push_str(&first);
            while let Ok(more) = rx.try_recv() {
                batch.push_str(&more);
                if batch.len() > 1 << 20 {
                    break;
                }
            }
            let mut stdin = stdin.lock().unwrap_or_else(|p| p.into_inner());
            if stdin
                .write_all(batch.as_bytes())
                .and_then(|()| stdin.flush())
                .is_err()
            {
                mark_gone(&routes, "the V8 sidecar stopped reading its input".into());
                break;
            }
        }
    })
}

fn spawn_stderr(
    stderr: std::process::ChildStderr,
    tail: Arc<Mutex<String>>,
) -> Result<(), DriverError> {
    thread("code-mode-v8-stderr", move || {
        let mut reader = BufReader::new(stderr);
        let mut line = String::new();
        while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
            let mut t = tail.lock().unwrap_or_else(|p| p.into_inner());
            t.push_str(&line);
            if t.len() > 2000 {
                let cut = t.len() - 1000;
                let cut = (cut..t.len()).find(|i| t.is_char_boundary(*i)).unwrap_or(0);
                t.drain(..cut);
            }
            line.clear();
        }
    })
}
