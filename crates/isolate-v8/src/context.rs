//! A context: one isolate inside one sidecar, created by its first execution.
//!
//! The execution loop lives here: it sends the program, drives the guest's tool calls that
//! did not finish when the reader thread started them (concurrently, answering each as it
//! completes), collects console lines, and watches the deadline from this side too.
//!
//! Guest code runs on its isolate's own thread inside the sidecar, and the sidecar disposes
//! the isolate at the deadline. This side keeps a later deadline of its own for a sidecar
//! whose main thread stops answering (a stopped or broken process): [`ANSWER_GRACE`] after
//! the deadline the caller gets `TimeoutError`, the sidecar is marked wedged (new contexts go
//! elsewhere), executions queued there that have not started move to another sidecar, and
//! the sidecar is killed only if it still has not answered a ping when the driver's `grace`
//! has passed.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use code_mode::driver::{Engine, HostBridge, LogBuffer};
use code_mode::{ContextConfig, ErrorKind, ExecutionError, ExecutionResult, Limits};
use futures::StreamExt;
use futures::stream::FuturesUnordered;

use crate::pool::Pool;
use crate::protocol::{self, CreateSpec, Incoming};
use crate::sidecar::{RunEvent, RunHost, Sidecar};

static NEXT_RUN: AtomicU64 = AtomicU64::new(1);

/// How long after its deadline an execution waits for the sidecar's own answer before it
/// answers `TimeoutError` itself (as the native QuickJS driver's hard deadline does).
pub(crate) const ANSWER_GRACE: Duration = Duration::from_millis(100);

/// How many times an execution that has not started may move to another sidecar.
const MOVES: u32 = 2;

pub(crate) struct V8Context {
    id: u64,
    pool: Arc<Pool>,
    /// Where the isolate lives (or will: a context moves while it has never run).
    sidecar: Mutex<Arc<Sidecar>>,
    bridge: Arc<HostBridge>,
    config: ContextConfig,
    grace: Duration,
    /// Whether the isolate exists on the sidecar (the first run creates it).
    created: bool,
}

impl V8Context {
    pub(crate) fn new(
        id: u64,
        pool: Arc<Pool>,
        sidecar: Arc<Sidecar>,
        config: ContextConfig,
        grace: Duration,
    ) -> Self {
        sidecar.context_opened();
        Self {
            id,
            pool,
            bridge: Arc::new(HostBridge::new(config.bindings.clone(), &config.limits)),
            sidecar: Mutex::new(sidecar),
            config,
            grace,
            created: false,
        }
    }

    fn limits(&self) -> &Limits {
        &self.config.limits
    }

    fn sidecar(&self) -> Arc<Sidecar> {
        self.sidecar
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Moves this (never run) context from `from` to another sidecar.
    async fn relocate(&self, from: &Arc<Sidecar>) -> Option<Arc<Sidecar>> {
        let to = self.pool.place(Some(from)).await.ok()?;
        if Arc::ptr_eq(&to, from) {
            return None;
        }
        // The old sidecar may have read the run and made the isolate: it disposes it once
        // its main thread is free.
        from.send(protocol::dispose_line(self.id));
        from.context_closed();
        to.context_opened();
        *self.sidecar.lock().unwrap_or_else(|p| p.into_inner()) = to.clone();
        Some(to)
    }
}

/// Whether a run may move to another sidecar: it creates its context, has moved fewer than
/// [`MOVES`] times, and nothing of it (console line, tool call) has come back yet, so no
/// tool ran.
fn movable(creates_context: bool, moves: u32, host: &RunHost) -> bool {
    creates_context && moves < MOVES && !host.touched.load(Ordering::SeqCst)
}

/// isolated-vm's smallest memory limit is 8 MiB.
pub(crate) fn memory_mb(limits: &Limits) -> u64 {
    limits.memory_bytes().div_ceil(1024 * 1024).max(8)
}

/// The engine-specific part of a V8 context; [`code_mode::driver::EngineContext`] does the
/// rest (one execution at a time, dispose, terminal failures, the nesting check).
#[async_trait]
impl Engine for V8Context {
    async fn run(
        mut self: Box<Self>,
        code: &str,
        time: &code_mode::driver::Budget,
    ) -> (Result<Box<Self>, Option<String>>, ExecutionResult) {
        let mut sidecar = self.sidecar();
        // A context that never ran is not tied to a dead or wedged sidecar.
        if !self.created
            && (!sidecar.is_alive() || !sidecar.preference().answering())
            && let Some(to) = self.relocate(&sidecar).await
        {
            sidecar = to;
        }
        if let Some(why) = sidecar.gone_reason() {
            let why = format!("{why}; create a new context");
            let error = ExecutionError::new(ErrorKind::Disposed, why.clone());
            return (Err(Some(why)), ExecutionResult::err(error, Vec::new()));
        }
        let limits = *self.limits();
        self.bridge.begin_execution();
        let host = Arc::new(RunHost {
            bridge: self.bridge.clone(),
            handle: tokio::runtime::Handle::current(),
            ctx: self.id,
            logs: Mutex::new(LogBuffer::new(&limits, self.config.console.clone())),
            touched: AtomicBool::new(false),
        });
        let creating = !self.created;
        self.created = true;
        let bridge = self.bridge.clone();
        let spec = creating.then(|| CreateSpec {
            memory_mb: memory_mb(&limits),
            setup: code_mode::driver::PreludeSetup::new(bridge.bindings(), &limits),
        });
        // Set when the isolate is lost with its sidecar: the context cannot run again.
        let mut lost = false;
        // The budget runs on the context's clock, which stops while an approval is pending;
        // the sidecar is told when it stops and starts again.
        let mut held = self.config.clock.watch();
        let answer = time.spent_plus(ANSWER_GRACE);
        tokio::pin!(answer);
        let mut moves = 0;
        let mut calls = FuturesUnordered::new();
        'attempt: loop {
            let run = NEXT_RUN.fetch_add(1, Ordering::Relaxed);
            let mut events = sidecar.register(run, host.clone());
            let left = time.remaining();
            let timeout_ms = u64::try_from(left.as_millis()).unwrap_or(u64::MAX).max(1);
            sidecar.send(protocol::run_line(
                run,
                self.id,
                timeout_ms,
                limits.max_result_bytes(),
                code,
                spec.as_ref(),
            ));
            let outcome = loop {
                tokio::select! {
                    event = events.recv() => match event {
                        Some(RunEvent::Call { call, future }) => {
                            calls.push(async move { (call, future.await) });
                        }
                        Some(RunEvent::Line(Incoming::Done { value, error, .. })) => {
                            break match error {
                                Some(failure) => {
                                    // V8 counts a U+2028/U+2029 inside a literal as a line.
                                    let mut e = failure.into_error(&limits, "V8 driver");
                                    e.line = e.line.map(|l| code_mode::driver::lf_line(code, l));
                                    Err(e)
                                }
                                None => Ok(value),
                            };
                        }
                        Some(RunEvent::Line(Incoming::Refused { .. })) => {
                            // The sidecar is retiring and started nothing of this run.
                            if moves < MOVES
                                && let Some(to) = self.relocate(&sidecar).await
                            {
                                sidecar = to;
                                moves += 1;
                                continue 'attempt;
                            }
                            lost = true;
                            break Err(ExecutionError::internal(
                                "V8 driver: no sidecar could take the execution (the one it was placed on is retiring) — run the code again",
                            ));
                        }
                        Some(RunEvent::Line(_)) => {}
                        Some(RunEvent::Wedged) => {
                            // Queued behind another execution's runaway built-in: move if
                            // nothing of this one has run yet.
                            if movable(spec.is_some(), moves, &host)
                                && let Some(to) = self.relocate(&sidecar).await
                            {
                                sidecar.unregister(run);
                                sidecar = to;
                                moves += 1;
                                continue 'attempt;
                            }
                        }
                        gone @ (Some(RunEvent::Gone(_)) | None) => {
                            let why = match gone {
                                Some(RunEvent::Gone(why)) => why,
                                _ => why_or_default(&sidecar),
                            };
                            if movable(spec.is_some(), moves, &host)
                                && let Some(to) = self.relocate(&sidecar).await
                            {
                                sidecar = to;
                                moves += 1;
                                continue 'attempt;
                            }
                            lost = true;
                            break Err(ExecutionError::internal(format!(
                                "V8 driver: {why}; the execution was lost and the sidecar will be replaced — run the code again"
                            )));
                        }
                    },
                    Some((call, result)) = calls.next(), if !calls.is_empty() => {
                        let outcome = result.map_err(|e| (e.name, e.message));
                        sidecar.send(protocol::reply_line(self.id, call, outcome));
                    }
                    Ok(()) = held.changed() => {
                        let now_held = *held.borrow_and_update();
                        sidecar.send(if now_held {
                            protocol::hold_line(self.id, run)
                        } else {
                            let left = u64::try_from(time.remaining().as_millis()).unwrap_or(u64::MAX);
                            protocol::release_line(self.id, run, left)
                        });
                    }
                    () = &mut answer => {
                        // The sidecar's own timer should have answered: a built-in holds its
                        // main thread. Answer now; kill it later if it stays silent.
                        self.watch(&sidecar);
                        sidecar.send(protocol::dispose_line(self.id));
                        break Err(ExecutionError::timeout(limits.timeout()));
                    }
                }
            };
            sidecar.unregister(run);
            let result = ExecutionResult {
                outcome,
                logs: host.take_logs(),
            };
            let back = if lost { Err(None) } else { Ok(self) };
            return (back, result);
        }
    }
}

fn why_or_default(sidecar: &Sidecar) -> String {
    sidecar
        .gone_reason()
        .unwrap_or_else(|| format!("the V8 sidecar (pid {}) stopped", sidecar.pid()))
}

impl V8Context {
    /// Marks `sidecar` wedged and kills it if no line (not even the answer to a ping) comes
    /// before the driver's grace has passed.
    fn watch(&self, sidecar: &Arc<Sidecar>) {
        let seen = sidecar.mark_wedged();
        let sidecar = sidecar.clone();
        let wait = self.grace.saturating_sub(ANSWER_GRACE);
        let grace_ms = self.grace.as_millis();
        tokio::spawn(async move {
            tokio::time::sleep(wait).await;
            if sidecar.is_alive() && sidecar.lines() == seen {
                sidecar.kill(&format!(
                    "it did not answer within {grace_ms} ms of an execution's deadline"
                ));
            }
        });
    }
}

/// Freeing the engine (dispose, a terminal failure, an execution dropped half-way) drops it:
/// the sidecar disposes the isolate.
impl Drop for V8Context {
    fn drop(&mut self) {
        let sidecar = self.sidecar();
        sidecar.send(protocol::dispose_line(self.id));
        sidecar.context_closed();
    }
}
