//! A guard against code that nests deeply enough to overflow the parser's stack.
//!
//! swc parses nested brackets, prefix operators (`!`, `typeof`, `await`, `new`, unary `-`),
//! and right-associative chains (`a = b = …`, `a ? b : c ? …`, `x => y => …`) recursively.
//! Model-written code is untrusted input: a 100 KB line of `((((…` would overflow any
//! thread's stack and abort the host process, which no `catch_unwind` can stop. Before
//! parsing, this scanner estimates the recursion depth those constructs need, skipping
//! strings, template literals, comments and regular expressions, and code above
//! [`MAX_NESTING`] is refused with a `TypeScriptError`. Binary operators, member access,
//! calls and commas are parsed iteratively and do not count. The parser then runs with a
//! stack sized for the limit (see [`PARSER_STACK`]).

/// Deepest nesting accepted. Real programs stay far below (a few dozen levels).
pub const MAX_NESTING: usize = 1000;

/// Stack the parser runs on: measured at under 4 KiB per level for the worst construct,
/// so this leaves a wide margin at [`MAX_NESTING`].
pub(crate) const PARSER_STACK: usize = 16 * 1024 * 1024;

/// Refuses JavaScript nested deeper than [`MAX_NESTING`] with a `SyntaxError`.
///
/// Drivers whose engine parses on a thread the host does not control (a sidecar, a remote
/// Worker) call it before sending code, so every driver treats absurd nesting alike.
///
/// ```
/// assert!(code_mode::check_nesting("return [[1], {a: (2)}]").is_ok());
/// let deep = format!("return {}1{};", "(".repeat(5000), ")".repeat(5000));
/// assert_eq!(code_mode::check_nesting(&deep).unwrap_err().kind, code_mode::ErrorKind::Syntax);
/// ```
pub fn check_nesting(code: &str) -> Result<(), crate::ExecutionError> {
    let depth = estimate_depth(code);
    if depth > MAX_NESTING {
        return Err(crate::ExecutionError::new(
            crate::ErrorKind::Syntax,
            format!(
                "The code nests too deeply (about {depth} levels of brackets or nested operators; the limit is {MAX_NESTING}); write it with less nesting"
            ),
        ));
    }
    Ok(())
}

/// Estimated parser recursion depth of `code`.
pub(crate) fn estimate_depth(code: &str) -> usize {
    let b = code.as_bytes();
    let mut frames = Frames {
        chains: vec![0],
        total: 1,
        max: 1,
    };
    let mut templates: Vec<usize> = Vec::new(); // frame count when a `${` opened
    let mut i = 0usize;
    // Whether the previous significant token ends an operand (so `/` divides, `-` is binary).
    let mut after_operand = false;
    while i < b.len() {
        if frames.max > MAX_NESTING {
            return frames.max;
        }
        let c = b[i];
        match c {
            b' ' | b'\t' | b'\r' | b'\n' => {
                i += 1;
                continue;
            }
            b'/' if b.get(i + 1) == Some(&b'/') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i + 1 < b.len() && !(b[i] == b'*' && b[i + 1] == b'/') {
                    i += 1;
                }
                i += 2;
                continue;
            }
            b'\'' | b'"' => {
                i = skip_string(b, i, c);
                after_operand = true;
                continue;
            }
            b'`' => {
                // Template text up to the closing backtick or a `${`.
                i = skip_template(b, i + 1, &mut frames, &mut templates);
                after_operand = true;
                continue;
            }
            b'/' if !after_operand => {
                i = skip_regex(b, i);
                after_operand = true;
                continue;
            }
            b'(' | b'[' | b'{' => {
                frames.push();
                after_operand = false;
            }
            b')' | b']' | b'}' => {
                if c == b'}' && templates.last() == Some(&frames.chains.len()) {
                    // End of a `${…}`: back into the template text.
                    templates.pop();
                    frames.pop();
                    i = skip_template(b, i + 1, &mut frames, &mut templates);
                    after_operand = true;
                    continue;
                }
                if frames.chains.len() > 1 {
                    frames.pop();
                }
                after_operand = true;
            }
            b',' | b';' => {
                frames.reset();
                after_operand = false;
            }
            b'?' if b.get(i + 1) == Some(&b'.')
                && !b.get(i + 2).is_some_and(u8::is_ascii_digit) =>
            {
                i += 2;
                after_operand = false;
                continue;
            }
            b'?' if b.get(i + 1) == Some(&b'?') => {
                i += 2;
                after_operand = false;
                continue;
            }
            b'=' if b.get(i + 1) == Some(&b'=') => {
                i += if b.get(i + 2) == Some(&b'=') { 3 } else { 2 };
                after_operand = false;
                continue;
            }
            b'?' | b'=' | b'!' | b'~' => {
                // Ternaries, assignments (`=`, `=>`, compound ones end in `=`), prefix `!`/`~`.
                if c == b'!' && after_operand {
                    // Non-null assertion or `!=`: not a prefix.
                } else {
                    frames.bump();
                }
                if c == b'=' && b.get(i + 1) == Some(&b'>') {
                    i += 1;
                }
                after_operand = false;
            }
            b'-' | b'+' => {
                if b.get(i + 1) == Some(&c) {
                    i += 2; // `++` / `--` do not nest
                    continue;
                }
                if !after_operand {
                    frames.bump();
                }
                after_operand = false;
            }
            c if c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80 => {
                let start = i;
                while i < b.len()
                    && (b[i].is_ascii_alphanumeric()
                        || b[i] == b'_'
                        || b[i] == b'$'
                        || b[i] >= 0x80)
                {
                    i += 1;
                }
                let word = &code[start..i];
                if matches!(
                    word,
                    "typeof" | "void" | "delete" | "await" | "new" | "yield" | "throw" | "return"
                ) {
                    if !matches!(word, "throw" | "return") {
                        frames.bump();
                    }
                    after_operand = false;
                } else {
                    after_operand = true;
                }
                continue;
            }
            _ => after_operand = false,
        }
        i += 1;
    }
    frames.max
}

/// Open brackets, each with the length of its current chain of nesting operators, and the
/// running sum of both (the estimated depth).
struct Frames {
    chains: Vec<usize>,
    total: usize,
    max: usize,
}

impl Frames {
    fn push(&mut self) {
        self.chains.push(0);
        self.total += 1;
        self.max = self.max.max(self.total);
    }
    fn pop(&mut self) {
        if let Some(chain) = self.chains.pop() {
            self.total -= chain + 1;
        }
    }
    fn reset(&mut self) {
        if let Some(chain) = self.chains.last_mut() {
            self.total -= *chain;
            *chain = 0;
        }
    }
    fn bump(&mut self) {
        if let Some(chain) = self.chains.last_mut() {
            *chain += 1;
            self.total += 1;
            self.max = self.max.max(self.total);
        }
    }
}

fn skip_string(b: &[u8], mut i: usize, quote: u8) -> usize {
    i += 1;
    while i < b.len() && b[i] != quote && b[i] != b'\n' {
        if b[i] == b'\\' {
            i += 1;
        }
        i += 1;
    }
    i + 1
}

/// Skips template text from `i` to the closing backtick, or to a `${` (pushing a frame).
fn skip_template(b: &[u8], mut i: usize, frames: &mut Frames, templates: &mut Vec<usize>) -> usize {
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'`' => return i + 1,
            b'$' if b.get(i + 1) == Some(&b'{') => {
                frames.push();
                templates.push(frames.chains.len());
                return i + 2;
            }
            _ => i += 1,
        }
    }
    i
}

fn skip_regex(b: &[u8], mut i: usize) -> usize {
    i += 1;
    let mut in_class = false;
    while i < b.len() && b[i] != b'\n' {
        match b[i] {
            b'\\' => i += 1,
            b'[' => in_class = true,
            b']' => in_class = false,
            b'/' if !in_class => return i + 1,
            _ => {}
        }
        i += 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_code_is_shallow() {
        let code = r#"
const rows = await Promise.all(ids.map((id) => external_get({ id, tags: [1, 2] })));
const s = `total: ${rows.length > 0 ? rows.map(r => r.x!).join(", ") : "none"}`;
if (a?.b ?? c) { x += 1; y = z == 2 ? -1 : +1; }
const re = /[(]+{/g; // ((((( in a comment
const str = "(((((((((";
return { s, n: typeof x, m: !ok };
"#;
        assert!(estimate_depth(code) < 20, "{}", estimate_depth(code));
        let long_list = format!("return [{}];", "x => 1, ".repeat(5000));
        assert!(estimate_depth(&long_list) < 10);
        let long_sum = format!("return 1{};", " + 1".repeat(5000));
        assert!(estimate_depth(&long_sum) < 10);
    }

    #[test]
    fn pathological_code_is_deep() {
        for code in [
            format!("return {}1{};", "(".repeat(2000), ")".repeat(2000)),
            format!("return {}1;", "!".repeat(2000)),
            format!("return {}1;", "- ".repeat(2000)),
            format!("return {}0;", "a ? 1 : ".repeat(2000)),
            format!("let a; {}1;", "a = ".repeat(2000)),
            format!("return {}1;", "x => ".repeat(2000)),
            format!("return {}1;", "typeof ".repeat(2000)),
            format!("return `{}`;", "${`".repeat(2000)),
        ] {
            assert!(
                estimate_depth(&code) > MAX_NESTING,
                "{}: {}",
                &code[..20],
                estimate_depth(&code)
            );
        }
    }
}
