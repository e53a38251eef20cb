//! Frames exchanged with the Worker (documented at the top of `worker/worker.js`).

use serde::Deserialize;
use serde_json::{Value, json};

/// A frame from the Worker.
#[derive(Debug, Deserialize)]
#[serde(tag = "t", rename_all = "lowercase", deny_unknown_fields)]
pub(crate) enum FromWorker {
    /// A console line.
    Log { level: String, msg: String },
    /// A tool call; `args` is JSON text.
    Call { id: u64, name: String, args: String },
    /// The program's code stopped running (it waits for tool results).
    Idle,
    /// The end of the execution.
    Done {
        /// The returned value as JSON text (absent: no value).
        #[serde(default)]
        value: Option<String>,
        #[serde(default)]
        error: Option<code_mode::driver::GuestFailure>,
    },
}

/// The `run` frame: the program, the memory budget the Worker charges buffers against, and
/// the core's prelude setup record, passed to the prelude as is.
pub(crate) fn run_frame(
    code: &str,
    setup: &code_mode::driver::PreludeSetup,
    memory_bytes: u64,
) -> String {
    json!({
        "t": "run",
        "program": code_mode::driver::program_source(code),
        "setup": setup,
        "memoryBytes": memory_bytes,
    }).to_string()
}

/// A `reply` frame.
pub(crate) fn reply_frame(id: u64, outcome: Result<Value, (String, String)>) -> String {
    match outcome {
        Ok(v) => json!({"t": "reply", "id": id, "ok": v.to_string()}),
        Err((name, message)) => {
            json!({"t": "reply", "id": id, "err": {"name": name, "message": message}})
        }
    }
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_parse_strictly() {
        let ok: Result<FromWorker, _> =
            serde_json::from_str(r#"{"t":"call","id":1,"name":"external_a","args":"{}"}"#);
        assert!(ok.is_ok());
        for bad in [
            r#"{"t":"call","id":"x","name":"a","args":"{}"}"#,
            r#"{"t":"nope"}"#,
            r#"{"t":"log","level":"log","msg":"m","extra":1}"#,
            r#"[1,2]"#,
        ] {
            assert!(serde_json::from_str::<FromWorker>(bad).is_err(), "{bad}");
        }
    }
}
