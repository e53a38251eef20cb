//! [`CodeMode`]: tools + driver + limits → `execute_typescript`, `discover_tools` and the
//! system prompt.
//!
//! One `CodeMode` is built per application (or per agent) and shared; each
//! `execute_typescript` call gets a fresh sandbox context, its own event tagging and its own
//! tool-call budget, and disposes the context when done.

use std::sync::Arc;

use crate::approval::Approver;
use crate::driver::IsolateDriver;
use crate::limits::Limits;
use crate::prompt::CatalogDetail;
use crate::secrets::SecretParameterPolicy;
use crate::tool::Tool;
use crate::typecheck::{TypeCheckMode, TypeChecker};

mod builder;
#[cfg(feature = "durable")]
mod durable;
mod options;
mod run;
mod tool_calls;
mod tools;

pub use builder::CodeModeBuilder;
pub use options::{BindingProvider, DEFAULT_MAX_CODE_BYTES, ExecuteOptions, ExecutionScope};

struct Inner {
    tools: Vec<Tool>,
    driver: Arc<dyn IsolateDriver>,
    limits: Limits,
    max_code_bytes: usize,
    system_prompt: String,
    execute_description: String,
    discover_description: Option<String>,
    /// The type check, when one is on.
    type_check: Option<TypeCheckSetup>,
    /// Whether spans record values (see [`CodeModeBuilder::trace_values`]).
    trace_values: bool,
    /// The default approver.
    approver: Option<Arc<dyn Approver>>,
    /// Seals and opens durable executions.
    #[cfg(feature = "durable")]
    vault: Option<crate::durable::SnapshotVault>,
}

/// A type check that is on: its mode (never `Off`), its checker, and the sandbox's and
/// every tool's declarations.
struct TypeCheckSetup {
    mode: TypeCheckMode,
    checker: Arc<dyn TypeChecker>,
    declarations: String,
}

/// The code-mode toolset of an application. Cheap to clone.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use std::sync::Arc;
/// use code_mode::{CodeMode, ExecuteOptions, Tool, ToolError};
/// # use code_mode::{IsolateDriver, IsolateContext, ContextConfig, ExecutionResult, DriverError};
/// # struct NoDriver;
/// # #[async_trait::async_trait] impl IsolateDriver for NoDriver {
/// #   fn name(&self) -> &str { "none" }
/// #   async fn create_context(&self, _: ContextConfig) -> Result<Box<dyn IsolateContext>, DriverError> {
/// #     Err(DriverError::new("none", "doc example without a sandbox")) } }
/// use serde_json::json;
///
/// let tool = Tool::new("add", "Adds two numbers.",
///     json!({"type": "object", "properties": {"a": {"type": "number"}, "b": {"type": "number"}}, "required": ["a", "b"]}),
///     |v, _| async move { Ok::<_, ToolError>(json!(v["a"].as_f64().unwrap_or(0.0) + v["b"].as_f64().unwrap_or(0.0))) },
/// ).unwrap();
/// // Use a real driver here, e.g. `code_mode_drivers::default_driver()`.
/// let code_mode = CodeMode::builder().tool(tool).driver(Arc::new(NoDriver)).build().unwrap();
/// assert!(code_mode.system_prompt().contains("declare function external_add(input: AddInput): Promise<unknown>;"));
/// let result = code_mode.execute("return 1", ExecuteOptions::default()).await;
/// assert_eq!(result.error.unwrap().kind.name(), "InternalError");
/// # }
/// ```
#[derive(Clone)]
pub struct CodeMode {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for CodeMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CodeMode")
            .field("driver", &self.inner.driver.name())
            .field(
                "tools",
                &self.inner.tools.iter().map(Tool::name).collect::<Vec<_>>(),
            )
            .field("limits", &self.inner.limits)
            .finish()
    }
}

impl CodeMode {
    /// Starts a builder with default limits.
    pub fn builder() -> CodeModeBuilder {
        CodeModeBuilder {
            tools: Vec::new(),
            driver: None,
            limits: Limits::default(),
            detail: CatalogDetail::default(),
            max_code_bytes: DEFAULT_MAX_CODE_BYTES,
            type_check: None,
            secrets: SecretParameterPolicy::default(),
            trace_values: false,
            approver: None,
            #[cfg(feature = "durable")]
            vault: None,
        }
    }

    /// The system prompt: sandbox rules, tool list, type stubs, discoverable tools, example.
    pub fn system_prompt(&self) -> &str {
        &self.inner.system_prompt
    }

    /// The application's tools.
    pub fn tools(&self) -> &[Tool] {
        &self.inner.tools
    }

    /// The limits of each execution.
    pub fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    /// The sandbox driver.
    pub fn driver(&self) -> &Arc<dyn IsolateDriver> {
        &self.inner.driver
    }
}
