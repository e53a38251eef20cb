//! The secret-parameter check through `CodeModeBuilder::build`, one policy at a time.

use std::sync::{Arc, Mutex};

use code_mode::{CodeMode, CodeModeError, SecretParameterPolicy, Tool, ToolError};
use serde_json::{Value, json};

fn tool(name: &str, schema: Value) -> Tool {
    Tool::new(name, "A tool.", schema, |_, _| async {
        Ok::<_, ToolError>(Value::Null)
    })
    .unwrap_or_else(|e| panic!("{e}"))
}

fn tools() -> Vec<Tool> {
    vec![
        tool(
            "deploy",
            json!({"type": "object", "properties": {
                "apiKey": {"type": "string"},
                "options": {"type": "object", "properties": {"password": {"type": "string"}, "maxTokens": {"type": "integer"}}}
            }}),
        ),
        tool(
            "search",
            json!({"type": "object", "properties": {"query": {"type": "string"}, "tokenCount": {"type": "integer"}}}),
        ),
        tool(
            "notify",
            json!({"type": "object", "properties": {
                "targets": {"type": "array", "items": {"type": "object", "properties": {"webhookSecret": {"type": "string"}}}}
            }}),
        ),
    ]
}

fn build(policy: SecretParameterPolicy) -> Result<CodeMode, CodeModeError> {
    CodeMode::builder()
        .tools(tools())
        .driver(Arc::new(code_mode_isolate_quickjs::QuickJsDriver::new()))
        .secret_parameters(policy)
        .build()
}

#[test]
fn warn_is_the_default_and_builds() {
    let built = CodeMode::builder()
        .tools(tools())
        .driver(Arc::new(code_mode_isolate_quickjs::QuickJsDriver::new()))
        .build();
    assert!(built.is_ok());
    assert!(build(SecretParameterPolicy::Warn).is_ok());
}

#[test]
fn error_refuses_with_the_first_one() {
    match build(SecretParameterPolicy::Error) {
        Err(CodeModeError::SecretParameter(p)) => {
            assert_eq!((p.tool.as_str(), p.path.as_str()), ("deploy", "apiKey"));
            let message = CodeModeError::SecretParameter(p).to_string();
            assert!(
                message.contains("read credentials in the tool's handler"),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn ignore_says_nothing_and_builds() {
    assert!(build(SecretParameterPolicy::Ignore).is_ok());
}

#[test]
fn the_callback_hears_each_tool_and_path_once() {
    let heard = Arc::new(Mutex::new(Vec::new()));
    let sink = heard.clone();
    let policy = SecretParameterPolicy::Callback(Arc::new(move |p| {
        sink.lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(format!("{}:{}", p.tool, p.path));
    }));
    assert!(build(policy).is_ok());
    let heard = heard.lock().unwrap_or_else(|e| e.into_inner()).clone();
    assert_eq!(
        heard,
        [
            "deploy:apiKey",
            "deploy:options.password",
            "notify:targets[].webhookSecret"
        ]
    );
}
