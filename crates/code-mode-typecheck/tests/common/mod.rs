//! What the type-check tests share: the checker, a Code Mode with the corpus's tools on the
//! native QuickJS driver, and a skill function with its declaration.

#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use code_mode::{Binding, CodeMode, GuestError, Tool, ToolError, TypeCheckMode};
use code_mode_typecheck::{TypeScriptChecker, TypeScriptOptions};
use serde_json::{Value, json};

/// Tool calls made (all tools), to show that a blocked program ran nothing.
pub(crate) static CALLS: AtomicUsize = AtomicUsize::new(0);

pub(crate) fn checker() -> Arc<TypeScriptChecker> {
    checker_with(TypeScriptOptions::default())
}

pub(crate) fn checker_with(options: TypeScriptOptions) -> Arc<TypeScriptChecker> {
    Arc::new(TypeScriptChecker::with_options(options).unwrap_or_else(|e| panic!("{e}")))
}

fn tool(
    name: &str,
    description: &str,
    input: Value,
    output: Option<Value>,
    f: fn(&Value) -> Result<Value, ToolError>,
) -> Tool {
    let t = Tool::new(name, description, input, move |v, _| {
        CALLS.fetch_add(1, Ordering::SeqCst);
        let out = f(&v);
        async move { out }
    })
    .unwrap_or_else(|e| panic!("{e}"));
    match output {
        Some(o) => t.with_output_schema(o).unwrap_or_else(|e| panic!("{e}")),
        None => t,
    }
}

/// The demo's three tools, the README's `getWeather`, and two with nested shapes.
pub(crate) fn tools() -> Vec<Tool> {
    let product = json!({"type": "object", "properties": {"sku": {"type": "string"}, "name": {"type": "string"}, "price": {"type": "number"}}, "required": ["sku", "name", "price"]});
    vec![
        tool("listProducts", "Lists the products of a category.",
            json!({"type": "object", "properties": {"category": {"enum": ["keyboards", "mice", "monitors"]}}, "required": ["category"]}),
            Some(json!({"type": "array", "items": product})),
            |v| Ok(json!([
                {"sku": format!("{}-1", v["category"].as_str().unwrap_or("?")), "name": "Board one", "price": 40},
                {"sku": format!("{}-2", v["category"].as_str().unwrap_or("?")), "name": "Keyboard two", "price": 140}
            ]))),
        tool("getStock", "Units in stock for a SKU.",
            json!({"type": "object", "properties": {"sku": {"type": "string"}}, "required": ["sku"], "additionalProperties": false}),
            Some(json!({"type": "object", "properties": {"sku": {"type": "string"}, "units": {"type": "integer"}}, "required": ["sku", "units"]})),
            |v| match v["sku"].as_str() {
                Some("NOPE") => Err(ToolError::new("unknown SKU NOPE")),
                sku => Ok(json!({"sku": sku, "units": 3})),
            }),
        tool("createReorder", "Creates a purchase order to restock a SKU. Returns the order id.",
            json!({"type": "object", "properties": {"sku": {"type": "string"}, "quantity": {"type": "integer", "minimum": 1}}, "required": ["sku", "quantity"]}),
            None,
            |v| Ok(json!({"orderId": format!("PO-{}", v["sku"].as_str().unwrap_or("?"))}))).lazy(true),
        tool("getWeather", "Current weather for a city.",
            json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}),
            None,
            |v| Ok(json!({"city": v["city"], "tempC": if v["city"] == "Oslo" { 4 } else { 24 }}))),
        tool("sendEmail", "Sends an email.",
            json!({"type": "object", "properties": {
                "to": {"type": "array", "items": {"type": "string"}},
                "subject": {"type": "string"}, "body": {"type": "string"},
                "priority": {"enum": ["low", "normal", "high"]}
            }, "required": ["to", "subject", "body"]}),
            Some(json!({"type": "object", "properties": {"id": {"type": "string"}, "queued": {"type": "boolean"}}, "required": ["id", "queued"]})),
            |_| Ok(json!({"id": "m-1", "queued": true}))),
        tool("searchOrders", "Orders of a customer.",
            json!({"type": "object", "properties": {
                "customerId": {"type": "string"},
                "status": {"enum": ["open", "shipped", "cancelled"]},
                "limit": {"type": "integer"}
            }, "required": ["customerId"]}),
            Some(json!({"type": "object", "properties": {
                "orders": {"type": "array", "items": {"type": "object", "properties": {
                    "id": {"type": "string"}, "total": {"type": "number"},
                    "items": {"type": "array", "items": {"type": "object", "properties": {"sku": {"type": "string"}, "qty": {"type": "integer"}}, "required": ["sku", "qty"]}}
                }, "required": ["id", "total", "items"]}},
                "nextCursor": {"type": "string"}
            }, "required": ["orders"]})),
            |_| Ok(json!({"orders": [{"id": "o-1", "total": 12.5, "items": [{"sku": "KB-101", "qty": 1}]}]}))),
    ]
}

pub(crate) fn code_mode(mode: TypeCheckMode, checker: Arc<TypeScriptChecker>) -> CodeMode {
    CodeMode::builder()
        .tools(tools())
        .driver(Arc::new(code_mode_isolate_quickjs::QuickJsDriver::new()))
        .type_check(mode, checker)
        .build()
        .unwrap_or_else(|e| panic!("{e}"))
}

/// `skill_top_products`, declared as the skills crate declares a skill for code.
pub(crate) fn skill_bindings() -> Vec<Binding> {
    let shape = Tool::new(
        "top_products",
        "Best-selling products of a category.",
        json!({"type": "object", "properties": {"category": {"type": "string"}, "limit": {"type": "integer"}}, "required": ["category"]}),
        |_, _| async { Ok::<_, ToolError>(Value::Null) },
    )
    .and_then(|t| t.with_output_schema(json!({"type": "object", "properties": {"items": {"type": "array", "items": {"type": "object", "properties": {"sku": {"type": "string"}}, "required": ["sku"]}}}, "required": ["items"]})))
    .unwrap_or_else(|e| panic!("{e}"));
    let declaration = code_mode::generate_checker_stubs(&[&shape], "skill_");
    let binding = Binding::new("skill_top_products", |_args| {
        Box::pin(async { Ok::<_, GuestError>(json!({"items": [{"sku": "MS-310"}]})) })
    })
    .unwrap_or_else(|e| panic!("{e}"));
    vec![binding.with_declaration(declaration)]
}
