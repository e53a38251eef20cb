//! The README's library example: one tool, the default driver, one program, live events.
//!
//! Run it with `cargo run -p code-mode-examples --example quickstart`.

use code_mode::{CodeMode, CodeModeResult, EventSink, ExecuteOptions, Tool, ToolError};
use serde_json::json;

/// Builds code-mode with one tool and runs a program that calls it twice in parallel.
/// Returns the result and the names of the events seen.
pub async fn run() -> Result<(CodeModeResult, Vec<String>), Box<dyn std::error::Error>> {
    let weather = Tool::new(
        "getWeather",
        "Current weather for a city.",
        json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}),
        |input, _ctx| async move {
            let temp = if input["city"] == "Oslo" { 4 } else { 24 };
            Ok::<_, ToolError>(json!({"city": input["city"], "tempC": temp}))
        },
    )?;
    let code_mode = CodeMode::builder()
        .tool(weather)
        .driver(code_mode_drivers::default_driver()?)
        .build()?;
    let _system_prompt = code_mode.system_prompt(); // give it to the model with code_mode.tool_specs()
    let (events, mut rx) = EventSink::channel();
    let code = "const [a, b] = await Promise.all([\n  external_getWeather({ city: 'Oslo' }),\n  external_getWeather({ city: 'Rome' }),\n]);\nreturn b.tempC - a.tempC;";
    let result = code_mode
        .execute(code, ExecuteOptions::new("call_1", events))
        .await;
    let mut names = Vec::new();
    while let Ok(event) = rx.try_recv() {
        names.push(event.name().to_owned());
    }
    Ok((result, names))
}

#[allow(dead_code)]
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (result, events) = run().await?;
    println!("events: {events:?}");
    println!("{}", serde_json::to_string_pretty(&result.to_json())?);
    Ok(())
}
