//! Host functions exposed to the guest, and the per-execution bridge drivers call them through.
//!
//! A [`Binding`] is a named async function `Value -> Result<Value, GuestError>`; the map key
//! is the global name the guest sees (`external_getWeather`). [`HostBridge`] is what a driver
//! holds: it looks bindings up, counts calls against
//! [`Limits::max_tool_calls`](crate::Limits::max_tool_calls), and turns handler panics into
//! errors, so that every driver enforces the same rules with no code of its own.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use futures::FutureExt;
use futures::future::BoxFuture;
use serde_json::Value;

use crate::error::ToolDefinitionError;
use crate::identifier::check_binding_name;
use crate::limits::Limits;

/// An error delivered into the guest as a rejected promise: `name` becomes the thrown
/// error's `name`, `message` its message. No host stack or path is ever included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestError {
    /// Error class name seen by the guest (`Error`, `ToolCallLimitError`, ...).
    pub name: String,
    /// Message seen by the guest.
    pub message: String,
}

impl GuestError {
    /// A plain `Error` with `message`.
    pub fn error(message: impl Into<String>) -> Self {
        Self {
            name: "Error".into(),
            message: message.into(),
        }
    }
}

/// The future of a host call.
pub type BindingFuture = BoxFuture<'static, Result<Value, GuestError>>;

pub(crate) type BindingFn = dyn Fn(Value) -> BindingFuture + Send + Sync;

/// One host function exposed as a global of the guest.
#[derive(Clone)]
pub struct Binding {
    name: Arc<str>,
    call: Arc<BindingFn>,
    declaration: Option<Arc<str>>,
    approval: crate::approval_policy::ApprovalPolicy,
}

impl std::fmt::Debug for Binding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Binding")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Binding {
    /// Creates a binding; `name` must be an identifier that does not shadow a sandbox global.
    ///
    /// ```
    /// use code_mode::{Binding, GuestError};
    /// let echo = Binding::new("external_echo", |args| Box::pin(async move { Ok::<_, GuestError>(args) })).unwrap();
    /// assert_eq!(echo.name(), "external_echo");
    /// assert!(Binding::new("JSON", |a| Box::pin(async move { Ok(a) })).is_err());
    /// ```
    pub fn new(
        name: impl Into<String>,
        call: impl Fn(Value) -> BindingFuture + Send + Sync + 'static,
    ) -> Result<Self, ToolDefinitionError> {
        let name: String = name.into();
        check_binding_name(&name).map_err(|problem| ToolDefinitionError::InvalidBinding {
            name: name.clone(),
            problem,
        })?;
        Ok(Self {
            name: name.into(),
            call: Arc::new(call),
            declaration: None,
            approval: crate::approval_policy::ApprovalPolicy::Never,
        })
    }

    /// The binding with the TypeScript declarations the model is shown for it (used by the
    /// type check; without them it is declared as taking and returning anything).
    ///
    /// ```
    /// use code_mode::{Binding, GuestError};
    /// let skill = Binding::new("skill_total", |a| Box::pin(async move { Ok::<_, GuestError>(a) }))
    ///     .unwrap()
    ///     .with_declaration("declare function skill_total(input: { n: number }): Promise<number>;");
    /// assert!(skill.declaration().unwrap().contains("skill_total"));
    /// ```
    pub fn with_declaration(mut self, declaration: impl Into<String>) -> Self {
        self.declaration = Some(declaration.into().into());
        self
    }

    /// Calls of this binding need approval when run through [`CodeMode`](crate::CodeMode)
    /// (skills marked so use it); see the `approval` module.
    #[must_use]
    pub fn with_approval(mut self, policy: crate::approval_policy::ApprovalPolicy) -> Self {
        self.approval = policy;
        self
    }

    /// When calls need approval.
    pub fn approval_policy(&self) -> &crate::approval_policy::ApprovalPolicy {
        &self.approval
    }

    /// The declarations set by [`Binding::with_declaration`].
    pub fn declaration(&self) -> Option<&str> {
        self.declaration.as_deref()
    }

    /// A binding whose name the caller has already checked.
    pub(crate) fn unchecked(name: Arc<str>, call: Arc<BindingFn>) -> Self {
        Self {
            name,
            call,
            declaration: None,
            approval: crate::approval_policy::ApprovalPolicy::Never,
        }
    }

    /// Global name in the guest.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Calls the host function.
    pub fn call(&self, args: Value) -> BindingFuture {
        (self.call)(args)
    }
}

/// An ordered set of bindings with unique names.
#[derive(Debug, Clone, Default)]
pub struct Bindings {
    list: Vec<Binding>,
}

impl Bindings {
    /// No bindings.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a binding; a repeated name is an error rather than a silent overwrite.
    pub fn insert(&mut self, binding: Binding) -> Result<(), ToolDefinitionError> {
        if self.get(binding.name()).is_some() {
            return Err(ToolDefinitionError::Duplicate {
                name: binding.name().to_owned(),
            });
        }
        self.list.push(binding);
        Ok(())
    }

    /// Adds a binding, builder style.
    pub fn with(mut self, binding: Binding) -> Result<Self, ToolDefinitionError> {
        self.insert(binding)?;
        Ok(self)
    }

    /// Looks a binding up by global name.
    pub fn get(&self, name: &str) -> Option<&Binding> {
        self.list.iter().find(|b| &*b.name == name)
    }

    /// Bindings in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = &Binding> {
        self.list.iter()
    }

    /// Number of bindings.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
}

/// What a driver calls when the guest invokes a binding: lookup, call budget, panic safety.
#[derive(Debug)]
pub struct HostBridge {
    bindings: Bindings,
    max_calls: u32,
    calls: AtomicU32,
}

impl HostBridge {
    /// A bridge over `bindings` enforcing `limits`.
    pub fn new(bindings: Bindings, limits: &Limits) -> Self {
        Self {
            bindings,
            max_calls: limits.max_tool_calls(),
            calls: AtomicU32::new(0),
        }
    }

    /// The bindings.
    pub fn bindings(&self) -> &Bindings {
        &self.bindings
    }

    /// Resets the call budget; drivers call it at the start of each execution.
    pub fn begin_execution(&self) {
        self.calls.store(0, Ordering::Relaxed);
    }

    /// Tool calls allowed per execution.
    pub fn max_calls(&self) -> u32 {
        self.max_calls
    }

    /// Calls made in the current execution (including refused ones past the cap).
    pub fn calls(&self) -> u32 {
        self.calls.load(Ordering::Relaxed)
    }

    /// True once the guest has tried more calls than allowed.
    pub fn over_budget(&self) -> bool {
        self.calls() > self.max_calls
    }

    /// Sets the calls made so far: a driver resuming a paused execution continues its
    /// budget instead of starting a new one.
    pub fn restore_calls(&self, calls: u32) {
        self.calls.store(calls, Ordering::Relaxed);
    }

    /// Starts the call `name(args)`. Past the budget the call is refused with a
    /// `ToolCallLimitError` the guest can catch; a panicking handler becomes an `Error`.
    pub fn call(&self, name: &str, args: Value) -> BindingFuture {
        if let Err(refused) = self.count() {
            return Box::pin(async move { Err(refused) });
        }
        self.start(name, args)
    }

    /// Counts one call against the budget, or refuses it past the budget with a
    /// `ToolCallLimitError`. [`call`](Self::call) is `count` then [`start`](Self::start); a
    /// driver that holds a call back (to be answered later) counts it when the guest makes
    /// it and starts it (or not) later.
    pub fn count(&self) -> Result<(), GuestError> {
        let n = self.calls.fetch_add(1, Ordering::Relaxed).saturating_add(1);
        if n > self.max_calls {
            return Err(GuestError {
                name: "ToolCallLimitError".into(),
                message: crate::ExecutionError::tool_call_limit(self.max_calls).message,
            });
        }
        Ok(())
    }

    /// Starts the call `name(args)` without counting it (see [`count`](Self::count)).
    pub fn start(&self, name: &str, args: Value) -> BindingFuture {
        let Some(binding) = self.bindings.get(name) else {
            let message = format!("{name} is not a function");
            return Box::pin(async move {
                Err(GuestError {
                    name: "TypeError".into(),
                    message,
                })
            });
        };
        let depth = crate::depth::value_depth(&args);
        if depth > crate::depth::MAX_VALUE_DEPTH {
            let message = crate::depth::too_deep_message(&format!("{name}'s input"), depth);
            return Box::pin(async move {
                Err(GuestError {
                    name: "TypeError".into(),
                    message,
                })
            });
        }
        let fut = binding.call(args);
        let name = name.to_owned();
        Box::pin(async move {
            match AssertUnwindSafe(fut).catch_unwind().await {
                Ok(Ok(value)) => {
                    let depth = crate::depth::value_depth(&value);
                    if depth > crate::depth::MAX_VALUE_DEPTH {
                        Err(GuestError::error(crate::depth::too_deep_message(
                            &format!("{name}'s output"),
                            depth,
                        )))
                    } else {
                        Ok(value)
                    }
                }
                Ok(Err(e)) => Err(e),
                Err(_) => Err(GuestError::error(
                    "The tool failed unexpectedly (its handler panicked)",
                )),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn echo(name: &str) -> Binding {
        Binding::new(name, |a| Box::pin(async move { Ok(a) })).unwrap()
    }

    #[tokio::test]
    async fn budget_and_panics() {
        let panicker =
            Binding::new("external_p", |_| Box::pin(async move { panic!("boom") })).unwrap();
        let bindings = Bindings::new()
            .with(echo("external_e"))
            .unwrap()
            .with(panicker)
            .unwrap();
        assert!(bindings.clone().with(echo("external_e")).is_err());
        let limits = Limits::builder().max_tool_calls(2).build().unwrap();
        let bridge = HostBridge::new(bindings, &limits);
        assert_eq!(bridge.call("external_e", json!(1)).await, Ok(json!(1)));
        let err = bridge.call("external_p", json!(1)).await.unwrap_err();
        assert!(err.message.contains("panicked"));
        let err = bridge.call("external_e", json!(1)).await.unwrap_err();
        assert_eq!(err.name, "ToolCallLimitError");
        assert!(bridge.over_budget());
        bridge.begin_execution();
        assert!(bridge.call("external_e", json!(1)).await.is_ok());
    }
}
