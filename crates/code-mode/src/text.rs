//! Guest text to host text, the same way on every driver.
//!
//! JavaScript strings are UTF-16 and may hold lone surrogates, which Rust strings and
//! serde_json refuse. Engines hand them out as WTF-8 bytes (QuickJS) or as `\uD800`-style
//! escapes in JSON (`JSON.stringify`). Either way each lone surrogate becomes U+FFFD, as
//! `String.prototype.toWellFormed` does, instead of failing a console line, a tool call or a
//! result.

use std::borrow::Cow;

/// WTF-8 bytes as a string: every encoded surrogate (`ED A0..BF xx`) becomes U+FFFD, other
/// invalid bytes are replaced as [`String::from_utf8_lossy`] does.
///
/// ```
/// assert_eq!(code_mode::driver::wtf8_to_string(b"a\xED\xA0\x80b"), "a\u{FFFD}b");
/// ```
pub fn wtf8_to_string(bytes: &[u8]) -> String {
    if let Ok(s) = std::str::from_utf8(bytes) {
        return s.to_owned();
    }
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == 0xED
            && bytes.get(i + 1).is_some_and(|b| (0xA0..=0xBF).contains(b))
            && bytes.get(i + 2).is_some_and(|b| (0x80..=0xBF).contains(b))
        {
            out.extend_from_slice("\u{FFFD}".as_bytes());
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses JSON text produced by a guest's `JSON.stringify`, turning escaped lone surrogates
/// (`"\uD800"`) into U+FFFD instead of failing.
///
/// ```
/// let v = code_mode::driver::parse_guest_json(r#"["a\uD800b", "\uD83D\uDE00"]"#).unwrap();
/// assert_eq!(v, serde_json::json!(["a\u{FFFD}b", "😀"]));
/// ```
pub fn parse_guest_json(text: &str) -> Result<serde_json::Value, serde_json::Error> {
    match serde_json::from_str(text) {
        Ok(v) => Ok(v),
        Err(e) => match well_formed_escapes(text) {
            Cow::Owned(fixed) => serde_json::from_str(&fixed),
            Cow::Borrowed(_) => Err(e),
        },
    }
}

/// `text` with every `\uD800`–`\uDFFF` escape that is not half of a pair replaced by
/// `\uFFFD`.
fn well_formed_escapes(text: &str) -> Cow<'_, str> {
    let b = text.as_bytes();
    let hex = |at: usize| -> Option<u16> {
        let s = text.get(at..at + 4)?;
        u16::from_str_radix(s, 16).ok()
    };
    let mut out: Option<String> = None;
    let mut i = 0;
    let mut copied = 0;
    while i + 1 < b.len() {
        if b[i] != b'\\' {
            i += 1;
            continue;
        }
        if b[i + 1] != b'u' {
            i += 2;
            continue;
        }
        let Some(unit) = hex(i + 2) else {
            i += 2;
            continue;
        };
        let high = (0xD800..=0xDBFF).contains(&unit);
        let low = (0xDC00..=0xDFFF).contains(&unit);
        if high
            && b.get(i + 6) == Some(&b'\\')
            && b.get(i + 7) == Some(&b'u')
            && hex(i + 8).is_some_and(|n| (0xDC00..=0xDFFF).contains(&n))
        {
            i += 12;
            continue;
        }
        if high || low {
            let o = out.get_or_insert_with(|| String::with_capacity(text.len()));
            o.push_str(&text[copied..i]);
            o.push_str("\\uFFFD");
            copied = i + 6;
        }
        i += 6;
    }
    match out {
        None => Cow::Borrowed(text),
        Some(mut o) => {
            o.push_str(&text[copied..]);
            Cow::Owned(o)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lone_surrogates_become_replacement_characters() {
        assert_eq!(wtf8_to_string(b"\xED\xB0\x80"), "\u{FFFD}");
        assert_eq!(wtf8_to_string("ok ✓".as_bytes()), "ok ✓");
        let v = parse_guest_json(r#"{"k\udc00": "\\ud800 \ud800\ud800\udc00 \udbff"}"#).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"k\u{FFFD}": "\\ud800 \u{FFFD}\u{10000} \u{FFFD}"})
        );
        assert!(parse_guest_json("[1,").is_err());
    }
}
