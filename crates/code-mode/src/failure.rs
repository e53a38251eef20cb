//! The one failure protocol between a guest prelude and its driver.
//!
//! Every guest (the WebAssembly guest's prelude, the V8 sidecar, the Worker) reports a
//! failed execution as the same JSON record, `{kind, name, message, line, size}`, and every
//! driver decodes it here. Before, three drivers each had their own decoder, and they drifted
//! (two wordings of the result-too-large error, a driver's name as an error name). A driver
//! now only recognises what is specific to its engine (an engine's out-of-memory or CPU
//! message, a trap) and hands the rest to [`GuestFailure::into_error`].

use serde::{Deserialize, Serialize};

use crate::error::{ErrorKind, ExecutionError};
use crate::limits::Limits;

/// A failed execution as a guest reports it.
///
/// `kind` is one of:
/// - `guest`: the program threw; `name` and `message` are its error's, `line` its line in
///   the program (0: unknown);
/// - `syntax`: the program does not parse;
/// - `result`: the returned value is not JSON;
/// - `too_large`: the returned value's JSON is `size` UTF-8 bytes, above the limit;
/// - `timeout`, `memory`, `stack`: a limit was hit (the guest saw it first);
/// - `deadlock`: the program awaits a promise nothing can settle;
/// - `disposed`: the context was disposed meanwhile;
/// - `internal` (or anything else): the sandbox itself failed.
///
/// ```
/// use code_mode::driver::GuestFailure;
/// use code_mode::{ErrorKind, Limits};
///
/// let f: GuestFailure = serde_json::from_str(
///     r#"{"kind":"guest","name":"TypeError","message":"x is not a function","line":3}"#,
/// ).unwrap();
/// let e = f.into_error(&Limits::default(), "My driver");
/// assert_eq!(e.kind, ErrorKind::Guest("TypeError".into()));
/// assert_eq!(e.line, Some(3));
///
/// let f = GuestFailure::new("too_large", "ResultTooLargeError", "").with_size(2_000_000);
/// let e = f.into_error(&Limits::default(), "My driver");
/// assert_eq!(e.kind, ErrorKind::ResultTooLarge);
/// assert!(e.message.starts_with("The returned value is 2000000 bytes of JSON"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestFailure {
    /// What failed (see above).
    pub kind: String,
    /// The error's name (`TypeError`, ...), for `guest`.
    pub name: String,
    /// The error's message.
    pub message: String,
    /// The line in the program, 1-based; 0 when unknown.
    #[serde(default)]
    pub line: u32,
    /// For `too_large`: the result's size in UTF-8 bytes of JSON.
    #[serde(default)]
    pub size: u64,
}

impl GuestFailure {
    /// A failure of `kind` with `name` and `message`, no line, no size.
    pub fn new(
        kind: impl Into<String>,
        name: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            kind: kind.into(),
            name: name.into(),
            message: message.into(),
            line: 0,
            size: 0,
        }
    }

    /// The same failure with the result's size (`too_large`).
    #[must_use]
    pub fn with_size(mut self, size: u64) -> Self {
        self.size = size;
        self
    }

    /// A guest outcome that could not be read: an `internal` failure quoting the start of it.
    pub fn unreadable(outcome: &str) -> Self {
        let start: String = outcome.chars().take(200).collect();
        Self::new(
            "internal",
            "InternalError",
            format!("unreadable outcome: {start}"),
        )
    }

    /// The normalised error: limits worded by core with the context's `limits`, the
    /// program's own errors with their names, the sandbox's failures as `InternalError`
    /// whose message starts with `driver` (e.g. `"V8 driver"`).
    pub fn into_error(self, limits: &Limits, driver: &str) -> ExecutionError {
        let line = (self.line > 0).then_some(self.line);
        match self.kind.as_str() {
            "guest" => {
                ExecutionError::new(ErrorKind::from_name(&self.name), self.message).with_line(line)
            }
            "syntax" => ExecutionError::new(ErrorKind::Syntax, self.message).with_line(line),
            "result" => ExecutionError::new(ErrorKind::Result, self.message),
            "too_large" => ExecutionError::result_too_large(self.size, limits.max_result_bytes()),
            "timeout" => ExecutionError::timeout(limits.timeout()),
            "memory" => ExecutionError::memory_limit(limits.memory_bytes()),
            "stack" => ExecutionError::stack_overflow(limits.stack_bytes()),
            "deadlock" => ExecutionError::deadlock(),
            "disposed" => ExecutionError::new(ErrorKind::Disposed, self.message),
            _ => ExecutionError::internal(format!("{driver}: {}", self.message)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_decodes_to_its_documented_error() {
        let limits = Limits::default();
        let cases = [
            ("guest", ErrorKind::Guest("RangeError".into())),
            ("syntax", ErrorKind::Syntax),
            ("result", ErrorKind::Result),
            ("too_large", ErrorKind::ResultTooLarge),
            ("timeout", ErrorKind::Timeout),
            ("memory", ErrorKind::MemoryLimit),
            ("stack", ErrorKind::StackOverflow),
            ("deadlock", ErrorKind::Deadlock),
            ("disposed", ErrorKind::Disposed),
            ("internal", ErrorKind::Driver("InternalError".into())),
            ("protocol", ErrorKind::Driver("InternalError".into())),
        ];
        for (kind, expected) in cases {
            let e = GuestFailure::new(kind, "RangeError", "m").into_error(&limits, "D");
            assert_eq!(e.kind, expected, "{kind}");
            assert!(ErrorKind::DOCUMENTED.contains(&e.kind.name()) || kind == "guest");
        }
        let e = GuestFailure::new("internal", "Error", "broke").into_error(&limits, "D");
        assert_eq!(e.message, "D: broke");
        let e = GuestFailure::new("timeout", "", "").into_error(&limits, "D");
        assert_eq!(e, ExecutionError::timeout(limits.timeout()));
    }

    #[test]
    fn a_record_without_line_or_size_reads() {
        let f: GuestFailure =
            serde_json::from_str(r#"{"kind":"result","name":"ResultError","message":"m"}"#)
                .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((f.line, f.size), (0, 0));
        let f = GuestFailure::unreadable(&"x".repeat(500));
        assert_eq!(f.kind, "internal");
        assert!(f.message.len() < 250);
    }
}
