//! One context lifecycle for every driver whose context owns an engine.
//!
//! Why: the drivers each wrote the same state machine (one execution at a time in call
//! order, the engine taken out while it runs, terminal failures and dispose leaving a
//! context that answers `DisposedError` with the reason, an execution cancelled half-way
//! losing the engine it held), and the copies drifted. A driver now implements only
//! [`Engine`], what is specific to its engine, and wraps it in an [`EngineContext`], which
//! implements [`IsolateContext`] once.

use async_trait::async_trait;
use tokio::sync::Mutex;

use crate::clock::{Budget, ExecutionClock};
use crate::driver::{ContextConfig, ExecutionResult, IsolateContext};
use crate::error::{ErrorKind, ExecutionError};
use crate::nesting::check_nesting;

/// The engine-specific part of a context: runs programs, and is freed.
///
/// ```
/// use code_mode::driver::{Budget, ContextConfig, Engine, EngineContext, ExecutionResult, IsolateContext};
/// use code_mode::async_trait;
///
/// /// An engine that answers every program with its length.
/// struct Counter;
///
/// #[async_trait]
/// impl Engine for Counter {
///     async fn run(self: Box<Self>, code: &str, time: &Budget) -> (Result<Box<Self>, Option<String>>, ExecutionResult) {
///         assert!(!time.expired());
///         let result = ExecutionResult::ok(Some(serde_json::json!(code.len())), Vec::new());
///         (Ok(self), result)
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let context = EngineContext::new(Box::new(Counter), &ContextConfig::default());
/// assert_eq!(context.execute("return 1").await.value(), Some(&serde_json::json!(8)));
/// context.dispose().await;
/// assert_eq!(context.execute("return 1").await.error().map(|e| e.kind.name()), Some("DisposedError"));
/// # }
/// ```
#[async_trait]
pub trait Engine: Send + 'static {
    /// Runs one program (a JavaScript function body) within `time`, the execution's budget on
    /// the context's clock (made by the context, once per execution: an engine never derives
    /// its own deadline). Gives the engine back (`Ok`) unless
    /// it cannot run again: then `Err` with the reason later executions are told, or `None`
    /// for the standard `DisposedError`. An engine given back after a terminal failure
    /// (timeout, memory, stack) is freed by the context.
    async fn run(
        self: Box<Self>,
        code: &str,
        time: &Budget,
    ) -> (Result<Box<Self>, Option<String>>, ExecutionResult);

    /// Frees the engine; called once, by `dispose` or after a terminal failure. By default
    /// the engine is dropped.
    fn free(self: Box<Self>) {
        drop(self);
    }
}

/// Where a context's engine is.
enum Slot<E> {
    Ready(Box<E>),
    /// Disposed (`None`) or dead, with the reason.
    Gone(Option<String>),
}

/// A context around an [`Engine`]: executions run one at a time in call order; code nested
/// past [`MAX_NESTING`](crate::driver::MAX_NESTING) is refused before the engine parses it; a
/// terminal failure or `dispose` frees the engine, and later executions report
/// `DisposedError` with the reason; an execution dropped half-way (its caller was
/// cancelled) loses the engine it held, and the context says so; `dispose` is idempotent.
pub struct EngineContext<E: Engine> {
    slot: Mutex<Slot<E>>,
    /// The clock and timeout every execution's budget is made from.
    clock: ExecutionClock,
    timeout: std::time::Duration,
}

impl<E: Engine> std::fmt::Debug for EngineContext<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineContext")
            .field("engine", &std::any::type_name::<E>())
            .finish_non_exhaustive()
    }
}

impl<E: Engine> EngineContext<E> {
    /// A context running on `engine`, whose executions are timed on `config`'s clock with
    /// its timeout.
    pub fn new(engine: Box<E>, config: &ContextConfig) -> Self {
        Self {
            slot: Mutex::new(Slot::Ready(engine)),
            clock: config.clock.clone(),
            timeout: config.limits.timeout(),
        }
    }
}

/// What a context dropped half-way through an execution tells the next ones.
const CANCELLED_HALF_WAY: &str =
    "an earlier execution on this context was cancelled half-way; create a new context";

#[async_trait]
impl<E: Engine> IsolateContext for EngineContext<E> {
    async fn execute(&self, code: &str) -> ExecutionResult {
        let mut guard = self.slot.lock().await;
        // Taken out while it runs: if this future is dropped half-way, the engine (possibly
        // stopped inside the guest) goes with it, and the context says why.
        let engine =
            match std::mem::replace(&mut *guard, Slot::Gone(Some(CANCELLED_HALF_WAY.into()))) {
                Slot::Ready(engine) => engine,
                Slot::Gone(why) => {
                    let error = match &why {
                        None => ExecutionError::disposed(),
                        Some(why) => ExecutionError::new(ErrorKind::Disposed, why.clone()),
                    };
                    *guard = Slot::Gone(why);
                    return ExecutionResult::err(error, Vec::new());
                }
            };
        // Refuse absurd nesting before the engine's recursive-descent parser sees it.
        if let Err(e) = check_nesting(code) {
            *guard = Slot::Ready(engine);
            return ExecutionResult::err(e, Vec::new());
        }
        // The execution's time budget, made once here and handed down.
        let time = self.clock.budget(self.timeout);
        let (back, result) = engine.run(code, &time).await;
        *guard = match back {
            Ok(engine) if result.error().is_some_and(|e| e.kind.is_terminal()) => {
                engine.free();
                Slot::Gone(None)
            }
            Ok(engine) => Slot::Ready(engine),
            Err(why) => Slot::Gone(why),
        };
        result
    }

    async fn dispose(&self) {
        let mut guard = self.slot.lock().await;
        if let Slot::Ready(engine) = std::mem::replace(&mut *guard, Slot::Gone(None)) {
            engine.free();
        }
    }
}
