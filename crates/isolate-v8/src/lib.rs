//! V8 sandbox driver for code-mode: model-written code runs in isolated-vm isolates (V8 with
//! its JIT) inside a pool of Node.js 24 sidecar processes; tools run in this process.
//!
//! Why a sidecar and not rusty_v8 in-process: the `v8` crate's build downloads a prebuilt V8
//! archive (or needs Chromium's toolchain to build one), which many build machines cannot
//! do. Node 24 and isolated-vm come prebuilt from the npm registry instead, pinned by this
//! crate ([`V8Runtime::install`]). The price is one process hop per message (tens of µs),
//! which V8's JIT repays many times on compute-heavy programs. The README compares both.
//!
//! What the driver guarantees on top of isolated-vm:
//! - one fresh isolate per context, with its memory limit; a prepared isolate is kept ready
//!   in every sidecar, so creating one is off the critical path;
//! - a deadline that covers code after an `await` (the sidecar disposes the isolate) and a
//!   second, later deadline here that kills a wedged sidecar by PID; a dead sidecar is
//!   replaced on the next context and the executions it held end with a clear error;
//! - tool calls cross to Rust and run concurrently for `Promise.all`; errors cross as values
//!   (name and message only, never a host stack or path);
//! - no isolated-vm `Reference` stays reachable from guest globals.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use code_mode::{ContextConfig, IsolateDriver};
//! use code_mode_isolate_v8::V8Driver;
//!
//! let driver = V8Driver::new()?; // fails with what to install when the runtime is missing
//! let ctx = driver.create_context(ContextConfig::default()).await?;
//! let r = ctx.execute("let s = 0; for (let i = 0; i < 1e6; i++) s += i; return s").await;
//! assert_eq!(r.value(), Some(&serde_json::json!(499999500000u64)));
//! # Ok(()) }
//! ```

mod context;
mod pool;
mod protocol;
mod runtime;
mod sidecar;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use code_mode::{ContextConfig, DriverError, IsolateContext, IsolateDriver};

pub use runtime::{ISOLATED_VM_VERSION, NODE_VERSION, RuntimeError, V8Runtime};

use crate::context::V8Context;
use crate::pool::Pool;

/// Driver name.
pub const DRIVER_NAME: &str = "v8";

/// The largest accepted [`V8Options::contexts_per_isolate`].
pub const MAX_CONTEXTS_PER_ISOLATE: u32 = 1000;

/// How the driver finds its runtime and sizes its pool.
#[derive(Debug, Clone)]
pub struct V8Options {
    /// Runtime folder (with `node_modules/isolated-vm`); default `$CODE_MODE_V8_RUNTIME`, then
    /// [`V8Runtime::default_dir`].
    pub runtime_dir: Option<PathBuf>,
    /// Node.js ≥ 24 binary; default `$CODE_MODE_V8_NODE`, then the one in the runtime folder.
    pub node: Option<PathBuf>,
    /// Sidecar processes (each runs many isolates in parallel threads); default: the number
    /// of cores.
    pub pool_size: usize,
    /// How long after an execution's deadline a sidecar may stay silent before it is killed
    /// (its main thread stopped answering). The caller does not wait for it: it hears
    /// `TimeoutError` 100 ms after the deadline, and executions that had not started on that
    /// sidecar move to another one.
    pub grace: Duration,
    /// How many contexts, one after another, may use one isolate (each gets a fresh V8
    /// context: its own globals and built-ins). An isolate is reused only after its context
    /// ended cleanly (never after a timeout, a memory or stack failure, or a dispose during
    /// a run) and while its heap is small; making a new one costs ~1.1 ms of CPU, which on
    /// a busy machine competes with the executions. `1` gives every context a fresh
    /// isolate, as TanStack's Node driver does. Default 32; 1 to 1,000 is accepted.
    pub contexts_per_isolate: u32,
}

/// `V8Options` is also the driver's builder: [`V8Driver::builder`] starts from the defaults.
///
/// ```
/// use code_mode_isolate_v8::V8Driver;
/// let err = V8Driver::builder()
///     .runtime_dir(std::env::temp_dir().join("not-a-v8-runtime"))
///     .pool_size(1)
///     .contexts_per_isolate(1)
///     .build()
///     .unwrap_err();
/// assert!(err.message.contains("is not installed"));
/// ```
impl V8Options {
    /// The runtime folder (see [`V8Options::runtime_dir`](#structfield.runtime_dir)).
    #[must_use]
    pub fn runtime_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.runtime_dir = Some(dir.into());
        self
    }

    /// The Node.js binary (see [`V8Options::node`](#structfield.node)).
    #[must_use]
    pub fn node(mut self, node: impl Into<PathBuf>) -> Self {
        self.node = Some(node.into());
        self
    }

    /// The number of sidecar processes.
    #[must_use]
    pub fn pool_size(mut self, size: usize) -> Self {
        self.pool_size = size;
        self
    }

    /// How long a silent sidecar is given past a deadline before it is killed.
    #[must_use]
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// How many contexts may use one isolate, one after another.
    #[must_use]
    pub fn contexts_per_isolate(mut self, n: u32) -> Self {
        self.contexts_per_isolate = n;
        self
    }

    /// The driver ([`V8Driver::with_options`]).
    pub fn build(self) -> Result<V8Driver, DriverError> {
        V8Driver::with_options(self)
    }
}

impl Default for V8Options {
    fn default() -> Self {
        Self {
            runtime_dir: None,
            node: None,
            pool_size: std::thread::available_parallelism().map_or(2, usize::from),
            grace: Duration::from_millis(500),
            contexts_per_isolate: 32,
        }
    }
}

/// The V8 driver. Cheap to share (`Arc`); sidecars start on first use.
pub struct V8Driver {
    pool: Arc<Pool>,
    node_version: String,
    next_context: AtomicU64,
    grace: Duration,
}

impl std::fmt::Debug for V8Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("V8Driver")
            .field("runtime", &self.pool.runtime)
            .field("node_version", &self.node_version)
            .field("pool_size", &self.pool.len())
            .finish()
    }
}

impl V8Driver {
    /// The driver configured from the environment: the runtime folder from
    /// `CODE_MODE_V8_RUNTIME` (else `.cache/v8-runtime` of the working directory), other
    /// options at their defaults. The same as [`V8Driver::new`]; every driver crate has a
    /// `from_env`.
    pub fn from_env() -> Result<Self, DriverError> {
        Self::new()
    }

    /// Starts configuring a driver from the default options.
    pub fn builder() -> V8Options {
        V8Options::default()
    }

    /// A driver with the default options. Fails, saying what to install, when the runtime is
    /// missing or does not work ([`V8Runtime::probe`]).
    pub fn new() -> Result<Self, DriverError> {
        Self::with_options(V8Options::default())
    }

    /// A driver with `options`.
    ///
    /// ```
    /// use code_mode_isolate_v8::{V8Driver, V8Options};
    /// let options = V8Options {
    ///     runtime_dir: Some(std::env::temp_dir().join("not-a-v8-runtime")),
    ///     ..V8Options::default()
    /// };
    /// let err = V8Driver::with_options(options).unwrap_err();
    /// assert!(err.message.contains("is not installed"));
    /// ```
    pub fn with_options(options: V8Options) -> Result<Self, DriverError> {
        if !(1..=MAX_CONTEXTS_PER_ISOLATE).contains(&options.contexts_per_isolate) {
            return Err(DriverError::new(
                DRIVER_NAME,
                format!(
                    "contexts_per_isolate is {}; it must be between 1 (a fresh isolate per context) and {MAX_CONTEXTS_PER_ISOLATE}",
                    options.contexts_per_isolate
                ),
            ));
        }
        let runtime = V8Runtime::locate(options.runtime_dir.as_deref(), options.node.as_deref())
            .map_err(|e| DriverError::new(DRIVER_NAME, e.to_string()))?;
        let node_version = runtime
            .probe()
            .map_err(|e| DriverError::new(DRIVER_NAME, e.to_string()))?;
        let pool_size = options.pool_size.clamp(1, 64);
        Ok(Self {
            pool: Arc::new(Pool::new(runtime, pool_size, options.contexts_per_isolate)),
            node_version,
            next_context: AtomicU64::new(1),
            grace: options.grace,
        })
    }

    /// The Node.js version the probe reported.
    pub fn node_version(&self) -> &str {
        &self.node_version
    }

    /// The runtime in use.
    pub fn runtime(&self) -> &V8Runtime {
        &self.pool.runtime
    }

    /// Starts every sidecar of the pool now instead of on first use.
    pub async fn warm_up(&self) -> Result<(), DriverError> {
        for i in 0..self.pool.len() {
            self.pool.sidecar_at(i).await?;
        }
        Ok(())
    }

    /// Isolates the running sidecars made since each started (for monitoring: with
    /// [`V8Options::contexts_per_isolate`] above 1, fewer than the contexts they served).
    pub async fn isolates_made(&self) -> u64 {
        self.pool.isolates_made().await
    }

    /// Process ids of the running sidecars (for monitoring, and for the tests that kill one).
    pub async fn sidecar_pids(&self) -> Vec<u32> {
        self.pool.pids().await
    }
}

#[async_trait]
impl IsolateDriver for V8Driver {
    fn name(&self) -> &str {
        DRIVER_NAME
    }

    async fn create_context(
        &self,
        config: ContextConfig,
    ) -> Result<Box<dyn IsolateContext>, DriverError> {
        let sidecar = self.pool.place(None).await?;
        let id = self.next_context.fetch_add(1, Ordering::Relaxed);
        let timing = config.clone();
        Ok(Box::new(code_mode::driver::EngineContext::new(
            Box::new(V8Context::new(
                id,
                self.pool.clone(),
                sidecar,
                config,
                self.grace,
            )),
            &timing,
        )))
    }
}
