//! What an upstream tool's result becomes inside the sandbox.
//!
//! - A tool that declares an `outputSchema` returns its `structuredContent`, validated
//!   against that schema (the schema also types the stub).
//! - Any other tool returns the same shape every time, [`CONTENT_SCHEMA`]:
//!   `{ text, content }`, where `text` joins the text blocks with newlines (never parsed,
//!   even when it looks like JSON: the program decides) and `content` lists every block;
//!   `structuredContent` is added when the server sent one anyway.
//! - Binary data (images, audio, blob resources) is passed inline as base64 only up to
//!   [`MAX_INLINE_BASE64`] characters; larger blocks keep their type, MIME type and size
//!   with `truncated: true`, so a screenshot never fills the sandbox's memory.
//! - `isError: true` becomes an `Error` the program can catch, with the upstream's text.
//!
//! Why a fixed shape instead of "a string when there is one text block": a program written
//! against one call must work against the next, and the model reads the shape from the stub.

use serde_json::{Map, Value, json};

/// Largest base64 payload copied into the sandbox per block (64 KiB of text).
pub const MAX_INLINE_BASE64: usize = 64 * 1024;

/// The output schema of tools without their own: `{ text, content, structuredContent? }`.
pub fn content_schema() -> Value {
    json!({
        "type": "object",
        "description": "The tool's content blocks: `text` joins the text blocks with newlines; `content` lists every block (binary data inline as base64 up to 64 KiB, else `truncated: true`).",
        "properties": {
            "text": {"type": "string"},
            "content": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "type": {"type": "string", "description": "text | image | audio | resource | resource_link"},
                        "text": {"type": "string"},
                        "mimeType": {"type": "string"},
                        "data": {"type": "string", "description": "base64, when not truncated"},
                        "bytes": {"type": "integer", "description": "size of the binary data"},
                        "truncated": {"type": "boolean"},
                        "uri": {"type": "string"},
                        "name": {"type": "string"}
                    },
                    "required": ["type"]
                }
            },
            "structuredContent": {}
        },
        "required": ["text", "content"]
    })
}

/// Name of [`content_schema`] in documentation.
pub const CONTENT_SCHEMA: &str =
    "{ text: string; content: Array<{ type: string; ... }>; structuredContent?: unknown }";

/// Decoded size of a base64 text.
fn base64_bytes(data: &str) -> u64 {
    let len = data.trim_end_matches('=').len() as u64;
    len * 3 / 4
}

/// A binary field (`data` or `blob`) copied inline or replaced by its size.
fn binary(out: &mut Map<String, Value>, data: Option<&str>) {
    let Some(data) = data else { return };
    out.insert("bytes".into(), json!(base64_bytes(data)));
    if data.len() <= MAX_INLINE_BASE64 {
        out.insert("data".into(), json!(data));
    } else {
        out.insert("truncated".into(), json!(true));
    }
}

/// One content block, as the sandbox sees it.
fn block(b: &Value) -> Value {
    let kind = b.get("type").and_then(Value::as_str).unwrap_or("unknown");
    let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    let mut out = Map::new();
    out.insert("type".into(), json!(kind));
    match kind {
        "text" => {
            out.insert("text".into(), json!(s(b, "text").unwrap_or_default()));
        }
        "image" | "audio" => {
            if let Some(m) = s(b, "mimeType") {
                out.insert("mimeType".into(), json!(m));
            }
            binary(&mut out, b.get("data").and_then(Value::as_str));
        }
        "resource" => {
            let r = b.get("resource").cloned().unwrap_or(Value::Null);
            for k in ["uri", "mimeType", "text"] {
                if let Some(v) = s(&r, k) {
                    out.insert(k.into(), json!(v));
                }
            }
            binary(&mut out, r.get("blob").and_then(Value::as_str));
        }
        "resource_link" => {
            for k in ["uri", "name", "title", "description", "mimeType"] {
                if let Some(v) = s(b, k) {
                    out.insert(k.into(), json!(v));
                }
            }
        }
        _ => {
            // A block type newer than this release: its string fields, no binary.
            if let Some(m) = b.as_object() {
                for (k, v) in m {
                    if v.is_string() && v.as_str().is_some_and(|t| t.len() <= MAX_INLINE_BASE64) {
                        out.insert(k.clone(), v.clone());
                    }
                }
            }
        }
    }
    Value::Object(out)
}

/// The text of the text blocks, joined with newlines.
pub(crate) fn joined_text(result: &Value) -> String {
    result
        .get("content")
        .and_then(Value::as_array)
        .map(|blocks| {
            blocks
                .iter()
                .filter(|b| b.get("type").and_then(Value::as_str) == Some("text"))
                .filter_map(|b| b.get("text").and_then(Value::as_str))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default()
}

/// Why an upstream result cannot be returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// `isError: true`, with the upstream's text.
    ToolFailed(String),
    /// The tool declares an `outputSchema` but sent no `structuredContent`.
    NoStructuredContent,
}

/// The sandbox value of a `tools/call` result (its JSON form).
pub(crate) fn sandbox_value(result: &Value, structured: bool) -> Result<Value, Refusal> {
    if result.get("isError").and_then(Value::as_bool) == Some(true) {
        return Err(Refusal::ToolFailed(joined_text(result)));
    }
    let structured_content = result.get("structuredContent").cloned();
    if structured {
        return structured_content.ok_or(Refusal::NoStructuredContent);
    }
    let blocks: Vec<Value> = result
        .get("content")
        .and_then(Value::as_array)
        .map(|b| b.iter().map(block).collect())
        .unwrap_or_default();
    let mut out = Map::new();
    out.insert("text".into(), json!(joined_text(result)));
    out.insert("content".into(), Value::Array(blocks));
    if let Some(s) = structured_content {
        out.insert("structuredContent".into(), s);
    }
    Ok(Value::Object(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shape_is_the_same_for_every_result() {
        let big = "A".repeat(MAX_INLINE_BASE64 + 4);
        let r = json!({"content": [
            {"type": "text", "text": "{\"looks\": \"like json\"}"},
            {"type": "image", "mimeType": "image/png", "data": "iVBORw0KGgo="},
            {"type": "image", "mimeType": "image/png", "data": big},
            {"type": "resource", "resource": {"uri": "demo://x", "mimeType": "text/plain", "text": "hi"}},
            {"type": "resource_link", "uri": "demo://y", "name": "y"},
            {"type": "text", "text": "second"}
        ]});
        let v = sandbox_value(&r, false).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(v["text"], "{\"looks\": \"like json\"}\nsecond");
        assert_eq!(v["content"][1]["data"], "iVBORw0KGgo=");
        assert_eq!(v["content"][1]["bytes"], 8);
        assert_eq!(v["content"][2]["truncated"], true);
        assert!(v["content"][2].get("data").is_none());
        assert_eq!(
            v["content"][2]["bytes"],
            (MAX_INLINE_BASE64 as u64 + 4) * 3 / 4
        );
        assert_eq!(v["content"][3]["uri"], "demo://x");
        assert_eq!(v["content"][4]["name"], "y");
        assert!(v.get("structuredContent").is_none());
        let schema = code_mode::Tool::new("t", "", json!({"type": "object"}), |_, _| async {
            Ok::<_, code_mode::ToolError>(json!(1))
        })
        .and_then(|t| t.with_output_schema(content_schema()));
        assert!(schema.is_ok(), "{schema:?}");
        let empty = sandbox_value(&json!({}), false).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(empty, json!({"text": "", "content": []}));
    }

    #[test]
    fn structured_errors_and_missing_structure() {
        let r =
            json!({"content": [{"type": "text", "text": "3"}], "structuredContent": {"sum": 3}});
        assert_eq!(sandbox_value(&r, true), Ok(json!({"sum": 3})));
        assert_eq!(
            sandbox_value(&r, false).map(|v| v["structuredContent"].clone()),
            Ok(json!({"sum": 3}))
        );
        assert_eq!(
            sandbox_value(&json!({"content": []}), true),
            Err(Refusal::NoStructuredContent)
        );
        let e = json!({"isError": true, "content": [{"type": "text", "text": "boom"}]});
        assert_eq!(
            sandbox_value(&e, false),
            Err(Refusal::ToolFailed("boom".into()))
        );
    }
}
