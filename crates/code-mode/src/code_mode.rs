//! [`CodeMode`]: tools + driver + limits → `execute_typescript`, `discover_tools` and the
//! system prompt.
//!
//! One `CodeMode` is built per application (or per agent) and shared; each
//! `execute_typescript` call gets a fresh sandbox context, its own event tagging and its own
//! tool-call budget, and disposes the context when done.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt;
use futures::future::BoxFuture;
use serde_json::{Value, json};

use crate::approval::{APPROVAL_DENIED_ERROR, ApprovalPolicy, Approver, Gate};
use crate::bindings::{Binding, Bindings, GuestError};
use crate::clock::ExecutionClock;
use crate::console::{ConsoleSink, LogLevel};
use crate::driver::{ContextConfig, IsolateContext, IsolateDriver};
use crate::error::{CodeModeError, ErrorKind, ExecutionError, ToolDefinitionError, ToolError};
use crate::events::{EventKind, EventSink, Phase, now_ms};
use crate::limits::Limits;
use crate::prompt::{
    CatalogDetail, DISCOVER_TOOL_NAME, EXECUTE_TOOL_NAME, catalog_entry, discover_description,
    execute_description, system_prompt,
};
use crate::result::{CodeModeResult, result_schema};
use crate::secrets::SecretParameterPolicy;
use crate::stubs::{generate_checker_stubs, generate_stubs};
use crate::tool::{Tool, ToolContext};
use crate::trace::ExecTrace;
use crate::typecheck::{
    CheckRequest, SANDBOX_DECLARATIONS, TypeCheckMode, TypeChecker, TypeDiagnostic,
};
use crate::typescript::{StrippedCode, strip_typescript};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// Largest program accepted by default, in bytes.
pub const DEFAULT_MAX_CODE_BYTES: usize = 256 * 1024;

/// Extra wall-clock time the host grants a driver past the execution timeout before it
/// gives up on the driver itself (a driver is expected to stop on time on its own).
const DRIVER_GRACE: Duration = Duration::from_secs(2);

/// What one execution's calls share: the clock its timeout runs on and the token that
/// fires when it ends (see [`CodeMode::bindings`]).
#[derive(Debug, Clone, Default)]
pub struct ExecutionScope {
    /// Held while an approval is pending.
    pub clock: ExecutionClock,
    /// Fires when the execution ends; a child of the application's token
    /// ([`ExecuteOptions::cancel`]) when there is one.
    pub cancel: CancellationToken,
}

impl ExecutionScope {
    /// A fresh scope for an execution with `opts`.
    pub fn for_options(opts: &ExecuteOptions) -> Self {
        Self {
            clock: ExecutionClock::new(),
            cancel: opts
                .cancel
                .as_ref()
                .map_or_else(CancellationToken::new, CancellationToken::child_token),
        }
    }
}

/// The error of an execution the application cancelled.
fn cancelled() -> ExecutionError {
    ExecutionError::new(ErrorKind::Cancelled, "The execution was cancelled")
}

/// Name, description and schemas of a tool, as sent to the model.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolSpec {
    /// Tool name.
    pub name: String,
    /// Description shown to the model.
    pub description: String,
    /// Input JSON Schema.
    pub input_schema: Value,
    /// Output JSON Schema, if any.
    pub output_schema: Option<Value>,
}

/// Computes extra sandbox functions for one execution from its tool context
/// (see [`CodeMode::as_tools_with`]).
pub type BindingProvider =
    Arc<dyn Fn(&ToolContext) -> BoxFuture<'static, Vec<Binding>> + Send + Sync>;

/// Per-call options of [`CodeMode::execute`].
#[derive(Clone, Default)]
pub struct ExecuteOptions {
    /// Id of the model's tool call; every event carries it.
    pub tool_call_id: Option<Arc<str>>,
    /// Where events go.
    pub events: EventSink,
    /// Bindings added to the tools' for this call (the skills crate adds `skill_*` here).
    pub extra_bindings: Vec<Binding>,
    /// JSON Schema the program's result must match, for the type check (the skills crate
    /// sets a skill's output schema here): a `return` of another shape is a type error.
    pub expected_output: Option<Value>,
    /// Decides on calls that need approval in this execution, instead of the builder's
    /// [`CodeModeBuilder::approver`] (a chat server asks the session's browser, an MCP
    /// server the requesting client).
    pub approver: Option<Arc<dyn Approver>>,
    /// The clock of an execution this one runs inside (a skill's program started by a call
    /// of another program): held too while this execution's approvals wait, so the outer
    /// program's timeout does not run out meanwhile.
    pub outer_clock: Option<ExecutionClock>,
    /// Cancels the execution when fired: it ends at once with `CancelledError`, its
    /// context is disposed (a `CodeMode` execution always has a context of its own), and
    /// every tool call in flight sees [`ToolContext::cancel`] fire. Dropping the execution's
    /// future has the same effect on the tools, without a result.
    pub cancel: Option<CancellationToken>,
}

impl std::fmt::Debug for ExecuteOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecuteOptions")
            .field("tool_call_id", &self.tool_call_id)
            .field("events", &self.events)
            .field("extra_bindings", &self.extra_bindings)
            .field("expected_output", &self.expected_output)
            .field("approver", &self.approver.is_some())
            .field("cancel", &self.cancel)
            .finish()
    }
}

impl ExecuteOptions {
    /// Options tagging events with `tool_call_id` and sending them to `events`.
    pub fn new(tool_call_id: impl Into<Arc<str>>, events: EventSink) -> Self {
        Self {
            tool_call_id: Some(tool_call_id.into()),
            events,
            extra_bindings: Vec::new(),
            expected_output: None,
            approver: None,
            outer_clock: None,
            cancel: None,
        }
    }

    /// Sets the token that cancels this execution (see [`ExecuteOptions::cancel`]).
    #[must_use]
    pub fn with_cancel(mut self, cancel: CancellationToken) -> Self {
        self.cancel = Some(cancel);
        self
    }

    /// Sets the approver of this execution.
    #[must_use]
    pub fn with_approver(mut self, approver: Arc<dyn Approver>) -> Self {
        self.approver = Some(approver);
        self
    }
}

/// Builder of [`CodeMode`].
#[must_use]
pub struct CodeModeBuilder {
    tools: Vec<Tool>,
    driver: Option<Arc<dyn IsolateDriver>>,
    limits: Limits,
    detail: CatalogDetail,
    max_code_bytes: usize,
    type_check: Option<(TypeCheckMode, Arc<dyn TypeChecker>)>,
    secrets: SecretParameterPolicy,
    trace_values: bool,
    approver: Option<Arc<dyn Approver>>,
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
        };
        Ok(CodeMode {
            inner: Arc::new(inner),
        })
    }
}

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

    /// The `execute_typescript` tool as sent to the model.
    pub fn execute_tool_spec(&self) -> ToolSpec {
        let mut output = result_schema();
        if self
            .inner
            .type_check
            .as_ref()
            .is_some_and(|t| t.mode == TypeCheckMode::Report)
            && let Some(props) = output.get_mut("properties").and_then(Value::as_object_mut)
        {
            props.insert("typeErrors".into(), crate::result::type_errors_schema());
        }
        ToolSpec {
            name: EXECUTE_TOOL_NAME.into(),
            description: self.inner.execute_description.clone(),
            input_schema: execute_input_schema(),
            output_schema: Some(output),
        }
    }

    /// The `discover_tools` tool, present when some tools are lazy.
    pub fn discover_tool_spec(&self) -> Option<ToolSpec> {
        let description = self.inner.discover_description.clone()?;
        Some(ToolSpec {
            name: DISCOVER_TOOL_NAME.into(),
            description,
            input_schema: discover_input_schema(),
            output_schema: Some(discover_output_schema()),
        })
    }

    /// `execute_typescript`, then `discover_tools` when present.
    pub fn tool_specs(&self) -> Vec<ToolSpec> {
        let mut v = vec![self.execute_tool_spec()];
        v.extend(self.discover_tool_spec());
        v
    }

    /// `execute_typescript` (and `discover_tools`) as ordinary [`Tool`]s, for an agent loop
    /// that treats every tool alike. Their handlers read the tool-call id and the event sink
    /// from the [`ToolContext`].
    pub fn as_tools(&self) -> Vec<Tool> {
        self.as_tools_with(Arc::new(|_ctx: &ToolContext| {
            Box::pin(async { Vec::new() }) as BoxFuture<'static, Vec<Binding>>
        }))
    }

    /// Like [`CodeMode::as_tools`], with more sandbox functions computed for each execution
    /// by `extra` (the skills crate adds its `skill_<name>` functions this way, loading the
    /// library afresh on every call).
    pub fn as_tools_with(&self, extra: BindingProvider) -> Vec<Tool> {
        let me = self.clone();
        let mut tools = vec![Tool::internal(
            self.execute_tool_spec(),
            Arc::new(move |input, ctx: ToolContext| {
                let me = me.clone();
                let extra = extra.clone();
                Box::pin(async move {
                    let extra_bindings = extra(&ctx).await;
                    let opts = ExecuteOptions {
                        tool_call_id: ctx.tool_call_id,
                        events: ctx.events,
                        extra_bindings,
                        approver: ctx.approver,
                        outer_clock: Some(ctx.clock),
                        cancel: Some(ctx.cancel),
                        ..ExecuteOptions::default()
                    };
                    Ok(me.call_execute_tool(&input, opts).await.to_json())
                })
            }),
        )];
        if let Some(spec) = self.discover_tool_spec() {
            let me = self.clone();
            tools.push(Tool::internal(
                spec,
                Arc::new(move |input, _ctx| {
                    let out = me.discover(&input);
                    Box::pin(async move { Ok(out) })
                }),
            ));
        }
        tools
    }

    /// Runs `execute_typescript` with its tool input `{"typescriptCode": "..."}`.
    pub async fn call_execute_tool(&self, input: &Value, opts: ExecuteOptions) -> CodeModeResult {
        match input.get("typescriptCode").and_then(Value::as_str) {
            Some(code) => self.execute(code, opts).await,
            None => {
                let error = ExecutionError::new(
                    ErrorKind::Validation,
                    "typescriptCode must be a non-empty string",
                );
                let trace = self.trace(&opts, 0);
                let _entered = trace.span.clone().entered();
                self.finish(
                    &opts,
                    Instant::now(),
                    Phase::ValidateInput,
                    CodeModeResult::failure(error),
                    &trace,
                )
            }
        }
    }

    /// Strips, runs and reports one TypeScript program in a fresh sandbox context.
    pub async fn execute(&self, code: &str, opts: ExecuteOptions) -> CodeModeResult {
        let trace = self.trace(&opts, code.len());
        let span = trace.span.clone();
        self.execute_in(code, opts, &trace).instrument(span).await
    }

    fn trace(&self, opts: &ExecuteOptions, code_bytes: usize) -> ExecTrace {
        ExecTrace::start(
            self.inner.driver.name(),
            opts.tool_call_id.as_deref(),
            code_bytes,
            self.inner.trace_values,
        )
    }

    async fn execute_in(
        &self,
        code: &str,
        opts: ExecuteOptions,
        trace: &ExecTrace,
    ) -> CodeModeResult {
        let started = Instant::now();
        if code.is_empty() || code.len() > self.inner.max_code_bytes {
            let message = if code.is_empty() {
                "typescriptCode must be a non-empty string".to_owned()
            } else {
                format!(
                    "typescriptCode is {} bytes, above the limit of {} bytes",
                    code.len(),
                    self.inner.max_code_bytes
                )
            };
            let error = ExecutionError::new(ErrorKind::Validation, message);
            return self.finish(
                &opts,
                started,
                Phase::ValidateInput,
                CodeModeResult::failure(error),
                trace,
            );
        }
        opts.events.emit_kind(
            opts.tool_call_id.clone(),
            EventKind::ExecutionStarted {
                timestamp: now_ms(),
                code_length: code.encode_utf16().count(),
            },
        );
        // Lines are counted as ECMAScript counts them, the same way on every driver.
        let code = crate::lines::normalize_line_terminators(code);
        let stripped = match strip_typescript(&code) {
            Ok(s) => s,
            Err(e) => {
                return self.finish(
                    &opts,
                    started,
                    Phase::Transpile,
                    CodeModeResult::failure(e),
                    trace,
                );
            }
        };
        let type_errors = match self.type_check(&code, &opts).await {
            Ok(errors) => errors,
            Err(error) => {
                return self.finish(
                    &opts,
                    started,
                    Phase::TypeCheck,
                    CodeModeResult::failure(error),
                    trace,
                );
            }
        };
        let mut result = self.run(stripped, opts, started, trace).await;
        result.type_errors = type_errors;
        result
    }

    /// Type-checks `code` when a mode is set: the errors to report with the result, or the
    /// `TypeCheckError` that stops it (`block` mode).
    async fn type_check(
        &self,
        code: &str,
        opts: &ExecuteOptions,
    ) -> Result<Vec<TypeDiagnostic>, ExecutionError> {
        let Some(setup) = &self.inner.type_check else {
            return Ok(Vec::new());
        };
        let mode = &setup.mode;
        let mut declarations = setup.declarations.clone();
        for extra in &opts.extra_bindings {
            declarations.push('\n');
            match extra.declaration() {
                Some(d) => declarations.push_str(d),
                None => declarations.push_str(&format!(
                    "declare function {}(input?: any): Promise<any>;",
                    extra.name()
                )),
            }
            declarations.push('\n');
        }
        let source = match &opts.expected_output {
            Some(schema) => {
                declarations.push('\n');
                declarations.push_str(&crate::stubs::type_declaration(schema, "ProgramResult"));
                declarations.push('\n');
                crate::typecheck::wrap_returning(code, "ProgramResult")
            }
            None => crate::typecheck::wrap(code),
        };
        let request = CheckRequest {
            declarations,
            source,
        };
        match (setup.checker.check(&request).await, mode) {
            (Ok(found), _) => {
                let found = crate::typecheck::to_program_lines(found, code);
                if *mode == TypeCheckMode::Block && !found.is_empty() {
                    let mut error = ExecutionError::new(
                        ErrorKind::TypeCheck,
                        crate::typecheck::block_message(&found),
                    );
                    error.line = found.first().map(|d| d.line);
                    return Err(error);
                }
                Ok(found)
            }
            (Err(e), TypeCheckMode::Block) => Err(ExecutionError::new(
                ErrorKind::TypeCheck,
                format!("The program could not be type-checked, so it did not run: {e}"),
            )),
            (Err(e), _) => {
                tracing::warn!(target: "code_mode", error = %e, "type check skipped; the program runs unchecked");
                Ok(Vec::new())
            }
        }
    }

    /// Runs already-stripped JavaScript, with the same events and reporting as
    /// [`CodeMode::execute`].
    pub async fn execute_javascript(&self, code: &str, opts: ExecuteOptions) -> CodeModeResult {
        let trace = self.trace(&opts, code.len());
        let span = trace.span.clone();
        self.execute_javascript_in(code, opts, &trace)
            .instrument(span)
            .await
    }

    async fn execute_javascript_in(
        &self,
        code: &str,
        opts: ExecuteOptions,
        trace: &ExecTrace,
    ) -> CodeModeResult {
        let started = Instant::now();
        opts.events.emit_kind(
            opts.tool_call_id.clone(),
            EventKind::ExecutionStarted {
                timestamp: now_ms(),
                code_length: code.encode_utf16().count(),
            },
        );
        let code = crate::lines::normalize_line_terminators(code);
        self.run(
            StrippedCode::javascript(code.into_owned()),
            opts,
            started,
            trace,
        )
        .await
    }

    async fn run(
        &self,
        stripped: StrippedCode,
        opts: ExecuteOptions,
        started: Instant,
        trace: &ExecTrace,
    ) -> CodeModeResult {
        let scope = ExecutionScope::for_options(&opts);
        // Fires when this execution ends, however it ends (this future dropped included):
        // tool calls still in flight see it in `ToolContext::cancel`.
        let _ends = scope.cancel.clone().drop_guard();
        if opts
            .cancel
            .as_ref()
            .is_some_and(CancellationToken::is_cancelled)
        {
            return self.finish(
                &opts,
                started,
                Phase::Execute,
                CodeModeResult::failure(cancelled()),
                trace,
            );
        }
        let clock = scope.clock.clone();
        let context = match self.create_context(&opts, trace, &scope).await {
            Ok(c) => c,
            Err(message) => {
                let error = ExecutionError::internal(message);
                return self.finish(
                    &opts,
                    started,
                    Phase::CreateContext,
                    CodeModeResult::failure(error),
                    trace,
                );
            }
        };
        // The driver enforces the timeout itself; this is the backstop for a driver that
        // does not, on the same clock (approval waits do not count).
        let budget = clock.budget(self.inner.limits.timeout());
        let app_cancel = async {
            match &opts.cancel {
                Some(token) => token.cancelled().await,
                None => std::future::pending().await,
            }
        };
        let outcome = tokio::select! {
            r = context.execute(&stripped.body) => Ok(r),
            () = budget.spent_plus(DRIVER_GRACE) => Err(ExecutionError::timeout(self.inner.limits.timeout())),
            () = app_cancel => Err(cancelled()),
        };
        scope.cancel.cancel();
        context.dispose().await;
        let mut result = match outcome {
            Ok(r) => CodeModeResult::from_execution(r),
            Err(e) => CodeModeResult::failure(e),
        };
        if let Some(err) = &mut result.error {
            err.line = err.line.and_then(|l| stripped.original_line(l));
        }
        self.finish(&opts, started, Phase::Execute, result, trace)
    }

    /// A fresh context with this call's bindings, limits and live console events.
    async fn create_context(
        &self,
        opts: &ExecuteOptions,
        trace: &ExecTrace,
        scope: &ExecutionScope,
    ) -> Result<Box<dyn IsolateContext>, String> {
        let bindings = self
            .bindings_traced(opts, trace, scope)
            .map_err(|e| e.to_string())?;
        let events = opts.events.clone();
        let id = opts.tool_call_id.clone();
        let (shared, values) = (trace.shared.clone(), trace.values);
        let console: ConsoleSink = Arc::new(move |level: LogLevel, message: &str| {
            let span = ExecTrace::shared_span(&shared);
            if message == crate::console::TRUNCATION_MARKER {
                tracing::event!(target: "code_mode", parent: &span, tracing::Level::INFO, "console truncated");
            } else if values {
                tracing::event!(target: "code_mode", parent: &span, tracing::Level::INFO, code_mode.console.level = level.as_str(), code_mode.console.bytes = message.len(), code_mode.console.message = message, "console");
            } else {
                tracing::event!(target: "code_mode", parent: &span, tracing::Level::INFO, code_mode.console.level = level.as_str(), code_mode.console.bytes = message.len(), "console");
            }
            events.emit_kind(
                id.clone(),
                EventKind::Console {
                    level,
                    message: message.to_owned(),
                    timestamp: now_ms(),
                },
            );
        });
        let config = ContextConfig {
            bindings,
            limits: self.inner.limits,
            console: Some(console),
            clock: scope.clock.clone(),
        };
        self.inner
            .driver
            .create_context(config)
            .await
            .map_err(|e| e.to_string())
    }

    fn finish(
        &self,
        opts: &ExecuteOptions,
        started: Instant,
        phase: Phase,
        result: CodeModeResult,
        trace: &ExecTrace,
    ) -> CodeModeResult {
        if let Some(err) = &result.error {
            tracing::debug!(target: "code_mode", phase = phase.as_str(), error = %err, "execute_typescript failed");
        }
        trace.finish(
            self.inner.driver.name(),
            &result,
            started.elapsed().as_secs_f64() * 1000.0,
        );
        opts.events.emit_kind(
            opts.tool_call_id.clone(),
            EventKind::ExecutionFinished {
                timestamp: now_ms(),
                duration_ms: started.elapsed().as_secs_f64() * 1000.0,
                phase,
                success: result.success,
                log_count: result.logs.len(),
                error: result.error.clone(),
            },
        );
        result
    }

    /// The bindings one execution gets: every tool (eager and lazy) as `external_<name>`,
    /// emitting `external_call`/`external_result`/`external_error` events, plus
    /// `opts.extra_bindings`.
    ///
    /// `scope` is the execution's: calls that need approval hold its clock while they wait
    /// (give the same clock to the context, its [`ContextConfig::clock`], so the wait does
    /// not count against the timeout), and tools see its cancellation token; cancel it when
    /// the execution ends.
    pub fn bindings(
        &self,
        opts: &ExecuteOptions,
        scope: &ExecutionScope,
    ) -> Result<Bindings, ToolDefinitionError> {
        self.bindings_traced(opts, &ExecTrace::current(self.inner.trace_values), scope)
    }

    fn bindings_traced(
        &self,
        opts: &ExecuteOptions,
        trace: &ExecTrace,
        scope: &ExecutionScope,
    ) -> Result<Bindings, ToolDefinitionError> {
        let gate = Gate {
            approver: opts
                .approver
                .clone()
                .or_else(|| self.inner.approver.clone()),
            cancel: scope.cancel.clone(),
            clock: scope.clock.clone(),
            outer_clock: opts.outer_clock.clone(),
            timeout: self.inner.limits.approval_timeout(),
            events: opts.events.clone(),
            tool_call_id: opts.tool_call_id.clone(),
        };
        let mut bindings = Bindings::new();
        for tool in &self.inner.tools {
            bindings.insert(tool_binding(
                tool.clone(),
                opts.tool_call_id.clone(),
                opts.events.clone(),
                trace,
                &gate,
            ))?;
        }
        for extra in &opts.extra_bindings {
            bindings.insert(traced_binding(extra.clone(), trace, &gate))?;
        }
        Ok(bindings)
    }

    /// Runs `discover_tools` on its input `{"toolNames": [...]}`: the stubs of the named lazy
    /// tools, and an `errors` list for unknown names.
    ///
    /// Eager tools are accepted too (their stubs are already in the prompt, but a model
    /// asking for them should not be told they do not exist).
    pub fn discover(&self, input: &Value) -> Value {
        let names: Vec<&str> = match input.get("toolNames").and_then(Value::as_array) {
            Some(names) => names.iter().filter_map(Value::as_str).collect(),
            None => {
                return json!({"tools": [], "errors": ["toolNames must be an array of tool names"]});
            }
        };
        let lazy: Vec<&Tool> = self.inner.tools.iter().filter(|t| t.is_lazy()).collect();
        let mut tools = Vec::new();
        let mut errors = Vec::new();
        let mut seen = Vec::new();
        for raw in names {
            let name = raw.strip_prefix("external_").unwrap_or(raw);
            if seen.contains(&name) {
                continue;
            }
            seen.push(name);
            match self.inner.tools.iter().find(|t| t.name() == name) {
                Some(tool) => tools.push(json!({
                    "name": format!("external_{}", tool.name()),
                    "description": tool.description(),
                    "typeStub": generate_stubs(&[tool]),
                })),
                None => {
                    let catalog: Vec<String> = lazy
                        .iter()
                        .map(|t| catalog_entry(t, CatalogDetail::NameOnly))
                        .collect();
                    errors.push(format!(
                        "Unknown tool: '{raw}'. Discoverable tools: [{}]",
                        catalog.join(", ")
                    ));
                }
            }
        }
        let mut out = json!({"tools": tools});
        if !errors.is_empty() {
            out["errors"] = json!(errors);
        }
        out
    }
}

fn tool_binding(
    tool: Tool,
    tool_call_id: Option<Arc<str>>,
    events: EventSink,
    trace: &ExecTrace,
    gate: &Gate,
) -> Binding {
    let gate = gate.clone();
    let function: Arc<str> = format!("external_{}", tool.name()).into();
    let (shared, calls, values) = (trace.shared.clone(), trace.calls.clone(), trace.values);
    Binding::unchecked(
        function.clone(),
        Arc::new(move |args: Value| {
            let tool = tool.clone();
            let events = events.clone();
            let id = tool_call_id.clone();
            let function = function.clone();
            let gate = gate.clone();
            calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let span = tool_call_span(&ExecTrace::shared_span(&shared), tool.name(), &function);
            if !span.is_disabled() {
                span.record("code_mode.input.bytes", crate::trace::json_bytes(&args));
                if values {
                    span.record("gen_ai.tool.call.arguments", args.to_string());
                }
            }
            let traced = span.clone();
            Box::pin(
                async move {
                    if events.is_active() {
                        events.emit_kind(
                            id.clone(),
                            EventKind::ExternalCall {
                                function: function.to_string(),
                                args: args.clone(),
                                timestamp: now_ms(),
                            },
                        );
                    }
                    let args = match admit(
                        &gate,
                        tool.approval_policy(),
                        &function,
                        args,
                        |edited| tool.validate_input(edited),
                        &traced,
                    )
                    .await
                    {
                        Ok(args) => args,
                        Err(denied) => {
                            events.emit_kind(
                                id,
                                EventKind::ExternalError {
                                    function: function.to_string(),
                                    error: denied.message.clone(),
                                    duration_ms: 0.0,
                                },
                            );
                            return Err(denied);
                        }
                    };
                    let start = Instant::now();
                    let ctx = ToolContext {
                        tool_call_id: id.clone(),
                        events: events.clone(),
                        span: traced.clone(),
                        approver: gate.approver.clone(),
                        clock: gate.clock.clone(),
                        cancel: gate.cancel.clone(),
                    };
                    let outcome = match AssertUnwindSafe(tool.call(args, ctx)).catch_unwind().await
                    {
                        Ok(r) => r,
                        Err(_) => Err(ToolError::new(
                            "The tool failed unexpectedly (its handler panicked)",
                        )),
                    };
                    let duration_ms = start.elapsed().as_secs_f64() * 1000.0;
                    record_tool_call(&traced, &tool, &outcome, duration_ms, values);
                    match outcome {
                        Ok(result) => {
                            if events.is_active() {
                                events.emit_kind(
                                    id,
                                    EventKind::ExternalResult {
                                        function: function.to_string(),
                                        result: result.clone(),
                                        duration_ms,
                                    },
                                );
                            }
                            Ok(result)
                        }
                        Err(e) => {
                            events.emit_kind(
                                id,
                                EventKind::ExternalError {
                                    function: function.to_string(),
                                    error: e.message().to_owned(),
                                    duration_ms,
                                },
                            );
                            Err(GuestError::error(e.message()))
                        }
                    }
                }
                .instrument(span),
            )
        }),
    )
}

/// An extra binding (a skill function, ...) whose calls get a `code_mode.tool_call` span
/// under the execution's, so work they start (a nested skill run) nests under the call.
fn traced_binding(binding: Binding, trace: &ExecTrace, gate: &Gate) -> Binding {
    let gate = gate.clone();
    let shared = trace.shared.clone();
    let calls = trace.calls.clone();
    let name: Arc<str> = binding.name().into();
    let declaration = binding.declaration().map(str::to_owned);
    let inner = binding.clone();
    let wrapped = Binding::unchecked(
        name.clone(),
        Arc::new(move |args: Value| {
            calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let span = tool_call_span(&ExecTrace::shared_span(&shared), &name, &name);
            let inner = inner.clone();
            let traced = span.clone();
            let gate = gate.clone();
            Box::pin(
                async move {
                    let args = admit(
                        &gate,
                        inner.approval_policy(),
                        inner.name(),
                        args,
                        |_| Ok(()),
                        &traced,
                    )
                    .await?;
                    let out = inner.call(args).await;
                    record_outcome(&traced, out.as_ref().err().map(|_| "Error"));
                    out
                }
                .instrument(span),
            )
        }),
    );
    match declaration {
        Some(d) => wrapped.with_declaration(d),
        None => wrapped,
    }
}

/// The input a call runs with: `args` when `policy` does not ask for approval, else what
/// the execution's approver decided; a refusal is recorded on the call's span.
async fn admit(
    gate: &Gate,
    policy: &ApprovalPolicy,
    function: &str,
    args: Value,
    validate: impl Fn(&Value) -> Result<(), String>,
    span: &tracing::Span,
) -> Result<Value, GuestError> {
    if !policy.applies(&args) {
        return Ok(args);
    }
    let asked = gate.ask(function, args, validate).await;
    if asked.is_err() {
        record_outcome(span, Some(APPROVAL_DENIED_ERROR));
    }
    asked
}

/// The span of one call from the program (`code_mode.tool_call`, see the `trace` module),
/// a child of its execution's.
fn tool_call_span(parent: &tracing::Span, tool: &str, function: &str) -> tracing::Span {
    tracing::info_span!(
        target: "code_mode",
        parent: parent,
        "code_mode.tool_call",
        otel.name = format!("execute_tool {function}"),
        otel.status_code = tracing::field::Empty,
        gen_ai.operation.name = "execute_tool",
        gen_ai.tool.name = tool,
        code_mode.function = function,
        code_mode.input.bytes = tracing::field::Empty,
        code_mode.output.bytes = tracing::field::Empty,
        code_mode.outcome = tracing::field::Empty,
        error.type = tracing::field::Empty,
        gen_ai.tool.call.arguments = tracing::field::Empty,
        gen_ai.tool.call.result = tracing::field::Empty,
    )
}

/// Records a call's outcome on its span (`ok`, or `error` with `error_type` and an error
/// status); returns the outcome's label.
fn record_outcome(span: &tracing::Span, error_type: Option<&str>) -> &'static str {
    let label = if error_type.is_some() { "error" } else { "ok" };
    if !span.is_disabled() {
        span.record("code_mode.outcome", label);
        if let Some(kind) = error_type {
            span.record("error.type", kind);
            span.record("otel.status_code", "ERROR");
        }
    }
    label
}

/// Records a tool call's outcome on its span, and the tool-call metrics.
fn record_tool_call(
    span: &tracing::Span,
    tool: &Tool,
    outcome: &Result<Value, ToolError>,
    duration_ms: f64,
    values: bool,
) {
    let label = record_outcome(span, outcome.as_ref().err().map(|_| "ToolError"));
    if !span.is_disabled() {
        match outcome {
            Ok(v) => {
                span.record("code_mode.output.bytes", crate::trace::json_bytes(v));
                if values {
                    span.record("gen_ai.tool.call.result", v.to_string());
                }
            }
            Err(e) if values => {
                span.record("gen_ai.tool.call.result", e.message());
            }
            Err(_) => {}
        }
    }
    tracing::event!(target: "code_mode::metrics", parent: None, tracing::Level::INFO,
        monotonic_counter.code_mode.tool_calls = 1u64,
        histogram.code_mode.tool_call.duration = duration_ms,
        gen_ai.tool.name = tool.name(),
        code_mode.outcome = label,
    );
}

fn execute_input_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "typescriptCode": {
                "type": "string",
                "description": "TypeScript code to run in the sandbox: the body of an async function. Use top-level await, call external_* functions, and return a JSON value."
            }
        },
        "required": ["typescriptCode"]
    })
}

fn discover_input_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "toolNames": {
                "type": "array",
                "items": {"type": "string"},
                "description": "Names of the functions to describe, as listed in the catalogue (the external_ prefix is optional)."
            }
        },
        "required": ["toolNames"]
    })
}

fn discover_output_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "tools": {"type": "array", "items": {"type": "object", "properties": {
                "name": {"type": "string"}, "description": {"type": "string"}, "typeStub": {"type": "string"}
            }, "required": ["name", "description", "typeStub"]}},
            "errors": {"type": "array", "items": {"type": "string"}}
        },
        "required": ["tools"]
    })
}
