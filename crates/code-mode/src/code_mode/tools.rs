//! `execute_typescript` and `discover_tools` as tools: their specs for a model, their
//! handlers, and `discover_tools` itself.

use super::CodeMode;
use super::options::BindingProvider;
use super::options::ExecuteOptions;
use crate::bindings::Binding;
use crate::error::ErrorKind;
use crate::error::ExecutionError;
use crate::events::Phase;
use crate::prompt::CatalogDetail;
use crate::prompt::DISCOVER_TOOL_NAME;
use crate::prompt::EXECUTE_TOOL_NAME;
use crate::prompt::catalog_entry;
use crate::result::CodeModeResult;
use crate::result::result_schema;
use crate::stubs::generate_stubs;
use crate::tool::Tool;
use crate::tool::ToolContext;
use crate::tool::ToolSpec;
use crate::typecheck::TypeCheckMode;
use futures::future::BoxFuture;
use serde_json::Value;
use serde_json::json;
use std::sync::Arc;
use std::time::Instant;

impl CodeMode {
    /// The `execute_typescript` tool as sent to the model.
    pub fn execute_tool_spec(&self) -> ToolSpec {
        let mut output = result_schema();
        if self
            .inner
            .type_check
            .as_ref()
            .is_some_and(|t| t.mode == TypeCheckMode::Report)
            && let Some(props) = output.get_mut("properties").and_then(Value::as_object_mut)
        {
            props.insert("typeErrors".into(), crate::result::type_errors_schema());
        }
        ToolSpec {
            name: EXECUTE_TOOL_NAME.into(),
            description: self.inner.execute_description.clone(),
            input_schema: execute_input_schema(),
            output_schema: Some(output),
        }
    }

    /// The `discover_tools` tool, present when some tools are lazy.
    pub fn discover_tool_spec(&self) -> Option<ToolSpec> {
        let description = self.inner.discover_description.clone()?;
        Some(ToolSpec {
            name: DISCOVER_TOOL_NAME.into(),
            description,
            input_schema: discover_input_schema(),
            output_schema: Some(discover_output_schema()),
        })
    }

    /// `execute_typescript`, then `discover_tools` when present.
    pub fn tool_specs(&self) -> Vec<ToolSpec> {
        let mut v = vec![self.execute_tool_spec()];
        v.extend(self.discover_tool_spec());
        v
    }

    /// `execute_typescript` (and `discover_tools`) as ordinary [`Tool`]s, for an agent loop
    /// that treats every tool alike. Their handlers read the tool-call id and the event sink
    /// from the [`ToolContext`].
    pub fn as_tools(&self) -> Vec<Tool> {
        self.as_tools_with(Arc::new(|_ctx: &ToolContext| {
            Box::pin(async { Vec::new() }) as BoxFuture<'static, Vec<Binding>>
        }))
    }

    /// Like [`CodeMode::as_tools`], with more sandbox functions computed for each execution
    /// by `extra` (the skills crate adds its `skill_<name>` functions this way, loading the
    /// library afresh on every call).
    pub fn as_tools_with(&self, extra: BindingProvider) -> Vec<Tool> {
        let me = self.clone();
        let mut tools = vec![Tool::internal(
            self.execute_tool_spec(),
            Arc::new(move |input, ctx: ToolContext| {
                let me = me.clone();
                let extra = extra.clone();
                Box::pin(async move {
                    let extra_bindings = extra(&ctx).await;
                    let opts = ExecuteOptions {
                        tool_call_id: ctx.tool_call_id,
                        events: ctx.events,
                        extra_bindings,
                        approver: ctx.approver,
                        outer_clock: Some(ctx.clock),
                        cancel: Some(ctx.cancel),
                        ..ExecuteOptions::default()
                    };
                    Ok(me.call_execute_tool(&input, opts).await.to_json())
                })
            }),
        )];
        if let Some(spec) = self.discover_tool_spec() {
            let me = self.clone();
            tools.push(Tool::internal(
                spec,
                Arc::new(move |input, _ctx| {
                    let out = me.discover(&input);
                    Box::pin(async move { Ok(out) })
                }),
            ));
        }
        tools
    }

    /// Runs `execute_typescript` with its tool input `{"typescriptCode": "..."}`.
    pub async fn call_execute_tool(&self, input: &Value, opts: ExecuteOptions) -> CodeModeResult {
        match input.get("typescriptCode").and_then(Value::as_str) {
            Some(code) => self.execute(code, opts).await,
            None => {
                let error = ExecutionError::new(
                    ErrorKind::Validation,
                    "typescriptCode must be a non-empty string",
                );
                let trace = self.trace(&opts, 0);
                let _entered = trace.span.clone().entered();
                self.finish(
                    &opts,
                    Instant::now(),
                    Phase::ValidateInput,
                    CodeModeResult::failure(error),
                    &trace,
                )
            }
        }
    }

    /// Runs `discover_tools` on its input `{"toolNames": [...]}`: the stubs of the named lazy
    /// tools, and an `errors` list for unknown names.
    ///
    /// Eager tools are accepted too (their stubs are already in the prompt, but a model
    /// asking for them should not be told they do not exist).
    pub fn discover(&self, input: &Value) -> Value {
        let names: Vec<&str> = match input.get("toolNames").and_then(Value::as_array) {
            Some(names) => names.iter().filter_map(Value::as_str).collect(),
            None => {
                return json!({"tools": [], "errors": ["toolNames must be an array of tool names"]});
            }
        };
        let lazy: Vec<&Tool> = self.inner.tools.iter().filter(|t| t.is_lazy()).collect();
        let mut tools = Vec::new();
        let mut errors = Vec::new();
        let mut seen = Vec::new();
        for raw in names {
            let name = raw.strip_prefix("external_").unwrap_or(raw);
            if seen.contains(&name) {
                continue;
            }
            seen.push(name);
            match self.inner.tools.iter().find(|t| t.name() == name) {
                Some(tool) => tools.push(json!({
                    "name": format!("external_{}", tool.name()),
                    "description": tool.description(),
                    "typeStub": generate_stubs(&[tool]),
                })),
                None => {
                    let catalog: Vec<String> = lazy
                        .iter()
                        .map(|t| catalog_entry(t, CatalogDetail::NameOnly))
                        .collect();
                    errors.push(format!(
                        "Unknown tool: '{raw}'. Discoverable tools: [{}]",
                        catalog.join(", ")
                    ));
                }
            }
        }
        let mut out = json!({"tools": tools});
        if !errors.is_empty() {
            out["errors"] = json!(errors);
        }
        out
    }
}

pub(super) fn execute_input_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "typescriptCode": {
                "type": "string",
                "description": "TypeScript code to run in the sandbox: the body of an async function. Use top-level await, call external_* functions, and return a JSON value."
            }
        },
        "required": ["typescriptCode"]
    })
}

pub(super) fn discover_input_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "toolNames": {
                "type": "array",
                "items": {"type": "string"},
                "description": "Names of the functions to describe, as listed in the catalogue (the external_ prefix is optional)."
            }
        },
        "required": ["toolNames"]
    })
}

pub(super) fn discover_output_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "tools": {"type": "array", "items": {"type": "object", "properties": {
                "name": {"type": "string"}, "description": {"type": "string"}, "typeStub": {"type": "string"}
            }, "required": ["name", "description", "typeStub"]}},
            "errors": {"type": "array", "items": {"type": "string"}}
        },
        "required": ["tools"]
    })
}
