//! Fresh contexts, standard bindings and limits for the cases.

use std::sync::Arc;
use std::time::Duration;

use code_mode::{
    Bindings, CodeMode, ConsoleSink, ContextConfig, ExecuteOptions, ExecutionResult,
    IsolateContext, IsolateDriver, Limits, LimitsBuilder,
};

use crate::fixtures::{Fixtures, bindings, tools};

/// What a driver can promise beyond the common contract. Every in-process driver has all
/// of these; a remote sandbox (a Cloudflare Worker) may not, and the cases then check the
/// weaker guarantee it does give, never nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// Globals set by one execution are visible to the next execution of the same context.
    /// Without it, each execution starts from a fresh global scope (and still never sees
    /// another context's state).
    pub persistent_globals: bool,
    /// `eval`/`new Function` work (reaching only the sandbox's own global). Without it they
    /// throw `EvalError`, as in production Workers.
    pub code_generation: bool,
    /// Memory exhaustion is reported as `MemoryLimitError`. Without it (a local workerd
    /// aborts) a memory bomb must still fail, and the next execution must work.
    pub reports_memory_limit: bool,
    /// The engine tells the driver when its stack guard fired (QuickJS's guard, which the
    /// drivers hook). Without it (V8 through isolated-vm, workerd) the engine's own overflow
    /// `RangeError` is recognised by its exact name and message, so a program that throws
    /// exactly that error ends as `StackOverflowError`; a longer message never does.
    pub engine_stack_signal: bool,
}

impl Default for Capabilities {
    fn default() -> Self {
        Self {
            persistent_globals: true,
            code_generation: true,
            reports_memory_limit: true,
            engine_stack_signal: true,
        }
    }
}

/// What a case runs against.
pub struct Harness {
    driver: Arc<dyn IsolateDriver>,
    /// What the driver promises beyond the common contract.
    pub capabilities: Capabilities,
    /// Timeout used by the cases that must time out (kept short so the suite stays fast).
    pub short_timeout: Duration,
}

impl std::fmt::Debug for Harness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Harness")
            .field("driver", &self.driver.name())
            .field("capabilities", &self.capabilities)
            .field("short_timeout", &self.short_timeout)
            .finish_non_exhaustive()
    }
}

impl Harness {
    /// A harness over `driver`, with every capability.
    pub fn new(driver: Arc<dyn IsolateDriver>) -> Self {
        Self::with_capabilities(driver, Capabilities::default())
    }

    /// A harness over a driver with only `capabilities`.
    pub fn with_capabilities(driver: Arc<dyn IsolateDriver>, capabilities: Capabilities) -> Self {
        Self {
            driver,
            capabilities,
            short_timeout: Duration::from_millis(300),
        }
    }

    /// The driver.
    pub fn driver(&self) -> &Arc<dyn IsolateDriver> {
        &self.driver
    }

    /// Default limits of the cases: 10 s, so a hung driver fails the case instead of the run.
    pub fn limits(&self) -> Limits {
        Limits::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("valid limits")
    }

    /// The default limits of the cases, changed by `f`.
    pub fn limits_with(&self, f: impl FnOnce(LimitsBuilder) -> LimitsBuilder) -> Limits {
        f(self.limits().to_builder()).build().expect("valid limits")
    }

    /// Limits with the short timeout.
    pub fn short_limits(&self) -> Limits {
        self.limits()
            .to_builder()
            .timeout(self.short_timeout)
            .build()
            .expect("valid limits")
    }

    /// Creates a context with the standard bindings, `limits` and an optional console sink.
    pub async fn context_with(
        &self,
        fixtures: &Fixtures,
        limits: Limits,
        console: Option<ConsoleSink>,
    ) -> Box<dyn IsolateContext> {
        let mut config = ContextConfig::new(bindings(fixtures)).with_limits(limits);
        config.console = console;
        self.driver
            .create_context(config)
            .await
            .expect("the driver creates a context")
    }

    /// Creates a context with no bindings.
    pub async fn bare_context(&self, limits: Limits) -> Box<dyn IsolateContext> {
        let config = ContextConfig::new(Bindings::new()).with_limits(limits);
        self.driver
            .create_context(config)
            .await
            .expect("the driver creates a context")
    }

    /// Runs `code` in a fresh context with the standard bindings and default limits.
    pub async fn run(&self, code: &str) -> ExecutionResult {
        self.run_with(&Fixtures::default(), self.limits(), code)
            .await
    }

    /// Runs `code` in a fresh context with `limits`.
    pub async fn run_with(
        &self,
        fixtures: &Fixtures,
        limits: Limits,
        code: &str,
    ) -> ExecutionResult {
        let ctx = self.context_with(fixtures, limits, None).await;
        let result = ctx.execute(code).await;
        ctx.dispose().await;
        result
    }

    /// A [`CodeMode`] over the standard tools and this driver.
    pub fn code_mode(&self, fixtures: &Fixtures, limits: Limits) -> CodeMode {
        CodeMode::builder()
            .tools(tools(fixtures))
            .driver(self.driver.clone())
            .limits(limits)
            .build()
            .expect("valid code mode")
    }

    /// Runs TypeScript through `execute_typescript` with default options.
    pub async fn run_typescript(&self, code: &str) -> code_mode::CodeModeResult {
        self.code_mode(&Fixtures::default(), self.limits())
            .execute(code, ExecuteOptions::default())
            .await
    }

    /// Checks the driver still works: a fresh context runs `return 1 + 1`.
    pub async fn assert_healthy(&self) {
        let r = self.run("return 1 + 1").await;
        assert_eq!(
            r.value(),
            Some(&serde_json::json!(2)),
            "driver unhealthy after the case: {r:?}"
        );
    }
}
