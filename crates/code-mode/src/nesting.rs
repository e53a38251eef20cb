//! A guard against code that nests deeply enough to exhaust the parser's stack.
//!
//! swc's parser, its visitors and the drop of its syntax tree all recurse once per level of
//! nesting, and nesting comes from far more than brackets: `if … else if …` chains, unbraced
//! `if`/`for`/`while` bodies, labels, generic type arguments, `keyof`/`typeof` chains, member
//! and call chains, non-null assertions, `class … extends class …`, binary and ternary chains.
//! Model-written code is untrusted input, and a stack overflow aborts the host process, which
//! no `catch_unwind` can stop. Two layers keep that from happening:
//!
//! 1. **This scanner** estimates the depth *conservatively* before anything is parsed: every
//!    token adds a level to the bracket it is in, and the count only drops where the grammar
//!    guarantees the nesting has ended (a `,` between list items, a `;` or a line break that
//!    ends a statement, a `}` that ends a block). Code above [`MAX_NESTING`] is refused with a
//!    clear error before it costs anything. Where it cannot tell a regular expression from a
//!    division (`} /x/`), it follows both readings (a bounded number of times, then gives
//!    up rather than guess).
//! 2. **The stack the TypeScript stage runs on is sized from the code's length** (see
//!    `typescript::stage_stack`): no program can nest more than a few levels per byte, so even
//!    code the scanner could not judge can never overflow it. Memory is only touched as deep
//!    as the parse really goes.
//!
//! The fuzz test (`tests/nesting_fuzz.rs`) throws grammar-generated deep programs of every
//! construct at both layers.

/// Deepest nesting accepted, in the scanner's (conservative) count, which is at least the
/// real depth and at most a few times it: real programs stay far below (a few dozen
/// levels), and every construct nested 300 deep still passes.
pub const MAX_NESTING: usize = 2000;

/// Refuses JavaScript nested deeper than [`MAX_NESTING`] with a `SyntaxError`.
///
/// Drivers whose engine parses on a thread the host does not control (a sidecar, a remote
/// Worker) call it before sending code, so every driver treats absurd nesting alike.
///
/// ```
/// assert!(code_mode::driver::check_nesting("return [[1], {a: (2)}]").is_ok());
/// let deep = format!("return {}1{};", "(".repeat(5000), ")".repeat(5000));
/// assert_eq!(code_mode::driver::check_nesting(&deep).unwrap_err().kind, code_mode::ErrorKind::Syntax);
/// ```
pub fn check_nesting(code: &str) -> Result<(), crate::ExecutionError> {
    match estimate_depth(code) {
        Some(depth) if depth > MAX_NESTING => Err(too_deep(crate::ErrorKind::Syntax, depth)),
        _ => Ok(()),
    }
}

pub(crate) fn too_deep(kind: crate::ErrorKind, depth: usize) -> crate::ExecutionError {
    crate::ExecutionError::new(
        kind,
        format!(
            "The code nests too deeply (about {depth} levels of brackets, statements, types or chained operators; the limit is {MAX_NESTING}); write it with less nesting"
        ),
    )
}

/// Estimated recursion depth of `code`, or `None` when a `/` could be either a regular
/// expression or a division and the estimate would be a guess. Stops counting once the
/// estimate passes [`MAX_NESTING`].
pub(crate) fn estimate_depth(code: &str) -> Option<usize> {
    Scanner::new(code.as_bytes()).run()
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Root,
    Paren,
    Bracket,
    Brace,
    /// `${ … }` inside a template literal.
    TemplateExpr,
    /// `<` that may open type arguments (or be a comparison).
    Angle,
}

#[derive(Debug, Clone)]
struct Frame {
    kind: Kind,
    /// Statement nesting (`if`, `else`, loops, `with`, labels): survives commas.
    stmt: usize,
    /// Expression and type nesting since the last `,` / end of statement.
    expr: usize,
    /// A `(` right after `if`/`while`/`for`/`with`: a `/` after its `)` starts a regex.
    control: bool,
    /// A `<` where an expression starts: a type assertion `<T>x` or a generic arrow.
    assertion: bool,
}

/// What the previous significant token was, as far as the next one cares.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Prev {
    /// Start of input, `;`, `{`, a label's `:`: a statement may begin.
    StatementStart,
    /// An identifier, literal, `]`, `)` of an expression, postfix operator: a `/` divides.
    Operand,
    /// An operator or punctuator after which an expression starts: a `/` is a regex.
    Operator,
    /// `.` or `?.`: the next word is a property name, whatever it spells.
    Dot,
    /// `)` of a control-statement head: a statement follows.
    ControlParen,
    /// `}`, `>`, or a word whose role depends on context (`yield`, `await`, `let`, `of`):
    /// a `/` after it cannot be classified without parsing.
    Ambiguous,
    /// `else`/`do`: a statement follows.
    StatementKeyword,
}

#[derive(Clone)]
struct Scanner<'a> {
    b: &'a [u8],
    /// Readings of an ambiguous `/` still allowed to be followed both ways (shared).
    forks: std::rc::Rc<std::cell::Cell<u32>>,
    i: usize,
    frames: Vec<Frame>,
    total: usize,
    max: usize,
    prev: Prev,
    /// A line break since the previous significant token.
    newline: bool,
    /// The last word was `if`/`while`/`for`/`with` (or `for await`).
    control_word: bool,
    /// The last token closed a `<T>` where an expression starts.
    after_assertion: bool,
}

/// Weight of one `<T>(…)` level: eight nested levels pass [`MAX_NESTING`].
const ASSERTION_WEIGHT: usize = MAX_NESTING / 8 + 1;

/// Weight of one label: nested labels cost swc quadratic time.
const LABEL_WEIGHT: usize = 4;

/// Ambiguous `/`s followed both ways per program; past that the estimate gives up.
const MAX_FORKS: u32 = 16;

/// Words after which a line break does not end the statement.
const CONTINUATION: &[&str] = &[
    "in",
    "instanceof",
    "as",
    "satisfies",
    "of",
    "else",
    "while",
    "catch",
    "finally",
    "extends",
    "implements",
    "is",
    "keyof",
];

/// Words after which an expression (so a regex) starts.
const EXPRESSION_KEYWORDS: &[&str] = &[
    "return",
    "typeof",
    "instanceof",
    "in",
    "new",
    "delete",
    "void",
    "throw",
    "case",
    "extends",
    "export",
    "default",
];

/// Words that make the next `/` unclassifiable (keywords in some contexts only).
const AMBIGUOUS_WORDS: &[&str] = &["yield", "await", "let", "of", "async", "get", "set"];

impl<'a> Scanner<'a> {
    fn new(b: &'a [u8]) -> Self {
        Self {
            b,
            forks: std::rc::Rc::new(std::cell::Cell::new(MAX_FORKS)),
            i: 0,
            frames: vec![Frame {
                kind: Kind::Root,
                stmt: 0,
                expr: 0,
                control: false,
                assertion: false,
            }],
            total: 1,
            max: 1,
            prev: Prev::StatementStart,
            newline: false,
            control_word: false,
            after_assertion: false,
        }
    }

    fn run(mut self) -> Option<usize> {
        while self.i < self.b.len() {
            if self.max > MAX_NESTING {
                return Some(self.max);
            }
            let c = self.b[self.i];
            match c {
                b'\n' | b'\r' => {
                    self.newline = true;
                    self.i += 1;
                }
                b' ' | b'\t' | 0x0b | 0x0c => self.i += 1,
                b'/' if self.peek(1) == Some(b'/') => self.skip_line_comment(),
                b'/' if self.peek(1) == Some(b'*') => self.skip_block_comment(),
                // U+2028/U+2029 are line terminators; other non-ASCII bytes are identifier text.
                0xe2 if self.peek(1) == Some(0x80) && matches!(self.peek(2), Some(0xa8 | 0xa9)) => {
                    self.newline = true;
                    self.i += 3;
                }
                b'\'' | b'"' => {
                    self.before_operand_token();
                    self.bump_expr();
                    self.skip_string(c);
                    self.set_prev(Prev::Operand);
                }
                b'`' => {
                    self.before_operand_token();
                    self.bump_expr();
                    self.i += 1;
                    self.skip_template();
                }
                b'/' => match self.prev {
                    Prev::Operand => self.operator(1),
                    Prev::Ambiguous => {
                        // Regex or division: follow both readings to the end and keep the
                        // deeper one (a bounded number of times).
                        if self.forks.get() == 0 {
                            return None;
                        }
                        self.forks.set(self.forks.get() - 1);
                        let mut division = self.clone();
                        division.operator(1);
                        let other = division.run()?;
                        self.max = self.max.max(other);
                        self.bump_expr();
                        self.skip_regex();
                        self.set_prev(Prev::Operand);
                    }
                    _ => {
                        self.bump_expr();
                        self.skip_regex();
                        self.set_prev(Prev::Operand);
                    }
                },
                b'(' | b'[' | b'{' => {
                    let kind = match c {
                        b'(' => Kind::Paren,
                        b'[' => Kind::Bracket,
                        _ => Kind::Brace,
                    };
                    let control = c == b'(' && self.control_word;
                    let after_assertion = c == b'(' && self.after_assertion;
                    // A call or index is itself a link of the chain it is in (`a()()()`,
                    // `x[0][0]`); a control head's `(` and a `{` are counted by their frame.
                    if c == b'[' || (c == b'(' && !control) {
                        self.bump_expr();
                    }
                    self.push(kind, control);
                    if after_assertion {
                        // `<T>(…)`: swc tries a generic arrow function first and parses the
                        // parentheses again when that fails, so nesting these costs twice
                        // the time per level. A dozen levels would take seconds: weigh them.
                        self.top().expr += ASSERTION_WEIGHT;
                        self.recount();
                    }
                    self.i += 1;
                    self.set_prev(if c == b'{' {
                        Prev::StatementStart
                    } else {
                        Prev::Operator
                    });
                }
                b')' | b']' => {
                    let want = if c == b')' {
                        Kind::Paren
                    } else {
                        Kind::Bracket
                    };
                    let control = self.close(want);
                    self.i += 1;
                    self.set_prev(if control {
                        Prev::ControlParen
                    } else {
                        Prev::Operand
                    });
                }
                b'}' => {
                    if self.close_brace() {
                        // End of `${…}`: back into the template text.
                        self.i += 1;
                        self.skip_template();
                    } else {
                        self.i += 1;
                        self.set_prev(Prev::Ambiguous);
                        if self.next_word_starts_statement() {
                            self.end_statement();
                        }
                    }
                }
                b',' => {
                    self.pop_angles();
                    self.top().expr = 0;
                    self.recount();
                    self.i += 1;
                    self.set_prev(Prev::Operator);
                }
                b';' => {
                    self.pop_angles();
                    self.i += 1;
                    let keeps = matches!(self.peek_word(), Some("else" | "while"));
                    let top = self.top();
                    top.expr = 0;
                    if !keeps {
                        top.stmt = 0;
                    }
                    self.recount();
                    self.set_prev(Prev::StatementStart);
                }
                b'<' => {
                    if matches!(self.peek(1), Some(b'<' | b'=')) {
                        self.operator(2);
                    } else {
                        let assertion = self.prev != Prev::Operand;
                        self.bump_expr();
                        self.push(Kind::Angle, false);
                        self.top().assertion = assertion;
                        self.i += 1;
                        self.set_prev(Prev::Operator);
                    }
                }
                b'>' => {
                    if self.top().kind == Kind::Angle {
                        let assertion = self.pop().is_some_and(|f| f.assertion);
                        self.i += 1;
                        self.set_prev(Prev::Ambiguous);
                        self.after_assertion = assertion;
                    } else {
                        self.operator(1);
                    }
                }
                b'=' if self.peek(1) == Some(b'>') => self.operator(2),
                b'!' if self.prev == Prev::Operand && self.peek(1) != Some(b'=') => {
                    // Non-null assertion: a postfix operator.
                    self.bump_expr();
                    self.i += 1;
                    self.set_prev(Prev::Operand);
                }
                b'+' | b'-' if self.peek(1) == Some(c) => {
                    // `++`/`--`: postfix after an operand (still an operand), else prefix.
                    self.bump_expr();
                    self.i += 2;
                    let after = if self.prev == Prev::Operand && !self.newline {
                        Prev::Operand
                    } else {
                        Prev::Ambiguous
                    };
                    self.set_prev(after);
                }
                b'.' if self.peek(1).is_some_and(|d| d.is_ascii_digit()) => self.number(),
                b'.' if self.peek(1) == Some(b'.') && self.peek(2) == Some(b'.') => {
                    self.operator(3)
                }
                b'.' => {
                    self.bump_expr();
                    self.i += 1;
                    self.set_prev(Prev::Dot);
                }
                b'?' if self.peek(1) == Some(b'.')
                    && !self.peek(2).is_some_and(|d| d.is_ascii_digit()) =>
                {
                    self.bump_expr();
                    self.i += 2;
                    self.set_prev(Prev::Dot);
                }
                b'0'..=b'9' => self.number(),
                b'#' | b'@' => {
                    // Private names and decorators: part of the next word.
                    self.bump_expr();
                    self.i += 1;
                    self.set_prev(Prev::Dot);
                }
                c if is_word_byte(c) || c == b'\\' => self.word(),
                // A `:` ends a key, a label, a `case` or a ternary's middle: the construct is
                // already counted by what came before it.
                b':' => {
                    self.i += 1;
                    self.set_prev(Prev::Operator);
                }
                _ => self.operator(1),
            }
        }
        Some(self.max)
    }

    fn peek(&self, ahead: usize) -> Option<u8> {
        self.b.get(self.i + ahead).copied()
    }

    fn top(&mut self) -> &mut Frame {
        let last = self.frames.len() - 1;
        &mut self.frames[last]
    }

    fn set_prev(&mut self, prev: Prev) {
        self.prev = prev;
        self.newline = false;
        self.control_word = false;
        self.after_assertion = false;
    }

    fn recount(&mut self) {
        self.total = self
            .frames
            .iter()
            .map(|f| 1 + f.stmt + f.expr)
            .sum::<usize>();
        self.max = self.max.max(self.total);
    }

    fn bump_expr(&mut self) {
        self.top().expr += 1;
        self.total += 1;
        self.max = self.max.max(self.total);
    }

    fn bump_stmt(&mut self) {
        self.top().stmt += 1;
        self.total += 1;
        self.max = self.max.max(self.total);
    }

    fn push(&mut self, kind: Kind, control: bool) {
        self.frames.push(Frame {
            kind,
            stmt: 0,
            expr: 0,
            control,
            assertion: false,
        });
        self.total += 1;
        self.max = self.max.max(self.total);
    }

    fn pop(&mut self) -> Option<Frame> {
        if self.frames.len() <= 1 {
            return None;
        }
        let frame = self.frames.pop()?;
        self.total -= 1 + frame.stmt + frame.expr;
        Some(frame)
    }

    /// Pops `<` frames that turned out to be comparisons.
    fn pop_angles(&mut self) {
        while self.top().kind == Kind::Angle {
            self.pop();
        }
    }

    /// Closes up to the nearest frame of `want` (a stray closer closes nothing); returns
    /// whether it was a control-statement head.
    fn close(&mut self, want: Kind) -> bool {
        if !self.frames.iter().any(|f| f.kind == want) {
            return false;
        }
        while let Some(frame) = self.pop() {
            if frame.kind == want {
                return frame.control;
            }
        }
        false
    }

    /// Closes a `{` or a template's `${`; returns true for the latter.
    fn close_brace(&mut self) -> bool {
        let Some(pos) = self
            .frames
            .iter()
            .rposition(|f| matches!(f.kind, Kind::Brace | Kind::TemplateExpr))
        else {
            return false;
        };
        let kind = self.frames[pos].kind;
        while self.frames.len() > pos {
            self.pop();
        }
        kind == Kind::TemplateExpr
    }

    /// Resets the nesting of the current statement list (its statement ended).
    fn end_statement(&mut self) {
        self.pop_angles();
        let top = self.top();
        if matches!(top.kind, Kind::Root | Kind::Brace) {
            top.stmt = 0;
            top.expr = 0;
            self.recount();
        }
    }

    /// The next significant token is a word that starts a new statement (not one that
    /// continues the current one).
    fn next_word_starts_statement(&self) -> bool {
        matches!(self.peek_word(), Some(w) if !CONTINUATION.contains(&w))
    }

    /// The next word after whitespace and comments, if the next token is a word.
    fn peek_word(&self) -> Option<&'a str> {
        let mut j = self.i;
        let b = self.b;
        loop {
            match b.get(j)? {
                b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c => j += 1,
                b'/' if b.get(j + 1) == Some(&b'/') => {
                    while j < b.len() && b[j] != b'\n' {
                        j += 1;
                    }
                }
                b'/' if b.get(j + 1) == Some(&b'*') => {
                    j += 2;
                    while j + 1 < b.len() && !(b[j] == b'*' && b[j + 1] == b'/') {
                        j += 1;
                    }
                    j += 2;
                }
                c if is_word_byte(*c) && !c.is_ascii_digit() => {
                    let start = j;
                    while j < b.len() && is_word_byte(b[j]) {
                        j += 1;
                    }
                    return std::str::from_utf8(&b[start..j]).ok();
                }
                _ => return None,
            }
        }
    }

    /// A line break before a word that cannot continue the previous token ends the
    /// statement (automatic semicolon insertion).
    fn before_operand_token(&mut self) {
        if self.newline && self.prev == Prev::Operand {
            self.end_statement();
        }
    }

    fn operator(&mut self, len: usize) {
        self.bump_expr();
        self.i += len;
        self.set_prev(Prev::Operator);
    }

    fn number(&mut self) {
        self.before_operand_token();
        self.bump_expr();
        let b = self.b;
        let mut j = self.i;
        let mut dot = false;
        while j < b.len() {
            let c = b[j];
            if c == b'.' && !dot && b.get(j + 1) != Some(&b'.') {
                dot = true;
            } else if c == b'.' && !dot {
                // `1..x`: the first dot ends the number.
                j += 1;
                break;
            } else if (c == b'+' || c == b'-') && matches!(b[j - 1], b'e' | b'E') {
                // exponent sign
            } else if !(c.is_ascii_alphanumeric() || c == b'_') {
                break;
            }
            j += 1;
        }
        self.i = j.max(self.i + 1);
        self.set_prev(Prev::Operand);
    }

    fn word(&mut self) {
        let b = self.b;
        let start = self.i;
        let mut j = self.i;
        while j < b.len() && (is_word_byte(b[j]) || b[j] == b'\\') {
            j += if b[j] == b'\\' { 2 } else { 1 };
        }
        self.i = j.min(b.len()).max(start + 1);
        let word = std::str::from_utf8(&b[start..self.i]).unwrap_or("");
        if self.prev == Prev::Dot {
            // A property name, whatever it spells.
            self.bump_expr();
            self.set_prev(Prev::Operand);
            return;
        }
        if self.newline
            && matches!(self.prev, Prev::Operand | Prev::Ambiguous)
            && !CONTINUATION.contains(&word)
        {
            self.end_statement();
        }
        match word {
            "if" | "while" | "for" | "with" => {
                self.bump_stmt();
                self.set_prev(Prev::StatementKeyword);
                self.control_word = true;
            }
            "else" | "do" => {
                self.bump_stmt();
                self.set_prev(Prev::StatementKeyword);
            }
            "case" | "default"
                if matches!(self.top().kind, Kind::Brace)
                    && matches!(
                        self.prev,
                        Prev::StatementStart | Prev::Operand | Prev::Ambiguous
                    ) =>
            {
                // A new `switch` clause: clauses are a list, not a nesting.
                self.end_statement();
                self.set_prev(Prev::Operator);
            }
            "await" if self.control_word => {
                // `for await (`
                self.bump_expr();
                self.prev = Prev::StatementKeyword;
            }
            _ if self.is_label() => {
                // swc checks each label against every enclosing one (quadratic time):
                // weigh labels so that nesting them stays cheap to parse.
                for _ in 0..LABEL_WEIGHT {
                    self.bump_stmt();
                }
                self.skip_label_colon();
                self.set_prev(Prev::StatementStart);
            }
            w if EXPRESSION_KEYWORDS.contains(&w) => {
                self.bump_expr();
                self.set_prev(Prev::Operator);
            }
            w if AMBIGUOUS_WORDS.contains(&w) => {
                self.bump_expr();
                self.set_prev(Prev::Ambiguous);
            }
            _ => {
                self.bump_expr();
                self.set_prev(Prev::Operand);
            }
        }
    }

    /// `word:` where a statement may start is a label.
    fn is_label(&self) -> bool {
        matches!(
            self.prev,
            Prev::StatementStart | Prev::ControlParen | Prev::StatementKeyword
        ) && {
            let mut j = self.i;
            while j < self.b.len() && matches!(self.b[j], b' ' | b'\t') {
                j += 1;
            }
            self.b.get(j) == Some(&b':') && self.b.get(j + 1) != Some(&b':')
        }
    }

    fn skip_label_colon(&mut self) {
        while self.i < self.b.len() && self.b[self.i] != b':' {
            self.i += 1;
        }
        self.i += 1;
    }

    fn skip_line_comment(&mut self) {
        while self.i < self.b.len() && !matches!(self.b[self.i], b'\n' | b'\r') {
            self.i += 1;
        }
    }

    fn skip_block_comment(&mut self) {
        self.i += 2;
        while self.i < self.b.len() {
            if self.b[self.i] == b'*' && self.peek(1) == Some(b'/') {
                self.i += 2;
                return;
            }
            if matches!(self.b[self.i], b'\n' | b'\r') {
                self.newline = true;
            }
            self.i += 1;
        }
    }

    fn skip_string(&mut self, quote: u8) {
        self.i += 1;
        while self.i < self.b.len() {
            match self.b[self.i] {
                b'\\' => self.i += 2,
                b'\n' | b'\r' => return,
                c if c == quote => {
                    self.i += 1;
                    return;
                }
                _ => self.i += 1,
            }
        }
    }

    /// Skips template text up to the closing backtick, or to a `${` (pushing its frame).
    fn skip_template(&mut self) {
        while self.i < self.b.len() {
            match self.b[self.i] {
                b'\\' => self.i += 2,
                b'`' => {
                    self.i += 1;
                    self.set_prev(Prev::Operand);
                    return;
                }
                b'$' if self.peek(1) == Some(b'{') => {
                    self.push(Kind::TemplateExpr, false);
                    self.i += 2;
                    self.set_prev(Prev::Operator);
                    return;
                }
                _ => self.i += 1,
            }
        }
        self.set_prev(Prev::Operand);
    }

    fn skip_regex(&mut self) {
        self.i += 1;
        let mut in_class = false;
        while self.i < self.b.len() && !matches!(self.b[self.i], b'\n' | b'\r') {
            match self.b[self.i] {
                b'\\' => self.i += 1,
                b'[' => in_class = true,
                b']' => in_class = false,
                b'/' if !in_class => {
                    self.i += 1;
                    // flags
                    while self.i < self.b.len() && self.b[self.i].is_ascii_alphabetic() {
                        self.i += 1;
                    }
                    return;
                }
                _ => {}
            }
            self.i += 1;
        }
    }
}

fn is_word_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80
}

#[cfg(test)]
mod tests {
    use super::*;

    fn depth(code: &str) -> usize {
        estimate_depth(code).unwrap_or_else(|| panic!("ambiguous: {code}"))
    }

    #[test]
    fn ordinary_code_is_shallow() {
        let code = r#"
const rows = await Promise.all(ids.map((id) => external_get({ id, tags: [1, 2] })));
const s = `total: ${rows.length > 0 ? rows.map(r => r.x!).join(", ") : "none"}`;
if (a?.b ?? c) { x += 1; y = z == 2 ? -1 : +1; }
const re = /[(]+{/g; // ((((( in a comment
const str = "(((((((((";
for (let i = 0; i < n; i++) { total += i; }
function f<T extends object>(v: Array<Record<string, T>>): Promise<T[]> { return g(v); }
label: for (const x of xs) { if (x) continue label; else break label; }
return { s, n: typeof x, m: !ok, d: (a + b) / 2 };
"#;
        assert!(depth(code) < 40, "{}", depth(code));
        let long_list = format!("return [{}];", "x => 1, ".repeat(5000));
        assert!(depth(&long_list) < 10);
        let many_statements = "const a = b.c(d) + 1;\n".repeat(5000);
        assert!(depth(&many_statements) < 20);
        let no_semicolons = "const a = b.c(d) + 1\nlet x = y\n".repeat(5000);
        assert!(depth(&no_semicolons) < 20, "{}", depth(&no_semicolons));
        let many_ifs = "if (a) { b() }\nif (c) d()\nelse e()\n".repeat(3000);
        assert!(depth(&many_ifs) < 20, "{}", depth(&many_ifs));
        let else_ifs = format!(
            "if (a) {{}}{} else {{}}",
            " else if (b) { c() }".repeat(100)
        );
        assert!(depth(&else_ifs) < 400);
    }

    #[test]
    fn every_nesting_construct_is_counted() {
        let n = MAX_NESTING + 1;
        let cases = [
            format!("return {}1{};", "(".repeat(n), ")".repeat(n)),
            format!("return {}1;", "!".repeat(n)),
            format!("return {}1;", "- ".repeat(n)),
            format!("return {}0;", "a ? 1 : ".repeat(n)),
            format!("let a; {}1;", "a = ".repeat(n)),
            format!("return {}1;", "x => ".repeat(n)),
            format!("return {}1;", "typeof ".repeat(n)),
            format!("return `{}`;", "${`".repeat(n)),
            format!("let x = 0; {} {{}}", "if (x) {} else ".repeat(n)),
            format!("if (x) x; {} x;", "else if (x) x;".repeat(n)),
            format!("let x = 0; {} x;", "if (x) ".repeat(n)),
            format!("let v: {}number{} = 1;", "Array<".repeat(n), ">".repeat(n)),
            format!("type T = {}string;", "keyof ".repeat(n)),
            format!("let a: any; return a{};", "!".repeat(n)),
            format!("let a: any; return a{};", ".b".repeat(n)),
            format!("return 1{};", "..toString()".repeat(n)),
            format!("return a{};", "()".repeat(n)),
            format!(
                "{} x;",
                (0..n).map(|i| format!("l{i}: ")).collect::<String>()
            ),
            format!("const C = {}Object {{}};", "class extends ".repeat(n)),
            format!("return 1{};", " + 1".repeat(n)),
            format!("return 1{};", " as any".repeat(n)),
            format!("let v: number{} = [];", "[]".repeat(n)),
            format!("{}{}", "while (x) ".repeat(n), "x;"),
            format!("{}{}", "do ".repeat(n), "x; while (y)".repeat(n)),
            format!("if (a) {} x, y; else y;", "if (a) ".repeat(n)),
        ];
        for code in cases {
            let d = depth(&code);
            assert!(d > MAX_NESTING, "{}…: {d}", &code[..40.min(code.len())]);
        }
    }

    #[test]
    fn nested_type_assertions_on_parentheses_are_limited() {
        // swc's time doubles with each `<T>(` level: 8 levels are refused, 5 are fine.
        let deep = format!("return {}1{};", "<any>(".repeat(8), ")".repeat(8));
        assert!(depth(&deep) > MAX_NESTING);
        let shallow = format!("return {}1{};", "<any>(".repeat(5), ")".repeat(5));
        assert!(depth(&shallow) < MAX_NESTING);
        // Generic calls and comparisons are not assertions.
        let calls = format!("return {}1{};", "f<any>(".repeat(30), ")".repeat(30));
        assert!(depth(&calls) < MAX_NESTING);
    }

    #[test]
    fn a_comma_does_not_hide_statement_nesting() {
        // `if (a) if (a) … x, y; else …`: the comma ends expressions, not the ifs.
        let code = "if (a) ".repeat(1100) + "x, y; else " + &"if (a) ".repeat(1100) + "x;";
        assert!(depth(&code) > MAX_NESTING);
    }

    #[test]
    fn unclassifiable_slashes_are_read_both_ways() {
        // As a division, the parentheses after `}` nest; as a regex they are text.
        let code = format!("if (a) {{}} /x/.test(s); return {}1;", "(".repeat(3000));
        assert!(depth(&code) > MAX_NESTING);
        let code = format!("x = {{}} /{}/ 1", ")".repeat(50)) + &"(".repeat(3000);
        assert!(depth(&code) > MAX_NESTING);
        let many = "if (a) {} /x/.test(s);\n".repeat(40);
        assert_eq!(estimate_depth(&many), None);
        assert!(estimate_depth("if (a) /x/.test(s)").is_some());
        assert!(estimate_depth("return (a + b) / 2 / c").is_some());
        // A regex after `)` of a control head is skipped as a regex.
        let code = format!("if (a) /{}/.test(s)", ")".repeat(50));
        assert!(depth(&code) < 10);
    }
}
