//! # code-mode-isolate-quickjs
//!
//! The embedded default sandbox of code-mode: QuickJS (quickjs-ng through `rquickjs`) running
//! in-process. Each context owns its own QuickJS runtime, so contexts share no heap, no
//! globals and no limits. The guest gets the ECMAScript built-ins, `console` and the
//! bindings; no `std`/`os` modules, no module loader, no timers, no `process`/`require`/`fetch`.
//!
//! Limits:
//! - **time**: an interrupt handler stops guest code at the deadline, and the host loop that
//!   awaits tool calls stops at the same deadline, so the timeout covers both;
//! - **memory**: QuickJS's allocator limit;
//! - **stack**: QuickJS's stack limit, measured from the thread the code runs on; before
//!   entering the engine the driver makes sure that much native stack is really available
//!   (growing onto a fresh segment with `stacker` when not), so a deep recursion is a
//!   `StackOverflowError` and never a crash, whatever thread the executor runs on.
//!
//! Tool calls are asynchronous without any engine-level asyncify: an `external_*` call
//! records a request and returns a pending promise; the host runs the tool futures
//! concurrently, resolves the promises and drains the job queue.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use code_mode::{ContextConfig, IsolateDriver};
//! use code_mode_isolate_quickjs::QuickJsDriver;
//!
//! let driver = QuickJsDriver::new();
//! let context = driver.create_context(ContextConfig::default()).await.unwrap();
//! let result = context.execute("const x = await Promise.resolve(20); return x + 1;").await;
//! assert_eq!(result.value(), Some(&serde_json::json!(21)));
//! context.dispose().await;
//! # }
//! ```

#![warn(missing_docs)]

mod allocator;
mod convert;
pub use convert::ValueStyle;
mod engine;
mod pool;
mod runner;

use code_mode::driver::EngineContext;
use code_mode::{
    ContextConfig, DriverError, ErrorKind, ExecutionError, ExecutionResult, IsolateContext,
    IsolateDriver, async_trait,
};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::engine::QuickJsEngine;
use crate::pool::Pool;

/// Driver name.
pub const DRIVER_NAME: &str = "quickjs";

/// Blank engines kept ready by default.
pub const DEFAULT_POOL_SIZE: usize = 2;

/// The in-process QuickJS driver.
///
/// It keeps [`DEFAULT_POOL_SIZE`] blank engines (a runtime and realm on which no code ever
/// ran) ready on a background thread, so creating a context does not pay QuickJS's realm
/// creation on the critical path. Every context is still fresh and independent.
#[derive(Debug, Clone)]
pub struct QuickJsDriver {
    pool: Arc<Pool>,
    style: ValueStyle,
}

impl Default for QuickJsDriver {
    fn default() -> Self {
        Self::new()
    }
}

/// Configures a [`QuickJsDriver`].
///
/// ```
/// let driver = code_mode_isolate_quickjs::QuickJsDriver::builder().pool_size(4).build();
/// # let _ = driver;
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct QuickJsDriverBuilder {
    pool_size: usize,
    style: ValueStyle,
}

impl QuickJsDriverBuilder {
    /// Blank engines kept ready (default [`DEFAULT_POOL_SIZE`]; 0: none, every context
    /// creates its engine inline).
    pub fn pool_size(mut self, size: usize) -> Self {
        self.pool_size = size;
        self
    }

    /// How values JSON cannot hold cross out of the sandbox (default
    /// [`ValueStyle::Strict`], the contract every driver of the workspace keeps and the
    /// conformance suite checks). [`ValueStyle::TanStack`] gives them as TanStack's drivers
    /// do, for a drop-in replacement of those (the Node-API addon).
    ///
    /// ```
    /// use code_mode_isolate_quickjs::{QuickJsDriver, ValueStyle};
    /// let driver = QuickJsDriver::builder().value_style(ValueStyle::TanStack).build();
    /// # let _ = driver;
    /// ```
    pub fn value_style(mut self, style: ValueStyle) -> Self {
        self.style = style;
        self
    }

    /// The driver.
    pub fn build(self) -> QuickJsDriver {
        QuickJsDriver {
            style: self.style,
            ..QuickJsDriver::with_pool_size(self.pool_size)
        }
    }
}

impl QuickJsDriver {
    /// Starts configuring a driver.
    pub fn builder() -> QuickJsDriverBuilder {
        QuickJsDriverBuilder {
            pool_size: DEFAULT_POOL_SIZE,
            style: ValueStyle::Strict,
        }
    }

    /// The driver configured from the environment. The in-process driver reads no
    /// variable: this is [`QuickJsDriver::new`], here so that every driver crate is built
    /// the same way.
    pub fn from_env() -> Self {
        Self::new()
    }

    /// Creates the driver with the default pool of blank engines.
    pub fn new() -> Self {
        Self::with_pool_size(DEFAULT_POOL_SIZE)
    }

    /// Creates the driver keeping `size` blank engines ready (0 disables the pool and its
    /// background thread: every context then creates its engine inline).
    ///
    /// ```
    /// let driver = code_mode_isolate_quickjs::QuickJsDriver::with_pool_size(0);
    /// # let _ = driver;
    /// ```
    pub fn with_pool_size(size: usize) -> Self {
        Self {
            pool: Pool::new(size),
            style: ValueStyle::Strict,
        }
    }
}

#[async_trait]
impl IsolateDriver for QuickJsDriver {
    fn name(&self) -> &str {
        DRIVER_NAME
    }

    async fn create_context(
        &self,
        config: ContextConfig,
    ) -> Result<Box<dyn IsolateContext>, DriverError> {
        // Its first execution usually follows at once: have an engine thread running by then.
        runner::expect_job();
        let timing = config.clone();
        let engine = QuickJsEngine::new(config, self.pool.take(), self.style)
            .map_err(|e| DriverError::new(DRIVER_NAME, e))?;
        Ok(Box::new(EngineContext::new(
            Box::new(Pooled {
                engine: Box::new(engine),
                pool: self.pool.clone(),
            }),
            &timing,
        )))
    }
}

/// Time an engine thread gets past the deadline to answer before its engine is given up
/// and the caller told `TimeoutError` (a built-in that ignores QuickJS's interrupt handler).
pub const HARD_DEADLINE_GRACE: std::time::Duration = std::time::Duration::from_millis(100);

/// A context's engine with the pool it is freed through. [`EngineContext`] does the rest of
/// the context (one execution at a time in call order, dispose, terminal failures, the
/// nesting check); this runs each execution on an engine thread (see `runner`), so a
/// built-in that ignores the deadline holds up neither the caller nor other contexts.
struct Pooled {
    engine: Box<QuickJsEngine>,
    pool: Arc<Pool>,
}

#[async_trait]
impl code_mode::driver::Engine for Pooled {
    async fn run(
        self: Box<Self>,
        code: &str,
        time: &code_mode::driver::Budget,
    ) -> (Result<Box<Self>, Option<String>>, ExecutionResult) {
        // The engine thread drives tool calls and timers through the caller's runtime.
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            let error = ExecutionError::internal(
                "the QuickJS driver must be used inside a Tokio runtime with the time driver enabled",
            );
            return (Ok(self), ExecutionResult::err(error, Vec::new()));
        };
        let Pooled { mut engine, pool } = *self;
        let timeout = engine.timeout();
        let budget = engine.budget();
        let time = time.clone();
        let engine_time = time.clone();
        // Dropped armed when this future is (the caller was cancelled): the guest stops at
        // its next interrupt check, even in a loop that never awaits.
        let canceller = engine.canceller();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let watch = runner::Watch::new();
        let job_watch = watch.clone();
        let code = code.to_owned();
        let job_pool = pool.clone();
        let spawned = runner::spawn(move |worker| {
            let mut tx = tx;
            job_watch.thread.record();
            // The caller going away (cancelled, or past the hard deadline) cancels the run:
            // its tool calls are dropped with it, as they would be on the caller's task.
            let result = handle.block_on(async {
                tokio::select! {
                    result = engine.execute(&code, &engine_time) => Some(result),
                    () = tx.closed() => None,
                }
            });
            if job_watch.poisoned.load(Ordering::SeqCst) {
                worker.retire();
            }
            match result {
                Some(result) => {
                    if let Err((engine, _)) = tx.send((engine, result)) {
                        engine.shutdown(&job_pool);
                    }
                }
                // Stopped half-way: the engine may hold a half-run program.
                None => engine.shutdown(&job_pool),
            }
        });
        if let Err(e) = spawned {
            let error = ExecutionError::new(ErrorKind::Disposed, e.clone());
            return (Err(Some(e)), ExecutionResult::err(error, Vec::new()));
        }
        // The hard deadline: the budget (which stops while an approval is pending) plus grace.
        let answer = tokio::select! {
            answer = rx => Ok(answer),
            () = time.spent_plus(HARD_DEADLINE_GRACE) => Err(()),
        };
        canceller.disarm();
        match answer {
            Ok(Ok((engine, result))) => (Ok(Box::new(Pooled { engine, pool })), result),
            Ok(Err(_)) => {
                let why = "the QuickJS engine failed unexpectedly; create a new context";
                (
                    Err(Some(why.into())),
                    ExecutionResult::err(ExecutionError::internal(why), Vec::new()),
                )
            }
            Err(()) => {
                // A built-in is still running past the deadline: give the engine up. Its
                // next allocation fails (most long built-ins allocate as they go: atoms for
                // indexes past 2^31, string and array growth), and meanwhile its thread
                // runs at the lowest priority.
                budget.limit.store(0, Ordering::SeqCst);
                watch.poisoned.store(true, Ordering::SeqCst);
                watch.thread.demote();
                let why = format!(
                    "the previous execution ran past its {} ms deadline inside a built-in and the engine was discarded; create a new context",
                    timeout.as_millis()
                );
                (
                    Err(Some(why)),
                    ExecutionResult::err(ExecutionError::timeout(timeout), Vec::new()),
                )
            }
        }
    }

    fn free(self: Box<Self>) {
        self.engine.shutdown(&self.pool);
    }
}
