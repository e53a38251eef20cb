//! The value `execute_typescript` returns to the model.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::driver::ExecutionResult;
use crate::error::ExecutionError;
use crate::typecheck::TypeDiagnostic;

/// Result of one `execute_typescript` call, in the shape the model and the TanStack client
/// expect: `{success, result?, logs, error?: {name, message, line?}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CodeModeResult {
    /// Whether the program ran to completion.
    pub success: bool,
    /// The returned value; absent when the program returned nothing or failed.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub result: Option<Value>,
    /// Console output, one line per call, prefixed `INFO: `/`WARN: `/`ERROR: ` by level.
    #[serde(default)]
    pub logs: Vec<String>,
    /// The failure, when `success` is false.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error: Option<ExecutionError>,
    /// Type errors found before the program ran, in `report` type-check mode (the program
    /// ran anyway); absent when there were none or no check ran.
    #[serde(rename = "typeErrors", skip_serializing_if = "Vec::is_empty", default)]
    pub type_errors: Vec<TypeDiagnostic>,
}

impl CodeModeResult {
    /// A failure before anything ran (no logs).
    pub fn failure(error: ExecutionError) -> Self {
        Self {
            success: false,
            result: None,
            logs: Vec::new(),
            error: Some(error),
            type_errors: Vec::new(),
        }
    }

    /// Converts a driver result.
    pub fn from_execution(result: ExecutionResult) -> Self {
        let logs = result.logs.iter().map(|e| e.to_line()).collect();
        let outcome = match result.outcome {
            Ok(Some(value)) => match crate::depth::value_depth(&value) {
                depth if depth > crate::depth::MAX_VALUE_DEPTH => Err(ExecutionError::new(
                    crate::error::ErrorKind::Result,
                    crate::depth::too_deep_message("The returned value", depth),
                )),
                _ => Ok(Some(value)),
            },
            other => other,
        };
        match outcome {
            Ok(value) => Self {
                success: true,
                result: value,
                logs,
                error: None,
                type_errors: Vec::new(),
            },
            Err(error) => Self {
                success: false,
                result: None,
                logs,
                error: Some(error.capped()),
                type_errors: Vec::new(),
            },
        }
    }

    /// The result as JSON.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or_else(|e| json!({"success": false, "logs": [], "error": {"name": "Error", "message": e.to_string()}}))
    }
}

/// JSON Schema of the `typeErrors` property, which [`CodeModeResult`] has when a type
/// check runs in `report` mode (added to the output schema only then).
pub(crate) fn type_errors_schema() -> Value {
    json!({
        "type": "array",
        "description": "Type errors the compiler found before the code ran (the code ran anyway).",
        "items": {
            "type": "object",
            "properties": {
                "line": {"type": "integer", "description": "1-based line in the submitted code."},
                "column": {"type": "integer"},
                "code": {"type": "integer", "description": "TypeScript error code (2339 is TS2339)."},
                "message": {"type": "string"}
            },
            "required": ["line", "column", "code", "message"]
        }
    })
}

/// JSON Schema of [`CodeModeResult`], the output schema of `execute_typescript`.
pub fn result_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "success": {"type": "boolean", "description": "Whether the code ran to completion."},
            "result": {"description": "The value the code returned, if any."},
            "logs": {"type": "array", "items": {"type": "string"}, "description": "Captured console output."},
            "error": {
                "type": "object",
                "description": "Why the code failed.",
                "properties": {
                    "name": {"type": "string", "description": "Error class, e.g. TypeError or TimeoutError."},
                    "message": {"type": "string", "description": "Error message."},
                    "line": {"type": "integer", "description": "1-based line in the submitted code."}
                },
                "required": ["name", "message"]
            }
        },
        "required": ["success", "logs"]
    })
}
