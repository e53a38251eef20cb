//! [`CodeModeBuilder`]: tools, driver, limits and policies, checked once at `build`.

use super::CodeMode;
use super::Inner;
use super::TypeCheckSetup;
use crate::approval::Approver;
use crate::driver::IsolateDriver;
use crate::error::CodeModeError;
use crate::error::ToolDefinitionError;
use crate::limits::Limits;
use crate::prompt::CatalogDetail;
use crate::prompt::discover_description;
use crate::prompt::execute_description;
use crate::prompt::system_prompt;
use crate::secrets::SecretParameterPolicy;
use crate::stubs::generate_checker_stubs;
use crate::tool::Tool;
use crate::typecheck::SANDBOX_DECLARATIONS;
use crate::typecheck::TypeCheckMode;
use crate::typecheck::TypeChecker;
use std::sync::Arc;

/// Builder of [`CodeMode`].
#[must_use]
pub struct CodeModeBuilder {
    pub(super) tools: Vec<Tool>,
    pub(super) driver: Option<Arc<dyn IsolateDriver>>,
    pub(super) limits: Limits,
    pub(super) detail: CatalogDetail,
    pub(super) max_code_bytes: usize,
    pub(super) type_check: Option<(TypeCheckMode, Arc<dyn TypeChecker>)>,
    pub(super) secrets: SecretParameterPolicy,
    pub(super) trace_values: bool,
    pub(super) approver: Option<Arc<dyn Approver>>,
    #[cfg(feature = "durable")]
    pub(super) vault: Option<crate::durable::SnapshotVault>,
}

impl std::fmt::Debug for CodeModeBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CodeModeBuilder")
            .field("tools", &self.tools.len())
            .field("driver", &self.driver.as_ref().map(|d| d.name().to_owned()))
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl CodeModeBuilder {
    /// Adds a tool.
    pub fn tool(mut self, tool: Tool) -> Self {
        self.tools.push(tool);
        self
    }
    /// Adds tools.
    pub fn tools(mut self, tools: impl IntoIterator<Item = Tool>) -> Self {
        self.tools.extend(tools);
        self
    }
    /// Sets the sandbox driver.
    pub fn driver(mut self, driver: Arc<dyn IsolateDriver>) -> Self {
        self.driver = Some(driver);
        self
    }
    /// Sets the limits of each execution.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }
    /// How much of a lazy tool's description the catalogue shows.
    pub fn catalog_detail(mut self, detail: CatalogDetail) -> Self {
        self.detail = detail;
        self
    }
    /// Largest program accepted, in bytes (default 256 KiB).
    pub fn max_code_bytes(mut self, bytes: usize) -> Self {
        self.max_code_bytes = bytes;
        self
    }
    /// What to do with tool parameters that look like credentials (see
    /// [`find_secret_parameters`](crate::find_secret_parameters)); default: warn.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use code_mode::{CodeMode, CodeModeError, SecretParameterPolicy, Tool, ToolError};
    /// # use code_mode::{IsolateDriver, IsolateContext, ContextConfig, DriverError};
    /// # struct NoDriver;
    /// # #[async_trait::async_trait] impl IsolateDriver for NoDriver {
    /// #   fn name(&self) -> &str { "none" }
    /// #   async fn create_context(&self, _: ContextConfig) -> Result<Box<dyn IsolateContext>, DriverError> {
    /// #     Err(DriverError::new("none", "doc example")) } }
    /// use serde_json::json;
    /// let tool = Tool::new("deploy", "Deploys.", json!({"type": "object", "properties": {"apiKey": {"type": "string"}}}),
    ///     |_, _| async { Ok::<_, ToolError>(json!(null)) }).unwrap();
    /// let err = CodeMode::builder().tool(tool).driver(Arc::new(NoDriver))
    ///     .secret_parameters(SecretParameterPolicy::Error).build().unwrap_err();
    /// assert!(matches!(err, CodeModeError::SecretParameter(ref p) if p.path == "apiKey"));
    /// ```
    pub fn secret_parameters(mut self, policy: SecretParameterPolicy) -> Self {
        self.secrets = policy;
        self
    }
    /// Records tool inputs and outputs and console text on the spans (see the `trace`
    /// module); off by default, since they may hold personal data. Sizes, names, outcomes
    /// and durations are always recorded when a subscriber listens.
    pub fn trace_values(mut self, on: bool) -> Self {
        self.trace_values = on;
        self
    }
    /// Decides on tool calls that need approval (see [`Tool::require_approval`] and the
    /// `approval` module), unless an execution brings its own
    /// ([`ExecuteOptions::approver`]). Without any, such calls are denied.
    pub fn approver(mut self, approver: Arc<dyn Approver>) -> Self {
        self.approver = Some(approver);
        self
    }
    /// Seals and opens durable executions ([`CodeMode::execute_durable`],
    /// [`CodeMode::resume`]) with `vault`: its keys, time-to-live, size cap and single-use
    /// ledger.
    #[cfg(feature = "durable")]
    pub fn snapshot_vault(mut self, vault: crate::durable::SnapshotVault) -> Self {
        self.vault = Some(vault);
        self
    }
    /// Type-checks every program with `checker` before it runs (see [`TypeCheckMode`]; off
    /// by default). The checker sees the declarations the model was shown: every tool's
    /// (eager and lazy), the sandbox's globals, and those of the call's extra bindings.
    pub fn type_check(mut self, mode: TypeCheckMode, checker: Arc<dyn TypeChecker>) -> Self {
        self.type_check = Some((mode, checker));
        self
    }

    /// Checks the tools (at least one, unique names) and builds.
    pub fn build(self) -> Result<CodeMode, CodeModeError> {
        if self.tools.is_empty() {
            return Err(CodeModeError::NoTools);
        }
        let driver = self.driver.ok_or(CodeModeError::NoDriver)?;
        for (i, t) in self.tools.iter().enumerate() {
            if self.tools[..i].iter().any(|o| o.name() == t.name()) {
                return Err(ToolDefinitionError::Duplicate {
                    name: t.name().to_owned(),
                }
                .into());
            }
        }
        let limits = self.limits.to_builder().build()?;
        for secret in crate::secrets::find_secret_parameters(&self.tools) {
            match &self.secrets {
                SecretParameterPolicy::Warn => {
                    tracing::warn!(target: "code_mode", tool = %secret.tool, path = %secret.path, "{secret}");
                }
                SecretParameterPolicy::Error => return Err(CodeModeError::SecretParameter(secret)),
                SecretParameterPolicy::Ignore => {}
                SecretParameterPolicy::Callback(f) => f(&secret),
            }
        }
        let eager: Vec<&Tool> = self.tools.iter().filter(|t| !t.is_lazy()).collect();
        let lazy: Vec<&Tool> = self.tools.iter().filter(|t| t.is_lazy()).collect();
        let all: Vec<&Tool> = self.tools.iter().collect();
        let type_check = self
            .type_check
            .filter(|(mode, _)| *mode != TypeCheckMode::Off)
            .map(|(mode, checker)| TypeCheckSetup {
                mode,
                checker,
                declarations: format!(
                    "{SANDBOX_DECLARATIONS}\n\n{}\n",
                    generate_checker_stubs(&all, "external_")
                ),
            });
        let mut prompt = system_prompt(&eager, &lazy, &limits, self.detail);
        if let Some(setup) = &type_check {
            prompt.push_str("\n\nPrograms are type-checked against these declarations before they run (TypeScript, strict, without implicit-any or null checks): ");
            prompt.push_str(match setup.mode {
                TypeCheckMode::Block => "a program with a type error does not run, and the result lists the compiler's errors with their lines.",
                _ => "they run anyway, and the result's `typeErrors` lists the compiler's errors with their lines.",
            });
        }
        let inner = Inner {
            type_check,
            trace_values: self.trace_values,
            system_prompt: prompt,
            execute_description: execute_description(&eager, !lazy.is_empty()),
            discover_description: (!lazy.is_empty())
                .then(|| discover_description(&lazy, self.detail)),
            tools: self.tools.clone(),
            driver,
            limits,
            max_code_bytes: self.max_code_bytes,
            approver: self.approver,
            #[cfg(feature = "durable")]
            vault: self.vault,
        };
        Ok(CodeMode {
            inner: Arc::new(inner),
        })
    }
}
