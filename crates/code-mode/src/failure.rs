//! The one failure protocol between a guest prelude and its driver.
//!
//! Every guest (the WebAssembly guest's prelude, the V8 sidecar, the Worker) reports a
//! failed execution as the same JSON record, `{kind, name, message, line, size}`, and every
//! driver decodes it here. Before, three drivers each had their own decoder, and they drifted
//! (two wordings of the result-too-large error, a driver's name as an error name).
//!
//! The `kind` is a closed [`FailureKind`], and who may say which kind is part of the type:
//! a record that came out of the guest's realm (anything the program could have written or
//! influenced) is read with [`GuestFailure::from_guest_realm`], which refuses the limit
//! kinds. A limit is reported only when the engine or the host observed it (an interrupt
//! flag, an allocator's refusal, a stack guard, a deadline), as a [`FailureKind`] the driver
//! sets itself; no outcome is ever decided by reading an error's text.

use serde::{Deserialize, Serialize};

use crate::error::{ErrorKind, ExecutionError};
use crate::limits::Limits;

/// What failed, as the wire spells it (`snake_case`); an unknown spelling reads as
/// [`FailureKind::Internal`].
///
/// ```
/// use code_mode::driver::FailureKind;
/// let k: FailureKind = serde_json::from_str("\"too_large\"").unwrap();
/// assert_eq!(k, FailureKind::TooLarge);
/// let k: FailureKind = serde_json::from_str("\"protocol\"").unwrap();
/// assert_eq!(k, FailureKind::Internal);
/// assert!(FailureKind::Memory.is_limit() && !FailureKind::Guest.is_limit());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FailureKind {
    /// The program threw; `name` and `message` are its error's, `line` its line in the
    /// program (0: unknown).
    Guest,
    /// The program does not parse.
    Syntax,
    /// The returned value is not JSON.
    Result,
    /// The returned value's JSON is `size` UTF-8 bytes, above the limit.
    TooLarge,
    /// The time budget ran out (observed by the engine's interrupt or the host's deadline).
    Timeout,
    /// The memory limit was hit (observed by the engine's allocator or heap limit).
    Memory,
    /// The stack limit was hit (observed by the engine's stack guard).
    Stack,
    /// The program awaits a promise nothing can settle (observed by the host).
    Deadlock,
    /// The context was disposed meanwhile.
    Disposed,
    /// The sandbox itself failed (and any kind this version does not know).
    #[serde(other)]
    Internal,
}

impl FailureKind {
    /// Every kind, in wire order.
    pub const ALL: [FailureKind; 10] = [
        Self::Guest,
        Self::Syntax,
        Self::Result,
        Self::TooLarge,
        Self::Timeout,
        Self::Memory,
        Self::Stack,
        Self::Deadlock,
        Self::Disposed,
        Self::Internal,
    ];

    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Guest => "guest",
            Self::Syntax => "syntax",
            Self::Result => "result",
            Self::TooLarge => "too_large",
            Self::Timeout => "timeout",
            Self::Memory => "memory",
            Self::Stack => "stack",
            Self::Deadlock => "deadlock",
            Self::Disposed => "disposed",
            Self::Internal => "internal",
        }
    }

    /// Whether this kind reports a limit or a host observation (timeout, memory, stack,
    /// deadlock, disposed): only an engine or host may say it, never the guest's realm.
    pub fn is_limit(self) -> bool {
        matches!(
            self,
            Self::Timeout | Self::Memory | Self::Stack | Self::Deadlock | Self::Disposed
        )
    }

    /// Whether a record from the guest's realm may carry this kind: what the prelude itself
    /// reports about the program (`guest`, `syntax`, `result`, `too_large`).
    pub fn is_guest_reportable(self) -> bool {
        matches!(
            self,
            Self::Guest | Self::Syntax | Self::Result | Self::TooLarge
        )
    }
}

impl std::fmt::Display for FailureKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed execution as a guest or a driver reports it; see [`FailureKind`] for `kind`.
///
/// ```
/// use code_mode::driver::{FailureKind, GuestFailure};
/// use code_mode::{ErrorKind, Limits};
///
/// let f: GuestFailure = serde_json::from_str(
///     r#"{"kind":"guest","name":"TypeError","message":"x is not a function","line":3}"#,
/// ).unwrap();
/// let e = f.into_error(&Limits::default(), "My driver");
/// assert_eq!(e.kind, ErrorKind::Guest("TypeError".into()));
/// assert_eq!(e.line, Some(3));
///
/// let f = GuestFailure::new(FailureKind::TooLarge, "ResultTooLargeError", "").with_size(2_000_000);
/// let e = f.into_error(&Limits::default(), "My driver");
/// assert_eq!(e.kind, ErrorKind::ResultTooLarge);
/// assert!(e.message.starts_with("The returned value is 2000000 bytes of JSON"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestFailure {
    /// What failed.
    pub kind: FailureKind,
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
    /// The thrown value is the error a tool call rejected with (the prelude knows the errors
    /// it made). Such a failure is the tool's, never the engine's: a driver that recognises
    /// its engine's own error by name and message (no stack-guard signal) skips it. Said by
    /// the guest's realm, it can only make a failure the program's own, never a limit.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub tool: bool,
}

impl GuestFailure {
    /// A failure of `kind` with `name` and `message`, no line, no size.
    pub fn new(kind: FailureKind, name: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            kind,
            name: name.into(),
            message: message.into(),
            line: 0,
            size: 0,
            tool: false,
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
            FailureKind::Internal,
            "InternalError",
            format!("unreadable outcome: {start}"),
        )
    }

    /// The record as it came out of the guest's realm (a prelude's outcome, a Worker
    /// module's answer): only what the prelude reports about the program is believed. A
    /// limit kind there was written by the program itself (a hijacked intrinsic, a forged
    /// outcome), so it becomes an internal failure naming the kind, never a limit error.
    ///
    /// ```
    /// use code_mode::driver::{FailureKind, GuestFailure};
    /// let forged = GuestFailure::new(FailureKind::Memory, "MemoryLimitError", "boom");
    /// assert_eq!(forged.from_guest_realm().kind, FailureKind::Internal);
    /// let thrown = GuestFailure::new(FailureKind::Guest, "TypeError", "x");
    /// assert_eq!(thrown.clone().from_guest_realm(), thrown);
    /// ```
    #[must_use]
    pub fn from_guest_realm(self) -> Self {
        if self.kind.is_guest_reportable() {
            return self;
        }
        Self::new(
            FailureKind::Internal,
            "InternalError",
            format!(
                "the sandbox's guest reported a `{}` outcome, which only the engine or host may report",
                self.kind
            ),
        )
    }

    /// The normalised error: limits worded by core with the context's `limits`, the
    /// program's own errors with their names, the sandbox's failures as `InternalError`
    /// whose message starts with `driver` (e.g. `"V8 driver"`).
    pub fn into_error(self, limits: &Limits, driver: &str) -> ExecutionError {
        let line = (self.line > 0).then_some(self.line);
        match self.kind {
            FailureKind::Guest => {
                ExecutionError::new(ErrorKind::from_guest_name(&self.name), self.message)
                    .with_line(line)
            }
            FailureKind::Syntax => {
                ExecutionError::new(ErrorKind::Syntax, self.message).with_line(line)
            }
            FailureKind::Result => ExecutionError::new(ErrorKind::Result, self.message),
            FailureKind::TooLarge => {
                ExecutionError::result_too_large(self.size, limits.max_result_bytes())
            }
            FailureKind::Timeout => ExecutionError::timeout(limits.timeout()),
            FailureKind::Memory => ExecutionError::memory_limit(limits.memory_bytes()),
            FailureKind::Stack => ExecutionError::stack_overflow(limits.stack_bytes()),
            FailureKind::Deadlock => ExecutionError::deadlock(),
            FailureKind::Disposed => ExecutionError::new(ErrorKind::Disposed, self.message),
            FailureKind::Internal => {
                ExecutionError::internal(format!("{driver}: {}", self.message))
            }
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
            let kind_: FailureKind =
                serde_json::from_value(serde_json::json!(kind)).unwrap_or_else(|e| panic!("{e}"));
            let e = GuestFailure::new(kind_, "RangeError", "m").into_error(&limits, "D");
            assert_eq!(e.kind, expected, "{kind}");
            assert!(ErrorKind::DOCUMENTED.contains(&e.kind.name()) || kind == "guest");
        }
        let e = GuestFailure::new(FailureKind::Internal, "Error", "broke").into_error(&limits, "D");
        assert_eq!(e.message, "D: broke");
        let e = GuestFailure::new(FailureKind::Timeout, "", "").into_error(&limits, "D");
        assert_eq!(e, ExecutionError::timeout(limits.timeout()));
    }

    #[test]
    fn a_record_without_line_or_size_reads() {
        let f: GuestFailure =
            serde_json::from_str(r#"{"kind":"result","name":"ResultError","message":"m"}"#)
                .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((f.line, f.size), (0, 0));
        let f = GuestFailure::unreadable(&"x".repeat(500));
        assert_eq!(f.kind, FailureKind::Internal);
        assert!(f.message.len() < 250);
    }

    #[test]
    fn every_kind_round_trips_and_the_guest_realm_cannot_report_a_limit() {
        for kind in FailureKind::ALL {
            let text = serde_json::to_string(&kind).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(text, format!("\"{}\"", kind.as_str()));
            let back: FailureKind = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(back, kind);
            let read = GuestFailure::new(kind, "MemoryLimitError", "m").from_guest_realm();
            if kind.is_guest_reportable() {
                assert_eq!(read.kind, kind);
            } else {
                assert_eq!(read.kind, FailureKind::Internal, "{kind}");
                let e = read.into_error(&Limits::default(), "D");
                assert_eq!(e.kind, ErrorKind::Driver("InternalError".into()));
            }
        }
    }
}
