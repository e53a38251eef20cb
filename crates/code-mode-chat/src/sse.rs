//! Server-Sent Events framing, as TanStack AI's `toServerSentEventsStream` does it: each
//! chunk is one `data: <json>\n\n` event; there is no `[DONE]` terminator (the stream ends
//! after `RUN_FINISHED` or `RUN_ERROR`).

use crate::Chunk;

/// Response headers of an SSE stream of chunks.
pub const HEADERS: [(&str, &str); 3] = [
    ("content-type", "text/event-stream"),
    ("cache-control", "no-cache"),
    ("connection", "keep-alive"),
];

/// Encodes one chunk as an SSE event.
pub fn encode(chunk: &Chunk) -> String {
    // A `Chunk` always serialises (string keys, no non-finite floats from our own types);
    // fall back to a RUN_ERROR event rather than emitting a malformed frame.
    let json = serde_json::to_string(chunk).unwrap_or_else(|e| {
        let fallback = Chunk::run_error(None, 0, format!("cannot encode a chunk: {e}"), None);
        serde_json::to_string(&fallback).unwrap_or_else(|_| "{\"type\":\"RUN_ERROR\"}".into())
    });
    format!("data: {json}\n\n")
}

/// Encodes one chunk with an `id:` line (for resumable streams). Ids with CR, LF or NUL are
/// dropped, as the SSE format cannot carry them.
pub fn encode_with_id(id: &str, chunk: &Chunk) -> String {
    if id.contains(['\r', '\n', '\0']) {
        return encode(chunk);
    }
    format!("id: {id}\n{}", encode(chunk))
}

/// Parses an SSE body back into chunks (for tests and Rust clients): `data:` lines with one
/// optional space, blank-line separated; unparseable events are skipped.
pub fn decode(body: &str) -> Vec<Chunk> {
    body.split("\n\n")
        .filter_map(|event| {
            let data: Vec<&str> = event
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(|l| l.strip_prefix(' ').unwrap_or(l))
                .collect();
            if data.is_empty() {
                return None;
            }
            serde_json::from_str(&data.join("\n")).ok()
        })
        .collect()
}
