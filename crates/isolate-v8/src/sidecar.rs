//! One sidecar process: Node 24 running `sidecar.js`, spoken to over stdio.
//!
//! Reading and writing happen on two plain threads with blocking pipes, so the sidecar does
//! not depend on whichever Tokio runtime created it (a driver may outlive a runtime, as in a
//! test binary). Lines are routed to executions by run id; when the process ends, every
//! execution it held receives [`RunEvent::Gone`] with the reason.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use code_mode::DriverError;
use tokio::sync::{mpsc, oneshot};

use crate::protocol::Incoming;
use crate::runtime::V8Runtime;

/// What an execution receives.
#[derive(Debug)]
pub(crate) enum RunEvent {
    /// A line of this run.
    Line(Incoming),
    /// The sidecar is gone; the reason is for the user.
    Gone(String),
}

/// Routes lines to executions; shared with the reader thread.
#[derive(Default)]
struct Routes {
    runs: Mutex<HashMap<u64, mpsc::UnboundedSender<RunEvent>>>,
    /// Bytes written directly since the sidecar's last output line.
    unacked: std::sync::atomic::AtomicUsize,
    alive: AtomicBool,
    /// Why the process ended, once it has.
    gone: Mutex<Option<String>>,
}

impl Routes {
    fn runs(&self) -> MutexGuard<'_, HashMap<u64, mpsc::UnboundedSender<RunEvent>>> {
        self.runs.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Bytes written straight from the caller since the sidecar last printed a line. Below this,
/// a pipe (64 KiB on Linux) cannot be full, so a direct write cannot block; above it (the
/// sidecar may be stopped), lines go through the writer thread, which may block harmlessly.
const DIRECT_BUDGET: usize = 16 * 1024;

/// A running sidecar process.
pub(crate) struct Sidecar {
    pid: u32,
    /// The pipe, shared by direct writes and the writer thread.
    stdin: Arc<Mutex<ChildStdin>>,
    writer: mpsc::UnboundedSender<String>,
    routes: Arc<Routes>,
    child: Mutex<Child>,
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
    pub(crate) async fn spawn(runtime: &V8Runtime) -> Result<Arc<Self>, DriverError> {
        let fail = |m: String| DriverError::new("v8", m);
        let script = runtime.sidecar_script().map_err(|e| fail(e.to_string()))?;
        let mut child = Command::new(runtime.node())
            .arg("--no-node-snapshot")
            .arg(&script)
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
        spawn_stderr(stderr, stderr_tail.clone())?;
        spawn_reader(stdout, routes.clone(), ready_tx, stderr_tail, pid)?;
        let (writer, rx) = mpsc::unbounded_channel();
        let stdin = Arc::new(Mutex::new(stdin));
        spawn_writer(stdin.clone(), rx, routes.clone())?;
        let sidecar = Arc::new(Self {
            pid,
            stdin,
            writer,
            routes,
            child: Mutex::new(child),
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

    /// Sends one line (ending in `\n`). Small lines are written at once from the caller
    /// (saving a thread wake-up per tool-call reply) while the pipe surely has room; the
    /// rest go through the writer thread. Lines of one context never overtake each other:
    /// each is sent only after the sidecar answered the one before.
    pub(crate) fn send(&self, line: String) {
        let unacked = self.routes.unacked.load(Ordering::Relaxed);
        if line.len() <= 4096 && unacked + line.len() <= DIRECT_BUDGET {
            if let Ok(mut stdin) = self.stdin.try_lock() {
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
        }
        let _ = self.writer.send(line);
    }

    /// Registers run `run`; its lines arrive on the returned receiver.
    pub(crate) fn register(&self, run: u64) -> mpsc::UnboundedReceiver<RunEvent> {
        let (tx, rx) = mpsc::unbounded_channel();
        if let Some(why) = self.gone_reason() {
            let _ = tx.send(RunEvent::Gone(why));
        } else {
            self.routes.runs().insert(run, tx);
        }
        rx
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
    for (_, tx) in routes.runs().drain() {
        let _ = tx.send(RunEvent::Gone(reason.clone()));
    }
}

fn thread(name: &str, f: impl FnOnce() + Send + 'static) -> Result<(), DriverError> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(f)
        .map(|_| ())
        .map_err(|e| DriverError::new("v8", format!("cannot start a sidecar thread: {e}")))
}

fn spawn_reader(
    stdout: std::process::ChildStdout,
    routes: Arc<Routes>,
    ready: oneshot::Sender<Result<String, String>>,
    stderr_tail: Arc<Mutex<String>>,
    pid: u32,
) -> Result<(), DriverError> {
    thread("code-mode-v8-reader", move || {
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
            let Ok(msg) = serde_json::from_str::<Incoming>(line.trim_end()) else {
                continue;
            };
            if let Incoming::Ready { node } = &msg {
                if let Some(tx) = ready.take() {
                    let _ = tx.send(Ok(node.clone()));
                }
                continue;
            }
            let Some(run) = msg.run() else { continue };
            let done = matches!(msg, Incoming::Done { .. });
            let mut runs = routes.runs();
            if let Some(tx) = runs.get(&run) {
                let _ = tx.send(RunEvent::Line(msg));
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
