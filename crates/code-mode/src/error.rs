//! Error types.
//!
//! Two families live here. Errors of the *host API* (a tool with a bad name, limits out of
//! range, a driver that cannot start) are ordinary Rust errors returned from constructors.
//! Errors of the *guest program* are never Rust errors: an execution always completes with an
//! [`ExecutionResult`](crate::ExecutionResult), and its failure is an [`ExecutionError`] whose
//! [`ErrorKind`] maps to the normalised names every driver shares (`TimeoutError`,
//! `MemoryLimitError`, ...), so a model sees the same error whatever sandbox ran its code.

use serde::{Deserialize, Serialize};

use crate::identifier::IdentifierProblem;

/// The normalised class of an execution failure.
///
/// Non-exhaustive: new failure classes may be added; match the ones you handle and keep a
/// wildcard arm (or read [`ErrorKind::name`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The wall-clock timeout passed (`TimeoutError`). Terminal for the context.
    Timeout,
    /// The guest exceeded its memory limit (`MemoryLimitError`). Terminal for the context.
    MemoryLimit,
    /// The guest exceeded its stack limit (`StackOverflowError`). Terminal for the context.
    StackOverflow,
    /// The context was disposed, or died of a terminal error before (`DisposedError`).
    Disposed,
    /// The JavaScript could not be parsed (`SyntaxError`).
    Syntax,
    /// The TypeScript could not be parsed or stripped (`TypeScriptError`).
    TypeScript,
    /// The program has type errors against the declarations the model was shown, and the
    /// type-check mode is `block`; nothing ran (`TypeCheckError`).
    TypeCheck,
    /// More tool calls than [`Limits::max_tool_calls`](crate::Limits::max_tool_calls)
    /// (`ToolCallLimitError`).
    ToolCallLimit,
    /// The returned value serialises to more than the result limit (`ResultTooLargeError`).
    ResultTooLarge,
    /// The returned value is not JSON: a function, symbol, BigInt or cycle (`ResultError`).
    Result,
    /// The input of `execute_typescript` was invalid (`ValidationError`).
    Validation,
    /// The program awaits a promise nothing can settle: no tool call is in flight and the
    /// sandbox has no timers (`DeadlockError`).
    Deadlock,
    /// The application cancelled the execution (`CancelledError`, see
    /// [`ExecuteOptions::cancel`](crate::ExecuteOptions::cancel)).
    Cancelled,
    /// The sandbox itself failed. Every driver of this workspace names it `InternalError`
    /// (built with [`ExecutionError::internal`], the driver named in the message); the
    /// payload is the name a third-party driver gives.
    Driver(String),
    /// An error thrown by the guest, with its own name (`TypeError`, `RangeError`, `Error`,
    /// or a custom class name).
    Guest(String),
}

/// The kinds the sandbox names itself, with their wire names: what [`ErrorKind::from_name`]
/// reads back and [`ErrorKind::DOCUMENTED`] lists. [`ErrorKind::name`] stays an exhaustive
/// match (the compiler asks for a new kind's name there); a test holds the three together.
const NAMED: &[(ErrorKind, &str)] = &[
    (ErrorKind::Timeout, "TimeoutError"),
    (ErrorKind::MemoryLimit, "MemoryLimitError"),
    (ErrorKind::StackOverflow, "StackOverflowError"),
    (ErrorKind::Disposed, "DisposedError"),
    (ErrorKind::Syntax, "SyntaxError"),
    (ErrorKind::TypeScript, "TypeScriptError"),
    (ErrorKind::TypeCheck, "TypeCheckError"),
    (ErrorKind::ToolCallLimit, "ToolCallLimitError"),
    (ErrorKind::ResultTooLarge, "ResultTooLargeError"),
    (ErrorKind::Result, "ResultError"),
    (ErrorKind::Validation, "ValidationError"),
    (ErrorKind::Deadlock, "DeadlockError"),
    (ErrorKind::Cancelled, "CancelledError"),
];

impl ErrorKind {
    /// Every error name the sandbox itself gives, on every driver: the names of the kinds
    /// above and `InternalError`. A model sees these, or the name of an error the program
    /// threw itself (`TypeError`, `MyError`, ...); never a driver's name.
    pub const DOCUMENTED: &'static [&'static str] = &[
        "TimeoutError",
        "MemoryLimitError",
        "StackOverflowError",
        "DisposedError",
        "SyntaxError",
        "TypeScriptError",
        "TypeCheckError",
        "ToolCallLimitError",
        "ResultTooLargeError",
        "ResultError",
        "ValidationError",
        "DeadlockError",
        "CancelledError",
        INTERNAL_ERROR,
    ];

    /// The wire name of this kind, as it appears in `error.name`.
    ///
    /// ```
    /// use code_mode::ErrorKind;
    /// assert_eq!(ErrorKind::Timeout.name(), "TimeoutError");
    /// assert_eq!(ErrorKind::Guest("RangeError".into()).name(), "RangeError");
    /// ```
    pub fn name(&self) -> &str {
        // An exhaustive match, so a new kind cannot be added without a name; `NAMED` must
        // agree with it (tested).
        match self {
            Self::Timeout => "TimeoutError",
            Self::MemoryLimit => "MemoryLimitError",
            Self::StackOverflow => "StackOverflowError",
            Self::Disposed => "DisposedError",
            Self::Syntax => "SyntaxError",
            Self::TypeScript => "TypeScriptError",
            Self::TypeCheck => "TypeCheckError",
            Self::ToolCallLimit => "ToolCallLimitError",
            Self::ResultTooLarge => "ResultTooLargeError",
            Self::Result => "ResultError",
            Self::Validation => "ValidationError",
            Self::Deadlock => "DeadlockError",
            Self::Cancelled => "CancelledError",
            Self::Driver(name) | Self::Guest(name) => name,
        }
    }

    /// True for failures after which the context cannot run again.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            Self::Timeout | Self::MemoryLimit | Self::StackOverflow | Self::Disposed
        )
    }

    /// Parses a wire name back into a kind (the inverse of [`ErrorKind::name`]).
    pub fn from_name(name: &str) -> Self {
        NAMED
            .iter()
            .find_map(|(kind, n)| (*n == name).then(|| kind.clone()))
            .unwrap_or_else(|| Self::Guest(cap_text(name, MAX_ERROR_NAME_BYTES)))
    }
}

impl ErrorKind {
    /// The kind of an error the program threw, from its name: like
    /// [`from_name`](Self::from_name), except that the names of what only the engine or host
    /// observes (timeout, memory, stack, disposed, deadlock) stay the program's own error. A
    /// program that throws an error *named* `MemoryLimitError` did not hit the memory limit,
    /// and its context is not ended for it.
    ///
    /// ```
    /// use code_mode::ErrorKind;
    /// assert_eq!(ErrorKind::from_guest_name("TypeError"), ErrorKind::Guest("TypeError".into()));
    /// assert_eq!(ErrorKind::from_guest_name("ToolCallLimitError"), ErrorKind::ToolCallLimit);
    /// assert_eq!(
    ///     ErrorKind::from_guest_name("MemoryLimitError"),
    ///     ErrorKind::Guest("MemoryLimitError".into())
    /// );
    /// ```
    pub fn from_guest_name(name: &str) -> Self {
        match Self::from_name(name) {
            kind if kind.is_terminal() || kind == Self::Deadlock => {
                Self::Guest(cap_text(name, MAX_ERROR_NAME_BYTES))
            }
            kind => kind,
        }
    }
}

/// The name of the sandbox's own failures on every driver of this workspace.
pub(crate) const INTERNAL_ERROR: &str = "InternalError";

/// Longest error message kept, in bytes; longer ones are cut with a marker saying how long
/// they were, as console output is. A program can throw a message of any size.
pub const MAX_ERROR_MESSAGE_BYTES: usize = 8 * 1024;
/// Longest error name kept, in bytes.
pub const MAX_ERROR_NAME_BYTES: usize = 128;

/// `text` cut to at most `max` bytes (on a character boundary) plus a marker.
pub(crate) fn cap_text(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… [truncated: {} bytes in all]", &text[..end], text.len())
}

impl Serialize for ErrorKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for ErrorKind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        Ok(Self::from_name(&name))
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A failed execution, as reported to the model.
///
/// `line` is 1-based and refers to the code the caller submitted: for `execute_typescript`
/// the model's original TypeScript.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecutionError {
    /// Normalised class; serialised as `name`.
    #[serde(rename = "name")]
    pub kind: ErrorKind,
    /// Human-readable message, without host paths or host stack frames.
    pub message: String,
    /// 1-based line in the submitted code, when known.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub line: Option<u32>,
}

impl ExecutionError {
    /// Creates an error without a line. The message is capped at
    /// [`MAX_ERROR_MESSAGE_BYTES`] and a guest-chosen name at [`MAX_ERROR_NAME_BYTES`].
    ///
    /// ```
    /// use code_mode::{ErrorKind, ExecutionError};
    /// let e = ExecutionError::new(ErrorKind::Guest("E".repeat(1000)), "x".repeat(1 << 20));
    /// assert!(e.message.len() < 9 * 1024 && e.message.contains("truncated: 1048576 bytes"));
    /// assert!(e.kind.name().len() < 200);
    /// ```
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            line: None,
        }
        .capped()
    }

    /// This error with its message and guest-chosen name capped (errors decoded from a
    /// driver's wire format are capped with this too).
    pub fn capped(mut self) -> Self {
        if self.message.len() > MAX_ERROR_MESSAGE_BYTES {
            self.message = cap_text(&self.message, MAX_ERROR_MESSAGE_BYTES);
        }
        match &mut self.kind {
            ErrorKind::Guest(name) | ErrorKind::Driver(name)
                if name.len() > MAX_ERROR_NAME_BYTES =>
            {
                *name = cap_text(name, MAX_ERROR_NAME_BYTES);
            }
            _ => {}
        }
        self
    }
    /// Sets the line.
    pub fn with_line(mut self, line: Option<u32>) -> Self {
        self.line = line;
        self
    }
    /// The `TimeoutError` every driver reports.
    pub fn timeout(limit: std::time::Duration) -> Self {
        Self::new(
            ErrorKind::Timeout,
            format!("Code execution timed out after {} ms", limit.as_millis()),
        )
    }
    /// The `MemoryLimitError` every driver reports.
    pub fn memory_limit(limit_bytes: u64) -> Self {
        Self::new(
            ErrorKind::MemoryLimit,
            format!(
                "Code execution exceeded the memory limit of {} MiB",
                limit_bytes.div_ceil(1024 * 1024)
            ),
        )
    }
    /// The `StackOverflowError` every driver reports.
    pub fn stack_overflow(limit_bytes: u64) -> Self {
        Self::new(
            ErrorKind::StackOverflow,
            format!(
                "Code execution exceeded the stack limit of {} KiB (too deep recursion?)",
                limit_bytes / 1024
            ),
        )
    }
    /// The `DisposedError` every driver reports.
    pub fn disposed() -> Self {
        Self::new(
            ErrorKind::Disposed,
            "Context has been disposed (or died of an earlier timeout, memory or stack error); create a new context",
        )
    }
    /// The `DeadlockError` every driver reports.
    pub fn deadlock() -> Self {
        Self::new(
            ErrorKind::Deadlock,
            "The code awaits a promise that can never settle: no tool call is in flight and the sandbox has no timers",
        )
    }
    /// The `ToolCallLimitError` a program gets for the call past the budget.
    ///
    /// ```
    /// let e = code_mode::ExecutionError::tool_call_limit(5);
    /// assert_eq!(e.message, "Exceeded the maximum of 5 tool calls per execution");
    /// ```
    pub fn tool_call_limit(max_calls: u32) -> Self {
        Self::new(
            ErrorKind::ToolCallLimit,
            format!("Exceeded the maximum of {max_calls} tool calls per execution"),
        )
    }

    /// The sandbox's own failure (`InternalError`), never the program's: `message` says
    /// which part failed and what to do.
    ///
    /// ```
    /// let e = code_mode::ExecutionError::internal("the V8 sidecar exited");
    /// assert_eq!(e.kind.name(), "InternalError");
    /// ```
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Driver(INTERNAL_ERROR.into()), message)
    }

    /// The `ResultTooLargeError` every driver reports.
    pub fn result_too_large(size: u64, limit: u64) -> Self {
        Self::new(
            ErrorKind::ResultTooLarge,
            format!(
                "The returned value is {size} bytes of JSON, above the limit of {limit} bytes; return a smaller summary"
            ),
        )
    }
}

impl std::fmt::Display for ExecutionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.kind.name(), self.message)?;
        if let Some(line) = self.line {
            write!(f, " (line {line})")?;
        }
        Ok(())
    }
}

impl std::error::Error for ExecutionError {}

/// The error a tool handler returns. Only its message reaches the guest, as `new Error(message)`.
///
/// ```
/// use code_mode::ToolError;
/// let err = ToolError::new("city not found: Atlantis");
/// assert_eq!(err.to_string(), "city not found: Atlantis");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ToolError {
    message: String,
}

impl ToolError {
    /// Creates a tool error with the message the guest will see.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }
    /// The message the guest sees.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl From<String> for ToolError {
    fn from(message: String) -> Self {
        Self::new(message)
    }
}

impl From<&str> for ToolError {
    fn from(message: &str) -> Self {
        Self::new(message)
    }
}

/// A tool that cannot be built as described.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ToolDefinitionError {
    /// The name is not a usable identifier.
    #[error("invalid tool name {name:?}: {problem}")]
    InvalidName {
        /// The rejected name.
        name: String,
        /// Why it was rejected.
        problem: IdentifierProblem,
    },
    /// The name is taken by one of code-mode's own tools.
    #[error("invalid tool name {name:?}: it is reserved for code-mode's own tool")]
    ReservedName {
        /// The rejected name.
        name: String,
    },
    /// A schema is not a valid JSON Schema, or not an object schema where one is required.
    #[error("invalid {which} schema for tool {tool:?}: {message}")]
    InvalidSchema {
        /// The tool.
        tool: String,
        /// `input` or `output`.
        which: &'static str,
        /// What is wrong.
        message: String,
    },
    /// Two tools have the same name.
    #[error("duplicate tool name {name:?}: tool names must be unique")]
    Duplicate {
        /// The repeated name.
        name: String,
    },
    /// A binding name is not usable.
    #[error("invalid binding name {name:?}: {problem}")]
    InvalidBinding {
        /// The rejected name.
        name: String,
        /// Why it was rejected.
        problem: IdentifierProblem,
    },
}

/// A limit outside its accepted range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitsError {
    /// The value is out of range; there is no "unlimited" setting.
    #[error(
        "limit `{field}` = {value} {unit} is out of range: it must be between {min} and {max} {unit}"
    )]
    OutOfRange {
        /// The field.
        field: &'static str,
        /// The given value.
        value: u128,
        /// Smallest accepted value.
        min: u128,
        /// Largest accepted value.
        max: u128,
        /// Unit of the numbers.
        unit: &'static str,
    },
}

/// A driver could not create a context (runtime missing, bad configuration, out of resources).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{driver} driver: {message}")]
pub struct DriverError {
    /// Name of the driver.
    pub driver: String,
    /// What failed and, where possible, what to do about it.
    pub message: String,
}

impl DriverError {
    /// Creates a driver error.
    pub fn new(driver: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            driver: driver.into(),
            message: message.into(),
        }
    }
}

/// A [`CodeMode`](crate::CodeMode) that cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodeModeError {
    /// No tools were given.
    #[error("at least one tool must be provided to code-mode")]
    NoTools,
    /// No driver was given.
    #[error(
        "no sandbox driver was given: pass one with CodeModeBuilder::driver (code_mode_drivers::default_driver() picks the one enabled by cargo features)"
    )]
    NoDriver,
    /// A tool is invalid.
    #[error(transparent)]
    Tool(#[from] ToolDefinitionError),
    /// A limit is out of range.
    #[error(transparent)]
    Limits(#[from] LimitsError),
    /// A tool parameter looks like a credential and the policy is
    /// [`SecretParameterPolicy::Error`](crate::SecretParameterPolicy::Error).
    #[error("{0}")]
    SecretParameter(SecretParameter),
}

/// One parameter that looks like a credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretParameter {
    /// The tool.
    pub tool: String,
    /// Where in its input: `apiKey`, `auth.token`, `headers[].value`.
    pub path: String,
    /// Why it was reported.
    pub reason: String,
}

impl std::fmt::Display for SecretParameter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "tool {:?} asks the model for {:?}, which looks like a credential ({}); read credentials in the tool's handler instead, so they never pass through the model or the sandbox",
            self.tool, self.path, self.reason
        )
    }
}

#[cfg(test)]
mod named_table {
    use super::*;

    /// Every named kind reads back from its name, and the documented list is the table's
    /// names plus `InternalError`, in order.
    #[test]
    fn the_table_is_the_one_source_of_names() {
        for (kind, name) in NAMED {
            assert_eq!(kind.name(), *name);
            assert_eq!(&ErrorKind::from_name(name), kind);
        }
        let mut names: Vec<&str> = NAMED.iter().map(|(_, n)| *n).collect();
        names.push(INTERNAL_ERROR);
        assert_eq!(names, ErrorKind::DOCUMENTED);
        assert_eq!(
            ErrorKind::from_name("TypeError"),
            ErrorKind::Guest("TypeError".into())
        );
    }
}
