//! What every driver hands the guest prelude's `setup(spec)`, built in one place.
//!
//! Why: three drivers each wrote this record themselves (a `json!` in the QuickJS-WASM
//! sandbox, a create spec plus a positional call in the V8 sidecar, seven positional
//! arguments in the Worker's run frame), each applying the "one past the caps" rule again, so
//! a new limit the prelude enforces had three places to change and the compiler pointed at
//! none of them. Now a new field is added here and in the prelude, and every driver sends it.

use serde::{Deserialize, Serialize};

use crate::bindings::Bindings;
use crate::limits::Limits;

/// The guest prelude's setup record: the bindings to install as globals and the caps the
/// prelude enforces inside the sandbox (the host enforces each again).
///
/// ```
/// use code_mode::driver::PreludeSetup;
/// use code_mode::{Bindings, Limits};
///
/// let setup = PreludeSetup::new(&Bindings::new(), &Limits::default());
/// // One past the console caps, so the host's buffer sees the overflow and adds its marker.
/// assert_eq!(setup.max_logs, u64::from(Limits::default().max_log_entries()) + 1);
/// let json = serde_json::to_value(&setup).unwrap();
/// assert!(json.get("maxResultBytes").is_some() && json.get("bindings").is_some());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct PreludeSetup {
    /// The bindings' global names, in order.
    pub bindings: Vec<String>,
    /// Console entries the prelude forwards: one past the cap.
    pub max_logs: u64,
    /// Console bytes (UTF-16 code units) the prelude forwards: one past the cap.
    pub max_log_bytes: u64,
    /// Tool calls per execution.
    pub max_calls: u32,
    /// The result's size limit in UTF-8 bytes of JSON.
    pub max_result_bytes: u64,
}

impl PreludeSetup {
    /// The setup for `bindings` under `limits`.
    pub fn new(bindings: &Bindings, limits: &Limits) -> Self {
        Self {
            bindings: bindings.iter().map(|b| b.name().to_owned()).collect(),
            // One past the caps, so the host's buffer sees the overflow and adds its marker.
            max_logs: u64::from(limits.max_log_entries()).saturating_add(1),
            max_log_bytes: limits.max_log_bytes().saturating_add(1),
            max_calls: limits.max_tool_calls(),
            max_result_bytes: limits.max_result_bytes(),
        }
    }

    /// The record as JSON text (what a driver sends).
    pub fn to_json(&self) -> String {
        // A struct of strings and integers always serializes.
        serde_json::to_string(self).unwrap_or_else(|_| "{}".to_owned())
    }
}
