//! The line protocol with the sidecar (documented at the top of `sidecar/sidecar.js`).
//!
//! One JSON object per line in each direction. Values the guest produces (tool arguments,
//! results) are embedded raw by the sidecar, so each crosses as JSON exactly once.

use serde::Deserialize;
use serde_json::{Value, json};

/// A line from the sidecar.
#[derive(Debug, Deserialize)]
#[serde(tag = "t", rename_all = "lowercase")]
pub(crate) enum Incoming {
    /// The sidecar started.
    Ready {
        /// `process.version`.
        node: String,
    },
    /// A console line of run `run`.
    Log {
        run: u64,
        level: String,
        msg: String,
    },
    /// The guest called a binding.
    Call {
        run: u64,
        call: u64,
        name: String,
        #[serde(default)]
        args: Value,
    },
    /// The run ended.
    Done {
        run: u64,
        /// Absent when the program returned nothing; `Some(Null)` for `return null`.
        #[serde(default, deserialize_with = "present")]
        value: Option<Value>,
        #[serde(default)]
        error: Option<code_mode::driver::GuestFailure>,
    },
    /// Isolates prepared for new contexts (`ready`), being prepared (`making`), and made
    /// since the sidecar started (`made`; recycled isolates serve several contexts).
    Spares {
        ready: usize,
        making: usize,
        #[serde(default)]
        made: u64,
    },
    /// A disposed isolate's thread is still held (a built-in ignoring termination): the
    /// sidecar takes no new context and ends itself once its runs in flight are done.
    Retiring,
    /// Run `run` creates its context and reached a retiring sidecar: it did not start.
    Refused { run: u64 },
    /// Answer to a ping.
    Pong {
        #[allow(dead_code)]
        id: u64,
    },
}

impl Incoming {
    /// The run a line belongs to, if any.
    pub(crate) fn run(&self) -> Option<u64> {
        match self {
            Self::Log { run, .. }
            | Self::Call { run, .. }
            | Self::Done { run, .. }
            | Self::Refused { run } => Some(*run),
            Self::Ready { .. } | Self::Spares { .. } | Self::Retiring | Self::Pong { .. } => None,
        }
    }
}

impl Incoming {
    /// Decodes one line. A `done` line whose outcome does not have the documented shape
    /// still ends its run, with an internal error, instead of being dropped (the run would
    /// then wait for its deadline and the sidecar would be killed with every context on it).
    pub(crate) fn decode(text: &str) -> Option<Self> {
        if let Ok(msg) = serde_json::from_str::<Incoming>(text) {
            return Some(msg);
        }
        // Values are embedded raw: a guest string with a lone surrogate arrives escaped,
        // which serde_json refuses; `parse_guest_json` makes it U+FFFD.
        let value = code_mode::driver::parse_guest_json(text).ok()?;
        if let Ok(msg) = serde_json::from_value::<Incoming>(value.clone()) {
            return Some(msg);
        }
        let run = value.get("run").and_then(Value::as_u64)?;
        use code_mode::driver::{FailureKind, GuestFailure};
        (value.get("t").and_then(Value::as_str) == Some("done")).then(|| Self::Done {
            run,
            value: None,
            error: Some(GuestFailure::new(
                FailureKind::Internal,
                "Error",
                "the sandbox reported an outcome it could not describe",
            )),
        })
    }
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

/// What a context's first run creates.
pub(crate) struct CreateSpec {
    pub memory_mb: u64,
    /// What the prelude's `setup` receives, as one object.
    pub setup: code_mode::driver::PreludeSetup,
}

/// `ping`: the sidecar answers `pong` when its main thread is free.
pub(crate) fn ping_line(id: u64) -> String {
    line(&json!({"op": "ping", "id": id}))
}

/// `run`: executes `code` in context `ctx`.
pub(crate) fn run_line(
    run: u64,
    ctx: u64,
    timeout_ms: u64,
    max_result_bytes: u64,
    code: &str,
    create: Option<&CreateSpec>,
) -> String {
    let mut msg = json!({
        "op": "run", "run": run, "ctx": ctx, "timeoutMs": timeout_ms,
        "maxResultBytes": max_result_bytes,
        "program": code_mode::driver::program_source(code),
    });
    if let (Some(spec), Value::Object(m)) = (create, &mut msg) {
        m.insert(
            "create".into(),
            json!({ "memoryMb": spec.memory_mb, "setup": spec.setup }),
        );
    }
    line(&msg)
}

/// `reply`: the result of call `call` (JSON text) or its error.
pub(crate) fn reply_line(ctx: u64, call: u64, outcome: Result<Value, (String, String)>) -> String {
    let msg = match outcome {
        Ok(value) => json!({"op": "reply", "ctx": ctx, "call": call, "ok": value.to_string()}),
        Err((name, message)) => json!({
            "op": "reply", "ctx": ctx, "call": call, "err": {"name": name, "message": message},
        }),
    };
    line(&msg)
}

/// `hold`: the host's clock stopped (an approval is pending); run `run` has no deadline
/// until `release`.
pub(crate) fn hold_line(ctx: u64, run: u64) -> String {
    line(&json!({"op": "hold", "ctx": ctx, "run": run}))
}

/// `release`: the clock runs again with `left_ms` of run `run`'s budget left.
pub(crate) fn release_line(ctx: u64, run: u64, left_ms: u64) -> String {
    line(&json!({"op": "release", "ctx": ctx, "run": run, "leftMs": left_ms}))
}

/// `dispose`: frees context `ctx`.
pub(crate) fn dispose_line(ctx: u64) -> String {
    line(&json!({"op": "dispose", "ctx": ctx}))
}

fn line(v: &Value) -> String {
    let mut s = v.to_string();
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_incoming_shape() {
        let lines = [
            r#"{"t":"ready","node":"v24.21.0"}"#,
            r#"{"t":"spares","ready":2,"making":0}"#,
            r#"{"t":"log","run":1,"level":"warn","msg":"x"}"#,
            r#"{"t":"call","run":1,"call":2,"name":"external_a","args":{"q":[1]}}"#,
            r#"{"t":"done","run":1,"value":{"a":1}}"#,
            r#"{"t":"done","run":1}"#,
            r#"{"t":"done","run":1,"error":{"kind":"guest","name":"TypeError","message":"m","line":3}}"#,
        ];
        for l in lines {
            let parsed: Incoming = serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}"));
            assert!(
                matches!(parsed, Incoming::Ready { .. } | Incoming::Spares { .. })
                    || parsed.run() == Some(1)
            );
        }
        let bad: Result<Incoming, _> = serde_json::from_str(r#"{"t":"nonsense"}"#);
        assert!(bad.is_err());
    }

    #[test]
    fn an_unreadable_done_line_still_ends_its_run() {
        let msg = Incoming::decode(r#"{"t":"done","run":7,"error":{"line":0}}"#);
        match msg {
            Some(Incoming::Done {
                run: 7,
                value: None,
                error: Some(e),
            }) => assert_eq!(e.kind, code_mode::driver::FailureKind::Internal),
            other => panic!("{other:?}"),
        }
        assert!(Incoming::decode(r#"{"t":"log","run":7}"#).is_none());
        assert!(Incoming::decode("not json").is_none());
    }

    #[test]
    fn lines_are_single_lines() {
        let code = "const a = 1;\nreturn '\u{2028}\"'";
        let l = run_line(1, 2, 30, 10, code, None);
        assert_eq!(l.matches('\n').count(), 1);
        assert!(l.ends_with('\n'));
        let v: Value = serde_json::from_str(&l).unwrap_or_default();
        assert_eq!(v["program"], code_mode::driver::program_source(code));
        let r = reply_line(2, 3, Err(("ToolCallLimitError".into(), "m\nn".into())));
        assert_eq!(r.matches('\n').count(), 1);
    }
}
