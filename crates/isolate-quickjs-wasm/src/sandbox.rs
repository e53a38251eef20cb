//! One wasm instance running one QuickJS realm, and the host loop of an execution.
//!
//! The loop is the core's call pump (`code_mode::driver::pump`, the same as the in-process
//! QuickJS driver's): write the wrapped program into the instance and start it (`cm_eval`);
//! while it is pending, the pump starts the tool calls it asked for (concurrently) and waits
//! for the next to finish (or the deadline); one step hands every finished result back
//! (`cm_deliver`) and lets QuickJS run the jobs they unblock (`cm_poll`). Every call into the
//! instance is short; while tool futures run, no guest code runs and nothing is blocked. A
//! program that runs too long is stopped by the epoch deadline, inside any guest call, and
//! the instance is thrown away.

use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::ops::ControlFlow;

use code_mode::driver::{
    BindingFuture, Delivery, FailureKind, GuestFailure, HostBridge, LogBuffer, PumpedEngine,
};
use code_mode::durable::{Park, Reply, ResumeError, Suspended};
use code_mode::{ContextConfig, ErrorKind, ExecutionError, Limits, serde_json};
use serde_json::Value;
use wasmtime::{Instance, Store, Trap, TypedFunc, UpdateDeadline};

use crate::guest::{Guest, MAX_JS_STACK, MAX_MEMORY, SHADOW_STACK};
use crate::host::{self, HostState, Request};
use crate::ticker;

type Outcome = Result<Option<Value>, ExecutionError>;

/// How a run of the guest ended: settled (or failed), or waiting only on calls held back
/// for a durable pause.
pub(crate) enum Run {
    Done(Outcome),
    Parked,
}

const PAGE: usize = 65536;

/// The message of the `RangeError` QuickJS throws when its stack guard fires (reported as
/// a stack overflow only when the guard did fire: [`EngineLimits::stack`]).
const ENGINE_STACK_OVERFLOW: &str = "Maximum call stack size exceeded";

/// Limits the engine saw hit in the current execution.
#[derive(Debug, Clone, Copy)]
struct EngineLimits {
    memory: bool,
    stack: bool,
}

/// Raised from the epoch callback when the wall-clock deadline has passed.
#[derive(Debug, thiserror::Error)]
#[error("the execution's deadline passed")]
struct DeadlineReached;

struct Exports {
    alloc: TypedFunc<i32, i32>,
    free: TypedFunc<i32, ()>,
    configure: TypedFunc<(i64, i32, i64, i32, i32), i32>,
    eval: TypedFunc<(i32, i32), i32>,
    deliver: TypedFunc<(i32, i32, i32), i32>,
    poll: TypedFunc<(), i32>,
    limits_hit: TypedFunc<(), i32>,
    result_ptr: TypedFunc<(), i32>,
    result_len: TypedFunc<(), i32>,
}

/// A live instance. Dropping it returns its slot to the pool.
pub(crate) struct Sandbox {
    store: Store<HostState>,
    f: Exports,
    limits: Limits,
    bridge: Arc<HostBridge>,
    config: ContextConfig,
    fuel: Option<u64>,
    /// Lines of the running program, to map error lines.
    code_lines: u32,
    /// Execution time used before the current run (a resumed execution's earlier part).
    used_before: Duration,
}

/// Why a sandbox can no longer run code.
pub(crate) struct Dead;

impl Sandbox {
    pub(crate) async fn new(
        guest: &Guest,
        config: ContextConfig,
        fuel: Option<u64>,
    ) -> Result<Self, String> {
        let heap = config.limits.memory_bytes().min(MAX_MEMORY / 2);
        let mut sandbox = Self::instantiate(guest, config, fuel).await?;
        sandbox.configure(heap).await?;
        Ok(sandbox)
    }

    /// A new instance of the guest (not configured yet).
    async fn instantiate(
        guest: &Guest,
        config: ContextConfig,
        fuel: Option<u64>,
    ) -> Result<Self, String> {
        let limits = config.limits;
        let heap = limits.memory_bytes().min(MAX_MEMORY / 2);
        // The hard cap: the snapshot, the heap and room for the allocator's own overhead.
        let cap = (guest.initial_bytes + heap + heap / 4 + (4 << 20)).min(MAX_MEMORY);
        let bridge = Arc::new(HostBridge::new(config.bindings.clone(), &limits));
        let state = HostState::new(
            usize::try_from(cap).unwrap_or(usize::MAX),
            bridge.clone(),
            LogBuffer::new(&limits, config.console.clone()),
        );
        let mut store = Store::new(&guest.engine, state);
        store.limiter(HostState::limiter);
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|ctx| match ctx.data().deadline {
            Some(at) if Instant::now() >= at => Err(wasmtime::Error::new(DeadlineReached)),
            _ => Ok(UpdateDeadline::Yield(1)),
        });
        if fuel.is_some() {
            store.set_fuel(u64::MAX).map_err(|e| e.to_string())?;
        }
        let instance = guest.pre.instantiate_async(&mut store).await.map_err(|e| {
            if guest.pooled {
                format!("cannot create a wasm instance: {e} (all pooled instance slots may be in use: dispose contexts, or raise max_instances)")
            } else {
                format!("cannot create a wasm instance: {e}")
            }
        })?;
        host::attach_memory(&mut store, &instance).map_err(|e| e.to_string())?;
        let f = exports(&mut store, &instance)
            .map_err(|e| format!("the guest module is not the expected one: {e}"))?;
        Ok(Self {
            store,
            f,
            limits,
            bridge,
            config,
            fuel,
            code_lines: 1,
            used_before: Duration::ZERO,
        })
    }

    /// An instance continuing a paused execution: the guest's memory as it was (its QuickJS
    /// realm, the program's promise, the prelude's state), the host records restored. The
    /// guest image only ever runs inside the sandbox; the memory cap of `config` applies to
    /// it like to any growth.
    pub(crate) async fn restore(
        guest: &Guest,
        config: ContextConfig,
        fuel: Option<u64>,
        suspended: Suspended,
    ) -> Result<Self, ResumeError> {
        let (pages, region) = split_image(&suspended.image)?;
        let mut sandbox = Self::instantiate(guest, config, fuel)
            .await
            .map_err(ResumeError::Driver)?;
        let memory = sandbox
            .store
            .data()
            .memory
            .ok_or_else(|| ResumeError::Driver("the guest has no memory".into()))?;
        let current = memory.size(&sandbox.store);
        if pages < current {
            return Err(ResumeError::Malformed(format!(
                "its memory of {pages} pages is smaller than the guest's initial {current}"
            )));
        }
        if memory.grow(&mut sandbox.store, pages - current).is_err() {
            return Err(ResumeError::Invalid(format!(
                "it holds {} MiB of sandbox memory, more than this configuration's memory limit of {} MiB allows",
                (pages * PAGE as u64) >> 20,
                sandbox.limits.memory_bytes() >> 20
            )));
        }
        let data = memory.data_mut(&mut sandbox.store);
        let Some(target) = data.get_mut(SHADOW_STACK as usize..) else {
            return Err(ResumeError::Driver(
                "the guest's memory is too small".into(),
            ));
        };
        if target.len() != region.len() {
            return Err(ResumeError::Malformed(
                "its memory image has the wrong size".into(),
            ));
        }
        target.copy_from_slice(region);
        sandbox.bridge.restore_calls(suspended.calls);
        let logs = code_mode::driver::LogBuffer::restore(
            &sandbox.limits,
            sandbox.config.console.clone(),
            suspended.logs,
        );
        sandbox.store.data_mut().logs = Some(logs);
        if let (Some(_), Some(left)) = (fuel, suspended.fuel) {
            sandbox
                .store
                .set_fuel(left)
                .map_err(|e| ResumeError::Driver(e.to_string()))?;
        }
        sandbox.store.data_mut().parked = suspended.pending;
        sandbox.used_before = suspended.used;
        sandbox.code_lines = suspended.code_lines;
        Ok(sandbox)
    }

    /// Holds back the calls `park` names (a durable execution).
    pub(crate) fn hold(&mut self, park: Park) {
        self.store.data_mut().park = Some(park);
    }

    /// The record of a paused execution: the guest's memory above its stack (at a pause no
    /// guest frame is live, so the stack holds nothing) and the host's records.
    pub(crate) fn suspend(&mut self, engine_id: [u8; 32]) -> Result<Suspended, String> {
        let fuel = match self.fuel {
            Some(_) => Some(self.store.get_fuel().map_err(|e| e.to_string())?),
            None => None,
        };
        let memory = self
            .store
            .data()
            .memory
            .ok_or_else(|| "the guest has no memory".to_owned())?;
        let data = memory.data(&self.store);
        let pages = u32::try_from(data.len() / PAGE).map_err(|e| e.to_string())?;
        let region = data
            .get(SHADOW_STACK as usize..)
            .ok_or_else(|| "the guest's memory is smaller than its stack".to_owned())?;
        let mut image = Vec::with_capacity(4 + region.len());
        image.extend_from_slice(&pages.to_le_bytes());
        image.extend_from_slice(region);
        let state = self.store.data_mut();
        Ok(Suspended {
            driver: crate::DRIVER_NAME.to_owned(),
            engine_id,
            bindings_id: code_mode::durable::bindings_id(&self.config.bindings),
            pending: std::mem::take(&mut state.parked),
            calls: self.bridge.calls(),
            logs: state
                .logs
                .as_ref()
                .map(LogBuffer::state)
                .unwrap_or_default(),
            used: self.used_before,
            code_lines: self.code_lines,
            fuel,
            image,
            meta: serde_json::Value::Null,
        })
    }

    /// What the context was created from.
    pub(crate) fn config(&self) -> &ContextConfig {
        &self.config
    }

    async fn configure(&mut self, heap: u64) -> Result<(), String> {
        let setup =
            code_mode::driver::PreludeSetup::new(&self.config.bindings, &self.limits).to_json();
        let stack = self.limits.stack_bytes().min(MAX_JS_STACK);
        let seed = RandomState::new().hash_one(Instant::now()) as i64;
        self.store.data_mut().deadline = Some(Instant::now() + self.limits.timeout());
        let _tick = ticker::Active::new();
        let result = async {
            let (ptr, len) = self.write(setup.as_bytes()).await?;
            let rc = self
                .f
                .configure
                .call_async(
                    &mut self.store,
                    (
                        i64::try_from(heap).unwrap_or(i64::MAX),
                        i32::try_from(stack).unwrap_or(i32::MAX),
                        seed,
                        ptr,
                        len,
                    ),
                )
                .await?;
            self.f.free.call_async(&mut self.store, ptr).await?;
            if rc != 0 {
                let why =
                    host::result_text(&mut self.store, &self.f.result_ptr, &self.f.result_len)
                        .await?;
                wasmtime::bail!("the sandbox could not be configured: {why}");
            }
            Ok(())
        }
        .await;
        self.store.data_mut().deadline = None;
        result.map_err(|e| e.to_string())
    }

    /// Copies bytes (plus a NUL) into the guest; returns their address and length.
    async fn write(&mut self, bytes: &[u8]) -> wasmtime::Result<(i32, i32)> {
        let len = i32::try_from(bytes.len())
            .map_err(|_| wasmtime::format_err!("input of {} bytes is too large", bytes.len()))?;
        let ptr = self.f.alloc.call_async(&mut self.store, len).await?;
        if ptr == 0 {
            return Err(wasmtime::Error::new(GuestOutOfMemory));
        }
        let memory = self
            .store
            .data()
            .memory
            .ok_or_else(|| wasmtime::format_err!("no memory"))?;
        let at = usize::try_from(ptr)?;
        memory.write(&mut self.store, at, bytes)?;
        memory.write(&mut self.store, at + bytes.len(), &[0])?;
        Ok((ptr, len))
    }

    /// Runs one program. `Err(Dead)` alongside the outcome means the instance must be dropped.
    pub(crate) async fn execute(
        &mut self,
        code: &str,
        time: &code_mode::driver::Budget,
    ) -> (Outcome, Result<(), Dead>) {
        match self.start(code, time).await {
            (Run::Done(outcome), alive) => (outcome, alive),
            (Run::Parked, _) => (
                Err(ExecutionError::internal(
                    "a call was held back outside a durable execution",
                )),
                Err(Dead),
            ),
        }
    }

    /// Starts one program and runs it until it settles or parks, within `time`.
    pub(crate) async fn start(
        &mut self,
        code: &str,
        time: &code_mode::driver::Budget,
    ) -> (Run, Result<(), Dead>) {
        self.bridge.begin_execution();
        self.used_before = Duration::ZERO;
        self.code_lines = u32::try_from(code.lines().count().max(1)).unwrap_or(u32::MAX);
        self.store.data_mut().deadline = Some(time.deadline());
        self.store.data_mut().requests.clear();
        if let Some(budget) = self.fuel
            && let Err(e) = self.store.set_fuel(budget)
        {
            return (
                Run::Done(Err(ExecutionError::internal(e.to_string()))),
                Err(Dead),
            );
        }
        let _tick = ticker::Active::new();
        let result = self.run(code, time).await;
        self.conclude(result, time)
    }

    /// Continues a restored execution: delivers the replies' outcomes and starts the calls
    /// they approve (uncounted: they were counted when held); held calls without a reply
    /// stay held. Runs until it settles or parks again, under what is left of its budget.
    pub(crate) async fn resume(&mut self, replies: Vec<(u32, Reply)>) -> (Run, Result<(), Dead>) {
        let time = self
            .config
            .clock
            .budget_after(self.limits.timeout(), self.used_before);
        let mut answers = Vec::with_capacity(replies.len());
        for (id, reply) in replies {
            let state = self.store.data_mut();
            let Some(at) = state.parked.iter().position(|c| c.call_id == id) else {
                continue;
            };
            let call = state.parked.remove(at);
            match reply {
                Reply::Deliver(outcome) => answers.push((id, outcome)),
                Reply::Run { input } => {
                    let future = self.bridge.start(&call.function, input);
                    self.store.data_mut().requests.push(Request { id, future });
                }
            }
        }
        let _tick = ticker::Active::new();
        let first = self.step(&mut answers, &time).await;
        let result = code_mode::driver::pump(self, first, &time).await;
        self.conclude(result, &time)
    }

    /// The end of a run: error lines mapped to the program's, terminal failures marked.
    fn conclude(
        &mut self,
        result: wasmtime::Result<Run>,
        time: &code_mode::driver::Budget,
    ) -> (Run, Result<(), Dead>) {
        self.store.data_mut().deadline = None;
        self.store.data_mut().requests.clear();
        let code_lines = self.code_lines;
        let fix = |mut e: ExecutionError| {
            e.line = e
                .line
                .and_then(|l| code_mode::driver::program_line(l, code_lines));
            e
        };
        match result {
            Ok(Run::Parked) => {
                self.used_before = time.used();
                (Run::Parked, Ok(()))
            }
            Ok(Run::Done(outcome)) => {
                let alive = match &outcome {
                    Err(e) if e.kind.is_terminal() => Err(Dead),
                    _ => Ok(()),
                };
                (Run::Done(outcome.map_err(fix)), alive)
            }
            Err(error) => (Run::Done(Err(self.classify_trap(&error, time))), Err(Dead)),
        }
    }

    pub(crate) fn take_logs(&mut self) -> Vec<code_mode::LogEntry> {
        self.store
            .data_mut()
            .logs
            .as_mut()
            .map(LogBuffer::take)
            .unwrap_or_default()
    }

    /// The program's outcome, or a wasm-level failure (a trap, the deadline) that ended it.
    async fn run(&mut self, code: &str, time: &code_mode::driver::Budget) -> wasmtime::Result<Run> {
        let source = code_mode::driver::program_source(code);
        let (ptr, len) = self.write(source.as_bytes()).await?;
        let rc = self.f.eval.call_async(&mut self.store, (ptr, len)).await?;
        self.f.free.call_async(&mut self.store, ptr).await?;
        let first = self.state(Ok(rc)).await;
        code_mode::driver::pump(self, first, time).await
    }

    /// The pump's view of the guest's answer to `cm_eval` or `cm_poll`.
    async fn state(&mut self, rc: wasmtime::Result<i32>) -> ControlFlow<wasmtime::Result<Run>> {
        ControlFlow::Break(match rc {
            Ok(1) => return ControlFlow::Continue(()),
            Ok(0) => self.settled().await.map(Run::Done),
            Ok(_) => self.internal_failure().await.map(|e| Run::Done(Err(e))),
            Err(e) => Err(e),
        })
    }

    /// Hands finished calls back to the guest and lets it run: `cm_deliver` each, then
    /// `cm_poll`.
    async fn deliver(&mut self, done: &mut Vec<Delivery>) -> wasmtime::Result<i32> {
        for (id, result) in done.drain(..) {
            let text = match result {
                Ok(value) => {
                    format!(
                        "v{}",
                        serde_json::to_string(&value).unwrap_or_else(|_| "null".into())
                    )
                }
                Err(e) => format!(
                    "e{}",
                    serde_json::json!({ "name": e.name, "message": e.message })
                ),
            };
            let (ptr, len) = self.write(text.as_bytes()).await?;
            let delivered = self
                .f
                .deliver
                .call_async(&mut self.store, (id.cast_signed(), ptr, len))
                .await?;
            self.f.free.call_async(&mut self.store, ptr).await?;
            if delivered != 0 {
                return Ok(-1);
            }
        }
        self.f.poll.call_async(&mut self.store, ()).await
    }

    /// The limits the engine itself saw hit in this execution (the glue's allocator refused
    /// an allocation; QuickJS's stack guard fired): the only ground for a limit error.
    async fn limits_hit(&mut self) -> wasmtime::Result<EngineLimits> {
        let bits = self.f.limits_hit.call_async(&mut self.store, ()).await?;
        Ok(EngineLimits {
            memory: bits & 1 != 0,
            stack: bits & 2 != 0,
        })
    }

    async fn oom(&mut self) -> wasmtime::Result<bool> {
        Ok(self.limits_hit().await?.memory)
    }

    /// A failure of the glue itself (it could not even describe the error): out of memory
    /// when the heap ran out, otherwise an internal error.
    async fn internal_failure(&mut self) -> wasmtime::Result<ExecutionError> {
        if self.oom().await? {
            return Ok(ExecutionError::memory_limit(self.limits.memory_bytes()));
        }
        Ok(ExecutionError::internal(
            "the sandbox failed without a description",
        ))
    }

    /// Reads and classifies the settled program's outcome.
    async fn settled(&mut self) -> wasmtime::Result<Outcome> {
        let text =
            host::result_text(&mut self.store, &self.f.result_ptr, &self.f.result_len).await?;
        if text == "u" {
            return Ok(Ok(None));
        }
        if let Some(json) = text.strip_prefix('v') {
            let bytes = json.len() as u64;
            if bytes > self.limits.max_result_bytes() {
                return Ok(Err(ExecutionError::result_too_large(
                    bytes,
                    self.limits.max_result_bytes(),
                )));
            }
            let depth = code_mode::driver::json_text_depth(json);
            if depth > code_mode::MAX_VALUE_DEPTH {
                return Ok(Err(ExecutionError::new(
                    ErrorKind::Result,
                    code_mode::driver::too_deep_message("The returned value", depth),
                )));
            }
            return Ok(code_mode::driver::parse_guest_json(json)
                .map(Some)
                .map_err(|e| {
                    ExecutionError::new(ErrorKind::Result, format!("the result is not JSON: {e}"))
                }));
        }
        // The record is the prelude's, inside the guest's realm: it may not report a limit.
        let failure: GuestFailure = text
            .strip_prefix('e')
            .and_then(|j| code_mode::driver::parse_guest_json(j).ok())
            .and_then(|v| serde_json::from_value::<GuestFailure>(v).ok())
            .map(GuestFailure::from_guest_realm)
            .unwrap_or_else(|| GuestFailure::unreadable(&text));
        let hit = self.limits_hit().await?;
        Ok(Err(self.classify(failure, hit)))
    }

    /// The guest's failure: the limits the engine saw hit first (its allocator's refusal,
    /// its stack guard, which the program may have seen as a `RangeError`), then the common
    /// protocol. The error's text decides nothing.
    fn classify(&self, f: GuestFailure, hit: EngineLimits) -> ExecutionError {
        if hit.memory && f.kind != FailureKind::Result {
            return ExecutionError::memory_limit(self.limits.memory_bytes());
        }
        if hit.stack
            && f.kind == FailureKind::Guest
            && !f.tool
            && f.name == "RangeError"
            && f.message == ENGINE_STACK_OVERFLOW
        {
            return ExecutionError::stack_overflow(self.limits.stack_bytes().min(MAX_JS_STACK));
        }
        f.into_error(&self.limits, "QuickJS-WASM driver")
    }

    fn classify_trap(
        &self,
        error: &wasmtime::Error,
        time: &code_mode::driver::Budget,
    ) -> ExecutionError {
        if error.is::<DeadlineReached>() || time.expired() {
            return ExecutionError::timeout(self.limits.timeout());
        }
        if error.is::<GuestOutOfMemory>() {
            return ExecutionError::memory_limit(self.limits.memory_bytes());
        }
        match error.downcast_ref::<Trap>() {
            Some(Trap::OutOfFuel) => ExecutionError::new(
                ErrorKind::Timeout,
                format!(
                    "Code execution used up its CPU budget of {} fuel units",
                    self.fuel.unwrap_or(0)
                ),
            ),
            Some(Trap::StackOverflow) => {
                ExecutionError::stack_overflow(self.limits.stack_bytes().min(MAX_JS_STACK))
            }
            Some(Trap::Interrupt) => ExecutionError::timeout(self.limits.timeout()),
            Some(trap) => {
                ExecutionError::internal(format!("the sandbox trapped ({trap}) and was discarded"))
            }
            None => {
                ExecutionError::internal(format!("the sandbox failed and was discarded: {error}"))
            }
        }
    }
}

/// A paused image: its page count and the memory above the stack.
fn split_image(image: &[u8]) -> Result<(u64, &[u8]), ResumeError> {
    let (pages, region) = image
        .split_first_chunk::<4>()
        .ok_or_else(|| ResumeError::Malformed("its memory image is truncated".into()))?;
    let pages = u64::from(u32::from_le_bytes(*pages));
    let expected = (pages as usize)
        .checked_mul(PAGE)
        .and_then(|b| b.checked_sub(SHADOW_STACK as usize));
    if pages > 65536 || expected != Some(region.len()) {
        return Err(ResumeError::Malformed(
            "its memory image does not match its page count".into(),
        ));
    }
    Ok((pages, region))
}

/// The guest's memory is exhausted: not even the input fits.
#[derive(Debug, thiserror::Error)]
#[error("the sandbox has no memory left for its input")]
struct GuestOutOfMemory;

fn exports(store: &mut Store<HostState>, instance: &Instance) -> wasmtime::Result<Exports> {
    Ok(Exports {
        alloc: instance.get_typed_func(&mut *store, "cm_alloc")?,
        free: instance.get_typed_func(&mut *store, "cm_free")?,
        configure: instance.get_typed_func(&mut *store, "cm_configure")?,
        eval: instance.get_typed_func(&mut *store, "cm_eval")?,
        deliver: instance.get_typed_func(&mut *store, "cm_deliver")?,
        poll: instance.get_typed_func(&mut *store, "cm_poll")?,
        limits_hit: instance.get_typed_func(&mut *store, "cm_limits")?,
        result_ptr: instance.get_typed_func(&mut *store, "cm_result_ptr")?,
        result_len: instance.get_typed_func(&mut *store, "cm_result_len")?,
    })
}

/// The core's call pump drives the guest: `cm_deliver` + `cm_poll` are one step.
impl PumpedEngine for Sandbox {
    type Output = wasmtime::Result<Run>;

    fn take_calls(&mut self, calls: &mut Vec<(u32, BindingFuture)>) {
        calls.extend(
            self.store
                .data_mut()
                .requests
                .drain(..)
                .map(|r| (r.id, r.future)),
        );
    }

    async fn step(
        &mut self,
        done: &mut Vec<Delivery>,
        time: &code_mode::driver::Budget,
    ) -> ControlFlow<Self::Output> {
        // Guest code entering now runs under what is left of the budget.
        self.store.data_mut().deadline = Some(time.deadline());
        let rc = self.deliver(done).await;
        self.state(rc).await
    }

    fn ended(&mut self, error: ExecutionError) -> Self::Output {
        Ok(Run::Done(Err(error)))
    }

    /// Waiting on nothing but held calls: the execution parks (a durable pause).
    fn idle(&mut self) -> Option<Self::Output> {
        (!self.store.data().parked.is_empty()).then_some(Ok(Run::Parked))
    }
}
