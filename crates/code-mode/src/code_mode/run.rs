//! One execution: type check, strip, create a context with the bindings, run, report.

use super::CodeMode;
use super::options::DRIVER_GRACE;
use super::options::ExecuteOptions;
use super::options::ExecutionScope;
use super::options::cancelled;
use super::tool_calls::tool_binding;
use super::tool_calls::traced_binding;
use crate::approval::Gate;
use crate::bindings::Bindings;
use crate::console::ConsoleSink;
use crate::console::LogLevel;
use crate::driver::ContextConfig;
use crate::driver::IsolateContext;
use crate::error::ErrorKind;
use crate::error::ExecutionError;
use crate::error::ToolDefinitionError;
use crate::events::EventKind;
use crate::events::Phase;
use crate::events::now_ms;
use crate::result::CodeModeResult;
use crate::trace::ExecTrace;
use crate::typecheck::CheckRequest;
use crate::typecheck::TypeCheckMode;
use crate::typecheck::TypeDiagnostic;
use crate::typescript::StrippedCode;
use crate::typescript::strip_typescript;
use std::sync::Arc;
use std::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

impl CodeMode {
    /// Strips, runs and reports one TypeScript program in a fresh sandbox context.
    pub async fn execute(&self, code: &str, opts: ExecuteOptions) -> CodeModeResult {
        let trace = self.trace(&opts, code.len());
        let span = trace.span.clone();
        self.execute_in(code, opts, &trace).instrument(span).await
    }

    pub(super) fn trace(&self, opts: &ExecuteOptions, code_bytes: usize) -> ExecTrace {
        ExecTrace::start(
            self.inner.driver.name(),
            opts.tool_call_id.as_deref(),
            code_bytes,
            self.inner.trace_values,
        )
    }

    pub(super) async fn execute_in(
        &self,
        code: &str,
        opts: ExecuteOptions,
        trace: &ExecTrace,
    ) -> CodeModeResult {
        let started = Instant::now();
        match self.prepare(code, &opts).await {
            Ok((stripped, type_errors)) => {
                let mut result = self.run(stripped, opts, started, trace).await;
                result.type_errors = type_errors;
                result
            }
            Err((phase, error)) => {
                self.finish(&opts, started, phase, CodeModeResult::failure(error), trace)
            }
        }
    }

    /// Everything before the sandbox: the size check, the started event, stripping and the
    /// type check. A failure says in which phase it happened.
    pub(super) async fn prepare(
        &self,
        code: &str,
        opts: &ExecuteOptions,
    ) -> Result<(StrippedCode, Vec<TypeDiagnostic>), (Phase, ExecutionError)> {
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
            return Err((Phase::ValidateInput, error));
        }
        started_event(opts, code);
        // Lines are counted as ECMAScript counts them, the same way on every driver.
        let code = crate::lines::normalize_line_terminators(code);
        let stripped = strip_typescript(&code).map_err(|e| (Phase::Transpile, e))?;
        let type_errors = self
            .type_check(&code, opts)
            .await
            .map_err(|e| (Phase::TypeCheck, e))?;
        Ok((stripped, type_errors))
    }

    /// Type-checks `code` when a mode is set: the errors to report with the result, or the
    /// `TypeCheckError` that stops it (`block` mode).
    pub(super) async fn type_check(
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

    pub(super) async fn execute_javascript_in(
        &self,
        code: &str,
        opts: ExecuteOptions,
        trace: &ExecTrace,
    ) -> CodeModeResult {
        let started = Instant::now();
        started_event(&opts, code);
        let code = crate::lines::normalize_line_terminators(code);
        self.run(
            StrippedCode::javascript(code.into_owned()),
            opts,
            started,
            trace,
        )
        .await
    }

    pub(super) async fn run(
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
    pub(super) async fn create_context(
        &self,
        opts: &ExecuteOptions,
        trace: &ExecTrace,
        scope: &ExecutionScope,
    ) -> Result<Box<dyn IsolateContext>, String> {
        let config = self.context_config(opts, trace, scope, false)?;
        self.inner
            .driver
            .create_context(config)
            .await
            .map_err(|e| e.to_string())
    }

    /// The configuration of this call's context: its bindings (`held`: approvals are
    /// answered outside, see [`Gate::held`]), limits, live console events and clock.
    pub(super) fn context_config(
        &self,
        opts: &ExecuteOptions,
        trace: &ExecTrace,
        scope: &ExecutionScope,
        held: bool,
    ) -> Result<ContextConfig, String> {
        let bindings = self
            .bindings_traced(opts, trace, scope, held)
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
        Ok(ContextConfig {
            bindings,
            limits: self.inner.limits,
            console: Some(console),
            clock: scope.clock.clone(),
        })
    }

    pub(super) fn finish(
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
        self.bindings_traced(
            opts,
            &ExecTrace::current(self.inner.trace_values),
            scope,
            false,
        )
    }

    pub(super) fn bindings_traced(
        &self,
        opts: &ExecuteOptions,
        trace: &ExecTrace,
        scope: &ExecutionScope,
        held: bool,
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
            held,
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
}

/// `code_mode:execution_started`, with the program's length in UTF-16 units (as TanStack
/// counts it).
fn started_event(opts: &ExecuteOptions, code: &str) {
    opts.events.emit_kind(
        opts.tool_call_id.clone(),
        EventKind::ExecutionStarted {
            timestamp: now_ms(),
            code_length: code.encode_utf16().count(),
        },
    );
}
