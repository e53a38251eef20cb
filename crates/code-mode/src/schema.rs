//! JSON Schema compilation and validation (through the `jsonschema` crate).
//!
//! Schemas are compiled once per tool. Remote `$ref`s are not resolved (the crate is built
//! without its HTTP resolver): a tool schema must be self-contained, and one that is not is
//! refused when the tool is built.

use serde_json::Value;

/// Most validation errors listed in one message; the rest are counted.
const MAX_REPORTED_ERRORS: usize = 5;

/// A schema and its compiled validator.
pub(crate) struct CompiledSchema {
    schema: Value,
    validator: jsonschema::Validator,
}

impl CompiledSchema {
    /// Compiles `schema`, checking it against its meta-schema first.
    pub(crate) fn compile(schema: Value) -> Result<Self, String> {
        if !(schema.is_object() || schema.is_boolean()) {
            return Err("a JSON Schema must be an object or a boolean".into());
        }
        if let Err(e) = jsonschema::meta::validate(&schema) {
            return Err(format!(
                "{e} (at {})",
                pointer_or_root(&e.instance_path().to_string())
            ));
        }
        let validator = jsonschema::validator_for(&schema).map_err(|e| e.to_string())?;
        Ok(Self { schema, validator })
    }

    /// A schema that accepts everything while keeping `schema` for display.
    pub(crate) fn permissive(schema: Value) -> Self {
        let validator = jsonschema::validator_for(&Value::Bool(true))
            .unwrap_or_else(|_| unreachable!("`true` is a valid schema"));
        Self { schema, validator }
    }

    pub(crate) fn schema(&self) -> &Value {
        &self.schema
    }

    /// True when the schema describes an object (its `type` is or includes `"object"`).
    pub(crate) fn is_object_schema(&self) -> bool {
        match self.schema.get("type") {
            Some(Value::String(t)) => t == "object",
            Some(Value::Array(ts)) => ts.iter().any(|t| t == "object"),
            _ => false,
        }
    }

    /// Validates `instance`; the error lists each failing field as `at /path: message`.
    pub(crate) fn validate(&self, instance: &Value) -> Result<(), String> {
        let mut errors = self.validator.iter_errors(instance);
        let mut parts = Vec::new();
        let mut extra = 0usize;
        for error in errors.by_ref() {
            if parts.len() < MAX_REPORTED_ERRORS {
                let path = error.instance_path().to_string();
                parts.push(format!("at {}: {}", pointer_or_root(&path), error));
            } else {
                extra += 1;
            }
        }
        if parts.is_empty() {
            return Ok(());
        }
        let mut msg = parts.join("; ");
        if extra > 0 {
            msg.push_str(&format!("; and {extra} more"));
        }
        Err(msg)
    }
}

/// The `required` names and the `properties` map of an object schema (empty when absent).
pub(crate) fn object_parts(schema: &Value) -> (Vec<&str>, Option<&serde_json::Map<String, Value>>) {
    let required = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    (
        required,
        schema.get("properties").and_then(Value::as_object),
    )
}

fn pointer_or_root(path: &str) -> &str {
    if path.is_empty() { "(root)" } else { path }
}
