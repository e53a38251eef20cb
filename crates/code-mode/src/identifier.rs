//! JavaScript identifier rules for tool and binding names.
//!
//! Tool names are interpolated into the sandbox as `external_<name>` globals and into the
//! generated type stubs, so they must be plain ASCII identifiers that are not reserved words
//! and do not replace a global the guest or the host's result handling relies on. TanStack
//! checks none of this in its core (a tool called `get-weather` breaks context creation); we
//! reject such names when the tool is built.

/// ECMAScript reserved words and strict-mode / TypeScript keywords that cannot name a function.
pub const RESERVED_WORDS: &[&str] = &[
    "await",
    "break",
    "case",
    "catch",
    "class",
    "const",
    "continue",
    "debugger",
    "default",
    "delete",
    "do",
    "else",
    "enum",
    "export",
    "extends",
    "false",
    "finally",
    "for",
    "function",
    "if",
    "implements",
    "import",
    "in",
    "instanceof",
    "interface",
    "let",
    "new",
    "null",
    "package",
    "private",
    "protected",
    "public",
    "return",
    "static",
    "super",
    "switch",
    "this",
    "throw",
    "true",
    "try",
    "typeof",
    "var",
    "void",
    "while",
    "with",
    "yield",
    "async",
    "arguments",
    "eval",
    "undefined",
    "NaN",
    "Infinity",
];

/// Globals of the sandbox that a binding must never replace.
pub const SANDBOX_GLOBALS: &[&str] = &[
    "globalThis",
    "console",
    "JSON",
    "Promise",
    "Object",
    "Array",
    "Function",
    "String",
    "Number",
    "Boolean",
    "Symbol",
    "BigInt",
    "Math",
    "Date",
    "RegExp",
    "Error",
    "TypeError",
    "RangeError",
    "SyntaxError",
    "ReferenceError",
    "EvalError",
    "URIError",
    "AggregateError",
    "InternalError",
    "Map",
    "Set",
    "WeakMap",
    "WeakSet",
    "WeakRef",
    "FinalizationRegistry",
    "Proxy",
    "Reflect",
    "ArrayBuffer",
    "SharedArrayBuffer",
    "DataView",
    "Atomics",
    "Int8Array",
    "Uint8Array",
    "Uint8ClampedArray",
    "Int16Array",
    "Uint16Array",
    "Int32Array",
    "Uint32Array",
    "Float32Array",
    "Float64Array",
    "BigInt64Array",
    "BigUint64Array",
    "parseInt",
    "parseFloat",
    "isNaN",
    "isFinite",
    "encodeURI",
    "encodeURIComponent",
    "decodeURI",
    "decodeURIComponent",
    "escape",
    "unescape",
    "Iterator",
    "queueMicrotask",
    "structuredClone",
];

/// Longest accepted tool or binding name, in bytes.
pub const MAX_NAME_LEN: usize = 64;

/// Why a name is not a usable identifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentifierProblem {
    /// The name is empty.
    Empty,
    /// The name is longer than [`MAX_NAME_LEN`].
    TooLong,
    /// The name contains a character outside `[A-Za-z0-9_$]` or starts with a digit.
    InvalidCharacters,
    /// The name is a JavaScript reserved word.
    Reserved,
    /// The name would replace a sandbox global.
    ShadowsGlobal,
}

impl std::fmt::Display for IdentifierProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Empty => "it is empty",
            Self::TooLong => "it is longer than 64 bytes",
            Self::InvalidCharacters => {
                "it must match /^[A-Za-z_$][A-Za-z0-9_$]*$/ (ASCII letters, digits, _ and $; no leading digit)"
            }
            Self::Reserved => "it is a reserved JavaScript word",
            Self::ShadowsGlobal => "it would shadow a sandbox global",
        })
    }
}

/// Checks that `name` is a plain ASCII JavaScript identifier that is not a reserved word.
///
/// ```
/// use code_mode::identifier::{check_identifier, IdentifierProblem};
/// assert!(check_identifier("fetchWeather").is_ok());
/// assert_eq!(check_identifier("get-weather"), Err(IdentifierProblem::InvalidCharacters));
/// assert_eq!(check_identifier("class"), Err(IdentifierProblem::Reserved));
/// ```
pub fn check_identifier(name: &str) -> Result<(), IdentifierProblem> {
    let bytes = name.as_bytes();
    let Some(first) = bytes.first() else {
        return Err(IdentifierProblem::Empty);
    };
    if bytes.len() > MAX_NAME_LEN {
        return Err(IdentifierProblem::TooLong);
    }
    let start_ok = first.is_ascii_alphabetic() || *first == b'_' || *first == b'$';
    let rest_ok = bytes
        .iter()
        .all(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'$');
    if !start_ok || !rest_ok {
        return Err(IdentifierProblem::InvalidCharacters);
    }
    if RESERVED_WORDS.contains(&name) {
        return Err(IdentifierProblem::Reserved);
    }
    Ok(())
}

/// Checks a global binding name: an identifier that does not replace a sandbox global.
///
/// ```
/// use code_mode::identifier::{check_binding_name, IdentifierProblem};
/// assert!(check_binding_name("external_search").is_ok());
/// assert_eq!(check_binding_name("JSON"), Err(IdentifierProblem::ShadowsGlobal));
/// ```
pub fn check_binding_name(name: &str) -> Result<(), IdentifierProblem> {
    check_identifier(name)?;
    if SANDBOX_GLOBALS.contains(&name) || name.starts_with("__code_mode") {
        return Err(IdentifierProblem::ShadowsGlobal);
    }
    Ok(())
}

/// True when `key` can be written as a bare property key in TypeScript.
pub(crate) fn is_plain_property_key(key: &str) -> bool {
    let bytes = key.as_bytes();
    match bytes.first() {
        Some(b) if b.is_ascii_alphabetic() || *b == b'_' || *b == b'$' => bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'$'),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_breakouts() {
        for bad in [
            "", "1abc", "a b", "a'b", "a\"b", "a`b", "a\nb", "a;b", "a(b", "é",
        ] {
            assert!(check_identifier(bad).is_err(), "{bad:?} accepted");
        }
        for good in ["search", "fetchData", "my_tool_42", "$special", "_internal"] {
            assert!(check_identifier(good).is_ok(), "{good:?} rejected");
        }
        assert_eq!(
            check_identifier(&"a".repeat(65)),
            Err(IdentifierProblem::TooLong)
        );
        assert_eq!(
            check_binding_name("console"),
            Err(IdentifierProblem::ShadowsGlobal)
        );
        assert_eq!(
            check_binding_name("__code_mode_host"),
            Err(IdentifierProblem::ShadowsGlobal)
        );
    }

    #[test]
    fn property_keys() {
        assert!(is_plain_property_key("a_b$1"));
        assert!(!is_plain_property_key("a-b"));
        assert!(!is_plain_property_key("1a"));
        assert!(!is_plain_property_key(""));
    }
}
