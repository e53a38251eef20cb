//! When a tool's calls need a person's approval: the policy alone.
//!
//! Why a file of its own: the policy is data that tools and bindings carry (a tool declares
//! it, a binding consults it), while the rest of `approval` is the machinery that asks a
//! person and holds the clock, which needs the bindings' error type and the events. Kept
//! apart, the policy imports nothing of the crate, so `bindings` and `approval` do not
//! import each other.

use std::sync::Arc;

use serde_json::Value;

type Predicate = dyn Fn(&Value) -> bool + Send + Sync;

/// When calls of a tool need a person's approval.
///
/// ```
/// use code_mode::ApprovalPolicy;
/// use serde_json::json;
/// let large = ApprovalPolicy::when(|input| input["amount"].as_f64().unwrap_or(0.0) > 100.0);
/// assert!(large.applies(&json!({"amount": 250})));
/// assert!(!large.applies(&json!({"amount": 5})));
/// assert!(ApprovalPolicy::Always.applies(&json!({})));
/// ```
#[derive(Clone, Default)]
pub enum ApprovalPolicy {
    /// Calls run without asking (the default).
    #[default]
    Never,
    /// Every call is asked about.
    Always,
    /// Calls whose input satisfies the predicate are asked about.
    When(Arc<Predicate>),
}

impl std::fmt::Debug for ApprovalPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Never => "Never",
            Self::Always => "Always",
            Self::When(_) => "When(..)",
        })
    }
}

impl ApprovalPolicy {
    /// Asks when `predicate(input)` is true.
    pub fn when(predicate: impl Fn(&Value) -> bool + Send + Sync + 'static) -> Self {
        Self::When(Arc::new(predicate))
    }

    /// Whether a call with `input` needs approval. A panicking predicate counts as "yes".
    pub fn applies(&self, input: &Value) -> bool {
        match self {
            Self::Never => false,
            Self::Always => true,
            Self::When(p) => {
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| p(input))).unwrap_or(true)
            }
        }
    }

    /// True for [`ApprovalPolicy::Never`].
    pub fn is_never(&self) -> bool {
        matches!(self, Self::Never)
    }
}
