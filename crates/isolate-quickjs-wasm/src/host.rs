//! What the guest can reach: the two `cm` imports (tool calls and console lines) and the five
//! WASI functions wasi-libc links in, stubbed by hand. There is no `wasmtime-wasi`: the guest
//! gets no files, no environment, no sockets, no arguments; only a clock (for `Date`).

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use code_mode::LogLevel;
use code_mode::driver::{HostBridge, LogBuffer};
use code_mode::durable::{Park, PendingCall};
use wasmtime::{
    AsContextMut, Caller, Engine, Instance, Linker, Memory, ResourceLimiter, StoreLimits,
    StoreLimitsBuilder, TypedFunc,
};

/// A tool call the guest made and the host has not started yet.
pub(crate) struct Request {
    /// The guest's call id (an i32 there, the same bits here).
    pub id: u32,
    pub future: code_mode::driver::BindingFuture,
}

/// The host side of one instance.
pub(crate) struct HostState {
    pub limits: StoreLimits,
    pub memory: Option<Memory>,
    pub bridge: Option<Arc<HostBridge>>,
    pub logs: Option<LogBuffer>,
    pub requests: Vec<Request>,
    /// Wall-clock deadline of the running execution, checked on every epoch tick.
    pub deadline: Option<Instant>,
    /// Which calls a durable execution holds back instead of starting.
    pub park: Option<Park>,
    /// The calls held back, waiting for an answer from outside.
    pub parked: Vec<PendingCall>,
}

impl HostState {
    /// The state used to pre-initialise the guest: no limits, no bindings.
    pub(crate) fn pre_init() -> Self {
        Self {
            limits: StoreLimitsBuilder::new().build(),
            memory: None,
            bridge: None,
            logs: None,
            requests: Vec::new(),
            deadline: None,
            park: None,
            parked: Vec::new(),
        }
    }

    pub(crate) fn new(memory_cap: usize, bridge: Arc<HostBridge>, logs: LogBuffer) -> Self {
        Self {
            limits: StoreLimitsBuilder::new()
                .memory_size(memory_cap)
                .instances(1)
                .memories(1)
                .tables(1)
                .trap_on_grow_failure(false)
                .build(),
            memory: None,
            bridge: Some(bridge),
            logs: Some(logs),
            requests: Vec::new(),
            deadline: None,
            park: None,
            parked: Vec::new(),
        }
    }

    pub(crate) fn limiter(&mut self) -> &mut dyn ResourceLimiter {
        &mut self.limits
    }
}

/// Records the instance's memory so the imports can read the guest's strings.
pub(crate) fn attach_memory(
    mut store: impl AsContextMut<Data = HostState>,
    instance: &Instance,
) -> wasmtime::Result<()> {
    let memory = instance
        .get_memory(&mut store, "memory")
        .ok_or_else(|| wasmtime::format_err!("the guest exports no memory"))?;
    store.as_context_mut().data_mut().memory = Some(memory);
    Ok(())
}

/// The guest's `cm_result_ptr/len` buffer as text.
pub(crate) async fn result_text(
    mut store: impl AsContextMut<Data = HostState>,
    result_ptr: &TypedFunc<(), i32>,
    result_len: &TypedFunc<(), i32>,
) -> wasmtime::Result<String> {
    let ptr = result_ptr.call_async(&mut store, ()).await?;
    let len = result_len.call_async(&mut store, ()).await?;
    let memory = store
        .as_context_mut()
        .data()
        .memory
        .ok_or_else(|| wasmtime::format_err!("no memory"))?;
    Ok(code_mode::driver::wtf8_to_string(slice(
        memory.data(&store),
        ptr,
        len,
    )?))
}

/// A guest (pointer, length) range, checked against the memory.
pub(crate) fn slice(data: &[u8], ptr: i32, len: i32) -> wasmtime::Result<&[u8]> {
    let start = usize::try_from(ptr)?;
    let end = start
        .checked_add(usize::try_from(len)?)
        .ok_or_else(|| wasmtime::format_err!("guest range overflows"))?;
    data.get(start..end)
        .ok_or_else(|| wasmtime::format_err!("guest range {start}..{end} is outside its memory"))
}

fn guest_string(
    caller: &mut Caller<'_, HostState>,
    ptr: i32,
    len: i32,
) -> wasmtime::Result<String> {
    let memory = caller
        .data()
        .memory
        .ok_or_else(|| wasmtime::format_err!("no memory"))?;
    Ok(code_mode::driver::wtf8_to_string(slice(
        memory.data(&*caller),
        ptr,
        len,
    )?))
}

const WASI_ERRNO_BADF: i32 = 8;
const WASI_ERRNO_INVAL: i32 = 28;

/// The imports every instance gets.
pub(crate) fn linker(engine: &Engine) -> wasmtime::Result<Linker<HostState>> {
    let mut linker = Linker::new(engine);
    linker.func_wrap("cm", "call", cm_call)?;
    linker.func_wrap("cm", "log", cm_log)?;
    // WASI preview 1: only what wasi-libc links in. A clock for `Date`; no file descriptors.
    linker.func_wrap("wasi_snapshot_preview1", "clock_time_get", clock_time_get)?;
    linker.func_wrap(
        "wasi_snapshot_preview1",
        "fd_write",
        |_: i32, _: i32, _: i32, _: i32| -> i32 { WASI_ERRNO_BADF },
    )?;
    linker.func_wrap("wasi_snapshot_preview1", "fd_close", |_: i32| -> i32 {
        WASI_ERRNO_BADF
    })?;
    linker.func_wrap(
        "wasi_snapshot_preview1",
        "fd_fdstat_get",
        |_: i32, _: i32| -> i32 { WASI_ERRNO_BADF },
    )?;
    linker.func_wrap(
        "wasi_snapshot_preview1",
        "fd_seek",
        |_: i32, _: i64, _: i32, _: i32| -> i32 { WASI_ERRNO_BADF },
    )?;
    Ok(linker)
}

/// `cm.call(id, name, args)`: the guest called a binding. 0 when the call was taken (queued,
/// or held back by a durable execution), 1 when refused at once (no bridge, past the budget).
fn cm_call(
    mut caller: Caller<'_, HostState>,
    id: i32,
    np: i32,
    nl: i32,
    ap: i32,
    al: i32,
) -> wasmtime::Result<i32> {
    let Some(bridge) = caller.data().bridge.clone() else {
        return Ok(1);
    };
    // Past the budget, refuse at once: nothing is queued, so a flood costs no host memory.
    if bridge.calls() >= bridge.max_calls() {
        return Ok(1);
    }
    let name = guest_string(&mut caller, np, nl)?;
    let args = guest_string(&mut caller, ap, al)?;
    // A value nested past the limit (or not JSON) is refused as on every driver: the call
    // throws a TypeError and no tool runs; it never reaches a tool changed.
    let future = match code_mode::parse_tool_input(&name, &args) {
        Ok(args) if held(caller.data(), &bridge, &name, &args) => match bridge.count() {
            Ok(()) => {
                caller.data_mut().parked.push(PendingCall {
                    call_id: id.cast_unsigned(),
                    function: name,
                    args,
                });
                return Ok(0);
            }
            Err(refused) => Box::pin(async move { Err(refused) }),
        },
        Ok(args) => bridge.call(&name, args),
        Err(message) => refuse(message),
    };
    caller.data_mut().requests.push(Request {
        id: id.cast_unsigned(),
        future,
    });
    Ok(0)
}

/// `cm.log(level, text)`: one console line, kept while the buffer has room.
fn cm_log(
    mut caller: Caller<'_, HostState>,
    level: i32,
    ptr: i32,
    len: i32,
) -> wasmtime::Result<()> {
    if caller.data().logs.as_ref().is_none_or(LogBuffer::is_full) {
        return Ok(());
    }
    let text = guest_string(&mut caller, ptr, len)?;
    let level = match level {
        1 => LogLevel::Info,
        2 => LogLevel::Warn,
        3 => LogLevel::Error,
        4 => LogLevel::Debug,
        _ => LogLevel::Log,
    };
    if let Some(logs) = caller.data_mut().logs.as_mut() {
        logs.push(level, text);
    }
    Ok(())
}

/// WASI `clock_time_get`: the wall clock in nanoseconds, whichever clock was asked for.
fn clock_time_get(
    mut caller: Caller<'_, HostState>,
    _id: i32,
    _precision: i64,
    out: i32,
) -> wasmtime::Result<i32> {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0);
    let Some(memory) = caller.data().memory else {
        return Ok(WASI_ERRNO_INVAL);
    };
    let Ok(at) = usize::try_from(out) else {
        return Ok(WASI_ERRNO_INVAL);
    };
    Ok(match memory.write(&mut caller, at, &nanos.to_le_bytes()) {
        Ok(()) => 0,
        Err(_) => WASI_ERRNO_INVAL,
    })
}

/// Whether a durable execution holds the call back (only calls of real bindings: any other
/// name fails as usual).
fn held(state: &HostState, bridge: &HostBridge, name: &str, args: &serde_json::Value) -> bool {
    state
        .park
        .as_ref()
        .is_some_and(|park| bridge.bindings().get(name).is_some() && park.applies(name, args))
}

/// A call refused by the host before any tool runs.
fn refuse(message: String) -> code_mode::driver::BindingFuture {
    Box::pin(async move {
        Err(code_mode::GuestError {
            name: "TypeError".into(),
            message,
        })
    })
}
