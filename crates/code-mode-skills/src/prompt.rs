//! The skill library's section of the system prompt.

use code_mode::driver::generate_stubs_with_prefix;
use code_mode::{Tool, ToolError};
use serde_json::Value;

use crate::skill::Skill;
use crate::trust::TrustPolicy;

fn plural(n: usize, one: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {one}s")
    }
}

/// Renders the section: selected skills as direct tools or as `skill_<name>` declarations
/// (per the trust policy), the management tools, and how to register new skills.
pub fn library_section(selected: &[Skill], total: usize, policy: &TrustPolicy) -> String {
    let mut out = String::from("## Skill Library\n\n");
    if total == 0 {
        out.push_str("The skill library is empty. When a program works and could be reused, save it with `register_skill`.\n");
    } else if selected.is_empty() {
        out.push_str(&format!(
            "The library holds {}; none was pre-loaded for this conversation. Use `search_skills` to find one.\n",
            plural(total, "skill")
        ));
    } else {
        out.push_str(&format!(
            "{} pre-loaded for this conversation ({total} in the library).\n",
            plural(selected.len(), "skill")
        ));
    }
    let (as_tools, in_code): (Vec<&Skill>, Vec<&Skill>) =
        selected.iter().partition(|s| policy.may_be_tool(s.trust));
    if !as_tools.is_empty() {
        out.push_str(
            "\n### Skill tools\n\nCall these directly, like any tool (marked `[SKILL]`):\n\n",
        );
        for s in &as_tools {
            out.push_str(&format!(
                "- `{}` [{}]: {}\n",
                s.name,
                s.trust.badge(),
                s.description
            ));
            for hint in &s.usage_hints {
                out.push_str(&format!("  - {hint}\n"));
            }
        }
    }
    if !in_code.is_empty() {
        let tools: Vec<Tool> = in_code.iter().filter_map(|s| declaration_tool(s)).collect();
        let refs: Vec<&Tool> = tools.iter().collect();
        out.push_str("\n### Skills callable from code\n\nInside `execute_typescript`, these are async functions next to the `external_*` tools (not yet trusted enough to be direct tools):\n\n```typescript\n");
        out.push_str(&generate_stubs_with_prefix(&refs, "skill_"));
        out.push_str("\n```\n");
    }
    out.push_str(
        "\n### Skill management tools\n\n\
- `search_skills({ query, limit? })`: find saved skills by keywords.\n\
- `get_skill({ name })`: read a skill's code, schemas, stats and trust level.\n\
- `register_skill({ name, description, code, inputSchema, outputSchema, usageHints?, dependsOn?, replace? })`: save a program that worked. `code` is a TypeScript function body that reads `input` and returns the output; it may call `external_*` tools and `skill_*` functions. `name` is lower snake_case. Schemas are JSON Schema objects. `replace: true` saves a new version of an existing skill.\n",
    );
    out.push_str(&format!(
        "\n{} be called from `execute_typescript` as `skill_<name>(input)`, right after it is registered. Skills earn trust as they run successfully; those at level {} or above are offered as direct tools in later conversations.\n",
        if policy.in_code == crate::trust::TrustLevel::Untrusted {
            "Every skill in the library can".to_owned()
        } else {
            format!("A skill at trust level {} or above can", policy.in_code.as_str())
        },
        policy.direct_tool.as_str()
    ));
    out
}

/// A tool carrying a skill's schemas, only for rendering its declaration.
pub(crate) fn declaration_tool(s: &Skill) -> Option<Tool> {
    Tool::new(
        s.name.clone(),
        s.description.clone(),
        s.input_schema.clone(),
        |_, _| async { Ok::<Value, ToolError>(Value::Null) },
    )
    .and_then(|t| t.with_output_schema(s.output_schema.clone()))
    .ok()
}
