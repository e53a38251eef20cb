//! The program's wrapper: how the model's code becomes something an engine runs, written
//! once for every driver.
//!
//! Why here: each driver used to wrap the code itself — an arrow called at once (native
//! QuickJS), a function expression (QuickJS-WASM), a function expression with the code on its
//! first line (V8), a module's default export (the Worker) — four texts under three names,
//! each with its own line offset and its own scope (`arguments` existed on two drivers and
//! not on the others). A driver now runs [`program_source`] and reads an engine's line
//! numbers back with [`program_line`], so the code's scope and its line numbers are the same
//! everywhere and a change to the wrapper is made in one place.

/// What comes before the code: an async arrow function (no `arguments`, no own `this`), so
/// the code may `await` at top level and `return` its value. One line: the code starts on
/// line [`PROGRAM_FIRST_LINE`].
pub const PROGRAM_HEAD: &str = "(async () => {\n";

/// What comes after the code. On a line of its own, so a `//` comment on the code's last
/// line cannot swallow it.
pub const PROGRAM_TAIL: &str = "\n})";

/// The line of the wrapped source on which the code's first line stands.
pub const PROGRAM_FIRST_LINE: u32 = 2;

/// The code as an expression whose value is the program's async function (not called).
///
/// A driver calls it (or exports it) and awaits the promise it returns.
///
/// ```
/// use code_mode::driver::{PROGRAM_FIRST_LINE, program_source};
/// let source = program_source("return 1 + 1 // the end");
/// assert_eq!(source, "(async () => {\nreturn 1 + 1 // the end\n})");
/// assert_eq!(source.lines().nth(PROGRAM_FIRST_LINE as usize - 1), Some("return 1 + 1 // the end"));
/// ```
pub fn program_source(code: &str) -> String {
    let mut source = String::with_capacity(PROGRAM_HEAD.len() + code.len() + PROGRAM_TAIL.len());
    source.push_str(PROGRAM_HEAD);
    source.push_str(code);
    source.push_str(PROGRAM_TAIL);
    source
}

/// The code's own line (1-based) for a line `engine_line` of the wrapped source, or `None`
/// when that line is the wrapper's (before the code's first line or after its last).
///
/// `code_lines` is the number of lines of the code as the engine counts them.
///
/// ```
/// use code_mode::driver::program_line;
/// assert_eq!(program_line(2, 3), Some(1));
/// assert_eq!(program_line(4, 3), Some(3));
/// assert_eq!(program_line(1, 3), None); // the head
/// assert_eq!(program_line(5, 3), None); // the tail
/// ```
pub fn program_line(engine_line: u32, code_lines: u32) -> Option<u32> {
    engine_line
        .checked_sub(PROGRAM_FIRST_LINE - 1)
        .filter(|l| *l >= 1 && *l <= code_lines.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The head is one line, and the first line says so.
    #[test]
    fn the_head_is_one_line() {
        assert_eq!(
            PROGRAM_HEAD.matches('\n').count() as u32,
            PROGRAM_FIRST_LINE - 1
        );
        assert!(PROGRAM_TAIL.starts_with('\n'));
    }
}
