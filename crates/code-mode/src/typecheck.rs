//! An optional type check of the model's program against the declarations it was shown,
//! before anything runs.
//!
//! Why it lives in core: the mode, the declarations, the wrapping of the program and the
//! mapping of the compiler's lines back to the model's code must be the same whichever
//! checker runs, so core owns them; a checker ([`TypeChecker`], e.g. the TypeScript compiler
//! helper of the `code-mode-typecheck` crate) only compiles what it is given.

use std::fmt;
use std::str::FromStr;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// When the program is type-checked, and what a type error does.
///
/// ```
/// use code_mode::TypeCheckMode;
/// assert_eq!("block".parse::<TypeCheckMode>().unwrap(), TypeCheckMode::Block);
/// assert_eq!(TypeCheckMode::default(), TypeCheckMode::Off);
/// assert!("strict".parse::<TypeCheckMode>().unwrap_err().to_string().contains("off, report or block"));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TypeCheckMode {
    /// No check (the default).
    #[default]
    Off,
    /// Check, run the program anyway, and attach the diagnostics to the result
    /// (`typeErrors`). A checker that is missing, fails or runs out of time never stops the
    /// program.
    Report,
    /// Check, and run only a program without type errors; otherwise the result is a
    /// `TypeCheckError` listing them (nothing ran). A checker that cannot answer is a
    /// `TypeCheckError` too.
    Block,
}

impl TypeCheckMode {
    /// The mode's name: `off`, `report` or `block`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::Report => "report",
            Self::Block => "block",
        }
    }
}

impl fmt::Display for TypeCheckMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A type-check mode name that is not `off`, `report` or `block`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown type-check mode {0:?}: use off, report or block")]
pub struct TypeCheckModeError(pub String);

impl FromStr for TypeCheckMode {
    type Err = TypeCheckModeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "off" => Ok(Self::Off),
            "report" => Ok(Self::Report),
            "block" => Ok(Self::Block),
            _ => Err(TypeCheckModeError(s.to_owned())),
        }
    }
}

/// One compiler diagnostic, located in the model's code (1-based line and column, columns
/// in UTF-16 units as editors and the compiler count them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TypeDiagnostic {
    /// 1-based line in the submitted code.
    pub line: u32,
    /// 1-based column.
    pub column: u32,
    /// The compiler's error code (`2339` for TS2339).
    pub code: u32,
    /// The compiler's message.
    pub message: String,
}

impl fmt::Display for TypeDiagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {}, column {}: {} (TS{})",
            self.line, self.column, self.message, self.code
        )
    }
}

/// What a checker compiles: the declarations (one `.d.ts` file) and the program wrapped as
/// an async function body (one `.ts` file). Diagnostics it returns are located in `source`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckRequest {
    /// Tool, skill and sandbox declarations, exactly as shown to the model.
    pub declarations: String,
    /// The wrapped program.
    pub source: String,
}

/// A checker could not answer (not installed, crashed, out of time).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CheckerError(pub String);

/// A type checker: compiles a [`CheckRequest`] and returns the errors of its `source` file
/// (1-based lines and columns of that file). Implemented by `code-mode-typecheck` with the
/// TypeScript compiler.
#[async_trait]
pub trait TypeChecker: Send + Sync + fmt::Debug {
    /// Checks one program.
    async fn check(&self, request: &CheckRequest) -> Result<Vec<TypeDiagnostic>, CheckerError>;
}

/// The sandbox's own globals beyond the ECMAScript library (declared for the checker; the
/// sandbox has no timers, `fetch`, modules or DOM, so using them is a type error too).
pub const SANDBOX_DECLARATIONS: &str = "declare const console: {\n  log(...data: unknown[]): void;\n  info(...data: unknown[]): void;\n  warn(...data: unknown[]): void;\n  error(...data: unknown[]): void;\n  debug(...data: unknown[]): void;\n  trace(...data: unknown[]): void;\n};";

/// The first line of the wrapped program; the model's line N is line N + 1 of the source.
const WRAP_HEAD: &str = "async function __codeModeProgram() {\n";

/// The program as an async function body, as the sandbox runs it (so `await` and `return`
/// at the top level are allowed).
pub(crate) fn wrap(program: &str) -> String {
    let mut s = String::with_capacity(program.len() + WRAP_HEAD.len() + 3);
    s.push_str(WRAP_HEAD);
    s.push_str(program);
    s.push_str("\n}\n");
    s
}

/// Like [`wrap`], for a program whose result must be of type `result_type` (declared with
/// the declarations): a `return` of another shape is a type error on its line.
pub(crate) fn wrap_returning(program: &str, result_type: &str) -> String {
    format!("async function __codeModeProgram(): Promise<{result_type}> {{\n{program}\n}}\n")
}

/// Maps a checker's diagnostics (in the wrapped source) to the model's lines, dropping any
/// outside the program (artefacts of the wrapping), sorted by position.
pub(crate) fn to_program_lines(
    diagnostics: Vec<TypeDiagnostic>,
    program: &str,
) -> Vec<TypeDiagnostic> {
    let lines = u32::try_from(program.split('\n').count()).unwrap_or(u32::MAX);
    let mut out: Vec<TypeDiagnostic> = diagnostics
        .into_iter()
        .filter(|d| d.line >= 2 && d.line - 1 <= lines)
        .map(|d| TypeDiagnostic {
            line: d.line - 1,
            ..d
        })
        .collect();
    out.sort_by_key(|d| (d.line, d.column));
    out.dedup();
    out
}

/// The message of a `TypeCheckError`: every diagnostic, one per line (at most 20).
pub(crate) fn block_message(diagnostics: &[TypeDiagnostic]) -> String {
    const SHOWN: usize = 20;
    let mut s = format!(
        "The program has {} type error{}; nothing ran. Fix {} and run it again:",
        diagnostics.len(),
        if diagnostics.len() == 1 { "" } else { "s" },
        if diagnostics.len() == 1 { "it" } else { "them" },
    );
    for d in diagnostics.iter().take(SHOWN) {
        s.push('\n');
        s.push_str(&d.to_string());
    }
    if diagnostics.len() > SHOWN {
        s.push_str(&format!("\n… and {} more", diagnostics.len() - SHOWN));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn diag(line: u32) -> TypeDiagnostic {
        TypeDiagnostic {
            line,
            column: 1,
            code: 2339,
            message: "m".into(),
        }
    }

    #[test]
    fn lines_map_to_the_program_and_wrapper_lines_are_dropped() {
        let program = "const a = 1;\nreturn a;";
        let source = wrap(program);
        assert!(source.starts_with(WRAP_HEAD));
        let mapped = to_program_lines(vec![diag(4), diag(3), diag(1), diag(2)], program);
        assert_eq!(mapped, vec![diag(1), diag(2)]);
    }

    #[test]
    fn the_block_message_lists_each_error() {
        let m = block_message(&[diag(3)]);
        assert!(m.contains("1 type error;"), "{m}");
        assert!(m.contains("line 3, column 1: m (TS2339)"), "{m}");
        let many: Vec<_> = (1..=25).map(diag).collect();
        assert!(block_message(&many).ends_with("… and 5 more"));
    }
}
