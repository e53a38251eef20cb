//! `code-mode demo`: the newcomer's tour.
//!
//! Three example tools over a small, deterministic store catalogue; a program of the kind an
//! LLM writes (parallel calls, sequential calls that depend on earlier results, a log line, a
//! summary); and everything a chat UI would see: the system prompt, the live events and the
//! structured result.

use std::process::ExitCode;
use std::time::Duration;

use code_mode::{CodeMode, EventSink, ExecuteOptions, Tool, ToolError};
use owo_colors::OwoColorize;
use serde_json::{Value, json};

use crate::render::{color, event_line};

const CATALOGUE: &[(&str, &str, &str, f64)] = &[
    ("KB-101", "keyboards", "Mechanical keyboard", 89.0),
    ("KB-202", "keyboards", "Low-profile keyboard", 64.5),
    ("MS-310", "mice", "Wireless mouse", 39.9),
    ("MS-420", "mice", "Trackball", 72.0),
    ("MN-270", "monitors", "27\" monitor", 249.0),
    ("MN-340", "monitors", "34\" ultrawide", 429.0),
];

const STOCK: &[(&str, u64)] = &[
    ("KB-101", 42),
    ("KB-202", 3),
    ("MS-310", 120),
    ("MS-420", 0),
    ("MN-270", 7),
    ("MN-340", 2),
];

/// The example tools.
pub fn tools() -> Vec<Tool> {
    let list = Tool::new(
        "listProducts",
        "Lists the products of a category.",
        json!({
            "type": "object",
            "properties": {"category": {"enum": ["keyboards", "mice", "monitors"], "description": "Product category."}},
            "required": ["category"]
        }),
        |input, _| async move {
            tokio::time::sleep(Duration::from_millis(40)).await;
            let cat = input["category"].as_str().unwrap_or_default().to_owned();
            let items: Vec<Value> = CATALOGUE
                .iter()
                .filter(|p| p.1 == cat)
                .map(|p| json!({"sku": p.0, "name": p.2, "price": p.3}))
                .collect();
            Ok::<_, ToolError>(json!(items))
        },
    )
    .and_then(|t| {
        t.with_output_schema(json!({
            "type": "array",
            "items": {"type": "object", "properties": {
                "sku": {"type": "string"}, "name": {"type": "string"}, "price": {"type": "number", "description": "Price in EUR."}
            }, "required": ["sku", "name", "price"]}
        }))
    });
    let stock = Tool::new(
        "getStock",
        "Units in stock for a SKU.",
        json!({"type": "object", "properties": {"sku": {"type": "string"}}, "required": ["sku"]}),
        |input, _| async move {
            tokio::time::sleep(Duration::from_millis(15)).await;
            let sku = input["sku"].as_str().unwrap_or_default();
            match STOCK.iter().find(|s| s.0 == sku) {
                Some((_, units)) => Ok(json!({"sku": sku, "units": units})),
                None => Err(ToolError::new(format!("unknown SKU {sku}"))),
            }
        },
    )
    .and_then(|t| {
        t.with_output_schema(json!({"type": "object", "properties": {"sku": {"type": "string"}, "units": {"type": "integer"}}, "required": ["sku", "units"]}))
    });
    let reorder = Tool::new(
        "createReorder",
        "Creates a purchase order to restock a SKU. Returns the order id.",
        json!({"type": "object", "properties": {
            "sku": {"type": "string"},
            "quantity": {"type": "integer", "minimum": 1, "maximum": 500}
        }, "required": ["sku", "quantity"]}),
        |input, _| async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            Ok::<_, ToolError>(json!({"orderId": format!("PO-{}", input["sku"].as_str().unwrap_or("?")), "quantity": input["quantity"]}))
        },
    )
    .map(|t| t.lazy(true));
    [list, stock, reorder]
        .into_iter()
        .filter_map(Result::ok)
        .collect()
}

/// The program an LLM might write for "restock whatever is running low".
pub const PROGRAM: &str = r#"interface Product { sku: string; name: string; price: number }

// 1. All categories in parallel.
const categories = ["keyboards", "mice", "monitors"] as const;
const lists = await Promise.all(categories.map((category) => external_listProducts({ category })));
const products: Product[] = lists.flat();

// 2. Stock of every product, in parallel too.
const stock = await Promise.all(products.map((p) => external_getStock({ sku: p.sku })));
const low = products.filter((p, i) => stock[i].units < 5);
console.log(`${low.length} of ${products.length} products are low on stock`);

// 3. One reorder per low product, one after the other.
const orders: string[] = [];
for (const p of low) {
  const order = await external_createReorder({ sku: p.sku, quantity: 20 });
  orders.push(order.orderId);
}

const value = products.reduce((sum, p, i) => sum + p.price * stock[i].units, 0);
return { products: products.length, lowStock: low.map((p) => p.name), orders, stockValueEur: Math.round(value) };
"#;

fn heading(title: &str, color: bool) {
    if color {
        println!("\n{}", format!("━━ {title} ━━").bold().magenta());
    } else {
        println!("\n== {title} ==");
    }
}

/// Runs the demo and prints it.
pub async fn run(code_mode: CodeMode, full_prompt: bool) -> ExitCode {
    let color = color();
    heading("System prompt given to the model", color);
    let prompt = code_mode.system_prompt();
    if full_prompt {
        println!("{prompt}");
    } else {
        let lines: Vec<&str> = prompt.lines().collect();
        for line in lines.iter().take(40) {
            println!("{line}");
        }
        if lines.len() > 40 {
            println!(
                "… ({} more lines; --full-prompt shows all)",
                lines.len() - 40
            );
        }
    }
    heading("Tools the model sees", color);
    for spec in code_mode.tool_specs() {
        println!("- {}: {}", spec.name, spec.description);
    }
    heading("Program written by the model (execute_typescript)", color);
    println!("{PROGRAM}");
    heading(
        &format!("Live events (driver: {})", code_mode.driver().name()),
        color,
    );
    let (sink, mut rx) = EventSink::channel();
    let printer = tokio::spawn(async move {
        while let Some(event) = rx.recv().await {
            println!("{}", event_line(&event, color));
        }
    });
    let result = code_mode
        .execute(PROGRAM, ExecuteOptions::new("call_demo_1", sink))
        .await;
    let _ = printer.await;
    heading("Result returned to the model", color);
    crate::print_result(&result)
}
