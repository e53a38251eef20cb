//! The agent loop with a scripted model: chunk order, live code-mode events, the final SSE
//! transcript, cancellation on disconnect, model errors.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

mod common;

use code_mode_chat::{Agent, Chunk, LlmError, LlmEvent, Message, ScriptedLlm, Usage, sse};
use futures::StreamExt;
use serde_json::{Value, json};

const PROGRAM: &str = "console.log('checking Oslo');\nconst w = await external_weather({ city: 'Oslo' });\nconsole.warn('got it');\nreturn w.tempC;";

fn tool_turn(code: &str) -> Vec<Result<LlmEvent, LlmError>> {
    let args = json!({"typescriptCode": code}).to_string();
    let (a, b) = args.split_at(args.len() / 2);
    vec![
        Ok(LlmEvent::ToolCallStart {
            index: 0,
            id: "call_1".into(),
            name: "execute_typescript".into(),
        }),
        Ok(LlmEvent::ToolCallArgs {
            index: 0,
            delta: a.into(),
        }),
        Ok(LlmEvent::ToolCallArgs {
            index: 0,
            delta: b.into(),
        }),
        Ok(LlmEvent::Finish {
            reason: "tool_calls".into(),
            usage: Some(Usage {
                input_tokens: 10,
                output_tokens: 10,
                total_tokens: 20,
            }),
        }),
    ]
}

fn answer_turn() -> Vec<Result<LlmEvent, LlmError>> {
    vec![
        Ok(LlmEvent::TextDelta("It is 4 °C ".into())),
        Ok(LlmEvent::TextDelta("in Oslo.".into())),
        Ok(LlmEvent::Finish {
            reason: "stop".into(),
            usage: None,
        }),
    ]
}

fn build(
    turns: Vec<Vec<Result<LlmEvent, LlmError>>>,
    weather_delay: Duration,
    dropped: Arc<AtomicBool>,
) -> (Agent, Arc<ScriptedLlm>) {
    let code_mode = common::weather_code_mode(weather_delay, dropped);
    let llm = Arc::new(ScriptedLlm::new(turns));
    let agent = Agent::new(
        llm.clone(),
        code_mode.as_tools(),
        vec![code_mode.system_prompt().to_owned()],
        5,
    );
    (agent, llm)
}

/// Replaces run-dependent values (timestamps, durations, generated ids) for the snapshot.
fn normalize(chunk: &Chunk) -> Value {
    fn walk(v: &mut Value) {
        match v {
            Value::Object(map) => {
                for (k, val) in map.iter_mut() {
                    match k.as_str() {
                        "timestamp" | "duration" | "durationMs" => *val = json!(0),
                        "runId" | "messageId" | "parentMessageId" => *val = json!("<id>"),
                        _ => walk(val),
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(walk),
            _ => {}
        }
    }
    let mut v = serde_json::to_value(chunk).unwrap_or(Value::Null);
    walk(&mut v);
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_turn_with_code_mode_streams_live_events() {
    let (agent, llm) = build(
        vec![tool_turn(PROGRAM), answer_turn()],
        Duration::from_millis(300),
        Arc::default(),
    );
    let mut stream = agent.run(
        "thread_1",
        vec![Message::User {
            content: "Weather in Oslo?".into(),
        }],
    );
    let mut received: Vec<(Chunk, Instant)> = Vec::new();
    while let Some(chunk) = stream.next().await {
        received.push((chunk, Instant::now()));
    }
    let types: Vec<&str> = received.iter().map(|(c, _)| c.label()).collect();
    assert_eq!(
        types,
        [
            "RUN_STARTED",
            "TOOL_CALL_START",
            "TOOL_CALL_ARGS",
            "TOOL_CALL_ARGS",
            "TOOL_CALL_END",
            "code_mode:execution_started",
            "code_mode:console",
            "code_mode:external_call",
            "code_mode:external_result",
            "code_mode:console",
            "code_mode:execution_finished",
            "RUN_FINISHED",
            "TOOL_CALL_RESULT",
            "TEXT_MESSAGE_START",
            "TEXT_MESSAGE_CONTENT",
            "TEXT_MESSAGE_CONTENT",
            "TEXT_MESSAGE_END",
            "RUN_FINISHED",
        ]
    );
    // The first console line reached the consumer while the tool was still running.
    let at = |name: &str| {
        received
            .iter()
            .find(|(c, _)| matches!(c, Chunk::Custom { name: n, .. } if n == name))
            .map(|(_, t)| *t)
    };
    let result_at = received
        .iter()
        .find(|(c, _)| c.type_name() == "TOOL_CALL_RESULT")
        .map(|(_, t)| *t);
    let (Some(console), Some(result)) = (at("code_mode:console"), result_at) else {
        panic!("missing chunks")
    };
    assert!(
        result.duration_since(console) >= Duration::from_millis(200),
        "console event was not live"
    );
    // Every code-mode event is tagged with the tool call.
    for (c, _) in &received {
        if let Chunk::Custom { value, .. } = c {
            assert_eq!(value["toolCallId"], json!("call_1"));
        }
    }
    // The tool result went back to the model.
    let requests = llm.requests();
    let Some(Message::Tool { content, .. }) = requests[1].messages.last() else {
        panic!("no tool message")
    };
    assert_eq!(
        serde_json::from_str::<Value>(content).unwrap_or_default()["result"],
        json!(4)
    );
    let body: String = received.iter().map(|(c, _)| sse::encode(c)).collect();
    let normalized: Vec<Value> = sse::decode(&body).iter().map(normalize).collect();
    insta::assert_json_snapshot!(normalized);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_stream_cancels_the_run_and_the_sandbox() {
    let dropped = Arc::new(AtomicBool::new(false));
    let (agent, _) = build(
        vec![tool_turn(PROGRAM), answer_turn()],
        Duration::from_secs(30),
        dropped.clone(),
    );
    let mut stream = agent.run(
        "t",
        vec![Message::User {
            content: "hi".into(),
        }],
    );
    // Read until the tool call is under way, then disconnect.
    while let Some(chunk) = stream.next().await {
        if matches!(&chunk, Chunk::Custom { name, .. } if name == "code_mode:external_call") {
            break;
        }
    }
    drop(stream);
    common::wait_for(
        &dropped,
        "the tool call kept running after the client went away",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_errors_end_with_run_error() {
    let turns = vec![vec![
        Ok(LlmEvent::TextDelta("partial".into())),
        Err(LlmError::new("network", "connection reset")),
    ]];
    let (agent, _) = build(turns, Duration::ZERO, Arc::default());
    let chunks: Vec<Chunk> = agent
        .run(
            "t",
            vec![Message::User {
                content: "hi".into(),
            }],
        )
        .collect()
        .await;
    match chunks.last() {
        Some(Chunk::RunError {
            message,
            code,
            error,
            ..
        }) => {
            assert_eq!(message, "connection reset");
            assert_eq!(code.as_deref(), Some("network"));
            assert_eq!(error.message, "connection reset");
        }
        other => panic!("expected RUN_ERROR last, got {other:?}"),
    }
    // A model that keeps calling tools is stopped after max_iterations.
    let turns = (0..5).map(|_| tool_turn("return 1")).collect();
    let (agent, _) = build(turns, Duration::ZERO, Arc::default());
    let chunks: Vec<Chunk> = agent
        .run(
            "t",
            vec![Message::User {
                content: "loop".into(),
            }],
        )
        .collect()
        .await;
    assert!(
        matches!(chunks.last(), Some(Chunk::RunError { code: Some(c), .. }) if c == "max_iterations")
    );
}

/// Three user turns: each model request carries every earlier turn's tool call and result,
/// as the TanStack client sends them back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_three_turn_conversation_keeps_the_tool_history() {
    let (agent, llm) = build(
        vec![
            tool_turn(PROGRAM),
            answer_turn(),
            tool_turn(PROGRAM),
            answer_turn(),
            answer_turn(),
        ],
        Duration::from_millis(1),
        Arc::default(),
    );
    let mut history = vec![Message::User {
        content: "Weather in Oslo?".into(),
    }];
    for (turn, question) in ["Weather in Oslo?", "And again?", "Thanks, summarise."]
        .iter()
        .enumerate()
    {
        if turn > 0 {
            history.push(Message::User {
                content: (*question).into(),
            });
        }
        let chunks: Vec<Chunk> = agent.run("thread_3", history.clone()).collect().await;
        // What the client keeps and sends back: the assistant's call, its result, the answer.
        for chunk in &chunks {
            match chunk {
                Chunk::ToolCallEnd {
                    tool_call_id,
                    metadata,
                    ..
                } => history.push(Message::Assistant {
                    content: String::new(),
                    tool_calls: vec![code_mode_chat::ToolCall {
                        id: tool_call_id.clone(),
                        name: "execute_typescript".into(),
                        arguments: metadata
                            .as_ref()
                            .map(|m| m["tanstack"]["input"].to_string())
                            .unwrap_or_default(),
                    }],
                }),
                Chunk::ToolCallResult {
                    tool_call_id,
                    content,
                    ..
                } => history.push(Message::Tool {
                    tool_call_id: tool_call_id.clone(),
                    content: content.clone(),
                }),
                _ => {}
            }
        }
        let text: String = chunks
            .iter()
            .filter_map(|c| match c {
                Chunk::TextMessageContent { delta, .. } => Some(delta.as_str()),
                _ => None,
            })
            .collect();
        history.push(Message::Assistant {
            content: text,
            tool_calls: Vec::new(),
        });
    }
    let requests = llm.requests();
    assert_eq!(requests.len(), 5);
    // The request that opens turn 2 (the third model call) holds turn 1's call and result.
    let turn2 = &requests[2].messages;
    let call_at = turn2
        .iter()
        .position(|m| matches!(m, Message::Assistant { tool_calls, .. } if tool_calls.iter().any(|c| c.id == "call_1" && c.arguments.contains("external_weather"))))
        .unwrap_or_else(|| panic!("turn 1's tool call is missing: {turn2:?}"));
    assert!(
        matches!(&turn2[call_at + 1], Message::Tool { tool_call_id, content } if tool_call_id == "call_1" && content.contains("\"success\":true")),
        "turn 1's result does not follow its call: {turn2:?}"
    );
    assert!(matches!(turn2.last(), Some(Message::User { content }) if content == "And again?"));
    // The last request holds both earlier turns' calls and results.
    let turn3 = &requests[4].messages;
    let results = turn3
        .iter()
        .filter(|m| matches!(m, Message::Tool { .. }))
        .count();
    assert_eq!(results, 2, "{turn3:?}");
}

/// A run whose program asks for an approval before anything else parks at once; the end of
/// its first response must not cancel it. Repeated, with runs in parallel on two workers,
/// because the run used to start before the response held it: when it parked first, the
/// hold stayed with the response and the end of that response aborted the parked run, and
/// the follow-up's stream ended right after the decision.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_parks_at_once_survives_the_end_of_its_first_response() {
    use code_mode::{ApprovalPolicy, CodeMode, Tool, ToolError};
    let send = Tool::new(
        "send",
        "Sends a report.",
        json!({"type": "object"}),
        |_input, _| async { Ok::<_, ToolError>(json!({"sent": true})) },
    )
    .unwrap_or_else(|e| panic!("{e}"))
    .require_approval(ApprovalPolicy::Always);
    let code_mode = CodeMode::builder()
        .tool(send)
        .driver(Arc::new(code_mode_isolate_quickjs::QuickJsDriver::new()))
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let code = "const r = await external_send({});\nreturn r.sent;";
    let rounds = 100;
    let mut runs = Vec::new();
    for round in 0..rounds {
        let code_mode = code_mode.clone();
        runs.push(tokio::spawn(async move {
            let approvals = code_mode_chat::ChatApprovals::new(Duration::from_secs(30));
            let llm = Arc::new(ScriptedLlm::new(vec![tool_turn(code), answer_turn()]));
            let agent = Agent::new(
                llm,
                code_mode.as_tools(),
                vec![code_mode.system_prompt().to_owned()],
                5,
            )
            .with_approvals(approvals);
            let first: Vec<Chunk> = agent
                .run_as(
                    "t",
                    format!("run-{round}"),
                    vec![Message::User {
                        content: "send it".into(),
                    }],
                )
                .collect()
                .await;
            assert!(
                first.iter().any(
                    |c| matches!(c, Chunk::Custom { name, .. } if name == "approval-requested")
                ),
                "round {round}: no approval asked"
            );
            // The first stream is dropped here (collected): the parked run must go on.
            tokio::task::yield_now().await;
            let follow_up = json!({"messages": [
                {"role": "user", "content": "send it"},
                {"role": "tool", "toolCallId": "call_1", "content": "{\"approved\":true}"},
            ]});
            let rest: Vec<Chunk> = agent
                .resume(&follow_up, format!("run-{round}b"))
                .unwrap_or_else(|| panic!("round {round}: the follow-up found no parked run"))
                .collect()
                .await;
            let result = rest.iter().find_map(|c| match c {
                Chunk::ToolCallResult { content, .. } => Some(content.clone()),
                _ => None,
            });
            assert!(
                result.as_deref().is_some_and(|r| r.contains("true")),
                "round {round}: the resumed run ended without its result: {rest:?}"
            );
        }));
    }
    for run in runs {
        run.await.unwrap_or_else(|e| panic!("{e}"));
    }
}
