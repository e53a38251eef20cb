//! The system prompt and the descriptions of code-mode's own tools.
//!
//! The prompt tells the model what the sandbox can and cannot do, lists every eager tool with
//! its TypeScript declaration, names the lazy tools it can discover, and shows an example
//! built from a *real* tool of the application (TanStack's example always calls a
//! `external_fetchWeather` that may not exist).

use serde_json::{Map, Value};

use crate::limits::Limits;
use crate::schema::object_parts;
use crate::stubs::generate_stubs;
use crate::tool::Tool;

pub use crate::tool_names::{DISCOVER_TOOL_NAME, EXECUTE_TOOL_NAME};

/// How much of a lazy tool's description the catalogue shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CatalogDetail {
    /// Names only.
    NameOnly,
    /// Name and the first sentence of the description (the default).
    #[default]
    FirstSentence,
    /// Name and the whole description.
    Full,
}

/// One catalogue entry: `external_name — description`.
pub(crate) fn catalog_entry(tool: &Tool, detail: CatalogDetail) -> String {
    let name = format!("external_{}", tool.name());
    let desc = tool.description().trim();
    let desc = match detail {
        CatalogDetail::NameOnly => "",
        CatalogDetail::Full => desc,
        CatalogDetail::FirstSentence => first_sentence(desc),
    };
    if desc.is_empty() {
        name
    } else {
        format!("{name} — {desc}")
    }
}

fn first_sentence(text: &str) -> &str {
    let line = text.lines().next().unwrap_or("").trim();
    let bytes = line.as_bytes();
    for (i, b) in bytes.iter().enumerate() {
        if matches!(b, b'.' | b'!' | b'?')
            && bytes.get(i + 1).is_none_or(|n| n.is_ascii_whitespace())
        {
            return &line[..=i];
        }
    }
    line
}

/// The description of `execute_typescript` given to the model.
pub(crate) fn execute_description(eager: &[&Tool], has_lazy: bool) -> String {
    let names: Vec<String> = eager
        .iter()
        .map(|t| format!("external_{}", t.name()))
        .collect();
    let mut s = String::from("Execute TypeScript code in a secure sandbox. ");
    if names.is_empty() {
        s.push_str("No external API functions are documented up front.");
    } else {
        s.push_str(&format!(
            "The code can call these external API functions: {}.",
            names.join(", ")
        ));
    }
    if has_lazy {
        s.push_str(&format!(
            " Additional functions can be discovered with the {DISCOVER_TOOL_NAME} tool."
        ));
    }
    s.push_str(" All external_* calls are async and must be awaited. Use top-level await; `return` a JSON value to pass results back. console.log output is captured.");
    s
}

/// The description of `discover_tools`.
pub(crate) fn discover_description(lazy: &[&Tool], detail: CatalogDetail) -> String {
    let entries: Vec<String> = lazy.iter().map(|t| catalog_entry(t, detail)).collect();
    format!(
        "Get the full TypeScript signatures of additional sandbox functions before calling them inside {EXECUTE_TOOL_NAME}. Discoverable functions: [{}]. Pass the names as shown (the external_ prefix is optional).",
        entries.join(", ")
    )
}

/// Builds the system prompt.
pub(crate) fn system_prompt(
    eager: &[&Tool],
    lazy: &[&Tool],
    limits: &Limits,
    detail: CatalogDetail,
) -> String {
    let mut s = String::new();
    s.push_str("## Code Execution Tool\n\n");
    s.push_str(&format!(
        "You have the `{EXECUTE_TOOL_NAME}` tool. It runs a TypeScript program in an isolated sandbox. \
The program calls the application's functions listed below, combines their results with ordinary code, \
and returns one JSON value. One program replaces many separate tool calls.\n\n"
    ));
    s.push_str("### When to Use\n\n");
    s.push_str("- Several calls whose inputs depend on earlier results, loops or conditionals.\n");
    s.push_str("- Independent calls that can run in parallel with `Promise.all`.\n");
    s.push_str("- Filtering, joining, aggregating or transforming data before answering.\n");
    s.push_str("- Calculations you should not do in your head.\n\n");
    s.push_str("For one simple call, calling a tool directly is fine.\n\n");

    s.push_str("### Available External APIs\n\n");
    if eager.is_empty() {
        s.push_str("No functions are documented up front; see Discoverable APIs.\n\n");
    } else {
        s.push_str(
            "Each function is a global of the sandbox, async, and takes one object argument:\n\n",
        );
        for t in eager {
            s.push_str(&format!(
                "- `external_{}(input)`: {}\n",
                t.name(),
                first_sentence(t.description())
            ));
        }
        s.push('\n');
        s.push_str("### Type Definitions\n\n```typescript\n");
        s.push_str(&generate_stubs(eager));
        s.push_str("\n```\n\n");
    }
    if !lazy.is_empty() {
        s.push_str("### Discoverable APIs\n\n");
        s.push_str(&format!(
            "These functions also exist in the sandbox, but their signatures are not shown here. \
Call `{DISCOVER_TOOL_NAME}` with their names to get their TypeScript declarations before using them:\n\n"
        ));
        for t in lazy {
            s.push_str(&format!("- {}\n", catalog_entry(t, detail)));
        }
        s.push('\n');
    }
    if let Some(example) = example(eager.first().or(lazy.first()).copied()) {
        s.push_str("### Example\n\n```typescript\n");
        s.push_str(&example);
        s.push_str("\n```\n\n");
    }
    s.push_str("### Rules of the Sandbox\n\n");
    s.push_str(
        "- Always `await` external_* calls; a failed call throws an `Error` you can catch.\n",
    );
    s.push_str("- `return` a JSON-serializable value (objects, arrays, strings, numbers, booleans, null); keep it small and summarised.\n");
    s.push_str("- `console.log`, `console.info`, `console.warn` and `console.error` output is captured and shown to you.\n");
    s.push_str("- There is no network, file system, `require`, `import`, `process`, `fetch` or timers (`setTimeout`); only the external_* functions reach the outside.\n");
    s.push_str(&format!(
        "- Limits per execution: {} s of wall-clock time (including waiting for tools), {} MiB of memory, {} external calls.\n",
        fmt_secs(limits.timeout()),
        limits.memory_bytes() / (1024 * 1024),
        limits.max_tool_calls()
    ));
    s.push_str(
        "- Each execution starts from a fresh sandbox: no state survives between executions.\n",
    );
    s.push_str("- Errors come back with their name, message and line number in your code; fix the code and try again.\n");
    s
}

fn fmt_secs(d: std::time::Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(1000) {
        (ms / 1000).to_string()
    } else {
        format!("{:.3}", d.as_secs_f64())
    }
}

/// A small program using `tool`, with placeholder arguments built from its schema.
fn example(tool: Option<&Tool>) -> Option<String> {
    let tool = tool?;
    let first = placeholder_object(tool.input_schema(), 0);
    let second = placeholder_object(tool.input_schema(), 1);
    let name = format!("external_{}", tool.name());
    Some(format!(
        "// Independent calls run in parallel; combine the results in code.\n\
const [first, second] = await Promise.all([\n  {name}({first}),\n  {name}({second}),\n]);\n\
console.log(\"received two results\");\n\
return {{ first, second }};"
    ))
}

fn placeholder_object(schema: &Value, variant: usize) -> String {
    let (required, props) = object_parts(schema);
    let empty = Map::new();
    let props = props.unwrap_or(&empty);
    let parts: Vec<String> = props
        .iter()
        .filter(|(k, _)| required.contains(&k.as_str()))
        .map(|(k, v)| format!("{k}: {}", placeholder(v, variant)))
        .collect();
    if parts.is_empty() {
        "{}".into()
    } else {
        format!("{{ {} }}", parts.join(", "))
    }
}

fn placeholder(schema: &Value, variant: usize) -> String {
    if let Some(v) = schema
        .get("examples")
        .and_then(Value::as_array)
        .filter(|a| !a.is_empty())
        .map(|a| &a[variant % a.len()])
    {
        return v.to_string();
    }
    if let Some(v) = schema.get("default").or_else(|| schema.get("const")) {
        return v.to_string();
    }
    if let Some(v) = schema
        .get("enum")
        .and_then(Value::as_array)
        .filter(|a| !a.is_empty())
        .map(|a| &a[variant % a.len()])
    {
        return v.to_string();
    }
    let ty = match schema.get("type") {
        Some(Value::String(t)) => t.as_str(),
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .find(|t| *t != "null")
            .unwrap_or("null"),
        _ => "",
    };
    match ty {
        "string" => {
            if variant == 0 {
                "\"a\"".into()
            } else {
                "\"b\"".into()
            }
        }
        "number" | "integer" => (variant + 1).to_string(),
        "boolean" => "true".into(),
        "array" => "[]".into(),
        "object" => placeholder_object(schema, variant),
        "null" => "null".into(),
        _ => "undefined".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_sentences() {
        assert_eq!(first_sentence("Gets weather. Slow."), "Gets weather.");
        assert_eq!(first_sentence("v1.2 is here! yes"), "v1.2 is here!");
        assert_eq!(first_sentence("no stop"), "no stop");
        assert_eq!(first_sentence("line one\nline two."), "line one");
    }
}
