//! Line terminators as ECMAScript counts them.
//!
//! ECMAScript ends a line at LF, CR, CRLF, U+2028 and U+2029; engines disagree on which of
//! those their stack traces count (QuickJS counts LF only), and the host maps reported
//! lines back to the model's code by counting LFs. So the code handed to a driver has every
//! line terminator outside string and template literals turned into LF, one for one: lines
//! then mean the same thing everywhere. This changes no program's meaning: CR and CRLF are
//! LF to the grammar (template literals normalise them too), and U+2028/U+2029 inside string
//! and template literals, where they are characters, are left alone.

use std::borrow::Cow;

const LS: char = '\u{2028}';
const PS: char = '\u{2029}';

/// `code` with CR, CRLF, U+2028 and U+2029 outside literals turned into LF.
///
/// ```
/// use code_mode::driver::normalize_line_terminators;
/// assert_eq!(normalize_line_terminators("a\r\nb\rc\u{2028}d"), "a\nb\nc\nd");
/// assert_eq!(normalize_line_terminators("'x\u{2028}y'"), "'x\u{2028}y'");
/// assert_eq!(normalize_line_terminators("a\nb"), "a\nb");
/// ```
pub fn normalize_line_terminators(code: &str) -> Cow<'_, str> {
    if !code.contains(['\r', LS, PS]) {
        return Cow::Borrowed(code);
    }
    #[derive(Clone, Copy, PartialEq)]
    enum In {
        Code,
        Quote(char),
        Template,
        LineComment,
        BlockComment,
        Regex { class: bool },
    }
    let mut out = String::with_capacity(code.len());
    let mut state = In::Code;
    // Brace depth inside each open `${`, to find where it ends.
    let mut templates: Vec<usize> = Vec::new();
    let mut braces = 0usize;
    // Whether a `/` here would start a regular expression (after an operator or opener).
    let mut regex_allowed = true;
    let mut chars = code.chars().peekable();
    while let Some(c) = chars.next() {
        let terminator = matches!(c, '\r' | '\n' | LS | PS);
        if c == '\r' && chars.peek() == Some(&'\n') {
            chars.next();
        }
        match state {
            In::Quote(q) => {
                if c == '\\' {
                    push_escape(&mut out, &mut chars);
                    continue;
                }
                if c == q || c == '\r' || c == '\n' {
                    state = In::Code;
                    regex_allowed = false;
                }
                out.push(if c == '\r' { '\n' } else { c });
                continue;
            }
            In::Template => {
                match c {
                    '\\' => {
                        push_escape(&mut out, &mut chars);
                        continue;
                    }
                    '`' => {
                        state = In::Code;
                        regex_allowed = false;
                    }
                    '$' if chars.peek() == Some(&'{') => {
                        chars.next();
                        out.push_str("${");
                        templates.push(braces);
                        state = In::Code;
                        regex_allowed = true;
                        continue;
                    }
                    _ => {}
                }
                out.push(if c == '\r' { '\n' } else { c });
                continue;
            }
            In::LineComment if terminator => state = In::Code,
            In::LineComment | In::BlockComment => {
                if state == In::BlockComment && c == '*' && chars.peek() == Some(&'/') {
                    chars.next();
                    out.push_str("*/");
                    state = In::Code;
                    continue;
                }
                out.push(if terminator { '\n' } else { c });
                continue;
            }
            In::Regex { class } => {
                match c {
                    '\\' => {
                        push_escape(&mut out, &mut chars);
                        continue;
                    }
                    '[' => state = In::Regex { class: true },
                    ']' => state = In::Regex { class: false },
                    '/' if !class => {
                        state = In::Code;
                        regex_allowed = false;
                    }
                    _ if terminator => state = In::Code,
                    _ => {}
                }
                out.push(if terminator { '\n' } else { c });
                continue;
            }
            In::Code => {}
        }
        if terminator {
            out.push('\n');
            continue;
        }
        match c {
            '\'' | '"' => state = In::Quote(c),
            '`' => state = In::Template,
            '/' if chars.peek() == Some(&'/') => state = In::LineComment,
            '/' if chars.peek() == Some(&'*') => state = In::BlockComment,
            '/' if regex_allowed => state = In::Regex { class: false },
            '{' => braces += 1,
            '}' => {
                if templates.last() == Some(&braces) {
                    templates.pop();
                    state = In::Template;
                } else {
                    braces = braces.saturating_sub(1);
                }
            }
            _ => {}
        }
        if !c.is_whitespace() {
            regex_allowed = !(c.is_alphanumeric() || matches!(c, '_' | '$' | ')' | ']' | '}'));
        }
        out.push(c);
    }
    Cow::Owned(out)
}

/// Copies a backslash and the character it escapes; an escaped CR or CRLF (a line
/// continuation) becomes an escaped LF, which means the same.
fn push_escape(out: &mut String, chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    out.push('\\');
    match chars.next() {
        Some('\r') => {
            if chars.peek() == Some(&'\n') {
                chars.next();
            }
            out.push('\n');
        }
        Some(next) => out.push(next),
        None => {}
    }
}

#[cfg(test)]
mod tests {
    use super::normalize_line_terminators as n;

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
