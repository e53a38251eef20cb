//! The secret-parameter check: tool parameters that look like credentials.
//!
//! Why: a tool that asks the model for an API key invites the model to write the key into
//! its program, where it lands in the prompt history, the events and the logs. Credentials
//! belong in the host (the tool's handler reads them from its own configuration), so
//! [`CodeModeBuilder::build`](crate::CodeModeBuilder::build) reports such parameters once
//! per tool and parameter path, with a [`SecretParameterPolicy`] (TanStack's
//! `onSecretParameter`).
//!
//! What counts (names are split into words at case changes, digits, `_`, `-` and `.`):
//!
//! | parameter name | reported | why |
//! |---|---|---|
//! | `password`, `passwd`, `passphrase`, `pwd`, `dbPassword` | yes | a password |
//! | `secret`, `clientSecret`, `secret_key`, `webhookSecret` | yes | a secret |
//! | `apiKey`, `api_key`, `apikey`, `accessKey`, `privateKey`, `signingKey`, `encryptionKey` | yes | a key |
//! | `token`, `accessToken`, `authToken`, `refreshToken`, `bearerToken`, `githubToken` | yes | a token |
//! | `credentials`, `credential`, `authorization`, `bearer`, `cookie`, `sessionId` | yes | a credential |
//! | `tokenCount`, `maxTokens`, `tokens`, `tokenLimit`, `tokenizer` | no | token *counts* and tokenizers |
//! | `keyword`, `key`, `sortKey`, `primaryKey`, `keys` | no | ordinary keys |
//! | `secretary`, `passage`, `authorName`, `author` | no | other words |
//!
//! A description is reported when it names a credential: "API key", "access token",
//! "auth token", "bearer token", "refresh token", "password", "private key", "client
//! secret", "secret key", "credentials" (any case, whole words).
//!
//! Nested objects (`a.b`), array items (`a[]`), `$defs` reached through `$ref`, and
//! `anyOf`/`oneOf`/`allOf` branches are all searched.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;

use serde_json::Value;

use crate::tool::Tool;

pub use crate::error::SecretParameter;

/// What [`CodeModeBuilder::build`](crate::CodeModeBuilder::build) does with each
/// [`SecretParameter`].
#[derive(Clone, Default)]
pub enum SecretParameterPolicy {
    /// Log a warning (`tracing`, target `code_mode`), then build (the default).
    #[default]
    Warn,
    /// Refuse to build (`CodeModeError::SecretParameter`).
    Error,
    /// Say nothing.
    Ignore,
    /// Call this function with each one, then build.
    Callback(Arc<dyn Fn(&SecretParameter) + Send + Sync>),
}

impl fmt::Debug for SecretParameterPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Warn => "Warn",
            Self::Error => "Error",
            Self::Ignore => "Ignore",
            Self::Callback(_) => "Callback",
        })
    }
}

/// Every parameter of `tools` that looks like a credential, once per tool and path, in
/// schema order.
///
/// ```
/// use code_mode::{Tool, ToolError, find_secret_parameters};
/// use serde_json::json;
/// let tool = Tool::new("deploy", "Deploys.", json!({"type": "object", "properties": {
///     "auth": {"type": "object", "properties": {"apiKey": {"type": "string"}}},
///     "maxTokens": {"type": "integer"}
/// }}), |_, _| async { Ok::<_, ToolError>(json!(null)) }).unwrap();
/// let found = find_secret_parameters(&[tool]);
/// assert_eq!(found.len(), 1);
/// assert_eq!(found[0].path, "auth.apiKey");
/// ```
pub fn find_secret_parameters(tools: &[Tool]) -> Vec<SecretParameter> {
    let mut out = Vec::new();
    for tool in tools {
        let mut seen = BTreeSet::new();
        let mut walker = Walker {
            root: tool.input_schema(),
            tool: tool.name(),
            seen: &mut seen,
            out: &mut out,
            depth: 0,
            refs: Vec::new(),
        };
        walker.schema(tool.input_schema(), "");
    }
    out
}

struct Walker<'a> {
    root: &'a Value,
    tool: &'a str,
    seen: &'a mut BTreeSet<String>,
    out: &'a mut Vec<SecretParameter>,
    depth: usize,
    /// `$ref`s being followed (a recursive schema is walked once).
    refs: Vec<String>,
}

impl Walker<'_> {
    fn schema(&mut self, schema: &Value, path: &str) {
        if self.depth > 64 {
            return;
        }
        self.depth += 1;
        if let Some(r) = schema.get("$ref").and_then(Value::as_str)
            && !self.refs.iter().any(|x| x == r)
            && let Some(target) = resolve(self.root, r)
        {
            self.refs.push(r.to_owned());
            self.schema(target, path);
            self.refs.pop();
        }
        if let Some(props) = schema.get("properties").and_then(Value::as_object) {
            for (name, prop) in props {
                let child = if path.is_empty() {
                    name.clone()
                } else {
                    format!("{path}.{name}")
                };
                let description = prop.get("description").and_then(Value::as_str);
                if let Some(reason) =
                    name_reason(name).or_else(|| description.and_then(description_reason))
                {
                    self.report(&child, reason);
                }
                self.schema(prop, &child);
            }
        }
        if let Some(items) = schema.get("items") {
            let child = format!("{path}[]");
            match items {
                Value::Array(list) => list.iter().for_each(|s| self.schema(s, &child)),
                other => self.schema(other, &child),
            }
        }
        for key in ["anyOf", "oneOf", "allOf"] {
            if let Some(list) = schema.get(key).and_then(Value::as_array) {
                for s in list {
                    self.schema(s, path);
                }
            }
        }
        if let Some(extra) = schema.get("additionalProperties").filter(|v| v.is_object()) {
            self.schema(extra, &format!("{path}{{}}"));
        }
        self.depth -= 1;
    }

    fn report(&mut self, path: &str, reason: String) {
        if self.seen.insert(path.to_owned()) {
            self.out.push(SecretParameter {
                tool: self.tool.to_owned(),
                path: path.to_owned(),
                reason,
            });
        }
    }
}

fn resolve<'v>(root: &'v Value, reference: &str) -> Option<&'v Value> {
    let pointer = reference.strip_prefix('#')?;
    if pointer.is_empty() {
        return Some(root);
    }
    root.pointer(pointer)
}

/// Splits `apiKey2_value-x` into `["api", "key", "value", "x"]`.
fn words(name: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut current = String::new();
    let mut prev_lower = false;
    for c in name.chars() {
        if !c.is_alphanumeric() || c.is_ascii_digit() {
            if !current.is_empty() {
                out.push(std::mem::take(&mut current));
            }
            prev_lower = false;
            continue;
        }
        if c.is_uppercase() && prev_lower && !current.is_empty() {
            out.push(std::mem::take(&mut current));
        }
        prev_lower = c.is_lowercase();
        current.extend(c.to_lowercase());
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// Words saying a name counts or limits tokens rather than holding one.
const TOKEN_QUANTITY: &[&str] = &[
    "count",
    "counts",
    "limit",
    "limits",
    "max",
    "min",
    "number",
    "num",
    "usage",
    "budget",
    "length",
    "size",
    "total",
    "estimate",
    "per",
    "used",
    "remaining",
];
/// Words that make a following `key` a credential.
const KEY_KINDS: &[&str] = &[
    "api",
    "access",
    "private",
    "secret",
    "signing",
    "encryption",
    "license",
    "master",
    "service",
    "auth",
    "client",
];

fn name_reason(name: &str) -> Option<String> {
    let w = words(name);
    let has = |s: &str| w.iter().any(|x| x == s);
    for word in ["password", "passwd", "passphrase", "pwd"] {
        if has(word) {
            return Some("a password".into());
        }
    }
    if has("secret") || has("secrets") {
        return Some("a secret".into());
    }
    for compound in [
        "apikey",
        "accesskey",
        "privatekey",
        "secretkey",
        "apitoken",
        "accesstoken",
        "authtoken",
    ] {
        if has(compound) {
            return Some("a key or token".into());
        }
    }
    if w.windows(2)
        .any(|p| p[1] == "key" && KEY_KINDS.contains(&p[0].as_str()))
    {
        return Some("a key".into());
    }
    if has("token") && !w.iter().any(|x| TOKEN_QUANTITY.contains(&x.as_str())) {
        return Some("a token".into());
    }
    for word in [
        "credential",
        "credentials",
        "authorization",
        "bearer",
        "cookie",
    ] {
        if has(word) {
            return Some("a credential".into());
        }
    }
    if w.windows(2)
        .any(|p| p[0] == "session" && (p[1] == "id" || p[1] == "key"))
    {
        return Some("a session credential".into());
    }
    None
}

/// Phrases that, in a description, name a credential.
const DESCRIPTION_PHRASES: &[&[&str]] = &[
    &["api", "key"],
    &["access", "token"],
    &["auth", "token"],
    &["bearer", "token"],
    &["refresh", "token"],
    &["password"],
    &["private", "key"],
    &["client", "secret"],
    &["secret", "key"],
    &["credentials"],
];

fn description_reason(description: &str) -> Option<String> {
    let w: Vec<String> = description
        .split(|c: char| !c.is_alphanumeric())
        .filter(|s| !s.is_empty())
        .map(str::to_lowercase)
        .collect();
    DESCRIPTION_PHRASES.iter().find_map(|phrase| {
        w.windows(phrase.len())
            .any(|win| win.iter().zip(phrase.iter()).all(|(a, b)| a == b))
            .then(|| format!("its description mentions {:?}", phrase.join(" ")))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ToolError;
    use serde_json::json;

    fn tool(schema: Value) -> Tool {
        Tool::new("t", "A tool.", schema, |_, _| async {
            Ok::<_, ToolError>(Value::Null)
        })
        .unwrap_or_else(|e| panic!("{e}"))
    }

    fn paths(schema: Value) -> Vec<String> {
        find_secret_parameters(&[tool(schema)])
            .into_iter()
            .map(|s| s.path)
            .collect()
    }

    #[test]
    fn credential_names_are_reported() {
        for name in [
            "password",
            "passwd",
            "passphrase",
            "pwd",
            "dbPassword",
            "secret",
            "clientSecret",
            "secret_key",
            "webhookSecret",
            "apiKey",
            "api_key",
            "apikey",
            "API_KEY",
            "accessKey",
            "privateKey",
            "signingKey",
            "encryptionKey",
            "token",
            "accessToken",
            "authToken",
            "refreshToken",
            "bearerToken",
            "githubToken",
            "credentials",
            "credential",
            "authorization",
            "bearer",
            "cookie",
            "sessionId",
            "x-api-key",
        ] {
            assert!(name_reason(name).is_some(), "{name} was not reported");
        }
    }

    #[test]
    fn ordinary_names_are_not() {
        for name in [
            "tokenCount",
            "maxTokens",
            "tokens",
            "tokenLimit",
            "tokenizer",
            "max_tokens",
            "keyword",
            "key",
            "sortKey",
            "primaryKey",
            "keys",
            "secretary",
            "passage",
            "authorName",
            "author",
            "city",
            "query",
            "limit",
            "tokenUsage",
            "monkey",
        ] {
            assert_eq!(name_reason(name), None, "{name} was reported");
        }
    }

    #[test]
    fn nested_paths_arrays_refs_and_branches_are_searched() {
        let found = paths(json!({
            "type": "object",
            "$defs": {"Auth": {"type": "object", "properties": {"password": {"type": "string"}}}},
            "properties": {
                "config": {"type": "object", "properties": {"auth": {"$ref": "#/$defs/Auth"}}},
                "headers": {"type": "array", "items": {"type": "object", "properties": {
                    "name": {"type": "string"}, "bearerToken": {"type": "string"}
                }}},
                "target": {"anyOf": [
                    {"type": "object", "properties": {"apiKey": {"type": "string"}}},
                    {"type": "string"}
                ]},
                "env": {"type": "object", "additionalProperties": {"type": "object", "properties": {"secret": {"type": "string"}}}},
                "maxTokens": {"type": "integer"},
                "key": {"type": "string", "description": "Your API key for the service."}
            }
        }));
        assert_eq!(
            found,
            [
                "config.auth.password",
                "headers[].bearerToken",
                "target.apiKey",
                "env{}.secret",
                "key",
            ]
        );
    }

    #[test]
    fn each_path_is_reported_once_and_recursion_ends() {
        let found = paths(json!({
            "type": "object",
            "$defs": {"Node": {"type": "object", "properties": {
                "token": {"type": "string"},
                "child": {"$ref": "#/$defs/Node"}
            }}},
            "properties": {
                "root": {"$ref": "#/$defs/Node"},
                "both": {"allOf": [
                    {"type": "object", "properties": {"password": {"type": "string"}}},
                    {"type": "object", "properties": {"password": {"type": "string", "description": "The password."}}}
                ]}
            }
        }));
        // A recursive definition is walked once: `root.child` is `root` again.
        assert_eq!(found, ["root.token", "both.password"]);
    }

    #[test]
    fn descriptions_are_read() {
        assert!(description_reason("The GitHub access token to use.").is_some());
        assert!(description_reason("Credentials for the database").is_some());
        assert_eq!(
            description_reason("How many tokens the answer may use."),
            None
        );
        assert_eq!(description_reason("A keyword to search for."), None);
    }
}
