//! Tools: what the application hands to code-mode.
//!
//! A [`Tool`] carries a name, a description, an input JSON Schema, an optional output schema,
//! a `lazy` flag and an async handler. Schemas are compiled once, when the tool is built, so
//! a broken schema is a construction error rather than a surprise during a model's run, and
//! every call is validated before the handler sees it. [`Tool::typed`] derives both schemas
//! from Rust types with `schemars` (the Rust counterpart of zod in the TypeScript original).

use std::future::Future;
use std::sync::Arc;

use futures::future::BoxFuture;
use schemars::JsonSchema;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::approval::Approver;
use crate::approval_policy::ApprovalPolicy;
use crate::clock::ExecutionClock;
use crate::error::{ToolDefinitionError, ToolError};
use crate::events::EventSink;
use crate::identifier::check_identifier;
use crate::schema::CompiledSchema;
use tokio_util::sync::CancellationToken;

pub use crate::tool_names::RESERVED_TOOL_NAMES;

/// What a tool handler receives besides its input.
#[derive(Clone)]
pub struct ToolContext {
    /// Id of the model's `execute_typescript` call this tool call belongs to, when known.
    pub tool_call_id: Option<Arc<str>>,
    /// Where the tool may publish its own progress events (they are tagged with the call id).
    pub events: EventSink,
    /// The tool call's span (`code_mode.tool_call`; disabled outside an execution or
    /// without a subscriber): work the tool traces itself nests under it.
    pub span: tracing::Span,
    /// The approver of the execution this call belongs to: an execution the tool starts
    /// itself (`execute_typescript` as a tool, a skill's program) asks the same one.
    pub approver: Option<Arc<dyn Approver>>,
    /// The clock of the execution this call belongs to. A tool that waits for a person
    /// itself can [`hold`](ExecutionClock::hold) it so the wait does not count against the
    /// program's timeout; a nested execution holds it while its own approvals wait.
    pub clock: ExecutionClock,
    /// Fires when the execution this call belongs to ends, whatever the reason: the program
    /// returned (leaving this call unawaited) or failed, timed out, was cancelled by the
    /// application ([`ExecuteOptions::cancel`](crate::ExecuteOptions::cancel)) or by its
    /// caller dropping it (a chat client that went away, an MCP `notifications/cancelled`).
    /// The call's own future is dropped then; work it started elsewhere (a spawned task, a
    /// thread, a job on another service) watches this token to stop.
    ///
    /// ```
    /// use code_mode::{Tool, ToolError};
    /// use serde_json::json;
    /// let export = Tool::new("startExport", "Starts an export job.", json!({"type": "object"}), |_, ctx| async move {
    ///     let (cancel, job) = (ctx.cancel.clone(), tokio::spawn(async { /* long work */ json!("done") }));
    ///     let abort = job.abort_handle();
    ///     // The job stops when the execution ends, even if this call was never awaited.
    ///     tokio::spawn(async move { cancel.cancelled().await; abort.abort(); });
    ///     job.await.map_err(|e| ToolError::new(e.to_string()))
    /// }).unwrap();
    /// # let _ = export;
    /// ```
    pub cancel: CancellationToken,
}

impl Default for ToolContext {
    fn default() -> Self {
        Self {
            tool_call_id: None,
            events: EventSink::default(),
            span: tracing::Span::none(),
            approver: None,
            clock: ExecutionClock::new(),
            cancel: CancellationToken::new(),
        }
    }
}

impl std::fmt::Debug for ToolContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ToolContext")
            .field("tool_call_id", &self.tool_call_id)
            .field("approver", &self.approver.is_some())
            .finish_non_exhaustive()
    }
}

impl ToolContext {
    /// The W3C trace context of this call, to pass to what the tool calls (an HTTP header,
    /// MCP `_meta`): present when an OpenTelemetry integration (`code-mode-otel`) is
    /// installed and the call is traced.
    pub fn trace_context(&self) -> Option<crate::trace::TraceContext> {
        crate::trace::trace_context(&self.span)
    }

    /// Publishes a custom event, e.g. progress of a long-running tool.
    pub fn emit_custom(&self, name: impl Into<String>, value: Value) {
        self.events
            .emit_custom(self.tool_call_id.clone(), name.into(), value);
    }
}

/// The future a handler returns.
pub type ToolFuture = BoxFuture<'static, Result<Value, ToolError>>;

type Handler = dyn Fn(Value, ToolContext) -> ToolFuture + Send + Sync;

/// A host tool the sandboxed program can call as `external_<name>(input)`.
///
/// ```
/// use code_mode::{Tool, ToolError};
/// use serde_json::json;
///
/// let tool = Tool::new(
///     "getWeather",
///     "Current weather for a city.",
///     json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}),
///     |input, _ctx| async move {
///         let city = input["city"].as_str().unwrap_or_default().to_owned();
///         Ok::<_, ToolError>(json!({"city": city, "tempC": 21}))
///     },
/// )
/// .unwrap();
/// assert_eq!(tool.name(), "getWeather");
/// assert!(Tool::new("get-weather", "", json!({"type": "object"}), |_, _| async { Ok::<_, ToolError>(json!(1)) }).is_err());
/// ```
#[derive(Clone)]
pub struct Tool {
    name: Arc<str>,
    description: Arc<str>,
    input: Arc<CompiledSchema>,
    output: Option<Arc<CompiledSchema>>,
    lazy: bool,
    approval: ApprovalPolicy,
    handler: Arc<Handler>,
}

impl std::fmt::Debug for Tool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tool")
            .field("name", &self.name)
            .field("description", &self.description)
            .field("input_schema", self.input.schema())
            .field("output_schema", &self.output.as_ref().map(|s| s.schema()))
            .field("lazy", &self.lazy)
            .field("approval", &self.approval)
            .finish_non_exhaustive()
    }
}

impl Tool {
    /// Builds a tool from a JSON Schema and a handler `(input, ctx) -> Result<Value, ToolError>`.
    ///
    /// The name must be an ASCII identifier (it becomes `external_<name>`), not a reserved
    /// word, and not `execute_typescript`/`discover_tools`. The input schema must be a valid
    /// JSON Schema describing an object (a schema with `properties` and no `type` is read as
    /// an object, as TanStack does).
    pub fn new<F, Fut, E>(
        name: impl Into<String>,
        description: impl Into<String>,
        input_schema: Value,
        handler: F,
    ) -> Result<Self, ToolDefinitionError>
    where
        F: Fn(Value, ToolContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Value, E>> + Send + 'static,
        E: Into<ToolError>,
    {
        let name: String = name.into();
        check_identifier(&name).map_err(|problem| ToolDefinitionError::InvalidName {
            name: name.clone(),
            problem,
        })?;
        if RESERVED_TOOL_NAMES.contains(&name.as_str()) {
            return Err(ToolDefinitionError::ReservedName { name });
        }
        let input_schema = normalize_input_schema(input_schema);
        let input = CompiledSchema::compile(input_schema).map_err(|message| {
            ToolDefinitionError::InvalidSchema {
                tool: name.clone(),
                which: "input",
                message,
            }
        })?;
        if !input.is_object_schema() {
            return Err(ToolDefinitionError::InvalidSchema {
                tool: name,
                which: "input",
                message: "the input schema must describe an object (`\"type\": \"object\"`), because tools are called as external_name({ ...fields })".into(),
            });
        }
        let handler = Arc::new(move |input: Value, ctx: ToolContext| -> ToolFuture {
            let fut = handler(input, ctx);
            Box::pin(async move { fut.await.map_err(Into::into) })
        });
        Ok(Self {
            name: name.into(),
            description: description.into().into(),
            input: Arc::new(input),
            output: None,
            lazy: false,
            approval: ApprovalPolicy::Never,
            handler,
        })
    }

    /// Builds a tool from Rust types: `I` and `O` derive `serde` and `schemars::JsonSchema`,
    /// which produce the input and output schemas. Inputs are validated against the schema and
    /// then deserialised into `I`.
    ///
    /// ```
    /// use code_mode::{Tool, ToolError};
    /// use schemars::JsonSchema;
    /// use serde::{Deserialize, Serialize};
    ///
    /// #[derive(Deserialize, JsonSchema)]
    /// struct Input { /// The city to look up.
    ///     city: String }
    /// #[derive(Serialize, JsonSchema)]
    /// struct Output { temp_c: f64 }
    ///
    /// let tool = Tool::typed("getWeather", "Current weather.", |input: Input| async move {
    ///     Ok::<_, ToolError>(Output { temp_c: if input.city == "Oslo" { 4.0 } else { 20.0 } })
    /// })
    /// .unwrap();
    /// assert!(tool.output_schema().is_some());
    /// ```
    pub fn typed<I, O, F, Fut>(
        name: impl Into<String>,
        description: impl Into<String>,
        handler: F,
    ) -> Result<Self, ToolDefinitionError>
    where
        I: DeserializeOwned + JsonSchema + Send + 'static,
        O: Serialize + JsonSchema + Send + 'static,
        F: Fn(I) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<O, ToolError>> + Send + 'static,
    {
        Self::typed_with_context(name, description, move |input: I, _ctx| handler(input))
    }

    /// Like [`Tool::typed`], with the handler also receiving the [`ToolContext`] (its
    /// cancellation signal, events, span, approver).
    ///
    /// ```
    /// use code_mode::{Tool, ToolContext, ToolError};
    /// use schemars::JsonSchema;
    /// use serde::{Deserialize, Serialize};
    ///
    /// #[derive(Deserialize, JsonSchema)]
    /// struct Input { ms: u64 }
    /// #[derive(Serialize, JsonSchema)]
    /// struct Output { waited: bool }
    ///
    /// let tool = Tool::typed_with_context("wait", "Waits, unless the execution was cancelled.",
    ///     |input: Input, ctx: ToolContext| async move {
    ///         tokio::time::sleep(std::time::Duration::from_millis(input.ms)).await;
    ///         Ok::<_, ToolError>(Output { waited: !ctx.cancel.is_cancelled() })
    ///     }).unwrap();
    /// assert_eq!(tool.name(), "wait");
    /// ```
    pub fn typed_with_context<I, O, F, Fut>(
        name: impl Into<String>,
        description: impl Into<String>,
        handler: F,
    ) -> Result<Self, ToolDefinitionError>
    where
        I: DeserializeOwned + JsonSchema + Send + 'static,
        O: Serialize + JsonSchema + Send + 'static,
        F: Fn(I, ToolContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<O, ToolError>> + Send + 'static,
    {
        let handler = Arc::new(handler);
        let tool = Self::new(name, description, schema_of::<I>(), move |input, ctx| {
            let handler = handler.clone();
            async move {
                let input: I = serde_json::from_value(input)
                    .map_err(|e| ToolError::new(format!("invalid input: {e}")))?;
                let output = handler(input, ctx).await?;
                serde_json::to_value(output)
                    .map_err(|e| ToolError::new(format!("tool output is not JSON: {e}")))
            }
        })?;
        tool.with_output_schema(schema_of::<O>())
    }

    /// code-mode's own tools (`execute_typescript`, `discover_tools`), whose names are reserved
    /// for application tools and whose schemas are known to be valid.
    pub(crate) fn internal(spec: ToolSpec, handler: Arc<Handler>) -> Self {
        let input = CompiledSchema::compile(spec.input_schema.clone())
            .unwrap_or_else(|_| CompiledSchema::permissive(spec.input_schema.clone()));
        let output = spec.output_schema.map(|s| {
            Arc::new(
                CompiledSchema::compile(s.clone())
                    .unwrap_or_else(|_| CompiledSchema::permissive(s)),
            )
        });
        Self {
            name: spec.name.into(),
            description: spec.description.into(),
            input: Arc::new(input),
            output,
            lazy: false,
            approval: ApprovalPolicy::Never,
            handler,
        }
    }

    /// Adds an output schema: results are validated against it, and the type stub gets a
    /// precise return type instead of `unknown`.
    pub fn with_output_schema(mut self, schema: Value) -> Result<Self, ToolDefinitionError> {
        let compiled = CompiledSchema::compile(schema).map_err(|message| {
            ToolDefinitionError::InvalidSchema {
                tool: self.name.to_string(),
                which: "output",
                message,
            }
        })?;
        self.output = Some(Arc::new(compiled));
        Ok(self)
    }

    /// Marks the tool lazy: it stays callable, but its stub is left out of the system prompt
    /// and fetched on demand through `discover_tools`.
    #[must_use]
    pub fn lazy(mut self, lazy: bool) -> Self {
        self.lazy = lazy;
        self
    }

    /// Requires a person's approval before calls run: [`ApprovalPolicy::Always`], or
    /// [`ApprovalPolicy::when`] a predicate on the input holds (see the `approval` module
    /// for what the program sees while it waits and after).
    ///
    /// ```
    /// use code_mode::{ApprovalPolicy, Tool, ToolError};
    /// use serde_json::json;
    /// let refund = Tool::new("refund", "Refunds an order.",
    ///     json!({"type": "object", "properties": {"amount": {"type": "number"}}, "required": ["amount"]}),
    ///     |_, _| async { Ok::<_, ToolError>(json!({"ok": true})) }).unwrap()
    ///     .require_approval(ApprovalPolicy::when(|input| input["amount"].as_f64().unwrap_or(0.0) > 100.0));
    /// assert!(refund.approval_policy().applies(&json!({"amount": 500})));
    /// ```
    #[must_use]
    pub fn require_approval(mut self, policy: ApprovalPolicy) -> Self {
        self.approval = policy;
        self
    }

    /// When calls need approval.
    pub fn approval_policy(&self) -> &ApprovalPolicy {
        &self.approval
    }

    /// Checks `input` against the input schema without calling the tool: the message names
    /// the field at fault.
    pub fn validate_input(&self, input: &Value) -> Result<(), String> {
        self.input.validate(input)
    }

    /// The tool name (without the `external_` prefix).
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The description shown to the model.
    pub fn description(&self) -> &str {
        &self.description
    }
    /// The input JSON Schema.
    pub fn input_schema(&self) -> &Value {
        self.input.schema()
    }
    /// The output JSON Schema, if any.
    pub fn output_schema(&self) -> Option<&Value> {
        self.output.as_deref().map(CompiledSchema::schema)
    }
    /// Whether the tool is lazy.
    pub fn is_lazy(&self) -> bool {
        self.lazy
    }

    /// Validates `input`, runs the handler, validates the output.
    ///
    /// Validation failures are [`ToolError`]s whose message names the field at fault, so the
    /// model can correct its call.
    pub async fn call(&self, input: Value, ctx: ToolContext) -> Result<Value, ToolError> {
        let input = if input.is_null() {
            Value::Object(Map::new())
        } else {
            input
        };
        if let Err(msg) = self.input.validate(&input) {
            return Err(ToolError::new(format!(
                "Input validation failed for tool {}: {msg}",
                self.name
            )));
        }
        let output = (self.handler)(input, ctx).await?;
        if let Some(schema) = &self.output
            && let Err(msg) = schema.validate(&output)
        {
            return Err(ToolError::new(format!(
                "Output validation failed for tool {}: {msg}",
                self.name
            )));
        }
        Ok(output)
    }
}

/// The JSON Schema of a Rust type, as `schemars` renders it, without the `$schema` key.
pub fn schema_of<T: JsonSchema>() -> Value {
    let mut value = serde_json::to_value(schemars::schema_for!(T)).unwrap_or(Value::Bool(true));
    if let Value::Object(map) = &mut value {
        map.remove("$schema");
    }
    value
}

fn normalize_input_schema(schema: Value) -> Value {
    match schema {
        Value::Object(mut map) => {
            if !map.contains_key("type") && map.contains_key("properties") {
                map.insert("type".into(), Value::String("object".into()));
            }
            Value::Object(map)
        }
        Value::Null => serde_json::json!({"type": "object", "properties": {}}),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ok_tool(schema: Value) -> Result<Tool, ToolDefinitionError> {
        Tool::new(
            "t",
            "d",
            schema,
            |v, _| async move { Ok::<_, ToolError>(v) },
        )
    }

    #[test]
    fn rejects_bad_definitions() {
        assert!(matches!(
            Tool::new(
                "execute_typescript",
                "",
                json!({"type":"object"}),
                |v, _| async move { Ok::<_, ToolError>(v) }
            ),
            Err(ToolDefinitionError::ReservedName { .. })
        ));
        let err = ok_tool(json!({"type": "string"})).unwrap_err();
        assert!(err.to_string().contains("must describe an object"), "{err}");
        let err =
            ok_tool(json!({"type": "object", "properties": {"a": {"type": "strin"}}})).unwrap_err();
        assert!(
            matches!(err, ToolDefinitionError::InvalidSchema { .. }),
            "{err}"
        );
        assert!(ok_tool(json!({"properties": {"a": {"type": "string"}}})).is_ok());
        assert!(ok_tool(Value::Null).is_ok());
    }

    #[tokio::test]
    async fn validates_input_and_output() {
        let tool = ok_tool(json!({
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 1}},
            "required": ["city"]
        }))
        .unwrap();
        let err = tool
            .call(json!({"days": 0}), ToolContext::default())
            .await
            .unwrap_err();
        let msg = err.message();
        assert!(
            msg.starts_with("Input validation failed for tool t:"),
            "{msg}"
        );
        assert!(msg.contains("city"), "{msg}");
        assert!(msg.contains("/days"), "{msg}");
        assert_eq!(
            tool.call(json!({"city": "Oslo"}), ToolContext::default())
                .await
                .unwrap(),
            json!({"city": "Oslo"})
        );

        let tool = tool
            .with_output_schema(json!({"type": "object", "required": ["temp"]}))
            .unwrap();
        let err = tool
            .call(json!({"city": "Oslo"}), ToolContext::default())
            .await
            .unwrap_err();
        assert!(
            err.message()
                .starts_with("Output validation failed for tool t:"),
            "{err}"
        );
    }
}

/// Name, description and schemas of a tool, as sent to the model.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolSpec {
    /// Tool name.
    pub name: String,
    /// Description shown to the model.
    pub description: String,
    /// Input JSON Schema.
    pub input_schema: Value,
    /// Output JSON Schema, if any.
    pub output_schema: Option<Value>,
}
