//! The library: registration, running skills (with events and stats), and the per-
//! conversation session that hands the model its tools and prompt.

use std::sync::Arc;
use std::time::Instant;

use code_mode::{
    Binding, BindingProvider, CodeMode, EventKind, EventSink, ExecuteOptions, GuestError, Tool,
    ToolContext, ToolError, now_ms,
};
use code_mode_chat::{LlmAdapter, Message};
use futures::FutureExt;
use futures::future::BoxFuture;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::SkillError;
use crate::select::{Selection, select};
use crate::skill::{RunRecord, Skill, now_rfc3339, validate_name};
use crate::storage::{Expect, SkillStorage};
use crate::trust::{TrustPolicy, TrustStrategy};
use crate::vocabulary::Vocabulary;

/// How deep skills may call skills (a skill calling itself stops here too).
pub const MAX_SKILL_DEPTH: usize = 4;

/// A skill library over one storage.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use std::sync::Arc;
/// use code_mode_skills::{InMemoryStorage, Registration, SkillLibrary};
///
/// let library = SkillLibrary::builder(Arc::new(InMemoryStorage::new())).build();
/// let skill = library.register(Registration {
///     name: "double".into(),
///     description: "Doubles a number.".into(),
///     code: "return { value: input.n * 2 };".into(),
///     input_schema: serde_json::json!({"type": "object", "properties": {"n": {"type": "number"}}, "required": ["n"]}),
///     output_schema: serde_json::json!({"type": "object"}),
///     ..Registration::default()
/// }).await.unwrap();
/// assert_eq!(skill.version, 1);
/// # }
/// ```
#[derive(Clone)]
pub struct SkillLibrary {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for SkillLibrary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SkillLibrary")
            .field("strategy", &self.inner.strategy)
            .field("policy", &self.inner.policy)
            .field("max_in_context", &self.inner.max_in_context)
            .finish_non_exhaustive()
    }
}

struct Inner {
    storage: Arc<dyn SkillStorage>,
    strategy: TrustStrategy,
    policy: TrustPolicy,
    selector: Option<Arc<dyn LlmAdapter>>,
    max_in_context: usize,
    approvals: std::collections::HashMap<String, code_mode::ApprovalPolicy>,
    vocabulary: Vocabulary,
}

/// Builds a [`SkillLibrary`].
pub struct SkillLibraryBuilder {
    storage: Arc<dyn SkillStorage>,
    strategy: TrustStrategy,
    policy: TrustPolicy,
    selector: Option<Arc<dyn LlmAdapter>>,
    max_in_context: usize,
    approvals: std::collections::HashMap<String, code_mode::ApprovalPolicy>,
    vocabulary: Vocabulary,
}

impl std::fmt::Debug for SkillLibraryBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SkillLibraryBuilder")
            .field("strategy", &self.strategy)
            .field("policy", &self.policy)
            .field("max_in_context", &self.max_in_context)
            .finish_non_exhaustive()
    }
}

impl SkillLibraryBuilder {
    /// How skills earn trust (default [`TrustStrategy::default`]).
    #[must_use]
    pub fn trust_strategy(mut self, strategy: TrustStrategy) -> Self {
        self.strategy = strategy;
        self
    }
    /// What each trust level may do (default [`TrustPolicy::default`]).
    #[must_use]
    pub fn trust_policy(mut self, policy: TrustPolicy) -> Self {
        self.policy = policy;
        self
    }
    /// A (cheap) model that picks the skills relevant to a conversation. Without one, or
    /// when it fails, a local lexical ranking picks them.
    #[must_use]
    pub fn selector(mut self, llm: Arc<dyn LlmAdapter>) -> Self {
        self.selector = Some(llm);
        self
    }
    /// How many skills a session pre-loads (default 5).
    #[must_use]
    pub fn max_skills_in_context(mut self, n: usize) -> Self {
        self.max_in_context = n;
        self
    }
    /// Calls of the skill `name` from a program need a person's approval (always, or when
    /// the policy's predicate holds for the input), as tools marked with
    /// [`Tool::require_approval`](code_mode::Tool::require_approval) do. The application
    /// decides this, never the model that registers skills; it applies to every version
    /// of the skill.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use code_mode::ApprovalPolicy;
    /// use code_mode_skills::{InMemoryStorage, SkillLibrary};
    /// let library = SkillLibrary::builder(Arc::new(InMemoryStorage::new()))
    ///     .require_approval("refund_order", ApprovalPolicy::Always)
    ///     .build();
    /// # let _ = library;
    /// ```
    #[must_use]
    pub fn require_approval(
        mut self,
        name: impl Into<String>,
        policy: code_mode::ApprovalPolicy,
    ) -> Self {
        self.approvals.insert(name.into(), policy);
        self
    }
    /// The names the library's tools, sandbox functions and events go by (default
    /// [`Vocabulary::Snippets`], current TanStack AI; [`Vocabulary::Skills`] for clients of
    /// TanStack AI 0.3.x). See the `vocabulary` module.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use code_mode_skills::{InMemoryStorage, SkillLibrary, Vocabulary};
    /// let library = SkillLibrary::builder(Arc::new(InMemoryStorage::new()))
    ///     .vocabulary(Vocabulary::Skills)
    ///     .build();
    /// assert_eq!(library.vocabulary(), Vocabulary::Skills);
    /// ```
    #[must_use]
    pub fn vocabulary(mut self, vocabulary: Vocabulary) -> Self {
        self.vocabulary = vocabulary;
        self
    }
    /// The library.
    pub fn build(self) -> SkillLibrary {
        SkillLibrary {
            inner: Arc::new(Inner {
                storage: self.storage,
                strategy: self.strategy,
                policy: self.policy,
                selector: self.selector,
                max_in_context: self.max_in_context,
                approvals: self.approvals,
                vocabulary: self.vocabulary,
            }),
        }
    }
}

/// What `register_skill` receives. Schemas may be JSON objects or JSON text.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Registration {
    /// Lower snake_case name.
    pub name: String,
    /// What it does.
    pub description: String,
    /// TypeScript function body using `input`, returning the output.
    pub code: String,
    /// JSON Schema of `input` (object, or its JSON text).
    #[serde(default)]
    pub input_schema: Value,
    /// JSON Schema of the output (object, or its JSON text).
    #[serde(default)]
    pub output_schema: Value,
    /// When to use it.
    #[serde(default)]
    pub usage_hints: Vec<String>,
    /// Tools and skills it calls.
    #[serde(default)]
    pub depends_on: Vec<String>,
    /// Save a new version when the name exists (otherwise that is an error).
    #[serde(default)]
    pub replace: bool,
}

/// What a conversation gets from the library.
pub struct SkillSession {
    /// `execute_typescript` (with `skill_*` functions), `discover_tools` when the app has
    /// lazy tools, `search_skills`, `get_skill`, `register_skill`, and one tool per
    /// selected skill the policy lets be a tool.
    pub tools: Vec<Tool>,
    /// Code Mode's system prompt followed by the skill library's section.
    pub system_prompt: String,
    /// The skills selected for this conversation.
    pub selected: Vec<Skill>,
    /// How they were selected.
    pub selection: Selection,
}

impl std::fmt::Debug for SkillSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SkillSession")
            .field("tools", &self.tools.len())
            .field("selected", &self.selected.len())
            .finish_non_exhaustive()
    }
}

fn schema_value(which: &str, v: &Value) -> Result<Value, String> {
    match v {
        Value::Null => Ok(json!({"type": "object"})),
        Value::String(text) => serde_json::from_str(text)
            .map_err(|e| format!("{which} must be a JSON Schema (object or JSON text): {e}")),
        other => Ok(other.clone()),
    }
}

impl SkillLibrary {
    /// A builder over `storage`.
    pub fn builder(storage: Arc<dyn SkillStorage>) -> SkillLibraryBuilder {
        SkillLibraryBuilder {
            storage,
            strategy: TrustStrategy::default(),
            policy: TrustPolicy::default(),
            selector: None,
            max_in_context: 5,
            approvals: std::collections::HashMap::new(),
            vocabulary: Vocabulary::default(),
        }
    }

    /// The names the library's tools, sandbox functions and events go by.
    pub fn vocabulary(&self) -> Vocabulary {
        self.inner.vocabulary
    }

    /// The storage.
    pub fn storage(&self) -> &Arc<dyn SkillStorage> {
        &self.inner.storage
    }

    /// The trust strategy.
    pub fn trust_strategy(&self) -> &TrustStrategy {
        &self.inner.strategy
    }

    /// The trust policy.
    pub fn trust_policy(&self) -> &TrustPolicy {
        &self.inner.policy
    }

    /// Validates and saves a skill: the name is valid and unused (or `replace` is set and
    /// it exists), the code parses as TypeScript, the schemas are valid JSON Schema, sizes
    /// are bounded. A new version starts with fresh stats at the initial trust level.
    pub async fn register(&self, r: Registration) -> Result<Skill, SkillError> {
        validate_name(&r.name)?;
        let invalid = |reason: String| SkillError::Invalid {
            name: r.name.clone(),
            reason,
        };
        let input_schema = schema_value("inputSchema", &r.input_schema).map_err(invalid)?;
        let output_schema = schema_value("outputSchema", &r.output_schema).map_err(invalid)?;
        let now = now_rfc3339();
        let existing = self.inner.storage.get(&r.name).await?;
        let (id, version, created_at, expect) = match (&existing, r.replace) {
            (Some(old), true) => (
                old.id.clone(),
                old.version + 1,
                old.created_at.clone(),
                Expect::Version(old.version),
            ),
            (Some(old), false) => {
                return Err(SkillError::AlreadyExists {
                    name: r.name.clone(),
                    version: old.version,
                });
            }
            (None, _) => (
                uuid::Uuid::new_v4().to_string(),
                1,
                now.clone(),
                Expect::Absent,
            ),
        };
        let skill = Skill {
            id,
            name: r.name.clone(),
            description: r.description.trim().to_owned(),
            code: r.code,
            input_schema,
            output_schema,
            usage_hints: r.usage_hints,
            depends_on: r.depends_on,
            stats: Default::default(),
            trust: self.inner.strategy.initial,
            version,
            created_at,
            updated_at: now,
        };
        skill.validate()?;
        // The schemas must compile, as the skill's tool will validate with them.
        skill_tool_shape(&skill).map_err(|e| invalid(e.to_string()))?;
        // The code must parse as TypeScript, exactly as it will run.
        code_mode::strip_typescript(&program(&skill, &json!({})))
            .map_err(|e| invalid(format!("the code does not parse: {}", e.message)))?;
        self.inner.storage.save(&skill, expect).await?;
        Ok(skill)
    }

    /// Runs skill `name` with `input` (validated against its input schema, output against
    /// its output schema), in a fresh sandbox context of `code_mode` where the app's tools
    /// are `external_*` and other skills `skill_*`. Emits `code_mode:skill_call` then
    /// `code_mode:skill_result` or `code_mode:skill_error` on `ctx`, and records the run.
    pub async fn run(
        &self,
        code_mode: &CodeMode,
        name: &str,
        input: Value,
        ctx: &ToolContext,
    ) -> Result<Value, ToolError> {
        self.run_at(code_mode.clone(), name.to_owned(), input, ctx.clone(), 0)
            .await
    }

    fn run_at(
        &self,
        code_mode: CodeMode,
        name: String,
        input: Value,
        ctx: ToolContext,
        depth: usize,
    ) -> BoxFuture<'static, Result<Value, ToolError>> {
        let me = self.clone();
        async move {
            let skill = match me.inner.storage.get(&name).await {
                Ok(Some(s)) => s,
                Ok(None) => return Err(ToolError::new(format!("skill {name:?} not found"))),
                Err(e) => return Err(ToolError::new(e.to_string())),
            };
            if depth >= MAX_SKILL_DEPTH {
                return Err(ToolError::new(format!(
                    "skills may call skills at most {MAX_SKILL_DEPTH} levels deep ({name} was called at level {})",
                    depth + 1
                )));
            }
            // Input is validated against the skill's schema first: a call refused there never
            // ran, so it emits no skill events and counts no run. Output that breaks the
            // output schema is the skill's failure.
            let shape = skill_tool_shape(&skill).map_err(|e| ToolError::new(e.to_string()))?;
            let ran = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let started = Arc::new(std::sync::Mutex::new(Instant::now()));
            let runner = {
                let (me, code_mode, skill, ctx) = (me.clone(), code_mode.clone(), skill.clone(), ctx.clone());
                let (ran, started) = (ran.clone(), started.clone());
                move |input: Value| {
                    ran.store(true, std::sync::atomic::Ordering::SeqCst);
                    *started.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
                    let v = me.inner.vocabulary;
                    ctx.emit_custom(
                        v.call_event(),
                        json!({v.noun(): skill.name, "input": input, "timestamp": now_ms()}),
                    );
                    me.clone().execute(code_mode.clone(), skill.clone(), input, ctx.clone(), depth)
                }
            };
            let tool = shape
                .with_handler(runner)
                .map_err(|e| ToolError::new(e.to_string()))?;
            let outcome = tool.call(input, ctx.clone()).await;
            if !ran.load(std::sync::atomic::Ordering::SeqCst) {
                return outcome;
            }
            let started = *started.lock().unwrap_or_else(|p| p.into_inner());
            let duration = started.elapsed().as_secs_f64() * 1e3;
            let record = RunRecord::now(outcome.is_ok(), duration);
            if let Err(e) = me
                .inner
                .storage
                .record_run(&name, &record, &me.inner.strategy)
                .await
            {
                tracing::warn!(skill = %name, error = %e, "could not record a skill run");
            }
            let v = me.inner.vocabulary;
            match &outcome {
                Ok(result) => ctx.emit_custom(
                    v.result_event(),
                    json!({v.noun(): name, "result": result, "duration": duration, "timestamp": now_ms()}),
                ),
                Err(e) => ctx.emit_custom(
                    v.error_event(),
                    json!({v.noun(): name, "error": e.message(), "duration": duration, "timestamp": now_ms()}),
                ),
            }
            outcome
        }
        .boxed()
    }

    /// The sandbox run of one skill.
    async fn execute(
        self,
        code_mode: CodeMode,
        skill: Skill,
        input: Value,
        ctx: ToolContext,
        depth: usize,
    ) -> Result<Value, ToolError> {
        // The nested run's start and finish are this skill's call and result; its console
        // lines and tool calls are forwarded under the caller's tool-call id.
        let outer = ctx.events.clone();
        let events = EventSink::from_fn(move |event| {
            if !matches!(
                event.kind,
                EventKind::ExecutionStarted { .. } | EventKind::ExecutionFinished { .. }
            ) {
                outer.emit(event);
            }
        });
        let extra_bindings = self
            .bindings_at(&code_mode, &ctx, depth + 1)
            .await
            .unwrap_or_default();
        let opts = ExecuteOptions {
            tool_call_id: ctx.tool_call_id.clone(),
            events,
            extra_bindings,
            // With a type check on, a skill returning another shape than its output schema
            // is caught before it runs.
            expected_output: Some(skill.output_schema.clone()),
            approver: ctx.approver.clone(),
            outer_clock: Some(ctx.clock.clone()),
            cancel: Some(ctx.cancel.clone()),
        };
        let result = code_mode.execute(&program(&skill, &input), opts).await;
        match (result.success, result.error) {
            (true, _) => Ok(result.result.unwrap_or(Value::Null)),
            (false, Some(e)) => Err(ToolError::new(match e.line {
                Some(line) => format!(
                    "{}: {} (line {line} of skill {})",
                    e.kind.name(),
                    e.message,
                    skill.name
                ),
                None => format!("{}: {}", e.kind.name(), e.message),
            })),
            (false, None) => Err(ToolError::new("the skill failed")),
        }
    }

    /// `skill_<name>` functions for every skill the policy lets run from code.
    async fn bindings_at(
        &self,
        code_mode: &CodeMode,
        ctx: &ToolContext,
        depth: usize,
    ) -> Result<Vec<Binding>, SkillError> {
        let list = self.inner.storage.list().await?;
        let mut out = Vec::new();
        for skill in list
            .skills
            .into_iter()
            .filter(|s| self.inner.policy.may_run_in_code(s.trust))
        {
            let me = self.clone();
            let code_mode = code_mode.clone();
            let ctx = ctx.clone();
            let name = skill.name.clone();
            let prefix = self.inner.vocabulary.function_prefix();
            let binding = Binding::new(format!("{prefix}{name}"), move |args| {
                let run = me.run_at(code_mode.clone(), name.clone(), args, ctx.clone(), depth);
                Box::pin(async move { run.await.map_err(|e| GuestError::error(e.message())) })
            });
            // The declaration the model was shown, for the type check.
            let declaration = crate::prompt::declaration_tool(&skill)
                .map(|t| code_mode::generate_checker_stubs(&[&t], prefix));
            let approval = self.inner.approvals.get(&skill.name).cloned();
            match binding {
                Ok(b) => {
                    let b = match declaration {
                        Some(d) => b.with_declaration(d),
                        None => b,
                    };
                    out.push(match approval {
                        Some(policy) => b.with_approval(policy),
                        None => b,
                    });
                }
                Err(e) => tracing::warn!(error = %e, "skill not exposed to code"),
            }
        }
        Ok(out)
    }

    /// Picks the skills relevant to `conversation` (see [`crate::select`]).
    pub async fn select(&self, conversation: &[Message]) -> Selection {
        let list = match self.inner.storage.list().await {
            Ok(l) => l,
            Err(e) => {
                return Selection::empty(Some(format!("the skill library cannot be read: {e}")));
            }
        };
        let candidates: Vec<Skill> = list
            .skills
            .into_iter()
            .filter(|s| self.inner.policy.may_run_in_code(s.trust))
            .collect();
        select(
            self.inner.selector.as_deref(),
            &candidates,
            conversation,
            self.inner.max_in_context,
        )
        .await
    }

    /// Everything a conversation needs: tools, system prompt, selected skills.
    pub async fn session(
        &self,
        code_mode: &CodeMode,
        conversation: &[Message],
    ) -> Result<SkillSession, SkillError> {
        let total = self.inner.storage.list().await?.skills.len();
        let selection = self.select(conversation).await;
        let selected = selection.skills.clone();
        let me = self.clone();
        let cm = code_mode.clone();
        let provider: BindingProvider = Arc::new(move |ctx: &ToolContext| {
            let (me, cm, ctx) = (me.clone(), cm.clone(), ctx.clone());
            Box::pin(async move { me.bindings_at(&cm, &ctx, 0).await.unwrap_or_default() })
        });
        let mut tools = code_mode.as_tools_with(provider);
        tools.extend(crate::tools::management_tools(self, code_mode));
        for skill in selected
            .iter()
            .filter(|s| self.inner.policy.may_be_tool(s.trust))
        {
            match crate::tools::skill_tool(self, code_mode, skill) {
                Ok(t) => tools.push(t),
                Err(e) => {
                    tracing::warn!(skill = %skill.name, error = %e, "skill not offered as a tool")
                }
            }
        }
        let system_prompt = format!(
            "{}\n\n{}",
            code_mode.system_prompt(),
            crate::prompt::library_section_in(
                &selected,
                total,
                &self.inner.policy,
                self.inner.vocabulary
            )
        );
        Ok(SkillSession {
            tools,
            system_prompt,
            selected,
            selection,
        })
    }
}

/// The program a skill runs: `input` bound on the first line (so line numbers stay), then
/// the code.
pub(crate) fn program(skill: &Skill, input: &Value) -> String {
    format!("const input = {input};{}", skill.code)
}

/// A tool with the skill's name and schemas (its handler is set by the caller).
pub(crate) fn skill_tool_shape(skill: &Skill) -> Result<ToolShape, code_mode::ToolDefinitionError> {
    ToolShape::new(skill)
}

/// Name, description and schemas of a skill's tool, checked once.
pub(crate) struct ToolShape {
    name: String,
    description: String,
    input: Value,
    output: Value,
}

impl ToolShape {
    fn new(skill: &Skill) -> Result<Self, code_mode::ToolDefinitionError> {
        // Building the tool compiles both schemas (the error says which is invalid).
        Tool::new(
            skill.name.clone(),
            skill.description.clone(),
            skill.input_schema.clone(),
            |_, _| async { Ok::<_, ToolError>(Value::Null) },
        )?
        .with_output_schema(skill.output_schema.clone())?;
        Ok(Self {
            name: skill.name.clone(),
            description: format!("[SKILL] {}", skill.description),
            input: skill.input_schema.clone(),
            output: skill.output_schema.clone(),
        })
    }

    /// The tool running `run` on validated input.
    pub(crate) fn with_handler<F, Fut>(self, run: F) -> Result<Tool, code_mode::ToolDefinitionError>
    where
        F: Fn(Value) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<Value, ToolError>> + Send + 'static,
    {
        Tool::new(self.name, self.description, self.input, move |v, _| run(v))?
            .with_output_schema(self.output)
    }
}
