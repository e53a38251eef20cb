//! The native side of `code-mode-node`: code-mode's in-process QuickJS sandbox behind
//! Node-API, for the JavaScript wrapper (`index.mjs`) that implements TanStack AI Code
//! Mode's `IsolateDriver`.
//!
//! Why this shape: the wrapper owns everything TanStack-specific (option names and defaults,
//! the result's fields, error names and log lines), and this side only runs programs. A
//! driver (`NativeDriver`) gets one JavaScript `dispatch(request)` function (a thread-safe
//! function, so tool calls reach Node's event loop from the engine's threads without
//! blocking it) shared by all its contexts: the request is `<call id>\n<context
//! id>\n<binding name>\n<input JSON>`, and the wrapper answers it later with
//! `settle(call id, answer)`, the answer `{"ok": value}` or `{"err": {"name", "message"}}`.
//! (Answering through `settle`, on Node's thread when the tool's promise settles, wakes the
//! engine thread once per call; awaiting a returned promise from Rust woke it twice.) Calls
//! in a `Promise.all` are dispatched at once, so the tools run concurrently. Programs run on code-mode's engine threads; `execute` hands the program
//! straight to one (`drive`) and waits at most the context's `spinMicros` for a quick
//! answer before it returns a promise, so Node's event loop is never blocked for longer.

mod drive;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use code_mode::{
    Binding, Bindings, CancellationToken, ContextConfig, ErrorKind, ExecutionError,
    ExecutionResult, GuestError, IsolateContext, IsolateDriver, Limits,
};
use code_mode_isolate_quickjs::QuickJsDriver;
use futures::FutureExt;
use napi::JsDeferred;
use napi::bindgen_prelude::{Either, Object, Result, Unknown};
use napi::threadsafe_function::ThreadsafeFunction;
use napi::{Env, Error, Status};
use napi_derive::napi;
use serde_json::{Value, json};

/// `dispatch(request: string) => void`, called from any thread; the answer comes through
/// [`NativeDriver::settle`]. Weak: it does not keep Node's event loop alive by itself (a
/// context a script forgets to dispose does not stop the process from exiting).
type Dispatch = ThreadsafeFunction<String, Unknown<'static>, String, Status, false, true>;

/// Tool calls waiting for their answer, by call id.
#[derive(Default)]
struct Waiting {
    next: std::sync::atomic::AtomicU64,
    calls: Mutex<std::collections::HashMap<u64, tokio::sync::oneshot::Sender<String>>>,
}

impl Waiting {
    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<u64, tokio::sync::oneshot::Sender<String>>>
    {
        self.calls.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Forgets a call whose future was dropped (the execution ended or was cancelled first), so
/// an answer that never comes leaves nothing behind.
struct Forget(Arc<Waiting>, u64);

impl Drop for Forget {
    fn drop(&mut self) {
        self.0.lock().remove(&self.1);
    }
}

/// Limits and bindings of a context, as the wrapper resolved them.
#[napi(object)]
pub struct NativeOptions {
    /// The context's id in its tool calls' requests.
    pub id: u32,
    /// Wall-clock timeout of each execution, in milliseconds (tool calls included).
    pub timeout_ms: f64,
    /// Memory limit in MiB.
    pub memory_mb: f64,
    /// Stack limit in bytes.
    pub stack_bytes: f64,
    /// Tool calls allowed per execution.
    pub max_tool_calls: u32,
    /// Largest result, in UTF-8 bytes of its JSON.
    pub max_result_bytes: f64,
    /// Console lines kept per execution.
    pub max_log_entries: u32,
    /// Console bytes kept per execution.
    pub max_log_bytes: f64,
    /// The global names of the bindings (`external_getWeather`, ...).
    pub bindings: Vec<String>,
    /// How long `execute` may wait on Node's thread for a quick program's answer, in
    /// microseconds (0: never; at most 10,000).
    pub spin_micros: u32,
}

fn driver() -> &'static QuickJsDriver {
    static DRIVER: OnceLock<QuickJsDriver> = OnceLock::new();
    // Values as TanStack's drivers give them: this addon is their drop-in replacement.
    DRIVER.get_or_init(|| {
        QuickJsDriver::builder()
            .value_style(code_mode_isolate_quickjs::ValueStyle::TanStack)
            .build()
    })
}

fn invalid(message: impl Into<String>) -> Error {
    Error::new(Status::InvalidArg, message.into())
}

/// A whole, non-negative JavaScript number as an integer, or a clear error naming `field`.
fn whole(value: f64, field: &str) -> Result<u64> {
    if !value.is_finite() || value < 0.0 || value.fract() != 0.0 || value > 1e15 {
        return Err(invalid(format!(
            "{field} must be a whole, positive number (got {value})"
        )));
    }
    Ok(value as u64)
}

fn limits(options: &NativeOptions) -> Result<Limits> {
    Limits::builder()
        .timeout(Duration::from_millis(whole(options.timeout_ms, "timeout")?))
        .memory_mib(whole(options.memory_mb, "memoryLimit")?)
        .stack_bytes(whole(options.stack_bytes, "maxStackSize")?)
        .max_tool_calls(options.max_tool_calls)
        .max_result_bytes(whole(options.max_result_bytes, "maxResultBytes")?)
        .max_log_entries(options.max_log_entries)
        .max_log_bytes(whole(options.max_log_bytes, "maxLogBytes")?)
        .build()
        .map_err(|e| invalid(e.to_string()))
}

/// The answer of `dispatch` as the guest sees it.
fn answer(text: &str) -> std::result::Result<Value, GuestError> {
    let parsed: Value = code_mode::driver::parse_guest_json(text)
        .map_err(|e| GuestError::error(format!("the tool's answer is not JSON: {e}")))?;
    if let Some(err) = parsed.get("err") {
        return Err(GuestError {
            name: err["name"].as_str().unwrap_or("Error").to_owned(),
            message: err["message"].as_str().unwrap_or_default().to_owned(),
        });
    }
    Ok(parsed.get("ok").cloned().unwrap_or(Value::Null))
}

fn bindings(
    names: &[String],
    context_id: u32,
    dispatch: &Arc<Dispatch>,
    waiting: &Arc<Waiting>,
    called: &Arc<AtomicBool>,
) -> Result<Bindings> {
    let mut out = Bindings::new();
    for name in names {
        let dispatch = dispatch.clone();
        let waiting = waiting.clone();
        let called = called.clone();
        let global = name.clone();
        let binding = Binding::new(name.clone(), move |args: Value| {
            let id = waiting.next.fetch_add(1, Ordering::Relaxed);
            let (answered, answer) = tokio::sync::oneshot::channel();
            waiting.lock().insert(id, answered);
            let forget = Forget(waiting.clone(), id);
            // The answer needs Node's thread: an `execute` spinning on it for a quick
            // answer stops at once (it would otherwise hold the call for its whole spin).
            called.store(true, Ordering::Release);
            // Queued on Node's thread now, not when the engine first polls the call: a call
            // the program does not await (`external_log({}); return 'done'`) still runs, as
            // it does in TanStack's drivers, even if the execution ends first.
            let queued = dispatch.call(
                format!("{id}\n{context_id}\n{global}\n{args}"),
                napi::threadsafe_function::ThreadsafeFunctionCallMode::NonBlocking,
            );
            Box::pin(async move {
                let _forget = forget;
                if queued != Status::Ok {
                    return Err(GuestError::error(format!(
                        "the tool could not be called: {queued}"
                    )));
                }
                let text = answer
                    .await
                    .map_err(|_| GuestError::error("the tool could not be called: Node.js is gone"))?;
                self::answer(&text)
            })
        })
        .map_err(|e| invalid(e.to_string()))?;
        out.insert(binding).map_err(|e| invalid(e.to_string()))?;
    }
    Ok(out)
}

/// One sandbox context: executions run one at a time, globals persist between them.
#[napi]
pub struct NativeContext {
    inner: Arc<dyn IsolateContext>,
    /// Fired by `dispose`: a running execution stops at once (its pending tool calls are
    /// dropped) instead of holding the context until its deadline.
    disposed: CancellationToken,
    /// How long `execute` waits for a quick answer before returning a promise.
    spin: Duration,
    /// Set when the running program calls a tool: its answer needs Node's thread, so
    /// `execute` stops waiting on it.
    called: Arc<AtomicBool>,
}

/// A driver: the one `dispatch` function through which all its contexts call their tools.
/// (One thread-safe function per driver, not per context: creating and releasing one costs
/// more than the rest of a context's creation.)
#[napi]
pub struct NativeDriver {
    dispatch: Arc<Dispatch>,
    waiting: Arc<Waiting>,
}

#[napi]
impl NativeDriver {
    /// A driver whose contexts call their tools through `dispatch("<call id>\n<context
    /// id>\n<binding name>\n<input JSON>")`; the wrapper answers each call with
    /// [`NativeDriver::settle`].
    #[napi(constructor)]
    pub fn new(dispatch: Dispatch) -> Self {
        Self {
            dispatch: Arc::new(dispatch),
            waiting: Arc::default(),
        }
    }

    /// Answers the call `id` with `answer` (`{"ok": value}` or `{"err": {"name", "message"}}`
    /// as JSON text). An answer for a call that is no longer waited for (its execution ended)
    /// is dropped.
    #[napi]
    pub fn settle(&self, id: f64, answer: String) {
        if !(id.is_finite() && id >= 0.0 && id.fract() == 0.0) {
            return;
        }
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let id = id as u64;
        if let Some(answered) = self.waiting.lock().remove(&id) {
            let _ = answered.send(answer);
        }
    }

    /// Creates a context with `options`; its tool calls carry `options.id`. Synchronous:
    /// the QuickJS driver takes a prepared engine from its pool without waiting on
    /// anything, so this costs no round trip through another thread.
    #[napi]
    pub fn create_context(&self, options: NativeOptions) -> Result<NativeContext> {
        let limits = limits(&options)?;
        if options.spin_micros > 10_000 {
            return Err(invalid(format!(
                "spinMicros must be at most 10000 (10 ms of Node's thread); got {}",
                options.spin_micros
            )));
        }
        let called = Arc::new(AtomicBool::new(false));
        let bindings = bindings(
            &options.bindings,
            options.id,
            &self.dispatch,
            &self.waiting,
            &called,
        )?;
        let config = ContextConfig::new(bindings).with_limits(limits);
        let created = driver()
            .create_context(config)
            .now_or_never()
            .ok_or_else(|| {
                Error::from_reason("the QuickJS driver could not create a context at once")
            })?;
        let context = created.map_err(|e| Error::from_reason(e.to_string()))?;
        Ok(NativeContext {
            inner: Arc::from(context),
            disposed: CancellationToken::new(),
            spin: Duration::from_micros(u64::from(options.spin_micros)),
            called,
        })
    }
}

/// Settles an execution's promise on Node's thread.
type Resolve = Box<dyn FnOnce(Env) -> Result<String> + Send>;

/// Where an execution's outcome goes: to `execute` while it waits, else to its promise.
#[derive(Default)]
struct Answer {
    /// Set with `Ready`, so the waiting `execute` spins on an atomic, not on the lock.
    ready: AtomicBool,
    state: Mutex<AnswerState>,
}

#[derive(Default)]
enum AnswerState {
    /// `execute` is still waiting.
    #[default]
    Waiting,
    /// Came while `execute` waited.
    Ready(String),
    /// `execute` returned a promise: settle it.
    Later(JsDeferred<String, Resolve>),
    Taken,
}

impl Answer {
    fn settle(&self, out: String) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        match std::mem::replace(&mut *state, AnswerState::Taken) {
            AnswerState::Later(deferred) => deferred.resolve(Box::new(move |_| Ok(out))),
            _ => {
                *state = AnswerState::Ready(out);
                self.ready.store(true, Ordering::Release);
            }
        }
    }
}

/// The outcome of an execution as the wrapper reads it.
fn outcome(result: ExecutionResult) -> String {
    let logs: Vec<String> = result.logs.iter().map(|l| l.to_line()).collect();
    let out = match result.outcome {
        // `value` only when the program returned one (TanStack leaves it out then).
        Ok(Some(value)) => json!({"ok": true, "value": value, "logs": logs}),
        Ok(None) => json!({"ok": true, "logs": logs}),
        Err(e) => json!({
            "ok": false,
            "error": {"name": e.kind.name(), "message": e.message, "line": e.line},
            "logs": logs,
        }),
    };
    out.to_string()
}

#[napi]
impl NativeContext {
    /// Runs a JavaScript function body. Its outcome, as JSON text: `{"ok": true, "value"?,
    /// "logs": [...]}` or `{"ok": false, "error": {"name", "message", "line"?}, "logs":
    /// [...]}`, `logs` in TanStack's line form.
    ///
    /// The program is handed straight to an engine thread and its answer comes straight back
    /// (see `drive`), never through a Tokio worker. A quick program's answer is awaited here
    /// for at most the context's `spin_micros` and returned as the string itself; past that,
    /// or with `spin_micros` 0, the result is a promise settled on Node's thread when the
    /// answer comes. (Waking Node's sleeping thread costs more than most quick programs.)
    #[napi(ts_return_type = "string | Promise<string>")]
    pub fn execute<'env>(
        &self,
        env: &'env Env,
        code: String,
    ) -> Result<Either<String, Object<'env>>> {
        let context = self.inner.clone();
        let disposed = self.disposed.clone();
        let run = async move {
            let result = tokio::select! {
                result = context.execute(&code) => result,
                () = disposed.cancelled() => ExecutionResult::err(
                    ExecutionError::new(ErrorKind::Disposed, "The context was disposed during the execution"),
                    Vec::new(),
                ),
            };
            outcome(result)
        };
        let answer = Arc::new(Answer::default());
        let settle = answer.clone();
        self.called.store(false, Ordering::Release);
        drive::spawn(run, move |out| settle.settle(out));
        let until = Instant::now() + self.spin;
        while !answer.ready.load(Ordering::Acquire)
            && !self.called.load(Ordering::Acquire)
            && Instant::now() < until
        {
            std::thread::yield_now();
        }
        let mut state = answer.state.lock().unwrap_or_else(PoisonError::into_inner);
        match std::mem::replace(&mut *state, AnswerState::Taken) {
            AnswerState::Ready(out) => Ok(Either::A(out)),
            _ => {
                let (deferred, promise) = env.create_deferred::<String, Resolve>()?;
                *state = AnswerState::Later(deferred);
                Ok(Either::B(promise))
            }
        }
    }

    /// Frees the context; idempotent. A running execution is stopped at once (its pending
    /// tool calls are dropped) and the engine freed when it has let go; later executions
    /// report `DisposedError`. Never waits on another thread.
    #[napi]
    pub fn dispose(&self) {
        self.disposed.cancel();
        let context = self.inner.clone();
        // Idle (the usual case): freed here and now. Running: the execution lets go of the
        // engine as soon as it sees the cancellation, and the engine is freed then.
        if context.dispose().now_or_never().is_none() {
            napi::bindgen_prelude::spawn(async move { context.dispose().await });
        }
    }
}
