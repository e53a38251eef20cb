//! TypeScript declarations generated from JSON Schema.
//!
//! The model writes better code against precise types, so the stubs render what TanStack's
//! generator leaves as `unknown` or `string`: enums and `const` as literal unions, records,
//! tuples, `allOf` intersections, nullable types, `$ref`/`$defs` as named declarations (with
//! a guard for recursive schemas), and property descriptions as JSDoc. Nested objects are
//! indented properly.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::identifier::is_plain_property_key;
use crate::schema::object_parts;
use crate::tool::Tool;

/// How deep nested anonymous types are rendered before falling back to `unknown`.
const MAX_DEPTH: usize = 24;

/// Generates the declarations of `tools`, as the system prompt shows them.
///
/// ```
/// use code_mode::{Tool, ToolError, generate_stubs};
/// use serde_json::json;
/// let tool = Tool::new(
///     "getWeather",
///     "Current weather for a city.",
///     json!({"type": "object", "properties": {
///         "city": {"type": "string", "description": "City name"},
///         "units": {"enum": ["metric", "imperial"]}
///     }, "required": ["city"]}),
///     |_, _| async { Ok::<_, ToolError>(json!({})) },
/// ).unwrap();
/// let stubs = generate_stubs(&[&tool]);
/// assert!(stubs.contains("units?: \"metric\" | \"imperial\";"));
/// assert!(stubs.contains("declare function external_getWeather(input: GetWeatherInput): Promise<unknown>;"));
/// ```
pub fn generate_stubs(tools: &[&Tool]) -> String {
    generate_stubs_with_prefix(tools, "external_")
}

/// Like [`generate_stubs`], with another prefix for the sandbox functions (the skills crate
/// declares its `skill_<name>` functions this way; types are still named after the tool).
///
/// ```
/// use code_mode::{Tool, ToolError};
/// use code_mode::driver::{generate_stubs_with_prefix};
/// use serde_json::json;
/// let tool = Tool::new("top_repos", "Top repositories.", json!({"type": "object"}),
///     |_, _| async { Ok::<_, ToolError>(json!({})) }).unwrap();
/// assert!(generate_stubs_with_prefix(&[&tool], "skill_").contains("declare function skill_top_repos("));
/// ```
pub fn generate_stubs_with_prefix(tools: &[&Tool], prefix: &str) -> String {
    generate(tools, prefix, "unknown")
}

/// The declarations a type checker gets: those of [`generate_stubs_with_prefix`], except
/// that a tool without an output schema returns `Promise<any>` instead of
/// `Promise<unknown>`. Its result's shape was never declared, so a program that reads a
/// field of it (as models do, from the description) is not a mistake the compiler can judge.
///
/// ```
/// use code_mode::{Tool, ToolError, generate_checker_stubs};
/// use serde_json::json;
/// let tool = Tool::new("reorder", "Reorders.", json!({"type": "object"}),
///     |_, _| async { Ok::<_, ToolError>(json!({})) }).unwrap();
/// assert!(generate_checker_stubs(&[&tool], "external_").contains("Promise<any>;"));
/// ```
pub fn generate_checker_stubs(tools: &[&Tool], prefix: &str) -> String {
    generate(tools, prefix, "any")
}

/// Declares the type `name` for values matching `schema` (with any shared declarations it
/// needs), for the type check of a program whose result must match it.
pub(crate) fn type_declaration(schema: &Value, name: &str) -> String {
    let mut generator = StubGenerator {
        undeclared_output: "any",
        ..StubGenerator::default()
    };
    let (_, decl) = generator.named(schema, name);
    let mut out = generator.shared_declarations();
    out.extend(decl);
    out.join("\n\n")
}

fn generate(tools: &[&Tool], prefix: &str, undeclared_output: &'static str) -> String {
    let mut generator = StubGenerator {
        prefix: prefix.to_owned(),
        undeclared_output,
        ..StubGenerator::default()
    };
    let mut blocks = Vec::new();
    for tool in tools {
        blocks.extend(generator.tool(tool));
    }
    let mut out = generator.shared_declarations();
    out.extend(blocks);
    out.join("\n\n")
}

/// PascalCase form of a tool name: `get_weather` and `getWeather` give `GetWeather`.
pub(crate) fn pascal_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = true;
    for c in name.chars() {
        if c == '_' || c == '$' {
            upper = true;
            continue;
        }
        if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    if out.is_empty() { "Tool".into() } else { out }
}

/// Formats `text` as a JSDoc block at `indent`.
fn jsdoc(text: &str, indent: &str) -> Option<String> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    let text = text.replace("*/", "*\\/");
    let lines: Vec<&str> = text.lines().collect();
    if lines.len() == 1 {
        return Some(format!("{indent}/** {} */", lines[0]));
    }
    let mut s = format!("{indent}/**\n");
    for line in lines {
        let line = line.trim_end();
        if line.is_empty() {
            s.push_str(&format!("{indent} *\n"));
        } else {
            s.push_str(&format!("{indent} * {line}\n"));
        }
    }
    s.push_str(&format!("{indent} */"));
    Some(s)
}

#[derive(Default)]
struct StubGenerator {
    /// Declarations of `$defs`, keyed by their final TypeScript name.
    shared: BTreeMap<String, String>,
    /// Order in which shared declarations were emitted.
    shared_order: Vec<String>,
    /// The schema behind each shared declaration.
    shared_defs: BTreeMap<String, Value>,
    /// Current nesting of [`StubGenerator::ty`] calls (a guard against absurdly deep schemas).
    nesting: usize,
    /// Prefix of the declared functions (`external_`).
    prefix: String,
    /// The result type of a tool without an output schema (`unknown` for the model).
    undeclared_output: &'static str,
}

struct Scope<'a> {
    root: &'a Value,
    /// `$ref` target → TypeScript name, for refs of this schema.
    names: BTreeMap<String, String>,
}

impl StubGenerator {
    fn shared_declarations(&self) -> Vec<String> {
        self.shared_order
            .iter()
            .filter_map(|n| self.shared.get(n).cloned())
            .collect()
    }

    fn tool(&mut self, tool: &Tool) -> Vec<String> {
        let base = pascal_case(tool.name());
        let mut blocks = Vec::new();
        let input_name = format!("{base}Input");
        let (input_ref, input_decl) = self.named(tool.input_schema(), &input_name);
        blocks.extend(input_decl);
        let output_ref = match tool.output_schema() {
            Some(schema) => {
                let (r, decl) = self.named(schema, &format!("{base}Output"));
                blocks.extend(decl);
                r
            }
            None => self.undeclared_output.to_owned(),
        };
        let optional = input_is_optional(tool.input_schema());
        let mut func = String::new();
        let description = match tool.approval_policy() {
            crate::approval_policy::ApprovalPolicy::Never => tool.description().to_owned(),
            policy => format!(
                "{}{}{}: the call waits for the decision and throws an ApprovalDeniedError (catchable, with the reason) when it is denied.",
                tool.description(),
                if tool.description().is_empty() {
                    ""
                } else {
                    "\n\n"
                },
                if matches!(policy, crate::approval_policy::ApprovalPolicy::Always) {
                    "Needs a person's approval"
                } else {
                    "May need a person's approval, depending on the input"
                },
            ),
        };
        if let Some(doc) = jsdoc(&description, "") {
            func.push_str(&doc);
            func.push('\n');
        }
        func.push_str(&format!(
            "declare function {}{}(input{}: {input_ref}): Promise<{output_ref}>;",
            self.prefix,
            tool.name(),
            if optional { "?" } else { "" }
        ));
        blocks.push(func);
        blocks
    }

    /// Renders `schema` under `name`: an interface for an object with properties, a type
    /// alias otherwise. Returns the name to reference and the declaration.
    fn named(&mut self, schema: &Value, name: &str) -> (String, Option<String>) {
        let mut scope = Scope {
            root: schema,
            names: BTreeMap::new(),
        };
        // A reference to the root (`"$ref": "#"`) is the declaration itself.
        scope.names.insert("#".to_owned(), name.to_owned());
        let rendered = self.render_decl(schema, name, &mut scope);
        (name.to_owned(), Some(rendered))
    }

    fn render_decl(&mut self, schema: &Value, name: &str, scope: &mut Scope<'_>) -> String {
        let mut out = String::new();
        if let Some(desc) = schema.get("description").and_then(Value::as_str)
            && let Some(doc) = jsdoc(desc, "")
        {
            out.push_str(&doc);
            out.push('\n');
        }
        let has_props = schema
            .get("properties")
            .and_then(Value::as_object)
            .is_some_and(|p| !p.is_empty());
        let simple_object = has_props
            && schema.get("anyOf").is_none()
            && schema.get("oneOf").is_none()
            && schema.get("allOf").is_none()
            && types_of(schema).iter().all(|t| t == "object");
        if simple_object {
            out.push_str(&format!(
                "interface {name} {}",
                self.object_block(schema, scope, 0)
            ));
        } else {
            out.push_str(&format!("type {name} = {};", self.ty(schema, scope, 0)));
        }
        out
    }

    /// Resolves a local `$ref` to a shared declaration name, rendering it on first use.
    fn reference(&mut self, target: &str, scope: &mut Scope<'_>) -> String {
        if let Some(name) = scope.names.get(target) {
            return name.clone();
        }
        let Some(def) = resolve_pointer(scope.root, target) else {
            return "unknown".into();
        };
        if target == "#" {
            // A recursive reference to the root; render the root once as a shared alias.
            let base = "Root".to_owned();
            return self.declare_shared(&base, def, target, scope);
        }
        let raw = target.rsplit('/').next().unwrap_or("Def");
        let base = pascal_case(&sanitize(raw));
        self.declare_shared(&base, def, target, scope)
    }

    fn declare_shared(
        &mut self,
        base: &str,
        def: &Value,
        target: &str,
        scope: &mut Scope<'_>,
    ) -> String {
        // The same definition (same name, same schema) used by several tools is declared
        // once; a different schema under a taken name gets a numeric suffix.
        let mut name = base.to_owned();
        let mut n = 1;
        loop {
            match self.shared_defs.get(&name) {
                Some(existing) if existing == def => {
                    scope.names.insert(target.to_owned(), name.clone());
                    return name;
                }
                Some(_) => {
                    n += 1;
                    name = format!("{base}{n}");
                }
                None => break,
            }
        }
        // Reserve the name before rendering: recursive references see it and stop there.
        scope.names.insert(target.to_owned(), name.clone());
        self.shared_defs.insert(name.clone(), def.clone());
        let decl = self.render_decl(def, &name, scope);
        self.shared.insert(name.clone(), decl);
        self.shared_order.push(name.clone());
        name
    }

    fn object_block(&mut self, schema: &Value, scope: &mut Scope<'_>, depth: usize) -> String {
        let indent = "  ".repeat(depth + 1);
        let close_indent = "  ".repeat(depth);
        let (required, props) = object_parts(schema);
        let empty = Map::new();
        let props = props.unwrap_or(&empty);
        let mut lines = Vec::new();
        for (key, prop) in props {
            if let Some(desc) = prop.get("description").and_then(Value::as_str)
                && let Some(doc) = jsdoc(desc, &indent)
            {
                lines.push(doc);
            }
            let key_src = if is_plain_property_key(key) {
                key.clone()
            } else {
                serde_json::to_string(key).unwrap_or_else(|_| "\"?\"".into())
            };
            let opt = if required.contains(&key.as_str()) {
                ""
            } else {
                "?"
            };
            lines.push(format!(
                "{indent}{key_src}{opt}: {};",
                self.ty(prop, scope, depth + 1)
            ));
        }
        match schema.get("additionalProperties") {
            Some(Value::Bool(false)) | None => {}
            Some(Value::Bool(true)) => lines.push(format!("{indent}[key: string]: unknown;")),
            Some(extra) => lines.push(format!(
                "{indent}[key: string]: {};",
                self.ty(extra, scope, depth + 1)
            )),
        }
        if lines.is_empty() {
            return "{}".into();
        }
        format!("{{\n{}\n{close_indent}}}", lines.join("\n"))
    }

    /// Renders a schema as a TypeScript type expression.
    fn ty(&mut self, schema: &Value, scope: &mut Scope<'_>, depth: usize) -> String {
        if self.nesting >= MAX_DEPTH {
            return "unknown".into();
        }
        self.nesting += 1;
        let out = self.ty_inner(schema, scope, depth);
        self.nesting -= 1;
        out
    }

    fn ty_inner(&mut self, schema: &Value, scope: &mut Scope<'_>, depth: usize) -> String {
        let obj = match schema {
            Value::Bool(true) => return "unknown".into(),
            Value::Bool(false) => return "never".into(),
            Value::Object(obj) => obj,
            _ => return "unknown".into(),
        };
        if let Some(target) = obj.get("$ref").and_then(Value::as_str) {
            return self.reference(target, scope);
        }
        if let Some(c) = obj.get("const") {
            return literal(c);
        }
        if let Some(values) = obj.get("enum").and_then(Value::as_array) {
            if values.is_empty() {
                return "never".into();
            }
            return with_nullable(obj, dedup(values.iter().map(literal)).join(" | "));
        }
        for key in ["anyOf", "oneOf"] {
            if let Some(variants) = obj.get(key).and_then(Value::as_array) {
                let parts: Vec<String> =
                    variants.iter().map(|v| self.ty(v, scope, depth)).collect();
                let union = dedup(parts.into_iter()).join(" | ");
                return with_nullable(obj, union);
            }
        }
        if let Some(parts) = obj.get("allOf").and_then(Value::as_array) {
            let mut rendered: Vec<String> = parts
                .iter()
                .map(|p| wrap_union(self.ty(p, scope, depth)))
                .collect();
            // Sibling properties next to allOf also constrain the value.
            if obj.contains_key("properties") {
                rendered.push(self.object_block(schema, scope, depth));
            }
            return match rendered.len() {
                0 => "unknown".into(),
                1 => rendered.remove(0),
                _ => rendered.join(" & "),
            };
        }
        let types = types_of(schema);
        if types.is_empty() {
            if obj.contains_key("properties") || obj.contains_key("additionalProperties") {
                return with_nullable(obj, self.object_type(schema, scope, depth));
            }
            if obj.contains_key("items") || obj.contains_key("prefixItems") {
                return with_nullable(obj, self.array_type(obj, scope, depth));
            }
            return "unknown".into();
        }
        let parts: Vec<String> = types
            .iter()
            .map(|t| match t.as_str() {
                "string" => "string".into(),
                "number" | "integer" => "number".into(),
                "boolean" => "boolean".into(),
                "null" => "null".into(),
                "array" => self.array_type(obj, scope, depth),
                "object" => self.object_type(schema, scope, depth),
                _ => "unknown".into(),
            })
            .collect();
        with_nullable(obj, dedup(parts.into_iter()).join(" | "))
    }

    fn object_type(&mut self, schema: &Value, scope: &mut Scope<'_>, depth: usize) -> String {
        let has_props = schema
            .get("properties")
            .and_then(Value::as_object)
            .is_some_and(|p| !p.is_empty());
        if has_props {
            return self.object_block(schema, scope, depth);
        }
        match schema.get("additionalProperties") {
            Some(Value::Bool(false)) => "Record<string, never>".into(),
            Some(Value::Bool(true)) | None => "Record<string, unknown>".into(),
            Some(extra) => format!("Record<string, {}>", self.ty(extra, scope, depth)),
        }
    }

    fn array_type(
        &mut self,
        obj: &Map<String, Value>,
        scope: &mut Scope<'_>,
        depth: usize,
    ) -> String {
        // Tuples: `prefixItems` (2020-12) or an `items` array (draft-07).
        let (tuple, rest) = match (obj.get("prefixItems"), obj.get("items")) {
            (Some(Value::Array(prefix)), rest) => {
                (Some(prefix), rest.filter(|r| **r != Value::Bool(false)))
            }
            (None, Some(Value::Array(prefix))) => (
                Some(prefix),
                obj.get("additionalItems")
                    .filter(|r| **r != Value::Bool(false)),
            ),
            (_, items) => (None, items),
        };
        if let Some(prefix) = tuple {
            let mut parts: Vec<String> = prefix.iter().map(|p| self.ty(p, scope, depth)).collect();
            if let Some(rest) = rest {
                parts.push(format!("...{}", array_of(self.ty(rest, scope, depth))));
            }
            return format!("[{}]", parts.join(", "));
        }
        match rest {
            Some(items) => array_of(self.ty(items, scope, depth)),
            None => "unknown[]".into(),
        }
    }
}

fn types_of(schema: &Value) -> Vec<String> {
    match schema.get("type") {
        Some(Value::String(t)) => vec![t.clone()],
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}

fn with_nullable(obj: &Map<String, Value>, ty: String) -> String {
    if obj.get("nullable") == Some(&Value::Bool(true)) && !ty.split(" | ").any(|p| p == "null") {
        format!("{ty} | null")
    } else {
        ty
    }
}

fn array_of(item: String) -> String {
    if item.contains(' ') || item.contains('\n') {
        format!("Array<{item}>")
    } else {
        format!("{item}[]")
    }
}

fn wrap_union(ty: String) -> String {
    if ty.contains(" | ") && !ty.starts_with('{') {
        format!("({ty})")
    } else {
        ty
    }
}

fn literal(v: &Value) -> String {
    match v {
        Value::Object(_) | Value::Array(_) => "unknown".into(),
        other => serde_json::to_string(other).unwrap_or_else(|_| "unknown".into()),
    }
}

fn dedup(items: impl Iterator<Item = String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for item in items {
        if !out.contains(&item) {
            out.push(item);
        }
    }
    out
}

fn sanitize(raw: &str) -> String {
    let s: String = raw
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if s.starts_with(|c: char| c.is_ascii_digit()) || s.is_empty() {
        format!("T{s}")
    } else {
        s
    }
}

/// Resolves `#`, `#/$defs/X`, `#/definitions/X` and other local JSON pointers.
fn resolve_pointer<'a>(root: &'a Value, target: &str) -> Option<&'a Value> {
    let pointer = target.strip_prefix('#')?;
    if pointer.is_empty() {
        return Some(root);
    }
    root.pointer(pointer)
}

/// An input with no required property may be omitted: the call passes `{}`.
fn input_is_optional(schema: &Value) -> bool {
    schema
        .get("required")
        .and_then(Value::as_array)
        .is_none_or(|r| r.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pascal() {
        assert_eq!(pascal_case("getWeather"), "GetWeather");
        assert_eq!(pascal_case("get_weather"), "GetWeather");
        assert_eq!(pascal_case("_"), "Tool");
    }

    #[test]
    fn tools_needing_approval_say_so() {
        let tool = |policy| {
            crate::Tool::new(
                "pay",
                "Pays.",
                serde_json::json!({"type": "object"}),
                |_, _| async { Ok::<_, crate::ToolError>(serde_json::json!(1)) },
            )
            .unwrap()
            .require_approval(policy)
        };
        let always = generate_stubs(&[&tool(crate::ApprovalPolicy::Always)]);
        assert!(always.contains(" * Pays.\n *\n * Needs a person's approval: the call waits for the decision and throws an ApprovalDeniedError"), "{always}");
        let some = generate_stubs(&[&tool(crate::ApprovalPolicy::when(|_| true))]);
        assert!(
            some.contains("May need a person's approval, depending on the input"),
            "{some}"
        );
        let never = generate_stubs(&[&tool(crate::ApprovalPolicy::Never)]);
        assert!(!never.contains("approval"), "{never}");
    }

    #[test]
    fn jsdoc_escapes_and_wraps() {
        assert_eq!(jsdoc("a */ b", ""), Some("/** a *\\/ b */".into()));
        assert_eq!(jsdoc("  ", ""), None);
        assert_eq!(
            jsdoc("a\n\nb", "  ").unwrap(),
            "  /**\n   * a\n   *\n   * b\n   */"
        );
    }
}
