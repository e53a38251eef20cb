//! The chunk encoding against the TanStack AI wire format.

use code_mode::{Event, EventKind, LogLevel, Phase};
use code_mode_chat::{Chunk, Usage, sse};
use serde_json::{Value, json};

/// Every chunk type of the reference transcript decodes into a `Chunk` and re-encodes to the
/// same JSON (same fields, same casing, nothing added).
#[test]
fn reference_transcript_round_trips() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/reference/tanstack-sse-transcript.sse"
    );
    let Ok(body) = std::fs::read_to_string(path) else {
        // The reference lives beside the repository (shared/), not in it.
        eprintln!("skipped: {path} not found");
        return;
    };
    let mut seen = Vec::new();
    for event in body.split("\n\n").filter(|e| !e.trim().is_empty()) {
        let data = event.strip_prefix("data: ").unwrap_or(event).trim_end();
        let original: Value = serde_json::from_str(data).unwrap_or_else(|e| panic!("{e}: {data}"));
        let chunk: Chunk =
            serde_json::from_value(original.clone()).unwrap_or_else(|e| panic!("{e}: {data}"));
        seen.push(chunk.type_name());
        let again: Value =
            serde_json::from_str(sse::encode(&chunk).trim_start_matches("data: ").trim_end())
                .unwrap_or(Value::Null);
        assert_eq!(again, original, "re-encoded {} differs", chunk.type_name());
    }
    assert!(
        seen.contains(&"CUSTOM")
            && seen.contains(&"TOOL_CALL_RESULT")
            && seen.contains(&"RUN_FINISHED")
    );
}

/// A whole turn, encoded: the snapshot is the exact SSE body a client receives.
#[test]
fn transcript_snapshot() {
    let id: std::sync::Arc<str> = "call_1".into();
    let ev = |kind| {
        Chunk::from_event(
            &Event {
                tool_call_id: Some(id.clone()),
                kind,
            },
            1_000,
        )
    };
    let chunks = vec![
        Chunk::RunStarted {
            run_id: "run_1".into(),
            thread_id: "thread_1".into(),
            timestamp: 1_000,
            metadata: None,
        },
        Chunk::ToolCallStart {
            tool_call_id: "call_1".into(),
            tool_call_name: "execute_typescript".into(),
            parent_message_id: Some("msg_1".into()),
            timestamp: 1_000,
            metadata: None,
        },
        Chunk::ToolCallArgs {
            tool_call_id: "call_1".into(),
            timestamp: 1_000,
            delta: "{\"typescriptCode\":\"return 1\"}".into(),
        },
        Chunk::ToolCallEnd {
            tool_call_id: "call_1".into(),
            timestamp: 1_000,
            metadata: None,
        },
        ev(EventKind::ExecutionStarted {
            timestamp: 1_000,
            code_length: 8,
        }),
        ev(EventKind::ExternalCall {
            function: "external_getWeather".into(),
            args: json!({"city": "Oslo"}),
            timestamp: 1_000,
        }),
        ev(EventKind::Console {
            level: LogLevel::Warn,
            message: "cold".into(),
            timestamp: 1_000,
        }),
        ev(EventKind::ExternalResult {
            function: "external_getWeather".into(),
            result: json!({"tempC": 4}),
            duration_ms: 12.5,
        }),
        ev(EventKind::ExecutionFinished {
            timestamp: 1_000,
            duration_ms: 20.0,
            phase: Phase::Execute,
            success: true,
            log_count: 1,
            error: None,
        }),
        Chunk::ToolCallResult {
            timestamp: 1_000,
            message_id: "msg_1".into(),
            tool_call_id: "call_1".into(),
            content: "{\"success\":true,\"result\":4,\"logs\":[\"WARN: cold\"]}".into(),
            role: "tool".into(),
        },
        Chunk::RunFinished {
            run_id: "run_1".into(),
            thread_id: "thread_1".into(),
            timestamp: 1_000,
            usage: Some(vec![Usage {
                input_tokens: 10,
                output_tokens: 5,
                total_tokens: 15,
            }]),
            metadata: Some(json!({"tanstack": {"finishReason": "tool_calls"}})),
            outcome: None,
        },
        Chunk::TextMessageStart {
            message_id: "msg_2".into(),
            timestamp: 1_000,
            role: "assistant".into(),
            metadata: None,
        },
        Chunk::TextMessageContent {
            message_id: "msg_2".into(),
            timestamp: 1_000,
            delta: "It is 4 °C in Oslo.".into(),
        },
        Chunk::TextMessageEnd {
            message_id: "msg_2".into(),
            timestamp: 1_000,
            metadata: None,
        },
        Chunk::run_error(
            Some("run_2".into()),
            1_000,
            "model unavailable",
            Some("upstream".into()),
        ),
    ];
    let body: String = chunks.iter().map(sse::encode).collect();
    assert_eq!(sse::decode(&body), chunks);
    insta::assert_snapshot!(body);
}

#[test]
fn ids_and_headers() {
    let chunk = Chunk::TextMessageContent {
        message_id: "m".into(),
        timestamp: 1,
        delta: "x".into(),
    };
    assert!(sse::encode_with_id("42", &chunk).starts_with("id: 42\ndata: {"));
    assert!(sse::encode_with_id("4\n2", &chunk).starts_with("data: {"));
    assert_eq!(sse::HEADERS[0], ("content-type", "text/event-stream"));
    assert!(sse::decode("data: not json\n\n: comment\n\n").is_empty());
}
