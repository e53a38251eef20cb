//! TypeScript → JavaScript, with line numbers that still point at the model's code.
//!
//! The model's code is a function *body* (top-level `await` and `return`), which no parser
//! accepts as a script, so it is parsed inside `async function … {` `}`. swc's fast strip
//! mode replaces type syntax with blanks and keeps every byte in place, so a line in the
//! output is the same line in the input and runtime errors map back exactly. Constructs that
//! need code generation (`enum`, `namespace`, parameter properties) make strip mode fail with
//! "unsupported syntax"; those programs go through swc's transform mode, whose source map is
//! used to map lines back. Syntax errors carry the line in the model's original code
//! (TanStack reports the transpiler's line plus one and never fills `line`).

use std::sync::{Arc, Mutex};

use swc_common::errors::{DiagnosticBuilder, Emitter, Handler};
use swc_common::sync::Lrc;
use swc_common::{GLOBALS, Globals, SourceMap};
use swc_ts_fast_strip::{ErrorCode, Mode, Options, operate};

use crate::error::{ErrorKind, ExecutionError};
use crate::nesting::{MAX_NESTING, estimate_depth, too_deep};

const PREFIX: &str = "async function __code_mode_body__() {\n";
const SUFFIX: &str = "\n}";

/// JavaScript ready for a driver, with a map back to the original lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StrippedCode {
    /// The JavaScript function body.
    pub body: String,
    /// For transformed code, the original line of each body line (index 0 = line 1).
    /// `None` when lines are preserved one to one.
    line_map: Option<Vec<u32>>,
}

impl StrippedCode {
    /// Code that needs no stripping (plain JavaScript); lines map one to one.
    pub fn javascript(body: impl Into<String>) -> Self {
        Self {
            body: body.into(),
            line_map: None,
        }
    }

    /// Maps a 1-based line of [`StrippedCode::body`] to the 1-based line of the original code.
    pub fn original_line(&self, body_line: u32) -> Option<u32> {
        match &self.line_map {
            None => Some(body_line),
            Some(map) => {
                let idx = usize::try_from(body_line).ok()?.checked_sub(1)?;
                // Generated lines with no mapping (a brace on its own) take the nearest
                // mapped line above them.
                map.get(..=idx.min(map.len().saturating_sub(1)))?
                    .iter()
                    .rev()
                    .copied()
                    .find(|l| *l > 0)
            }
        }
    }

    /// True when the code went through transform mode (enums, namespaces, parameter properties).
    pub fn was_transformed(&self) -> bool {
        self.line_map.is_some()
    }
}

/// Strips TypeScript from a function body.
///
/// ```
/// use code_mode::strip_typescript;
/// let js = strip_typescript("const n: number = await f<string>(1 as any);\nreturn n!;").unwrap();
/// assert_eq!(js.body.lines().count(), 2);
/// assert!(!js.body.contains("number"));
///
/// let err = strip_typescript("const a = 1;\nconst = ;").unwrap_err();
/// assert_eq!(err.kind.name(), "TypeScriptError");
/// assert_eq!(err.line, Some(2));
/// ```
pub fn strip_typescript(code: &str) -> Result<StrippedCode, ExecutionError> {
    if let Some(depth) = estimate_depth(code)
        && depth > MAX_NESTING
    {
        return Err(too_deep(ErrorKind::TypeScript, depth));
    }
    // The parser, its visitors and the syntax tree's drop recurse once per level of nesting:
    // run them on a stack that no program of this length can exhaust (see `stage_stack`),
    // and turn an unexpected panic inside swc into an error rather than unwinding into the
    // caller.
    let run = || std::panic::catch_unwind(|| strip_checked(code));
    match stacker::grow(stage_stack(code.len()), run) {
        Ok(result) => result,
        Err(_) => Err(internal("the TypeScript parser failed on this input")),
    }
}

/// Stack for the TypeScript stage of a program of `len` bytes.
///
/// Nesting costs at least one byte of source per level, and swc spends at most
/// [`STACK_PER_BYTE`] bytes of stack per byte of the most deeply nesting input (measured for
/// every construct by `examples/stack_probe.rs`, with a wide margin, in both optimised and
/// unoptimised builds). The stack is reserved, not touched: memory is only used as deep as
/// the parse really goes, and the scanner in `nesting` refuses deep programs before that.
pub(crate) fn stage_stack(len: usize) -> usize {
    STACK_BASE.saturating_add(len.saturating_mul(STACK_PER_BYTE))
}

/// Stack of the TypeScript stage before any nesting.
const STACK_BASE: usize = 4 * 1024 * 1024;
/// Worst stack use per byte of source, with margin; unoptimised code has far larger frames.
const STACK_PER_BYTE: usize = if cfg!(debug_assertions) {
    16 * 1024
} else {
    4 * 1024
};

/// [`strip_typescript`] without the nesting guard and on the caller's stack: only for
/// measuring swc's stack use (`examples/stack_probe.rs`); deep input overflows the stack.
#[cfg(feature = "stack-probe")]
#[doc(hidden)]
pub fn strip_typescript_unchecked(code: &str) -> Result<StrippedCode, ExecutionError> {
    strip_checked(code)
}

fn strip_checked(code: &str) -> Result<StrippedCode, ExecutionError> {
    let wrapped = format!("{PREFIX}{code}{SUFFIX}");
    match run_swc(&wrapped, Mode::StripOnly) {
        Ok((out, _)) => {
            let body = out
                .get(PREFIX.len()..out.len().saturating_sub(SUFFIX.len()))
                .filter(|_| out.len() == wrapped.len())
                .map(str::to_owned)
                .ok_or_else(|| internal("strip mode changed the code length"))?;
            Ok(StrippedCode {
                body,
                line_map: None,
            })
        }
        Err(SwcFailure {
            code: ErrorCode::UnsupportedSyntax,
            ..
        }) => transform(&wrapped),
        Err(failure) => Err(failure.into_error()),
    }
}

fn transform(wrapped: &str) -> Result<StrippedCode, ExecutionError> {
    let (out, map) = run_swc(wrapped, Mode::Transform).map_err(SwcFailure::into_error)?;
    let open = out
        .find('{')
        .ok_or_else(|| internal("no function body in transformed code"))?;
    let close = out
        .rfind('}')
        .ok_or_else(|| internal("no function end in transformed code"))?;
    if close <= open {
        return Err(internal("malformed transformed code"));
    }
    let body = &out[open + 1..close];
    // Line numbers in the source map count from the start of `out`; the body starts on the
    // line of the opening brace.
    let first_line = out[..open].matches('\n').count();
    let mut line_map = Vec::new();
    if let Some(map) = map
        .as_deref()
        .and_then(|m| swc_sourcemap::SourceMap::from_slice(m.as_bytes()).ok())
    {
        let body_lines = body.matches('\n').count() + 1;
        line_map = vec![0u32; body_lines];
        for token in map.tokens() {
            let gen_line = token.get_dst_line() as usize;
            if gen_line < first_line {
                continue;
            }
            let idx = gen_line - first_line;
            // Original line 1 is the wrapper's `async function` line.
            let src = token.get_src_line();
            if let Some(slot) = line_map.get_mut(idx)
                && *slot == 0
                && src >= 1
            {
                *slot = src;
            }
        }
    }
    Ok(StrippedCode {
        body: body.to_owned(),
        line_map: Some(line_map),
    })
}

struct SwcFailure {
    code: ErrorCode,
    message: String,
    line: Option<u32>,
}

impl SwcFailure {
    fn into_error(self) -> ExecutionError {
        let _ = self.code;
        ExecutionError::new(ErrorKind::TypeScript, self.message).with_line(self.line)
    }
}

fn internal(what: &str) -> ExecutionError {
    ExecutionError::new(
        ErrorKind::TypeScript,
        format!("could not strip TypeScript: {what}"),
    )
}

/// A diagnostic message and where it points.
type Diagnostic = (String, Option<swc_common::BytePos>);

/// Collects swc's diagnostics instead of printing them.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<Diagnostic>>>);

impl Emitter for Captured {
    fn emit(&mut self, db: &mut DiagnosticBuilder<'_>) {
        let pos = db.span.primary_span().map(|s| s.lo());
        if let Ok(mut v) = self.0.lock() {
            v.push((db.message(), pos));
        }
    }
}

fn run_swc(input: &str, mode: Mode) -> Result<(String, Option<String>), SwcFailure> {
    let cm: Lrc<SourceMap> = Default::default();
    let captured = Captured::default();
    let handler = Handler::with_emitter(false, false, Box::new(captured.clone()));
    let transform = matches!(mode, Mode::Transform);
    let options = Options {
        module: Some(false),
        mode,
        source_map: transform,
        ..Default::default()
    };
    let result = GLOBALS.set(&Globals::new(), || {
        operate(&cm, &handler, input.to_owned(), options)
    });
    match result {
        Ok(out) => Ok((out.code, out.map)),
        Err(err) => {
            let diags = captured.0.lock().map(|v| v.clone()).unwrap_or_default();
            let (message, line) = match diags.first() {
                Some((msg, pos)) => {
                    // Line 1 of the parsed text is the wrapper line.
                    let line = pos
                        .map(|p| cm.lookup_char_pos(p).line as u32)
                        .and_then(|l| l.checked_sub(1))
                        .filter(|l| *l >= 1);
                    (msg.clone(), line)
                }
                None => (err.message.clone(), None),
            };
            Err(SwcFailure {
                code: err.code,
                message,
                line,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_every_type_form_in_place() {
        let ts = r#"interface P { x: number }
type U = string | number;
function id<T>(v: T): T { return v; }
const p = { x: 1 } as P;
const q = p!;
const r = { x: 2 } satisfies P;
let maybe: number | undefined;
abstract class A { abstract f(): void; private y?: string; }
return [id<number>(p.x), q.x, r.x];"#;
        let out = strip_typescript(ts).unwrap();
        assert!(!out.was_transformed());
        assert_eq!(out.body.lines().count(), ts.lines().count());
        assert!(!out.body.contains("interface"));
        assert!(out.body.contains("return [id(p.x)") || out.body.contains("return [id"));
    }

    #[test]
    fn enums_and_parameter_properties_use_transform_mode() {
        let ts = "enum Color { Red, Green }\nclass P { constructor(public x: number) {} }\nconst c: Color = Color.Green;\nreturn [c, new P(3).x];";
        let out = strip_typescript(ts).unwrap();
        assert!(out.was_transformed());
        assert!(out.body.contains("Color"));
        // The `return` is on line 4 of the original code.
        let ret_line = out
            .body
            .lines()
            .position(|l| l.contains("return ["))
            .unwrap() as u32
            + 1;
        assert_eq!(out.original_line(ret_line), Some(4));
    }

    #[test]
    fn syntax_errors_report_the_original_line() {
        let err = strip_typescript("const a = 1;\n\nlet b = ;").unwrap_err();
        assert_eq!(err.kind, ErrorKind::TypeScript);
        assert_eq!(err.line, Some(3), "{err}");
        let err = strip_typescript("let x: = 1").unwrap_err();
        assert_eq!(err.line, Some(1), "{err}");
    }

    #[test]
    fn pathological_nesting_is_refused_not_a_crash() {
        for code in [
            format!("return {}1{};", "(".repeat(100_000), ")".repeat(100_000)),
            format!("return {}1;", "!".repeat(200_000)),
            format!("return {}0;", "a ? 1 : ".repeat(30_000)),
        ] {
            let err = strip_typescript(&code).unwrap_err();
            assert_eq!(err.kind, ErrorKind::TypeScript);
            assert!(err.message.contains("nests too deeply"), "{err}");
        }
        // Deep but under the limit still parses.
        let code = format!("return {}1{};", "(".repeat(450), ")".repeat(450));
        assert!(strip_typescript(&code).is_ok());
        let code = format!("return {}1;", "!".repeat(990));
        assert!(strip_typescript(&code).is_ok());
    }

    #[test]
    fn empty_and_type_only_code() {
        assert_eq!(strip_typescript("").unwrap().body.trim(), "");
        assert!(
            !strip_typescript("type A = number;")
                .unwrap()
                .body
                .contains("type")
        );
    }
}
