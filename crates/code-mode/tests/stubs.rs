//! Type stubs generated from JSON Schema: one snapshot per schema feature, plus the whole set.

use code_mode::{Tool, ToolError, generate_stubs};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

fn tool(name: &str, description: &str, input: Value, output: Option<Value>) -> Tool {
    let t = Tool::new(name, description, input, |v, _| async move {
        Ok::<_, ToolError>(v)
    })
    .expect("valid tool");
    match output {
        Some(o) => t.with_output_schema(o).expect("valid output schema"),
        None => t,
    }
}

fn stubs(input: Value) -> String {
    generate_stubs(&[&tool("probe", "", input, None)])
}

#[test]
fn objects_nested_optional_and_descriptions() {
    insta::assert_snapshot!(stubs(json!({
        "type": "object",
        "description": "Search the catalogue.",
        "properties": {
            "query": {"type": "string", "description": "Full-text query."},
            "limit": {"type": "integer", "minimum": 1},
            "filters": {
                "type": "object",
                "description": "Optional filters.\nAll must match.",
                "properties": {
                    "inStock": {"type": "boolean"},
                    "price": {"type": "object", "properties": {"min": {"type": "number"}, "max": {"type": "number"}}, "required": ["min"]}
                }
            },
            "content-type": {"type": "string", "description": "A key that is not an identifier; a */ in text."}
        },
        "required": ["query"]
    })));
}

#[test]
fn arrays_and_tuples() {
    insta::assert_snapshot!(stubs(json!({
        "type": "object",
        "properties": {
            "tags": {"type": "array", "items": {"type": "string"}},
            "matrix": {"type": "array", "items": {"type": "array", "items": {"type": "number"}}},
            "points": {"type": "array", "items": {"type": "object", "properties": {"x": {"type": "number"}, "y": {"type": "number"}}, "required": ["x", "y"]}},
            "pair": {"type": "array", "prefixItems": [{"type": "string"}, {"type": "number"}], "items": false},
            "anything": {"type": "array"},
            "mixed": {"type": "array", "items": {"type": ["string", "number"]}}
        },
        "required": ["tags", "pair"]
    })));
}

#[test]
fn draft_07_tuples() {
    insta::assert_snapshot!(stubs(json!({
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "object",
        "properties": {
            "legacyTuple": {"type": "array", "items": [{"type": "boolean"}, {"type": "null"}], "additionalItems": {"type": "string"}},
            "closedTuple": {"type": "array", "items": [{"type": "integer"}], "additionalItems": false}
        }
    })));
}

#[test]
fn enums_consts_unions_and_nullable() {
    insta::assert_snapshot!(stubs(json!({
        "type": "object",
        "properties": {
            "unit": {"type": "string", "enum": ["metric", "imperial"]},
            "level": {"enum": [1, 2, 3]},
            "kind": {"const": "fixed"},
            "either": {"anyOf": [{"type": "string"}, {"type": "object", "properties": {"id": {"type": "integer"}}, "required": ["id"]}]},
            "shape": {"oneOf": [{"const": "circle"}, {"const": "square"}]},
            "maybe": {"type": ["string", "null"]},
            "openapiNullable": {"type": "integer", "nullable": true},
            "both": {"allOf": [{"type": "object", "properties": {"a": {"type": "string"}}}, {"type": "object", "properties": {"b": {"type": "number"}}}]},
            "never": false,
            "whatever": true
        }
    })));
}

#[test]
fn records_and_additional_properties() {
    insta::assert_snapshot!(stubs(json!({
        "type": "object",
        "properties": {
            "counts": {"type": "object", "additionalProperties": {"type": "integer"}},
            "free": {"type": "object"},
            "closed": {"type": "object", "additionalProperties": false},
            "mixed": {"type": "object", "properties": {"known": {"type": "string"}}, "additionalProperties": {"type": "number"}},
            "byUser": {"type": "object", "additionalProperties": {"type": "object", "properties": {"name": {"type": "string"}}}}
        },
        "required": ["counts"]
    })));
}

#[test]
fn refs_defs_and_cycles() {
    insta::assert_snapshot!(stubs(json!({
        "type": "object",
        "$defs": {
            "Node": {
                "type": "object",
                "description": "A tree node.",
                "properties": {
                    "value": {"type": "number"},
                    "children": {"type": "array", "items": {"$ref": "#/$defs/Node"}}
                },
                "required": ["value"]
            },
            "Color": {"enum": ["red", "green"]}
        },
        "definitions": {"Legacy": {"type": "string", "format": "date-time"}},
        "properties": {
            "root": {"$ref": "#/$defs/Node"},
            "color": {"$ref": "#/$defs/Color"},
            "when": {"$ref": "#/definitions/Legacy"},
            "self": {"$ref": "#"}
        },
        "required": ["root"]
    })));
}

#[derive(Deserialize, JsonSchema)]
#[allow(dead_code)]
struct OrderQuery {
    /// Customer id.
    customer: String,
    /// Only orders in this state.
    status: Option<Status>,
    /// Line items to match.
    items: Vec<Item>,
}

#[derive(Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
enum Status {
    Open,
    Shipped,
    Cancelled,
}

#[derive(Deserialize, Serialize, JsonSchema)]
#[allow(dead_code)]
struct Item {
    sku: String,
    quantity: u32,
}

#[derive(Serialize, JsonSchema)]
struct OrderSummary {
    total: f64,
    status: Status,
}

#[test]
fn typed_tools_from_schemars() {
    let t = Tool::typed("findOrders", "Finds orders.", |_q: OrderQuery| async move {
        Ok::<_, ToolError>(OrderSummary {
            total: 0.0,
            status: Status::Open,
        })
    })
    .expect("typed tool");
    insta::assert_snapshot!(generate_stubs(&[&t]));
}

#[test]
fn several_tools_share_definitions() {
    let def = json!({"type": "object", "properties": {"street": {"type": "string"}}, "required": ["street"]});
    let other = json!({"type": "object", "properties": {"zip": {"type": "string"}}});
    let a = tool(
        "shipTo",
        "Ships to an address.",
        json!({"type": "object", "$defs": {"Address": def}, "properties": {"to": {"$ref": "#/$defs/Address"}}, "required": ["to"]}),
        None,
    );
    let b = tool(
        "billTo",
        "Bills an address.",
        json!({"type": "object", "$defs": {"Address": def}, "properties": {"to": {"$ref": "#/$defs/Address"}}, "required": ["to"]}),
        Some(
            json!({"type": "object", "properties": {"invoice": {"type": "string"}}, "required": ["invoice"]}),
        ),
    );
    let c = tool(
        "geocode",
        "",
        json!({"type": "object", "$defs": {"Address": other}, "properties": {"at": {"$ref": "#/$defs/Address"}}}),
        Some(json!({"type": "array", "items": {"type": "number"}})),
    );
    let d = tool(
        "ping",
        "No input at all.",
        json!({"type": "object", "properties": {}}),
        None,
    );
    insta::assert_snapshot!(generate_stubs(&[&a, &b, &c, &d]));
}

#[test]
fn absurdly_deep_schema_is_cut_off() {
    let mut schema = json!({"type": "string"});
    for _ in 0..200 {
        schema = json!({"type": "object", "properties": {"n": schema}});
    }
    let out = generate_stubs(&[&tool("deep", "", schema, None)]);
    assert!(out.contains("unknown"));
}
