//! # code-mode-isolate-quickjs-wasm
//!
//! The strongest in-process isolation code-mode offers: QuickJS-ng compiled to a
//! `wasm32-wasi` reactor and run by [wasmtime](https://wasmtime.dev). The JavaScript engine
//! lives inside a WebAssembly instance, so even a bug in QuickJS cannot reach host memory:
//! the guest sees its own linear memory and two imports, nothing else.
//!
//! - **Memory**: a hard cap on the instance's linear memory (wasmtime's `StoreLimits`), and,
//!   inside it, a heap limit on QuickJS's allocator. Either ends in `MemoryLimitError`.
//! - **Stack**: QuickJS's own stack check (patched to work under WASI) on the guest's
//!   linear-memory stack, backed by wasmtime's native stack limit; both are
//!   `StackOverflowError`.
//! - **Time**: epoch interruption. A background clock advances the engine's epoch every
//!   2 ms; at each tick a running guest either traps (deadline passed: `TimeoutError`) or
//!   yields to Tokio, so a busy guest never blocks a worker thread. The host loop awaiting
//!   tool calls uses the same deadline. An optional fuel budget gives a deterministic CPU
//!   limit on top ([`QuickJsWasmDriver::builder`]).
//! - **Capabilities**: none. No WASI preopens, environment, arguments or sockets; the guest
//!   gets a clock (for `Date`) and the bindings, through the host.
//!
//! Any trap discards the instance; the host is untouched and the next context works.
//!
//! Speed: the module is compiled once per process, then run once up to a ready QuickJS realm
//! and snapshotted (the `wizer` approach), so a fresh context is a copy-on-write
//! instantiation from wasmtime's pooling allocator, with no QuickJS start-up on the critical
//! path. Tool calls need no asyncify: an `external_*` call returns a pending promise and
//! records the request; the host runs the tools concurrently, then resolves the promises
//! inside the instance and drains the job queue.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use code_mode::{ContextConfig, IsolateDriver};
//! use code_mode_isolate_quickjs_wasm::QuickJsWasmDriver;
//!
//! let driver = QuickJsWasmDriver::new();
//! let context = driver.create_context(ContextConfig::default()).await.unwrap();
//! let result = context.execute("const x = await Promise.resolve(20); return x + 1;").await;
//! assert_eq!(result.value(), Some(&serde_json::json!(21)));
//! context.dispose().await;
//! # }
//! ```

#![warn(missing_docs)]

mod cache;
mod guest;
mod host;
mod sandbox;
mod ticker;

use std::sync::Arc;

use code_mode::driver::{Engine, EngineContext};
use code_mode::durable::{DurableDriver, Park, Paused, Reply, ResumeError, Step, Suspended};
use code_mode::{
    ContextConfig, DriverError, ExecutionError, ExecutionResult, IsolateContext, IsolateDriver,
    async_trait,
};

use crate::guest::EngineKind;
use crate::sandbox::{Run, Sandbox};

/// The largest memory limit this driver honours (wasm32 addresses 4 GiB; the heap limit is
/// at most half of it); larger [`Limits::memory_bytes`](code_mode::Limits::memory_bytes) values
/// are lowered to it.
pub const MAX_MEMORY_BYTES: u64 = guest::MAX_MEMORY / 2;

/// Driver name.
pub const DRIVER_NAME: &str = "quickjs-wasm";
/// Instances that can be alive at once in the pooling allocator, by default.
pub const DEFAULT_MAX_INSTANCES: u32 = 1000;

/// The largest JavaScript stack limit this driver honours; larger
/// [`Limits::stack_bytes`](code_mode::Limits::stack_bytes) values are lowered to it.
pub const MAX_STACK_BYTES: u64 = guest::MAX_JS_STACK;

/// The QuickJS-in-WebAssembly driver.
///
/// Cheap to clone; every driver of a process shares the compiled, pre-initialised guest.
#[derive(Debug, Clone)]
pub struct QuickJsWasmDriver {
    fuel: Option<u64>,
    max_instances: u32,
}

impl Default for QuickJsWasmDriver {
    fn default() -> Self {
        Self::new()
    }
}

/// Settings of a [`QuickJsWasmDriver`].
#[derive(Debug, Clone)]
pub struct QuickJsWasmDriverBuilder {
    fuel: Option<u64>,
    max_instances: u32,
}

impl QuickJsWasmDriverBuilder {
    /// A deterministic CPU budget per execution, in wasmtime fuel units (about one per wasm
    /// instruction). Running out is a `TimeoutError`. Off by default: counting fuel slows
    /// every execution down, and the wall-clock timeout always applies.
    #[must_use]
    pub fn fuel_per_execution(mut self, fuel: u64) -> Self {
        self.fuel = Some(fuel);
        self
    }

    /// How many contexts can be alive at once ([`DEFAULT_MAX_INSTANCES`]). The pooling
    /// allocator reserves address space (not memory) for each. Only the first driver of a
    /// process decides it.
    #[must_use]
    pub fn max_instances(mut self, n: u32) -> Self {
        self.max_instances = n;
        self
    }

    /// Builds the driver.
    ///
    /// ```
    /// use code_mode_isolate_quickjs_wasm::QuickJsWasmDriver;
    ///
    /// assert!(QuickJsWasmDriver::builder().fuel_per_execution(0).build().is_err());
    /// let driver = QuickJsWasmDriver::builder().fuel_per_execution(50_000_000).build().unwrap();
    /// # let _ = driver;
    /// ```
    pub fn build(self) -> Result<QuickJsWasmDriver, DriverError> {
        if self.fuel == Some(0) {
            return Err(DriverError::new(
                DRIVER_NAME,
                "a fuel budget of 0 would stop every program at once; give a positive budget or none",
            ));
        }
        if self.max_instances == 0 {
            return Err(DriverError::new(
                DRIVER_NAME,
                "max_instances must be at least 1",
            ));
        }
        Ok(QuickJsWasmDriver {
            fuel: self.fuel,
            max_instances: self.max_instances,
        })
    }
}

impl QuickJsWasmDriver {
    /// The driver configured from the environment: a deterministic fuel budget per
    /// execution from `CODE_MODE_WASM_FUEL` when set (see
    /// [`QuickJsWasmDriverBuilder::fuel_per_execution`]), the defaults otherwise.
    pub fn from_env() -> Result<Self, DriverError> {
        let mut builder = Self::builder();
        if let Ok(text) = std::env::var("CODE_MODE_WASM_FUEL") {
            let fuel: u64 = text.trim().parse().map_err(|_| {
                DriverError::new(
                    DRIVER_NAME,
                    format!(
                        "CODE_MODE_WASM_FUEL must be a whole number of fuel units, got {text:?}"
                    ),
                )
            })?;
            builder = builder.fuel_per_execution(fuel);
        }
        builder.build()
    }

    /// The driver with default settings (no fuel budget).
    pub fn new() -> Self {
        Self {
            fuel: None,
            max_instances: DEFAULT_MAX_INSTANCES,
        }
    }

    /// Starts configuring a driver.
    pub fn builder() -> QuickJsWasmDriverBuilder {
        QuickJsWasmDriverBuilder {
            fuel: None,
            max_instances: DEFAULT_MAX_INSTANCES,
        }
    }

    /// Compiles and pre-initialises the guest now rather than on the first context (the
    /// first call in a process takes a second or so; later ones return at once).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// code_mode_isolate_quickjs_wasm::QuickJsWasmDriver::new().warm_up().await.unwrap();
    /// # }
    /// ```
    pub async fn warm_up(&self) -> Result<(), DriverError> {
        self.guest().await.map(|_| ())
    }

    async fn guest(&self) -> Result<Arc<guest::Guest>, DriverError> {
        let kind = EngineKind {
            fuel: self.fuel.is_some(),
        };
        guest::shared(kind, self.max_instances)
            .await
            .map_err(|e| DriverError::new(DRIVER_NAME, e))
    }
}

#[async_trait]
impl IsolateDriver for QuickJsWasmDriver {
    fn name(&self) -> &str {
        DRIVER_NAME
    }

    async fn create_context(
        &self,
        config: ContextConfig,
    ) -> Result<Box<dyn IsolateContext>, DriverError> {
        let guest = self.guest().await?;
        let sandbox = Sandbox::new(&guest, config, self.fuel)
            .await
            .map_err(|e| DriverError::new(DRIVER_NAME, e))?;
        let timing = sandbox.config().clone();
        Ok(Box::new(EngineContext::new(Box::new(sandbox), &timing)))
    }

    fn durable(&self) -> Option<&dyn DurableDriver> {
        Some(self)
    }
}

/// Durable pause: while a program waits only on held calls, no wasm frame is live, so the
/// whole guest is its linear memory; the execution is sealed from it and its instance
/// released, and a fresh instance of the same guest continues it from the bytes.
#[async_trait]
impl DurableDriver for QuickJsWasmDriver {
    fn name(&self) -> &str {
        DRIVER_NAME
    }

    fn engine_id(&self) -> [u8; 32] {
        guest::engine_id(EngineKind {
            fuel: self.fuel.is_some(),
        })
    }

    async fn start(
        &self,
        config: ContextConfig,
        code: &str,
        park: Park,
    ) -> Result<Step, DriverError> {
        if let Err(e) = code_mode::driver::check_nesting(code) {
            return Ok(Step::Finished(ExecutionResult::err(e, Vec::new())));
        }
        let guest = self.guest().await?;
        let mut sandbox = Sandbox::new(&guest, config, self.fuel)
            .await
            .map_err(|e| DriverError::new(DRIVER_NAME, e))?;
        sandbox.hold(park);
        // A durable execution starts outside an `EngineContext`: its budget is made here.
        let time = sandbox
            .config()
            .clock
            .budget(sandbox.config().limits.timeout());
        let (run, _) = sandbox.start(code, &time).await;
        Ok(self.step(sandbox, run))
    }

    async fn resume_suspended(
        &self,
        config: ContextConfig,
        suspended: Suspended,
        replies: Vec<(u32, Reply)>,
        park: Park,
    ) -> Result<Step, ResumeError> {
        let guest = self
            .guest()
            .await
            .map_err(|e| ResumeError::Driver(e.to_string()))?;
        let mut sandbox = Sandbox::restore(&guest, config, self.fuel, suspended).await?;
        sandbox.hold(park);
        let (run, _) = sandbox.resume(replies).await;
        Ok(self.step(sandbox, run))
    }
}

impl QuickJsWasmDriver {
    /// A durable run's step: its result, or the paused record (the instance is dropped
    /// either way).
    fn step(&self, mut sandbox: Sandbox, run: Run) -> Step {
        match run {
            Run::Done(outcome) => Step::Finished(ExecutionResult {
                outcome,
                logs: sandbox.take_logs(),
            }),
            Run::Parked => match sandbox.suspend(DurableDriver::engine_id(self)) {
                Ok(suspended) => Step::Paused(Paused::new(suspended)),
                Err(e) => Step::Finished(ExecutionResult::err(
                    ExecutionError::internal(format!(
                        "the paused execution could not be captured: {e}"
                    )),
                    sandbox.take_logs(),
                )),
            },
        }
    }
}

/// The engine-specific part of a context; [`EngineContext`] does the rest (one execution at
/// a time, dispose, terminal failures, nesting check).
#[async_trait]
impl Engine for Sandbox {
    async fn run(
        mut self: Box<Self>,
        code: &str,
        time: &code_mode::driver::Budget,
    ) -> (Result<Box<Self>, Option<String>>, ExecutionResult) {
        let (outcome, alive) = self.execute(code, time).await;
        let logs = self.take_logs();
        let back = match alive {
            Ok(()) => Ok(self),
            Err(_) => Err(None),
        };
        (back, ExecutionResult { outcome, logs })
    }
}
