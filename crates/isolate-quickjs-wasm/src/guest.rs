//! The guest module, compiled once per process and pre-initialised.
//!
//! Creating a QuickJS runtime and realm and evaluating the prelude costs about a millisecond;
//! doing it for every context would dominate a `return 1 + 1`. So, as `wizer` does, the
//! module is run once up to the point where the engine is ready, its memory and globals are
//! captured, and a new module is written whose data segments *are* that state. wasmtime maps
//! those segments copy-on-write, and the pooling allocator keeps the slots warm, so a fresh
//! context is an instantiation of a ready engine: no QuickJS code runs to create it.

use std::sync::{Arc, OnceLock};

use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, InstancePre, Module, PoolingAllocationConfig,
    Store, Val,
};
use wasmtime_wizer::{InstanceState, SnapshotVal, ValType, Wizer};

use crate::cache;
use crate::host::{self, HostState};
use crate::ticker;

/// The guest as built by `build.rs`: QuickJS-ng + glue, a wasm32-wasi reactor.
pub(crate) static GUEST_WASM: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/quickjs-guest.wasm"));
/// How the core's guest prelude meets the C glue (`guest/hooks.js`).
const HOOKS: &str = include_str!("../guest/hooks.js");

/// The script evaluated at pre-initialisation: the core's prelude handed to the hooks.
fn prelude() -> String {
    format!("({HOOKS})({})", code_mode::driver::GUEST_PRELUDE)
}
/// The identity a paused image is bound to: the guest module, the prelude it was set up
/// with, the memory layout and the engine kind. Snapshots are tied to these exact bytes, so
/// a fleet that pauses on one host and resumes on another ships the same guest (the
/// prebuilt module, `CODE_MODE_QUICKJS_WASM`).
pub(crate) fn engine_id(kind: EngineKind) -> [u8; 32] {
    static IDS: OnceLock<[[u8; 32]; 2]> = OnceLock::new();
    let ids = IDS.get_or_init(|| {
        let id = |fuel: bool| {
            let mut bytes = Vec::with_capacity(GUEST_WASM.len() + (64 << 10));
            bytes.extend_from_slice(b"code-mode quickjs-wasm engine v1\0");
            bytes.extend_from_slice(&SHADOW_STACK.to_le_bytes());
            bytes.push(u8::from(fuel));
            bytes.extend_from_slice(GUEST_WASM);
            bytes.extend_from_slice(prelude().as_bytes());
            code_mode::durable::digest(&bytes)
        };
        [id(false), id(true)]
    });
    ids[usize::from(kind.fuel)]
}

/// Size of the guest's linear-memory stack, fixed when the guest is linked.
pub(crate) const SHADOW_STACK: u64 = parse_u64(env!("CODE_MODE_QJS_SHADOW_STACK"));
/// The largest JS stack limit this driver honours: the shadow stack minus room for the C
/// frames that run above QuickJS's check.
pub(crate) const MAX_JS_STACK: u64 = SHADOW_STACK - SHADOW_STACK / 8;
/// Native (wasm) stack allowed per call: each JS call level uses about three times as much
/// native stack as shadow stack, so this lets QuickJS's own check fire first.
const MAX_WASM_STACK: usize = 4 * MAX_JS_STACK as usize;
/// wasm32 addresses at most 4 GiB.
pub(crate) const MAX_MEMORY: u64 = 4 << 30;

const fn parse_u64(s: &str) -> u64 {
    let b = s.as_bytes();
    let mut i = 0;
    let mut n = 0u64;
    while i < b.len() {
        n = n * 10 + (b[i] - b'0') as u64;
        i += 1;
    }
    n
}

/// How an engine is configured; one compiled guest exists per variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct EngineKind {
    /// Deterministic CPU budget through fuel (costs some speed on every execution).
    pub fuel: bool,
}

/// A compiled, pre-initialised guest, ready to instantiate.
pub(crate) struct Guest {
    pub engine: Engine,
    pub pre: InstancePre<HostState>,
    /// Pages of linear memory the snapshot starts with (counted against the memory cap).
    pub initial_bytes: u64,
    pub pooled: bool,
}

impl std::fmt::Debug for Guest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guest")
            .field("initial_bytes", &self.initial_bytes)
            .field("pooled", &self.pooled)
            .finish_non_exhaustive()
    }
}

/// The guest for `kind`, built on first use and shared by every driver of the process.
pub(crate) async fn shared(kind: EngineKind, max_instances: u32) -> Result<Arc<Guest>, String> {
    static PLAIN: OnceLock<tokio::sync::OnceCell<Result<Arc<Guest>, String>>> = OnceLock::new();
    static FUEL: OnceLock<tokio::sync::OnceCell<Result<Arc<Guest>, String>>> = OnceLock::new();
    let cell = if kind.fuel { &FUEL } else { &PLAIN }.get_or_init(tokio::sync::OnceCell::new);
    cell.get_or_init(|| async move { Guest::build(kind, max_instances).await.map(Arc::new) })
        .await
        .clone()
}

fn config(kind: EngineKind, pooling: Option<u32>) -> Config {
    let mut config = Config::new();
    config
        .epoch_interruption(true)
        .consume_fuel(kind.fuel)
        .max_wasm_stack(MAX_WASM_STACK)
        .async_stack_size(MAX_WASM_STACK + (1 << 20))
        .memory_init_cow(true);
    if let Some(instances) = pooling {
        let mut pool = PoolingAllocationConfig::default();
        pool.total_core_instances(instances)
            .total_memories(instances)
            .total_tables(instances)
            .total_stacks(instances)
            .max_memory_size(MAX_MEMORY as usize);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    config
}

impl Guest {
    async fn build(kind: EngineKind, max_instances: u32) -> Result<Self, String> {
        // The pooling allocator reserves address space for every slot up front; where that is
        // not allowed (a low `ulimit -v`), fall back to allocating on demand.
        let (engine, pooled) = match Engine::new(&config(kind, Some(max_instances))) {
            Ok(e) => (e, true),
            Err(_) => (
                Engine::new(&config(kind, None))
                    .map_err(|e| format!("cannot create the wasm engine: {e}"))?,
                false,
            ),
        };
        let key = cache::key(&engine, &[GUEST_WASM, prelude().as_bytes()]);
        let cache_dir = cache::dir();
        let module = match cache_dir
            .as_deref()
            .and_then(|d| cache::load(d, &engine, &key))
        {
            Some(module) => module,
            None => {
                let snapshot = pre_initialise(&engine)
                    .await
                    .map_err(|e| format!("cannot pre-initialise the QuickJS guest: {e}"))?;
                let module = Module::new(&engine, &snapshot)
                    .map_err(|e| format!("cannot compile the QuickJS guest: {e}"))?;
                if let Some(dir) = &cache_dir {
                    cache::store(dir, &module, &key);
                }
                module
            }
        };
        let initial_bytes = module
            .exports()
            .find_map(|e| e.ty().memory().map(|m| m.minimum() * 65536))
            .unwrap_or(0);
        let linker =
            host::linker(&engine).map_err(|e| format!("cannot link the QuickJS guest: {e}"))?;
        ticker::register(&engine);
        let pre = linker
            .instantiate_pre(&module)
            .map_err(|e| format!("cannot prepare the QuickJS guest: {e}"))?;
        Ok(Self {
            engine,
            pre,
            initial_bytes,
            pooled,
        })
    }
}

/// Runs the guest up to a ready engine and returns a module that starts in that state.
async fn pre_initialise(engine: &Engine) -> wasmtime::Result<Vec<u8>> {
    let mut wizer = Wizer::new();
    wizer.init_func("cm_preinit");
    let (cx, instrumented) = wizer.instrument(GUEST_WASM)?;
    let module = Module::new(engine, &instrumented)?;
    let linker = host::linker(engine)?;
    let mut store = Store::new(engine, HostState::pre_init());
    store.set_epoch_deadline(u64::MAX / 2);
    // Only fails when the engine does not count fuel, which is then not needed.
    let _ = store.set_fuel(u64::MAX);
    let instance = linker.instantiate_async(&mut store, &module).await?;
    host::attach_memory(&mut store, &instance)?;
    instance
        .get_typed_func::<(), ()>(&mut store, "_initialize")?
        .call_async(&mut store, ())
        .await?;
    let alloc = instance.get_typed_func::<i32, i32>(&mut store, "cm_alloc")?;
    let prelude = prelude();
    let len = i32::try_from(prelude.len())?;
    let ptr = alloc.call_async(&mut store, len).await?;
    let memory = instance
        .get_memory(&mut store, "memory")
        .ok_or_else(|| wasmtime::format_err!("the guest exports no memory"))?;
    let mut text = prelude.into_bytes();
    text.push(0);
    memory.write(&mut store, usize::try_from(ptr)?, &text)?;
    let rc = instance
        .get_typed_func::<(i32, i32), i32>(&mut store, "cm_preinit")?
        .call_async(&mut store, (ptr, len))
        .await?;
    if rc != 0 {
        let ptr_fn = instance.get_typed_func(&mut store, "cm_result_ptr")?;
        let len_fn = instance.get_typed_func(&mut store, "cm_result_len")?;
        let detail = host::result_text(&mut store, &ptr_fn, &len_fn)
            .await
            .unwrap_or_default();
        wasmtime::bail!("the prelude failed ({rc}): {detail}");
    }
    instance
        .get_typed_func::<i32, ()>(&mut store, "cm_free")?
        .call_async(&mut store, ptr)
        .await?;
    wizer
        .snapshot(
            &cx,
            &mut Snapshotted {
                store: &mut store,
                instance,
            },
        )
        .await
}

struct Snapshotted<'a> {
    store: &'a mut Store<HostState>,
    instance: wasmtime::Instance,
}

impl InstanceState for Snapshotted<'_> {
    async fn global_get(&mut self, name: &str, _: ValType) -> SnapshotVal {
        let value = self
            .instance
            .get_global(&mut *self.store, name)
            .map(|g| g.get(&mut *self.store));
        match value {
            Some(Val::I32(x)) => SnapshotVal::I32(x),
            Some(Val::I64(x)) => SnapshotVal::I64(x),
            Some(Val::F32(x)) => SnapshotVal::F32(x),
            Some(Val::F64(x)) => SnapshotVal::F64(x),
            Some(Val::V128(x)) => SnapshotVal::V128(x.as_u128()),
            // The guest has only numeric globals (checked by the instrumentation).
            _ => SnapshotVal::I32(0),
        }
    }

    async fn memory_contents(&mut self, name: &str, contents: impl FnOnce(&[u8]) + Send) {
        match self.instance.get_memory(&mut *self.store, name) {
            Some(memory) => contents(memory.data(&*self.store)),
            None => contents(&[]),
        }
    }
}
