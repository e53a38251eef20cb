//! A context: one isolate inside one sidecar, created by its first execution.
//!
//! The execution loop lives here: it sends the program, drives the guest's tool calls that
//! did not finish when the reader thread started them (concurrently, answering each as it
//! completes), collects console lines, and keeps a hard deadline above the sidecar's own,
//! killing a sidecar that stops answering.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use code_mode::{
    ContextConfig, ErrorKind, ExecutionError, ExecutionResult, HostBridge, IsolateContext, Limits,
    LogBuffer,
};
use futures::StreamExt;
use futures::stream::FuturesUnordered;

use crate::protocol::{self, CreateSpec, GuestFailure, Incoming};
use crate::sidecar::{RunEvent, RunHost, Sidecar};

static NEXT_RUN: AtomicU64 = AtomicU64::new(1);

pub(crate) struct V8Context {
    id: u64,
    sidecar: Arc<Sidecar>,
    bridge: Arc<HostBridge>,
    config: ContextConfig,
    grace: Duration,
    /// Held for the whole execution: executions on one context run one at a time.
    state: tokio::sync::Mutex<State>,
    disposed: AtomicBool,
}

#[derive(Default)]
struct State {
    created: bool,
    /// Set once a failure ended the isolate.
    dead: bool,
}

impl V8Context {
    pub(crate) fn new(
        id: u64,
        sidecar: Arc<Sidecar>,
        config: ContextConfig,
        grace: Duration,
    ) -> Self {
        sidecar.context_opened();
        Self {
            id,
            bridge: Arc::new(HostBridge::new(config.bindings.clone(), &config.limits)),
            sidecar,
            config,
            grace,
            state: tokio::sync::Mutex::default(),
            disposed: AtomicBool::new(false),
        }
    }

    fn limits(&self) -> &Limits {
        &self.config.limits
    }
}

/// isolated-vm's smallest memory limit is 8 MiB.
pub(crate) fn memory_mb(limits: &Limits) -> u64 {
    limits.memory_bytes().div_ceil(1024 * 1024).max(8)
}

#[async_trait]
impl IsolateContext for V8Context {
    async fn execute(&self, code: &str) -> ExecutionResult {
        let mut state = self.state.lock().await;
        if self.disposed.load(Ordering::SeqCst) || state.dead {
            return ExecutionResult::err(ExecutionError::disposed(), Vec::new());
        }
        if let Some(why) = self.sidecar.gone_reason() {
            state.dead = true;
            return ExecutionResult::err(
                ExecutionError::new(ErrorKind::Disposed, format!("{why}; create a new context")),
                Vec::new(),
            );
        }
        // V8 parses on the sidecar's isolate thread; refuse absurd nesting here, as the
        // other drivers do.
        if let Err(e) = code_mode::check_nesting(code) {
            return ExecutionResult::err(e, Vec::new());
        }
        let limits = *self.limits();
        self.bridge.begin_execution();
        let run = NEXT_RUN.fetch_add(1, Ordering::Relaxed);
        let host = Arc::new(RunHost {
            bridge: self.bridge.clone(),
            handle: tokio::runtime::Handle::current(),
            ctx: self.id,
            logs: Mutex::new(LogBuffer::new(&limits, self.config.console.clone())),
        });
        let mut events = self.sidecar.register(run, host.clone());
        let names: Vec<&str> = self.bridge.bindings().iter().map(|b| b.name()).collect();
        let spec = (!state.created).then(|| CreateSpec {
            memory_mb: memory_mb(&limits),
            bindings: names,
            // One past the caps, so the host's buffer sees the overflow and adds its marker.
            max_logs: u64::from(limits.max_log_entries()) + 1,
            max_log_bytes: limits.max_log_bytes() + 1,
            max_calls: limits.max_tool_calls(),
        });
        state.created = true;
        let timeout_ms = u64::try_from(limits.timeout().as_millis()).unwrap_or(u64::MAX);
        self.sidecar.send(protocol::run_line(
            run,
            self.id,
            timeout_ms,
            limits.max_result_bytes(),
            code,
            spec.as_ref(),
        ));

        let hard_deadline = tokio::time::Instant::now() + limits.timeout() + self.grace;
        let mut calls = FuturesUnordered::new();
        let hard_stop = tokio::time::sleep_until(hard_deadline);
        tokio::pin!(hard_stop);
        let outcome = loop {
            tokio::select! {
                event = events.recv() => match event {
                    Some(RunEvent::Call { call, future }) => {
                        calls.push(async move { (call, future.await) });
                    }
                    Some(RunEvent::Line(Incoming::Done { value, error, .. })) => {
                        break match error {
                            Some(failure) => Err(self.classify(failure, &limits, &mut state)),
                            None => Ok(value),
                        };
                    }
                    Some(RunEvent::Line(_)) => {}
                    gone @ (Some(RunEvent::Gone(_)) | None) => {
                        let why = match gone {
                            Some(RunEvent::Gone(why)) => why,
                            _ => why_or_default(&self.sidecar),
                        };
                        state.dead = true;
                        break Err(ExecutionError::new(
                            ErrorKind::Driver("v8".into()),
                            format!("{why}; the execution was lost and the sidecar will be replaced — run the code again"),
                        ));
                    }
                },
                Some((call, result)) = calls.next(), if !calls.is_empty() => {
                    let outcome = result.map_err(|e| (e.name, e.message));
                    self.sidecar.send(protocol::reply_line(self.id, call, outcome));
                }
                () = &mut hard_stop => {
                    // The sidecar's own timer should have fired long ago: it is wedged.
                    self.sidecar.kill(&format!(
                        "it did not answer within {} ms of the execution's deadline",
                        self.grace.as_millis()
                    ));
                    state.dead = true;
                    break Err(ExecutionError::new(
                        ErrorKind::Timeout,
                        format!(
                            "Execution exceeded the timeout of {} ms (the V8 sidecar stopped answering and was killed)",
                            limits.timeout().as_millis()
                        ),
                    ));
                }
            }
        };
        self.sidecar.unregister(run);
        ExecutionResult {
            outcome,
            logs: host.take_logs(),
        }
    }

    async fn dispose(&self) {
        let _guard = self.state.lock().await;
        self.release();
    }
}

fn why_or_default(sidecar: &Sidecar) -> String {
    sidecar
        .gone_reason()
        .unwrap_or_else(|| format!("the V8 sidecar (pid {}) stopped", sidecar.pid()))
}

impl V8Context {
    fn release(&self) {
        if !self.disposed.swap(true, Ordering::SeqCst) {
            self.sidecar.send(protocol::dispose_line(self.id));
            self.sidecar.context_closed();
        }
    }

    fn classify(&self, f: GuestFailure, limits: &Limits, state: &mut State) -> ExecutionError {
        let line = (f.line > 0).then_some(f.line);
        match f.kind.as_str() {
            "timeout" => {
                state.dead = true;
                ExecutionError::timeout(limits.timeout())
            }
            "memory" => {
                state.dead = true;
                ExecutionError::memory_limit(limits.memory_bytes())
            }
            "stack" => {
                state.dead = true;
                ExecutionError::stack_overflow(limits.stack_bytes())
            }
            "deadlock" => ExecutionError::deadlock(),
            "disposed" => {
                state.dead = true;
                ExecutionError::new(ErrorKind::Disposed, f.message)
            }
            "too_large" => ExecutionError::new(ErrorKind::ResultTooLarge, f.message),
            "result" => ExecutionError::new(ErrorKind::Result, f.message),
            "syntax" => ExecutionError::new(ErrorKind::Syntax, f.message).with_line(line),
            "internal" => ExecutionError::new(ErrorKind::Driver("v8".into()), f.message),
            _ => ExecutionError::new(ErrorKind::from_name(&f.name), f.message).with_line(line),
        }
    }
}

impl Drop for V8Context {
    fn drop(&mut self) {
        self.release();
    }
}
