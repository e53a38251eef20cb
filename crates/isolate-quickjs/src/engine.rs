//! One QuickJS runtime + context, and the host loop that runs an execution.
//!
//! The loop: evaluate the wrapped body (an async IIFE, so its value is a promise), then hand
//! it to the core's call pump (`code_mode::driver::pump`, shared with the QuickJS-WASM
//! driver), which starts the tool calls the guest requested, waits for the next (or the
//! deadline) and detects deadlock. One step of it is one entry into the engine: resolve the
//! finished calls' promises, drain the job queue, look at the program's promise.
//!
//! Every entry into the engine goes through [`QuickJsEngine::enter`], which guarantees native stack
//! headroom above the configured QuickJS stack limit. QuickJS measures its stack limit from the
//! stack top recorded when the engine is entered (rquickjs's `parallel` feature re-records it
//! on each entry), so with the headroom guaranteed a runaway recursion always hits QuickJS's
//! own check first.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Instant;

use std::ops::ControlFlow;

use code_mode::driver::{BindingFuture, Delivery, HostBridge, LogBuffer, PumpedEngine};
use code_mode::{
    Bindings, ContextConfig, ExecutionError, ExecutionResult, GuestError, Limits, LogLevel,
    serde_json,
};
use rquickjs::context::EvalOptions;
use rquickjs::function::{Opt, Rest};
use rquickjs::{Context, Ctx, Function, Object, Persistent, Promise, Runtime, Value};

use crate::convert::ValueStyle;
use crate::convert::{self, Thrown};
use crate::pool::{Blank, Budget, Pool};

/// Name of the evaluated script, used to find guest frames in stack traces.
pub(crate) const SCRIPT_NAME: &str = "<code>";
/// Native stack kept free above QuickJS's own limit for Rust frames and host callbacks.
const STACK_MARGIN: usize = 256 * 1024;
/// Jobs run between deadline checks when the job queue never empties.
const JOBS_PER_CHECK: u32 = 1024;

fn base() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

/// The current deadline, read by the interrupt handler on every check; once cancelled (the
/// caller dropped the execution), it has passed for good: the engine is discarded after.
#[derive(Debug, Default)]
pub(crate) struct Deadline(AtomicU64, std::sync::atomic::AtomicBool);

impl Deadline {
    fn set(&self, at: Instant) {
        let nanos = at
            .saturating_duration_since(base())
            .as_nanos()
            .min(u128::from(u64::MAX - 1));
        self.0.store(nanos as u64, Ordering::Relaxed);
    }
    /// Disarmed: nothing is interrupted between executions (no guest code runs then).
    fn disarm(&self) {
        self.0.store(u64::MAX, Ordering::Relaxed);
    }
    pub(crate) fn passed(&self) -> bool {
        if self.1.load(Ordering::Relaxed) {
            return true;
        }
        let at = self.0.load(Ordering::Relaxed);
        at != u64::MAX && base().elapsed().as_nanos() >= u128::from(at)
    }
    /// Stops the guest at its next interrupt check, whatever it is doing.
    pub(crate) fn cancel(&self) {
        self.1.store(true, Ordering::Relaxed);
    }
}

/// Resolve/reject functions of a guest promise waiting on the host, and the error it
/// rejects with if the call fails (made at the call, so it carries the call's line).
struct Resolvers {
    resolve: Persistent<Function<'static>>,
    reject: Persistent<Function<'static>>,
    site: Persistent<Object<'static>>,
}

impl Resolvers {
    /// Releases the handles inside the engine, for a call that will never be delivered.
    fn release(self, ctx: &Ctx<'_>) {
        drop(self.resolve.restore(ctx));
        drop(self.reject.restore(ctx));
        drop(self.site.restore(ctx));
    }
}

/// The program's promise, held by the host loop across awaits.
struct ProgramPromise(Persistent<Promise<'static>>);

// SAFETY: as for `Resolvers` below; the program promise is restored (and so released)
// inside the engine before `run` returns.
unsafe impl Send for ProgramPromise {}

// SAFETY: the handles are only created, restored and dropped while the owning engine is
// entered through `Context::with`/`Runtime` calls, which take the runtime lock (rquickjs
// `parallel`), and the engine itself is only used by one task at a time (the context's
// mutex). They never outlive the runtime: `QuickJsEngine::shutdown` and `QuickJsEngine::clear_pending`
// release them inside the engine before it is dropped.
unsafe impl Send for Resolvers {}

type CallResult = Result<serde_json::Value, GuestError>;

/// A running program: the engine and the program's promise, driven by the core's call pump.
struct Program<'a> {
    engine: &'a mut QuickJsEngine,
    promise: ProgramPromise,
}

impl Program<'_> {
    /// The pump's view of a pass through the engine.
    fn settle(&self, pass: Result<Option<Outcome>, ExecutionError>) -> ControlFlow<Outcome> {
        match pass {
            Err(e) => ControlFlow::Break(Err(e)),
            Ok(Some(outcome)) => ControlFlow::Break(outcome),
            Ok(None) => ControlFlow::Continue(()),
        }
    }
}

impl PumpedEngine for Program<'_> {
    type Output = Outcome;

    fn take_calls(&mut self, calls: &mut Vec<(u32, BindingFuture)>) {
        for req in self.engine.shared.requests().drain(..) {
            self.engine.pending.push((req.id, req.resolvers));
            calls.push((req.id, req.future));
        }
    }

    async fn step(
        &mut self,
        done: &mut Vec<Delivery>,
        time: &code_mode::driver::Budget,
    ) -> ControlFlow<Outcome> {
        // One entry into the engine per round: deliver finished calls, run the jobs they
        // unblock, then look at the program's promise.
        let deliveries = self.engine.take_deliveries(done);
        self.engine.shared.deadline.set(time.deadline());
        let pass = self.engine.pass(deliveries, &self.promise);
        self.settle(pass)
    }

    fn ended(&mut self, error: ExecutionError) -> Outcome {
        Err(error)
    }
}

/// A tool call the guest made and the host has not started yet.
struct Request {
    id: u32,
    resolvers: Resolvers,
    future: BindingFuture,
}

/// Cancels an execution when dropped armed: the caller went away (a client cancelled), so
/// the guest stops at its next interrupt check instead of computing to its deadline.
pub(crate) struct Canceller(Option<Arc<Shared>>);

impl Canceller {
    /// The execution finished: nothing to cancel.
    pub(crate) fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for Canceller {
    fn drop(&mut self) {
        if let Some(shared) = self.0.take() {
            shared.deadline.cancel();
        }
    }
}

/// State shared between the host loop and the host functions installed in the guest.
pub(crate) struct Shared {
    bridge: HostBridge,
    logs: Mutex<LogBuffer>,
    requests: Mutex<Vec<Request>>,
    next_id: AtomicU64,
    pub(crate) deadline: Deadline,
    /// The guest heap budget; `exhausted` is set when the heap hit the memory limit.
    pub(crate) budget: Arc<Budget>,
    /// Addresses of the errors this execution's tool calls rejected with that read exactly
    /// like the engine's stack overflow (a JavaScript tool that overflowed its own stack):
    /// such a thrown value is the tool's error, never the engine's. Compared only, never
    /// followed; a freed address reused by the engine's own error could only make a real
    /// overflow read as the program's own error, which a program that catches it gets anyway.
    tool_errors: Mutex<Vec<usize>>,
}

impl Shared {
    fn tool_errors(&self) -> MutexGuard<'_, Vec<usize>> {
        self.tool_errors.lock().unwrap_or_else(|p| p.into_inner())
    }
    pub(crate) fn logs(&self) -> MutexGuard<'_, LogBuffer> {
        self.logs.lock().unwrap_or_else(|p| p.into_inner())
    }
    fn requests(&self) -> MutexGuard<'_, Vec<Request>> {
        self.requests.lock().unwrap_or_else(|p| p.into_inner())
    }
}

pub(crate) struct QuickJsEngine {
    // Field order is drop order: no JS handle may outlive the context and runtime.
    pending: Vec<(u32, Resolvers)>,
    shared: Arc<Shared>,
    context: Context,
    /// Owned so that it is dropped last, after every handle and the realm.
    #[allow(dead_code)]
    runtime: Runtime,
    limits: Limits,
    style: ValueStyle,
}

type Outcome = Result<Option<serde_json::Value>, ExecutionError>;

impl QuickJsEngine {
    /// Builds the engine of a context, on a pooled blank engine when one is given.
    pub(crate) fn new(
        config: ContextConfig,
        blank: Option<Blank>,
        style: ValueStyle,
    ) -> Result<Self, String> {
        let limits = config.limits;
        let red_zone = limits.stack_bytes() as usize + STACK_MARGIN;
        stacker::maybe_grow(red_zone, red_zone * 2, move || {
            let Blank {
                context,
                runtime,
                budget,
            } = match blank {
                Some(b) => b,
                None => Blank::create()?,
            };
            budget.limit.store(
                usize::try_from(limits.memory_bytes()).unwrap_or(usize::MAX),
                Ordering::Relaxed,
            );
            let shared = Arc::new(Shared {
                bridge: HostBridge::new(config.bindings.clone(), &limits),
                logs: Mutex::new(LogBuffer::new(&limits, config.console.clone())),
                requests: Mutex::new(Vec::new()),
                next_id: AtomicU64::new(0),
                deadline: Deadline::default(),
                budget,
                tool_errors: Mutex::new(Vec::new()),
            });
            shared.deadline.disarm();
            let s = shared.clone();
            runtime.set_interrupt_handler(Some(Box::new(move || s.deadline.passed())));
            context
                .with(|ctx| {
                    // Straight to QuickJS: rquickjs's `set_max_stack_size` turns any limit
                    // above 16 MiB into "no limit", and a deep recursion then overflows the
                    // native stack. Every limit the core accepts (up to 64 MiB) is enforced;
                    // `enter` guarantees that much native stack.
                    // SAFETY: `ctx` is entered (the runtime is locked); plain setter.
                    unsafe {
                        let rt = rquickjs::qjs::JS_GetRuntime(ctx.as_raw().as_ptr());
                        rquickjs::qjs::JS_SetMaxStackSize(rt, limits.stack_bytes() as _);
                    }
                    install(&ctx, &shared, &config.bindings)
                })
                .map_err(|e| format!("cannot install the sandbox globals: {e}"))?;
            Ok(Self {
                pending: Vec::new(),
                shared,
                context,
                runtime,
                limits,
                style,
            })
        })
    }

    /// The guest heap budget: a caller that gives up on a runaway engine sets its limit to
    /// zero, so the next allocation inside the running built-in fails and ends it.
    pub(crate) fn budget(&self) -> Arc<Budget> {
        self.shared.budget.clone()
    }

    /// Cancels the running (or next) execution from another thread: see [`Deadline::cancel`].
    pub(crate) fn canceller(&self) -> Canceller {
        Canceller(Some(self.shared.clone()))
    }

    /// Wall-clock budget of one execution.
    pub(crate) fn timeout(&self) -> std::time::Duration {
        self.limits.timeout()
    }

    /// Runs `f` inside the engine with guaranteed stack headroom.
    fn enter<R>(&self, f: impl FnOnce(Ctx<'_>) -> R) -> R {
        let red_zone = self.limits.stack_bytes() as usize + STACK_MARGIN;
        stacker::maybe_grow(red_zone, red_zone * 2, || self.context.with(f))
    }

    pub(crate) async fn execute(
        &mut self,
        code: &str,
        time: &code_mode::driver::Budget,
    ) -> ExecutionResult {
        self.shared.bridge.begin_execution();
        self.shared.tool_errors().clear();
        self.shared.budget.exhausted.store(false, Ordering::Relaxed);
        self.shared.deadline.set(time.deadline());
        let outcome = self.run(code, time).await;
        self.clear_pending();
        self.shared.deadline.disarm();
        let logs = self.shared.logs().take();
        ExecutionResult { outcome, logs }
    }

    async fn run(&mut self, code: &str, time: &code_mode::driver::Budget) -> Outcome {
        // QuickJS takes the source as a C string: a raw NUL (legal inside string, template
        // and regex literals) would cut it. `\x00` means the same character in all three.
        let code: std::borrow::Cow<'_, str> = if code.contains('\0') {
            code.replace('\0', "\\x00").into()
        } else {
            code.into()
        };
        // The core's wrapper, called at once.
        let mut source = code_mode::driver::program_source(&code);
        source.push_str("()");
        let code_lines = u32::try_from(code.lines().count().max(1)).unwrap_or(u32::MAX);
        let line_of = move |line: Option<u32>| {
            line.and_then(|l| code_mode::driver::program_line(l, code_lines))
        };
        let promise = self.enter(|ctx| {
            let mut opts = EvalOptions::default();
            opts.global = true;
            opts.strict = false;
            opts.filename = Some(SCRIPT_NAME.to_owned());
            match ctx.eval_with_options::<Value<'_>, _>(source, opts) {
                Ok(value) => match value.into_promise() {
                    Some(p) => Ok(ProgramPromise(Persistent::save(&ctx, p))),
                    None => Err(ExecutionError::internal(
                        "the wrapped program did not produce a promise",
                    )),
                },
                Err(_) => Err(self.caught(&ctx)),
            }
        });
        let promise = promise.map_err(|e| fix_line(e, &line_of))?;
        // Guest code entering now runs under what is left of the budget.
        self.shared.deadline.set(time.deadline());
        let first = self.pass(Vec::new(), &promise);
        let mut program = Program {
            engine: self,
            promise,
        };
        let first = program.settle(first);
        let result = code_mode::driver::pump(&mut program, first, time).await;
        // Release the program's promise inside the engine.
        let Program { engine, promise } = program;
        engine.enter(|ctx| drop(promise.0.restore(&ctx)));
        result.map_err(|e| fix_line(e, &line_of))
    }

    /// Pairs finished calls with the resolvers of their guest promises.
    fn take_deliveries(&mut self, completed: &mut Vec<Delivery>) -> Vec<(Resolvers, CallResult)> {
        let mut out = Vec::with_capacity(completed.len());
        for (id, result) in completed.drain(..) {
            if let Some(pos) = self.pending.iter().position(|(p, _)| *p == id) {
                let (_, resolvers) = self.pending.swap_remove(pos);
                out.push((resolvers, result));
            }
        }
        out
    }

    /// Delivers results, drains the job queue and checks the program, in one engine entry.
    fn pass(
        &self,
        deliveries: Vec<(Resolvers, CallResult)>,
        promise: &ProgramPromise,
    ) -> Result<Option<Outcome>, ExecutionError> {
        self.enter(|ctx| {
            let mut deliveries = deliveries.into_iter();
            while let Some((resolvers, result)) = deliveries.next() {
                if deliver(&ctx, resolvers, result, &self.shared).is_err() {
                    // Release the remaining handles inside the engine before failing.
                    for (r, _) in deliveries.by_ref() {
                        r.release(&ctx);
                    }
                    return Err(self.caught(&ctx));
                }
            }
            self.drain_jobs(&ctx)?;
            Ok(self.settled(&ctx, promise))
        })
    }

    /// Runs queued promise jobs until none is left. A job only fails for uncatchable reasons
    /// (the interrupt, or out of memory in the engine's own machinery).
    fn drain_jobs(&self, ctx: &Ctx<'_>) -> Result<(), ExecutionError> {
        let mut ran = 0u32;
        // SAFETY: `ctx` is entered (the runtime lock is held); `job_ctx` receives a borrowed
        // pointer that is not used beyond this call.
        let rt = unsafe { rquickjs::qjs::JS_GetRuntime(ctx.as_raw().as_ptr()) };
        loop {
            let mut job_ctx = std::ptr::null_mut();
            let status = unsafe { rquickjs::qjs::JS_ExecutePendingJob(rt, &mut job_ctx) };
            match status {
                0 => return Ok(()),
                s if s < 0 => return Err(self.caught(ctx)),
                _ => {
                    ran = ran.wrapping_add(1);
                    if ran.is_multiple_of(JOBS_PER_CHECK) && self.shared.deadline.passed() {
                        return Err(ExecutionError::timeout(self.limits.timeout()));
                    }
                }
            }
        }
    }

    /// The program's outcome if its promise has settled.
    fn settled<'js>(&self, ctx: &Ctx<'js>, promise: &ProgramPromise) -> Option<Outcome> {
        let promise = match promise.0.clone().restore(ctx) {
            Ok(p) => p,
            Err(_) => return Some(Err(self.caught(ctx))),
        };
        match promise.state() {
            rquickjs::promise::PromiseState::Pending => None,
            rquickjs::promise::PromiseState::Resolved => {
                let value = match promise.result::<Value<'js>>() {
                    Some(Ok(v)) => v,
                    _ => return Some(Err(self.caught(ctx))),
                };
                Some(
                    convert::to_result(ctx, value, &self.limits, self.style)
                        .map_err(|t| self.classify(ctx, t)),
                )
            }
            rquickjs::promise::PromiseState::Rejected => {
                let _ = promise.result::<Value<'js>>();
                Some(Err(self.caught(ctx)))
            }
        }
    }

    /// Takes the pending exception of `ctx` and classifies it.
    fn caught<'js>(&self, ctx: &Ctx<'js>) -> ExecutionError {
        let value = ctx.catch();
        self.classify(ctx, Thrown::Value(value))
    }

    /// The outcome of a thrown value. Time and memory come from what the engine observed
    /// (the deadline the interrupt handler reads, the allocator's refusal), never from the
    /// thrown value's text.
    fn classify<'js>(&self, ctx: &Ctx<'js>, thrown: Thrown<'js>) -> ExecutionError {
        if self.shared.deadline.passed() {
            // Drop whatever was thrown without running guest code: time is up.
            return ExecutionError::timeout(self.limits.timeout());
        }
        if self.shared.budget.exhausted.load(Ordering::Relaxed) {
            // Whatever was thrown, the heap ran out: the context cannot be trusted further.
            return ExecutionError::memory_limit(self.limits.memory_bytes());
        }
        // A copy: reading the thrown value's `name` may run a getter of the program.
        let tool_errors = self.shared.tool_errors().clone();
        convert::classify(
            ctx,
            thrown,
            &self.limits,
            &self.shared.deadline,
            self.style,
            &|obj| tool_errors.contains(&convert::address(obj)),
        )
    }

    /// Drops the handles of calls that will never be delivered (the program finished or
    /// failed without awaiting them); their host futures were already dropped.
    fn clear_pending(&mut self) {
        let pending = std::mem::take(&mut self.pending);
        let requests = std::mem::take(&mut *self.shared.requests());
        if pending.is_empty() && requests.is_empty() {
            return;
        }
        self.enter(|ctx| {
            for (_, r) in pending {
                r.release(&ctx);
            }
            for req in requests {
                req.resolvers.release(&ctx);
            }
        });
    }

    /// Releases every JS handle; the context and the runtime are then freed by `pool`
    /// (off the critical path) or inline.
    pub(crate) fn shutdown(mut self: Box<Self>, pool: &Pool) {
        self.clear_pending();
        self.shared.deadline.disarm();
        pool.retire(self);
    }
}

impl Drop for QuickJsEngine {
    fn drop(&mut self) {
        // Handles dropped outside `shutdown` (e.g. a panic unwinding) still go first.
        self.clear_pending();
    }
}

/// Resolves or rejects one guest promise with a host result.
fn deliver<'js>(
    ctx: &Ctx<'js>,
    resolvers: Resolvers,
    result: Result<serde_json::Value, GuestError>,
    shared: &Shared,
) -> rquickjs::Result<()> {
    let resolve = resolvers.resolve.restore(ctx)?;
    let reject = resolvers.reject.restore(ctx)?;
    let site = resolvers.site.restore(ctx)?;
    match result {
        Ok(value) => {
            let text = serde_json::to_string(&value).unwrap_or_else(|_| "null".into());
            let js = ctx.json_parse(text)?;
            call_in_place(ctx, &resolve, js)
        }
        Err(err) => {
            convert::name_error(&site, &err.name, &err.message)?;
            if err.name == "RangeError" && err.message == convert::ENGINE_STACK_OVERFLOW {
                shared.tool_errors().push(convert::address(&site));
            }
            call_in_place(ctx, &reject, site.into_value())
        }
    }
}

fn fix_line(
    mut e: ExecutionError,
    line_of: &impl Fn(Option<u32>) -> Option<u32>,
) -> ExecutionError {
    e.line = line_of(e.line);
    e
}

/// Installs `console` and the bindings as globals.
fn install<'js>(ctx: &Ctx<'js>, shared: &Arc<Shared>, bindings: &Bindings) -> rquickjs::Result<()> {
    let globals = ctx.globals();
    let console = Object::new(ctx.clone())?;
    for level in [
        LogLevel::Log,
        LogLevel::Info,
        LogLevel::Warn,
        LogLevel::Error,
        LogLevel::Debug,
    ] {
        let s = shared.clone();
        let f = Function::new(ctx.clone(), move |ctx: Ctx<'js>, args: Rest<Value<'js>>| {
            console_call(&s, &ctx, level, args)
        })?
        .with_name(level.as_str())?;
        console.set(level.as_str(), f)?;
    }
    globals.set("console", console)?;
    for binding in bindings.iter() {
        let s = shared.clone();
        let name: Arc<str> = binding.name().into();
        let f = Function::new(ctx.clone(), move |ctx: Ctx<'js>, input: Opt<Value<'js>>| {
            host_call(&s, &name, &ctx, input)
        })?
        .with_name(binding.name())?;
        globals.set(binding.name(), f)?;
    }
    Ok(())
}

fn console_call<'js>(
    shared: &Shared,
    ctx: &Ctx<'js>,
    level: LogLevel,
    args: Rest<Value<'js>>,
) -> rquickjs::Result<()> {
    if shared.logs().is_full() {
        return Ok(());
    }
    let mut line = String::new();
    for (i, arg) in args.0.into_iter().enumerate() {
        if i > 0 {
            line.push(' ');
        }
        line.push_str(&convert::format_value(ctx, arg, &shared.deadline)?);
    }
    shared.logs().push(level, line);
    Ok(())
}

/// Calls `f(arg)` from inside a host callback without moving QuickJS's stack top.
///
/// rquickjs's `Function::call` re-records the stack top at the caller's stack pointer on
/// every call and never restores it. Called from a callback deep in a guest recursion, that
/// moves the stack limit down by the callback's depth; a program doing it repeatedly would
/// recurse past the real end of the stack and abort the process. A plain `JS_Call` keeps the
/// limit measured from where the engine was entered.
fn call_in_place<'js>(ctx: &Ctx<'js>, f: &Function<'js>, arg: Value<'js>) -> rquickjs::Result<()> {
    let raw = ctx.as_raw().as_ptr();
    let mut argv = [arg.as_raw()];
    // SAFETY: `ctx` is entered; `f` and `arg` are live values of it (borrowed for the call);
    // the returned value is owned by us and freed once.
    unsafe {
        let ret = rquickjs::qjs::JS_Call(
            raw,
            f.as_raw(),
            rquickjs::qjs::JS_UNDEFINED,
            1,
            argv.as_mut_ptr(),
        );
        if rquickjs::qjs::JS_IsException(ret) {
            return Err(rquickjs::Error::Exception);
        }
        rquickjs::qjs::JS_FreeValue(raw, ret);
    }
    Ok(())
}

fn host_call<'js>(
    shared: &Shared,
    name: &Arc<str>,
    ctx: &Ctx<'js>,
    input: Opt<Value<'js>>,
) -> rquickjs::Result<Promise<'js>> {
    let (promise, resolve, reject) = ctx.promise()?;
    // Past the budget, refuse at once: nothing is queued, so a flood costs no host memory.
    if shared.bridge.calls() >= shared.bridge.max_calls() {
        let err = convert::make_error(
            ctx,
            "ToolCallLimitError",
            &format!(
                "Exceeded the maximum of {} tool calls per execution",
                shared.bridge.max_calls()
            ),
        )?;
        call_in_place(ctx, &reject, err)?;
        return Ok(promise);
    }
    let args = match input.0 {
        None => serde_json::Value::Object(Default::default()),
        Some(v) if v.is_undefined() => serde_json::Value::Object(Default::default()),
        Some(v) => match convert::to_json(ctx, name, v)? {
            Ok(json) => json,
            Err(message) => {
                let err = convert::make_error(ctx, "TypeError", &message)?;
                call_in_place(ctx, &reject, err)?;
                return Ok(promise);
            }
        },
    };
    // Made now, while the guest's frames are on the stack: a failed call rejects with it.
    let site = convert::new_error(ctx)?;
    let id = shared.next_id.fetch_add(1, Ordering::Relaxed) as u32;
    let future = shared.bridge.call(name, args);
    shared.requests().push(Request {
        id,
        resolvers: Resolvers {
            resolve: Persistent::save(ctx, resolve),
            reject: Persistent::save(ctx, reject),
            site: Persistent::save(ctx, site),
        },
        future,
    });
    Ok(promise)
}
