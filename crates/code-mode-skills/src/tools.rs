//! The tools a session adds: `search_skills`, `get_skill`, `register_skill`, and one tool
//! per selected skill.

use code_mode::{CodeMode, Tool, ToolDefinitionError, ToolError, now_ms};
use serde_json::{Value, json};

use crate::library::{Registration, SkillLibrary, skill_tool_shape};
use crate::search::rank;
use crate::skill::Skill;

/// The three management tools.
pub(crate) fn management_tools(library: &SkillLibrary, _code_mode: &CodeMode) -> Vec<Tool> {
    let mut out = Vec::new();
    for tool in [
        search_tool(library),
        get_tool(library),
        register_tool(library),
    ] {
        match tool {
            Ok(t) => out.push(t),
            Err(e) => tracing::error!(error = %e, "a skill management tool is invalid"),
        }
    }
    out
}

/// `search_skills`: names, descriptions, trust and usage by keywords; no code.
fn search_tool(library: &SkillLibrary) -> Result<Tool, ToolDefinitionError> {
    let v = library.vocabulary();
    let noun = v.noun();
    let lib = library.clone();
    Tool::new(
        v.search_tool(),
        format!(
            "Search the {noun} library (saved, reusable programs) by keywords. Returns names, descriptions, trust levels and usage; no code."
        ),
        json!({"type": "object", "properties": {
            "query": {"type": "string", "description": format!("Keywords; empty lists the most used {noun}s.")},
            "limit": {"type": "integer", "minimum": 1, "maximum": 50, "description": "Most results (default 5)."}
        }, "required": ["query"]}),
        move |input, _| {
            let lib = lib.clone();
            async move {
                let query = input["query"].as_str().unwrap_or_default().to_owned();
                let limit = input["limit"].as_u64().unwrap_or(5).clamp(1, 50) as usize;
                let list = lib
                    .storage()
                    .list()
                    .await
                    .map_err(|e| ToolError::new(e.to_string()))?;
                let policy = *lib.trust_policy();
                let found: Vec<Value> = rank(&list.skills, &query, limit)
                    .into_iter()
                    .map(|s| {
                        let mut entry =
                            serde_json::to_value(s.index_entry()).unwrap_or(Value::Null);
                        entry["callableFromCode"] = json!(policy.may_run_in_code(s.trust));
                        entry
                    })
                    .collect();
                Ok::<_, ToolError>(json!(found))
            }
        },
    )
}

/// `get_skill`: one skill whole (code, schemas, hints, stats, trust, version).
fn get_tool(library: &SkillLibrary) -> Result<Tool, ToolDefinitionError> {
    let v = library.vocabulary();
    let noun = v.noun();
    let prefix = v.function_prefix();
    let lib = library.clone();
    Tool::new(
        v.get_tool(),
        format!("Read one {noun}: code, schemas, usage hints, stats, trust level and version."),
        json!({"type": "object", "properties": {
            "name": {"type": "string", "description": format!("The {noun}'s name, without the {prefix} prefix.")}
        }, "required": ["name"]}),
        move |input, _| {
            let lib = lib.clone();
            async move {
                let name = input["name"].as_str().unwrap_or_default();
                let v = lib.vocabulary();
                let name = name.strip_prefix(v.function_prefix()).unwrap_or(name);
                match lib.storage().get(name).await {
                    Ok(Some(skill)) => Ok(serde_json::to_value(skill).unwrap_or(Value::Null)),
                    Ok(None) => Err(ToolError::new(format!(
                        "{} {name:?} not found; use {} to find one",
                        v.noun(),
                        v.search_tool()
                    ))),
                    Err(e) => Err(ToolError::new(e.to_string())),
                }
            }
        },
    )
}

/// `register_skill`: saves a program that worked; callable at once as `skill_<name>`.
fn register_tool(library: &SkillLibrary) -> Result<Tool, ToolDefinitionError> {
    let v = library.vocabulary();
    let noun = v.noun();
    let prefix = v.function_prefix();
    let lib = library.clone();
    Tool::new(
        v.register_tool(),
        format!(
            "Save a program that worked as a reusable {noun}. It becomes callable from execute_typescript as {prefix}<name>(input) at once."
        ),
        json!({"type": "object", "properties": {
            "name": {"type": "string", "description": "lower snake_case, e.g. compare_cities"},
            "description": {"type": "string", "description": "What it does and returns."},
            "code": {"type": "string", "description": format!("TypeScript function body: reads `input`, may call external_* and {prefix}*, returns the output.")},
            "inputSchema": {"description": "JSON Schema of input (object or JSON text)."},
            "outputSchema": {"description": "JSON Schema of the output (object or JSON text)."},
            "usageHints": {"type": "array", "items": {"type": "string"}},
            "dependsOn": {"type": "array", "items": {"type": "string"}},
            "replace": {"type": "boolean", "description": format!("Save a new version of an existing {noun}.")}
        }, "required": ["name", "description", "code", "inputSchema", "outputSchema"]}),
        move |input, ctx| {
            let lib = lib.clone();
            async move {
                let v = lib.vocabulary();
                let registration: Registration = serde_json::from_value(input).map_err(|e| {
                    ToolError::new(format!("invalid {} input: {e}", v.register_tool()))
                })?;
                let skill = lib
                    .register(registration)
                    .await
                    .map_err(|e| ToolError::new(e.to_string()))?;
                ctx.emit_custom(
                    v.registered_event(),
                    json!({"id": skill.id, "name": skill.name, "description": skill.description, "version": skill.version, "timestamp": now_ms()}),
                );
                Ok::<_, ToolError>(json!({
                    "success": true,
                    "id": skill.id,
                    "name": skill.name,
                    "version": skill.version,
                    "trust": skill.trust,
                    "message": format!(
                        "The {} '{}' (version {}) is saved; call it from execute_typescript as {}{}(input).",
                        v.noun(), skill.name, skill.version, v.function_prefix(), skill.name
                    ),
                }))
            }
        },
    )
}

/// A selected skill as a direct tool.
pub(crate) fn skill_tool(
    library: &SkillLibrary,
    code_mode: &CodeMode,
    skill: &Skill,
) -> Result<Tool, ToolDefinitionError> {
    let shape = skill_tool_shape(skill)?;
    let (lib, cm, name) = (library.clone(), code_mode.clone(), skill.name.clone());
    // The library re-validates and records; this tool only routes the call with its context.
    let tool = shape.with_handler(|_| async { Ok(Value::Null) })?;
    let spec_name = tool.name().to_owned();
    let description = tool.description().to_owned();
    let input_schema = tool.input_schema().clone();
    let built = Tool::new(spec_name, description, input_schema, move |input, ctx| {
        let (lib, cm, name) = (lib.clone(), cm.clone(), name.clone());
        async move { lib.run(&cm, &name, input, &ctx).await }
    })?;
    match tool.output_schema() {
        Some(schema) => built.with_output_schema(schema.clone()),
        None => Ok(built),
    }
}
