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
mod engine;
mod pool;

use code_mode::{
    ContextConfig, DriverError, ExecutionError, ExecutionResult, IsolateContext, IsolateDriver,
    async_trait,
};
use std::sync::Arc;

use tokio::sync::Mutex;

use crate::engine::Engine;
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
}

impl Default for QuickJsDriver {
    fn default() -> Self {
        Self::new()
    }
}

impl QuickJsDriver {
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
        let engine =
            Engine::new(config, self.pool.take()).map_err(|e| DriverError::new(DRIVER_NAME, e))?;
        Ok(Box::new(QuickJsContext {
            engine: Mutex::new(Some(engine)),
            pool: self.pool.clone(),
        }))
    }
}

/// A QuickJS context: one runtime, one realm. Executions run one at a time in call order.
pub struct QuickJsContext {
    /// `None` once disposed or dead of a terminal error.
    engine: Mutex<Option<Engine>>,
    /// Where the engine goes to be freed.
    pool: Arc<Pool>,
}

impl std::fmt::Debug for QuickJsContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuickJsContext").finish_non_exhaustive()
    }
}

#[async_trait]
impl IsolateContext for QuickJsContext {
    async fn execute(&self, code: &str) -> ExecutionResult {
        let mut guard = self.engine.lock().await;
        let Some(engine) = guard.as_mut() else {
            return ExecutionResult::err(ExecutionError::disposed(), Vec::new());
        };
        let result = engine.execute(code).await;
        if result.error().is_some_and(|e| e.kind.is_terminal())
            && let Some(engine) = guard.take()
        {
            engine.shutdown(&self.pool);
        }
        result
    }

    async fn dispose(&self) {
        if let Some(engine) = self.engine.lock().await.take() {
            engine.shutdown(&self.pool);
        }
    }
}
