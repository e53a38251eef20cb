//! The skill library's section of the system prompt.

use code_mode::driver::generate_stubs_with_prefix;
use code_mode::{Tool, ToolError};
use serde_json::Value;

use crate::skill::Skill;
use crate::trust::TrustPolicy;
use crate::vocabulary::Vocabulary;

fn plural(n: usize, one: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {one}s")
    }
}

/// Renders the section in the default [`Vocabulary`] (see [`library_section_in`]).
pub fn library_section(selected: &[Skill], total: usize, policy: &TrustPolicy) -> String {
    library_section_in(selected, total, policy, Vocabulary::default())
}

/// Renders the section: selected programs as direct tools or as `snippet_<name>` /
/// `skill_<name>` declarations (per the trust policy), the management tools, and how to
/// save new ones, in the names of `vocabulary`.
pub fn library_section_in(
    selected: &[Skill],
    total: usize,
    policy: &TrustPolicy,
    vocabulary: Vocabulary,
) -> String {
    let noun = vocabulary.noun();
    let title = match vocabulary {
        Vocabulary::Snippets => "Snippet",
        Vocabulary::Skills => "Skill",
    };
    let prefix = vocabulary.function_prefix();
    let (search, get, register) = (
        vocabulary.search_tool(),
        vocabulary.get_tool(),
        vocabulary.register_tool(),
    );
    let mut out = format!("## {title} Library\n\n");
    if total == 0 {
        out.push_str(&format!("The {noun} library is empty. When a program works and could be reused, save it with `{register}`.\n"));
    } else if selected.is_empty() {
        out.push_str(&format!(
            "The library holds {}; none was pre-loaded for this conversation. Use `{search}` to find one.\n",
            plural(total, noun)
        ));
    } else {
        out.push_str(&format!(
            "{} pre-loaded for this conversation ({total} in the library).\n",
            plural(selected.len(), noun)
        ));
    }
    let (as_tools, in_code): (Vec<&Skill>, Vec<&Skill>) =
        selected.iter().partition(|s| policy.may_be_tool(s.trust));
    if !as_tools.is_empty() {
        out.push_str(&format!(
            "\n### {title} tools\n\nCall these directly, like any tool (marked `[{}]`):\n\n",
            title.to_uppercase()
        ));
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
        out.push_str(&format!("\n### {title}s callable from code\n\nInside `execute_typescript`, these are async functions next to the `external_*` tools (not yet trusted enough to be direct tools):\n\n```typescript\n"));
        out.push_str(&generate_stubs_with_prefix(&refs, prefix));
        out.push_str("\n```\n");
    }
    out.push_str(&format!(
        "\n### {title} management tools\n\n\
- `{search}({{ query, limit? }})`: find saved {noun}s by keywords.\n\
- `{get}({{ name }})`: read a {noun}'s code, schemas, stats and trust level.\n\
- `{register}({{ name, description, code, inputSchema, outputSchema, usageHints?, dependsOn?, replace? }})`: save a program that worked. `code` is a TypeScript function body that reads `input` and returns the output; it may call `external_*` tools and `{prefix}*` functions. `name` is lower snake_case. Schemas are JSON Schema objects. `replace: true` saves a new version of an existing {noun}.\n",
    ));
    out.push_str(&format!(
        "\n{} be called from `execute_typescript` as `{prefix}<name>(input)`, right after it is registered. {title}s earn trust as they run successfully; those at level {} or above are offered as direct tools in later conversations.\n",
        if policy.in_code == crate::trust::TrustLevel::Untrusted {
            format!("Every {noun} in the library can")
        } else {
            format!("A {noun} at trust level {} or above can", policy.in_code.as_str())
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
