//! The chat agent's spans: one `invoke_agent` per run, a `chat <model>` span per model call
//! (finish reason, token usage) and an `execute_tool` span per tool call, with Code Mode's
//! execution and its tool calls nested under the agent's tool call. Exported to memory
//! through `tracing-opentelemetry` (`code-mode-conformance`'s span recorder).

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

mod common;

use code_mode_chat::{Agent, LlmError, LlmEvent, Message, ScriptedLlm, Usage};
use code_mode_conformance::spans;
use futures::StreamExt;
use serde_json::json;

fn tool_turn() -> Vec<Result<LlmEvent, LlmError>> {
    let args =
        json!({"typescriptCode": "return (await external_weather({ city: 'Oslo' })).tempC;"})
            .to_string();
    vec![
        Ok(LlmEvent::ToolCallStart {
            index: 0,
            id: "call_1".into(),
            name: "execute_typescript".into(),
        }),
        Ok(LlmEvent::ToolCallArgs {
            index: 0,
            delta: args,
        }),
        Ok(LlmEvent::Finish {
            reason: "tool_calls".into(),
            usage: Some(Usage {
                input_tokens: 12,
                output_tokens: 7,
                total_tokens: 19,
            }),
        }),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chat_run_forms_the_agent_span_tree() {
    let code_mode = common::weather_code_mode(Duration::ZERO, Arc::new(AtomicBool::new(false)));
    let llm = Arc::new(ScriptedLlm::new(vec![
        tool_turn(),
        ScriptedLlm::text("It is 4 °C."),
    ]));
    let agent = Agent::new(
        llm,
        code_mode.as_tools(),
        vec![code_mode.system_prompt().to_owned()],
        4,
    );
    let run = async {
        let chunks: Vec<_> = agent
            .run(
                "t1",
                vec![Message::User {
                    content: "Oslo?".into(),
                }],
            )
            .collect()
            .await;
        assert!(!chunks.is_empty());
    };
    let Some((root, all)) = spans::record(6, run).await else {
        panic!("no span exporter in this process");
    };
    let named =
        |n: &str| -> Vec<&spans::RecordedSpan> { all.iter().filter(|s| s.name == n).collect() };
    let agent_span = named("invoke_agent");
    assert_eq!(agent_span.len(), 1, "{all:#?}");
    let agent_span = agent_span[0];
    assert_eq!(agent_span.parent, root.id);
    assert_eq!(agent_span.attr("gen_ai.conversation.id"), Some("t1"));
    let chats = named("chat scripted");
    assert_eq!(chats.len(), 2, "{all:#?}");
    assert!(chats.iter().all(|c| c.parent == agent_span.id));
    let first = chats
        .iter()
        .find(|c| c.attr("gen_ai.response.finish_reasons") == Some("tool_calls"))
        .unwrap_or_else(|| panic!("{chats:#?}"));
    assert_eq!(first.attr("gen_ai.usage.input_tokens"), Some("12"));
    assert_eq!(first.attr("gen_ai.usage.output_tokens"), Some("7"));
    let execs = named("execute_tool execute_typescript");
    assert_eq!(
        execs.len(),
        2,
        "the agent's tool call and Code Mode's execution: {all:#?}"
    );
    let tool_call = execs
        .iter()
        .find(|s| s.parent == agent_span.id)
        .unwrap_or_else(|| panic!("{all:#?}"));
    assert_eq!(tool_call.attr("gen_ai.tool.call.id"), Some("call_1"));
    let execution = execs
        .iter()
        .find(|s| s.parent == tool_call.id)
        .unwrap_or_else(|| panic!("{all:#?}"));
    assert_eq!(execution.attr("code_mode.outcome"), Some("ok"));
    let weather = named("execute_tool external_weather");
    assert_eq!(weather.len(), 1);
    assert_eq!(weather[0].parent, execution.id);
}
