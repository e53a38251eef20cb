//! Upstream tool names made into sandbox identifiers: `external_<server>_<tool>`.
//!
//! Why a fixed character mapping and not a "nice" one (camelCase, collapsing separators):
//! the model reads the name back from the stubs, and a user reading a trace must be able to
//! tell which upstream tool ran. Each character outside `[A-Za-z0-9_$]` becomes `_`, one for
//! one, so `get-sum` is `get_sum`; a name that would start with a digit gets a leading `_`;
//! a name longer than the core's limit keeps its first characters and ends with a hash of
//! the whole name. Two tools that map to the same identifier are an error naming both.

use std::collections::BTreeMap;

use code_mode::identifier::MAX_NAME_LEN;

/// Why two upstream tools cannot both be offered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the MCP tools {first} and {second} both become external_{identifier} in the sandbox; rename one server in the configuration"
)]
pub struct NameCollision {
    /// `server/tool` of the first.
    pub first: String,
    /// `server/tool` of the second.
    pub second: String,
    /// The identifier they share (without `external_`).
    pub identifier: String,
}

fn map_chars(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '$' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// FNV-1a, 32 bits: stable across releases and platforms (unlike `DefaultHasher`).
fn fnv1a(s: &str) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in s.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// The code-mode tool name (the sandbox function is `external_` + this) of `tool` on
/// `server`.
///
/// ```
/// use code_mode_mcp::tool_identifier;
/// assert_eq!(tool_identifier("everything", "get-sum"), "everything_get_sum");
/// assert_eq!(tool_identifier("1password", "read item"), "_1password_read_item");
/// let long = tool_identifier("server", &"x".repeat(200));
/// assert!(long.len() <= 64 && long.starts_with("server_xxx"));
/// assert_eq!(long, tool_identifier("server", &"x".repeat(200)));
/// ```
pub fn tool_identifier(server: &str, tool: &str) -> String {
    let mut id = format!("{}_{}", map_chars(server), map_chars(tool));
    if id.starts_with(|c: char| c.is_ascii_digit()) {
        id.insert(0, '_');
    }
    if id.len() > MAX_NAME_LEN {
        let hash = format!("_{:08x}", fnv1a(&format!("{server}\u{0}{tool}")));
        id.truncate(MAX_NAME_LEN - hash.len());
        id.push_str(&hash);
    }
    id
}

/// Assigns identifiers to `(server, tool)` pairs, refusing collisions.
#[derive(Default)]
pub(crate) struct Names {
    taken: BTreeMap<String, String>,
}

impl Names {
    pub(crate) fn assign(&mut self, server: &str, tool: &str) -> Result<String, NameCollision> {
        let id = tool_identifier(server, tool);
        let who = format!("{server}/{tool}");
        if let Some(first) = self.taken.get(&id) {
            return Err(NameCollision {
                first: first.clone(),
                second: who,
                identifier: id,
            });
        }
        self.taken.insert(id.clone(), who);
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_valid_and_collisions_name_both_tools() {
        for (server, tool) in [
            ("everything", "get-sum"),
            ("a.b", "ünïcode"),
            ("9", "0"),
            ("s", &"long-name-".repeat(20)),
            ("s", "$weird$"),
        ] {
            let id = tool_identifier(server, tool);
            assert!(
                code_mode::identifier::check_identifier(&id).is_ok(),
                "{server}/{tool} -> {id}"
            );
        }
        let mut names = Names::default();
        assert_eq!(names.assign("e", "get-sum"), Ok("e_get_sum".to_owned()));
        let e = names
            .assign("e", "get_sum")
            .err()
            .unwrap_or_else(|| panic!("no collision"));
        let text = e.to_string();
        assert!(
            text.contains("e/get-sum")
                && text.contains("e/get_sum")
                && text.contains("external_e_get_sum"),
            "{text}"
        );
    }
}
