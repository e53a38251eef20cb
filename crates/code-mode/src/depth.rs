//! One nesting limit for every value that crosses the sandbox boundary.
//!
//! Results, tool inputs and tool outputs are JSON. JSON parsers recurse once per level of
//! arrays and objects and stop somewhere (serde_json at 128 levels, others elsewhere or
//! never), so without a limit of its own a deeply nested value failed differently on each
//! driver: a parse error, a value silently replaced by `{}`, a dead sidecar. The contract is
//! one limit, [`MAX_VALUE_DEPTH`], checked the same way everywhere, with one wording per
//! direction, well below every parser's own limit.

use serde_json::Value;

/// Deepest nesting of arrays and objects a result, a tool input or a tool output may have
/// (`[]` and `{}` are depth 1, `[[1]]` depth 2; scalars are depth 0).
pub const MAX_VALUE_DEPTH: usize = 64;

/// Nesting depth of a value, without recursion.
///
/// ```
/// use serde_json::json;
/// assert_eq!(code_mode::driver::value_depth(&json!(1)), 0);
/// assert_eq!(code_mode::driver::value_depth(&json!({"a": [1, {"b": []}]})), 4);
/// ```
pub fn value_depth(value: &Value) -> usize {
    let mut max = 0;
    let mut stack: Vec<(&Value, usize)> = vec![(value, 0)];
    while let Some((v, depth)) = stack.pop() {
        match v {
            Value::Array(items) => {
                max = max.max(depth + 1);
                stack.extend(items.iter().map(|i| (i, depth + 1)));
            }
            Value::Object(map) => {
                max = max.max(depth + 1);
                stack.extend(map.values().map(|i| (i, depth + 1)));
            }
            _ => {}
        }
    }
    max
}

/// Nesting depth of JSON text (brackets outside strings), without parsing it: lets a driver
/// refuse a value before a recursive parser sees it.
///
/// ```
/// assert_eq!(code_mode::driver::json_text_depth(r#"{"a": "[[[", "b": [[1]]}"#), 3);
/// ```
pub fn json_text_depth(text: &str) -> usize {
    let (mut depth, mut max, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for b in text.bytes() {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                max = max.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

/// The message for a value nested too deeply; `what` names it ("The returned value",
/// "external_get's input").
pub fn too_deep_message(what: &str, depth: usize) -> String {
    format!(
        "{what} nests {depth} levels of arrays and objects deep; the limit is {MAX_VALUE_DEPTH}: pass flatter data"
    )
}

/// Reads the JSON text a program passed to the tool `name`, as every driver must: nested past
/// [`MAX_VALUE_DEPTH`] or not JSON, it is refused with the message the program sees (as a
/// `TypeError`) before a recursive parser runs; lone surrogates become U+FFFD.
///
/// ```
/// assert_eq!(code_mode::parse_tool_input("external_a", r#"{"x": [1]}"#), Ok(serde_json::json!({"x": [1]})));
/// let deep = format!("{}1{}", "[".repeat(65), "]".repeat(65));
/// assert!(code_mode::parse_tool_input("external_a", &deep).unwrap_err().contains("the limit is 64"));
/// ```
pub fn parse_tool_input(name: &str, text: &str) -> Result<Value, String> {
    let depth = json_text_depth(text);
    if depth > MAX_VALUE_DEPTH {
        return Err(too_deep_message(&format!("{name}'s input"), depth));
    }
    crate::text::parse_guest_json(text).map_err(|e| format!("{name}: arguments are not JSON: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_of_values_and_text_agree() {
        let mut v = Value::from(1);
        let mut text = String::from("1");
        for i in 0..200 {
            v = if i % 2 == 0 {
                Value::Array(vec![v])
            } else {
                serde_json::json!({ "k": v })
            };
            text = if i % 2 == 0 {
                format!("[{text}]")
            } else {
                format!("{{\"k\":{text}}}")
            };
        }
        assert_eq!(value_depth(&v), 200);
        assert_eq!(json_text_depth(&text), 200);
        assert_eq!(json_text_depth(r#"["\"[", "\\", {}]"#), 2);
    }
}
