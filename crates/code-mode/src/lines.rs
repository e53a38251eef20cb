//! Line terminators as ECMAScript counts them.
//!
//! ECMAScript ends a line at LF, CR, CRLF, U+2028 and U+2029; engines disagree on which of
//! those their stack traces count (QuickJS counts LF only), and the host maps reported
//! lines back to the model's code by counting LFs. So the code handed to a driver has every
//! line terminator that is *between* tokens (or in a comment) turned into LF, one for one:
//! lines then mean the same thing everywhere, and no program's meaning changes (a line
//! terminator between tokens is whitespace whichever one it is).
//!
//! Where the literals are is read from swc's own syntax tree (the parser the TypeScript
//! stage runs anyway), never from a hand-written scanner: only the parser knows whether a `/`
//! after `)` starts a regular expression or divides. Inside literals the text stays as the
//! program wrote it, except what the language itself treats as the same: a CR or CRLF in a
//! template is LF to the grammar (its raw text too), and an escaped terminator in a string is
//! a line continuation (it adds nothing to the value). A U+2028 or U+2029 inside a string or
//! template literal is a character and is never touched.

use std::borrow::Cow;
use std::ops::Range;

use swc_common::sync::Lrc;
use swc_common::{FileName, SourceMap, Spanned};
use swc_ecma_parser::{Parser, StringInput, Syntax, TsSyntax, lexer::Lexer};
use swc_ecma_visit::{Visit, VisitWith};

use crate::nesting::{MAX_NESTING, estimate_depth};

const LS: char = '\u{2028}';
const PS: char = '\u{2029}';

/// What a literal's text is, for the rewrite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Literal {
    /// A string literal: only escaped terminators (line continuations) become LF.
    Str,
    /// A template's text: CR and CRLF become LF; U+2028/U+2029 stay.
    Template,
    /// A regular expression (no terminator can be in one): kept as written.
    Regex,
}

/// `code` with CR, CRLF, U+2028 and U+2029 between tokens turned into LF (see the module
/// docs); code the parser cannot read has every terminator turned into LF, since it will not
/// run and only its error's line matters.
///
/// ```
/// use code_mode::driver::normalize_line_terminators;
/// assert_eq!(normalize_line_terminators("a\r\nb\rc\u{2028}d"), "a\nb\nc\nd");
/// assert_eq!(normalize_line_terminators("'x\u{2028}y'"), "'x\u{2028}y'");
/// assert_eq!(normalize_line_terminators("a\nb"), "a\nb");
/// // A regex after `return` holding a quote does not open a "string".
/// assert_eq!(
///     normalize_line_terminators("return /\"/.test(`\u{2028}`)\u{2028}"),
///     "return /\"/.test(`\u{2028}`)\n"
/// );
/// ```
pub fn normalize_line_terminators(code: &str) -> Cow<'_, str> {
    if !code.contains(['\r', LS, PS]) {
        return Cow::Borrowed(code);
    }
    let literals = literal_spans(code).unwrap_or_default();
    let mut out = String::with_capacity(code.len());
    let mut next = literals.iter().peekable();
    let mut chars = code.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        while next.peek().is_some_and(|(range, _)| range.end <= at) {
            next.next();
        }
        let inside = next
            .peek()
            .filter(|(range, _)| range.contains(&at))
            .map(|(range, kind)| (range.start, *kind));
        if !matches!(c, '\r' | '\n' | LS | PS) {
            out.push(c);
            continue;
        }
        let crlf = c == '\r' && chars.peek().is_some_and(|(_, n)| *n == '\n');
        let to_lf = match inside {
            None => true,
            Some((_, Literal::Regex)) => false,
            Some((_, Literal::Template)) => c == '\r',
            Some((start, Literal::Str)) => escaped(&code[start..at]),
        };
        if to_lf {
            if crlf {
                chars.next();
            }
            out.push('\n');
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// The line, counted in LFs, of a line an engine reports by counting every ECMAScript
/// line terminator of `code` (V8 and workerd also count a U+2028 or U+2029 inside a string
/// or template literal, which [`normalize_line_terminators`] leaves there; QuickJS counts LFs
/// only). A driver on such an engine maps the lines it reports through this, so every driver
/// reports the same line.
///
/// ```
/// use code_mode::driver::lf_line;
/// let code = "const a = 'x\u{2028}y';\nnull.x;";
/// assert_eq!(lf_line(code, 3), 2); // V8 says 3: one U+2028 inside the string
/// assert_eq!(lf_line("a;\nb;", 2), 2);
/// ```
pub fn lf_line(code: &str, engine_line: u32) -> u32 {
    if !code.contains([LS, PS]) {
        return engine_line;
    }
    let (mut lf, mut engine) = (1u32, 1u32);
    let mut chars = code.chars().peekable();
    while engine < engine_line {
        let Some(c) = chars.next() else { break };
        match c {
            '\n' => {
                lf = lf.saturating_add(1);
                engine = engine.saturating_add(1);
            }
            '\r' => {
                if chars.peek() == Some(&'\n') {
                    chars.next();
                }
                lf = lf.saturating_add(1);
                engine = engine.saturating_add(1);
            }
            LS | PS => engine = engine.saturating_add(1),
            _ => {}
        }
    }
    lf
}

/// Whether the character after `before` is escaped (an odd run of backslashes ends it).
fn escaped(before: &str) -> bool {
    before.bytes().rev().take_while(|b| *b == b'\\').count() % 2 == 1
}

const PREFIX: &str = "async function __code_mode_body__() {\n";

/// The byte ranges of `code`'s literals, in order, from swc's syntax tree; `None` when the
/// code does not parse (or nests too deeply to be parsed safely; the TypeScript stage refuses
/// it with the reason).
fn literal_spans(code: &str) -> Option<Vec<(Range<usize>, Literal)>> {
    if estimate_depth(code).is_some_and(|d| d > MAX_NESTING) {
        return None;
    }
    let parse = || {
        std::panic::catch_unwind(|| parse_literals(code))
            .ok()
            .flatten()
    };
    stacker::grow(crate::typescript::stage_stack(code.len()), parse)
}

fn parse_literals(code: &str) -> Option<Vec<(Range<usize>, Literal)>> {
    let cm: Lrc<SourceMap> = Lrc::default();
    let fm = cm.new_source_file(Lrc::new(FileName::Anon), format!("{PREFIX}{code}\n}}"));
    let syntax = Syntax::Typescript(TsSyntax::default());
    let lexer = Lexer::new(
        syntax,
        swc_ecma_ast::EsVersion::latest(),
        StringInput::from(&*fm),
        None,
    );
    let mut parser = Parser::new_from(lexer);
    let script = parser.parse_script().ok()?;
    if !parser.take_errors().is_empty() {
        return None;
    }
    let base = fm.start_pos.0 as usize + PREFIX.len();
    let mut found = Literals {
        base,
        len: code.len(),
        spans: Vec::new(),
    };
    script.visit_with(&mut found);
    found.spans.sort_by_key(|(r, _)| r.start);
    Some(found.spans)
}

/// Collects literal spans as byte ranges of the program (the wrapper's prefix taken off).
struct Literals {
    base: usize,
    len: usize,
    spans: Vec<(Range<usize>, Literal)>,
}

impl Literals {
    fn add(&mut self, span: swc_common::Span, kind: Literal) {
        let (lo, hi) = (span.lo.0 as usize, span.hi.0 as usize);
        if let (Some(lo), Some(hi)) = (lo.checked_sub(self.base), hi.checked_sub(self.base))
            && lo < hi
            && hi <= self.len
        {
            self.spans.push((lo..hi, kind));
        }
    }
}

impl Visit for Literals {
    fn visit_str(&mut self, n: &swc_ecma_ast::Str) {
        self.add(n.span, Literal::Str);
    }
    fn visit_tpl_element(&mut self, n: &swc_ecma_ast::TplElement) {
        self.add(n.span, Literal::Template);
    }
    fn visit_regex(&mut self, n: &swc_ecma_ast::Regex) {
        self.add(n.span(), Literal::Regex);
    }
}

#[cfg(test)]
mod tests {
    use super::normalize_line_terminators as n;
    use super::*;

    type Spans = Vec<(Range<usize>, Literal)>;

    /// Every literal's value as swc reads it, and the literals' spans.
    fn values(code: &str) -> Option<(Vec<String>, Spans)> {
        struct Values(Vec<String>);
        impl Visit for Values {
            fn visit_str(&mut self, n: &swc_ecma_ast::Str) {
                self.0.push(format!("str:{:?}", n.value));
            }
            fn visit_tpl_element(&mut self, n: &swc_ecma_ast::TplElement) {
                // swc keeps the raw text as written; the language's raw value (TRV) reads CR
                // and CRLF as LF, which is what `String.raw` returns.
                let raw = n.raw.replace("\r\n", "\n").replace('\r', "\n");
                self.0.push(format!("tpl:{raw:?}:{:?}", n.cooked));
            }
            fn visit_regex(&mut self, n: &swc_ecma_ast::Regex) {
                self.0.push(format!("re:{}:{}", n.exp, n.flags));
            }
        }
        let cm: Lrc<SourceMap> = Lrc::default();
        let fm = cm.new_source_file(Lrc::new(FileName::Anon), format!("{PREFIX}{code}\n}}"));
        let lexer = Lexer::new(
            Syntax::Typescript(TsSyntax::default()),
            swc_ecma_ast::EsVersion::latest(),
            StringInput::from(&*fm),
            None,
        );
        let mut parser = Parser::new_from(lexer);
        let script = parser.parse_script().ok()?;
        let mut v = Values(Vec::new());
        script.visit_with(&mut v);
        Some((v.0, parse_literals(code)?))
    }

    /// Differential against swc: over generated programs with every line terminator in every
    /// lexical position (between statements, in comments, in strings escaped and not, in
    /// templates and their substitutions, after regexes holding quotes in every context a `/`
    /// can start one), the normalised program has exactly the same literal values as swc
    /// reads them, and no CR, U+2028 or U+2029 is left between tokens (by swc's own spans).
    #[test]
    fn generated_programs_keep_every_literal_and_leave_no_terminator_between_tokens() {
        let terminators = ["\n", "\r", "\r\n", "\u{2028}", "\u{2029}"];
        let regex_contexts = [
            "return /R/.source;",
            "if (x) /R/.test(s);",
            "x = /R/g;",
            "f(/R/);",
            "y = (a) / 2 / /R/.source.length;",
            "y = a / b; z = /R/;",
            "{ } /R/.exec(s);",
            "x = [/R/, 1];",
            "x = !/R/.test(s);",
            "x = s.replace(/R/g, '$1');",
        ];
        let regex_bodies = ["\"", "'", "`", "[\"']", "\\/\"", "a[/]b"];
        let literal_forms = [
            "s = 'aTb';",
            "s = \"aTb\";",
            "s = 'a\\Tb';",
            "t = `aTb`;",
            "t = `a${1 + 2}Tb${`inTner`}c`;",
            "t = String.raw`xTy`;",
            "// cT\n",
            "/* cT */",
        ];
        let mut checked = 0;
        for t in terminators {
            for ctx in regex_contexts {
                for body in regex_bodies {
                    for form in literal_forms {
                        let literal = form.replace('T', t);
                        let program = format!(
                            "let x, y, z, s = '', a = 1, b = 2, f = (v) => v;{t}{}{t}{literal}{t}const u = 1;",
                            ctx.replace('R', body)
                        );
                        let Some((before, _)) = values(&program) else {
                            // Not every combination is a program (an unescaped CR or LF in a
                            // string); it must not panic, and is left for the parser to refuse.
                            let _ = n(&program);
                            continue;
                        };
                        let out = n(&program);
                        let (after, spans) = values(&out).unwrap_or_else(|| {
                            panic!("the normalised program no longer parses: {out:?}")
                        });
                        assert_eq!(before, after, "literal values changed in {program:?}");
                        let mut last = 0;
                        for (range, _) in spans
                            .iter()
                            .chain([(out.len()..out.len(), Literal::Regex)].iter())
                        {
                            let between = &out[last..range.start.max(last)];
                            assert!(
                                !between.contains(['\r', LS, PS]),
                                "a terminator left between tokens in {out:?}"
                            );
                            last = range.end.max(last);
                        }
                        checked += 1;
                    }
                }
            }
        }
        assert!(checked > 1500, "{checked} programs checked");
    }

    #[test]
    fn terminators_outside_literals_become_lf_one_for_one() {
        assert_eq!(n("a;\rb;\r\nc;\u{2029}d;"), "a;\nb;\nc;\nd;");
        // Inside literals U+2028/U+2029 are characters; CR in a template is LF anyway.
        assert_eq!(n("s = \"\u{2028}\";\r"), "s = \"\u{2028}\";\n");
        assert_eq!(
            n("t = `a\r\nb ${x}\u{2028}`\u{2028}y"),
            "t = `a\nb ${x}\u{2028}`\ny"
        );
        assert_eq!(
            n("r = /\"/;\u{2028}q = '\u{2029}'"),
            "r = /\"/;\nq = '\u{2029}'"
        );
        assert_eq!(n("// c\u{2028}x /* \r */"), "// c\nx /* \n */");
        assert_eq!(n("a / 2 / 'x\u{2028}'"), "a / 2 / 'x\u{2028}'");
    }
}
