//! The `mcpServers` file users already keep for their desktop and IDE MCP clients.
//!
//! ```json
//! {"mcpServers": {
//!   "files": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-filesystem", "."],
//!             "env": {"TOKEN": "${FILES_TOKEN}"}, "cwd": "/srv"},
//!   "search": {"url": "https://mcp.example.com/mcp", "headers": {"Authorization": "Bearer ${SEARCH_KEY}"}}
//! }}
//! ```
//!
//! Why parsed by hand over `serde_json::Value` rather than derived: every mistake must name
//! the file, the server and the field, and keys other clients add (`disabled`, `autoApprove`,
//! `timeout`, …) must not make a file that works elsewhere unusable here. `${VAR}` (and
//! `${VAR:-default}`) in `env` and `headers` is taken from this process's environment when
//! the file is read; the values stay in the host (they reach the upstream process or HTTP
//! request only, never the sandbox, the prompt or the events).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// How to reach one upstream MCP server.
#[derive(Clone, PartialEq, Eq)]
pub enum Transport {
    /// A child process speaking MCP over its stdin/stdout.
    Stdio {
        /// The program.
        command: String,
        /// Its arguments.
        args: Vec<String>,
        /// Extra environment (after `${VAR}` expansion). The child gets only these and a few
        /// harmless variables of this process (see [`crate::INHERITED_ENV`]).
        env: BTreeMap<String, String>,
        /// Working directory.
        cwd: Option<PathBuf>,
    },
    /// A Streamable HTTP endpoint.
    Http {
        /// `http(s)://…`.
        url: String,
        /// Request headers (after `${VAR}` expansion), e.g. `Authorization`.
        headers: BTreeMap<String, String>,
    },
}

impl std::fmt::Debug for Transport {
    /// Names of environment variables and headers only: their values may be credentials.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Stdio {
                command,
                args,
                env,
                cwd,
            } => f
                .debug_struct("Stdio")
                .field("command", command)
                .field("args", args)
                .field("env", &env.keys().collect::<Vec<_>>())
                .field("cwd", cwd)
                .finish(),
            Self::Http { url, headers } => f
                .debug_struct("Http")
                .field("url", url)
                .field("headers", &headers.keys().collect::<Vec<_>>())
                .finish(),
        }
    }
}

/// Which of a server's tools need a person's approval before a program's call runs
/// (`requireApproval` in the server's entry; see `code_mode`'s `approval` module).
///
/// - absent or `false`: none;
/// - `true`: every tool;
/// - `"destructive"`: tools the server's annotations call destructive: not `readOnlyHint`,
///   and `destructiveHint` true *or absent* (the MCP specification's default). Annotations
///   are the server's own claims: they can only add approvals here, never remove one;
/// - an array of tool names as the server lists them (`"destructive"` may be one entry).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequireApproval {
    /// Every tool.
    pub all: bool,
    /// Tools the annotations call destructive.
    pub destructive: bool,
    /// Tools by their upstream name.
    pub tools: Vec<String>,
}

impl RequireApproval {
    /// Whether calls of the tool listed as `tool` (its `tools/list` entry) need approval.
    ///
    /// ```
    /// use code_mode_mcp::RequireApproval;
    /// use serde_json::json;
    /// let rule = RequireApproval { destructive: true, ..Default::default() };
    /// assert!(rule.covers(&json!({"name": "rm"})));
    /// assert!(!rule.covers(&json!({"name": "ls", "annotations": {"readOnlyHint": true}})));
    /// assert!(!rule.covers(&json!({"name": "add", "annotations": {"destructiveHint": false}})));
    /// ```
    pub fn covers(&self, tool: &Value) -> bool {
        let name = tool.get("name").and_then(Value::as_str).unwrap_or_default();
        if self.all || self.tools.iter().any(|t| t == name) {
            return true;
        }
        if !self.destructive {
            return false;
        }
        let hint = |key: &str| {
            tool.get("annotations")
                .and_then(|a| a.get(key))
                .and_then(Value::as_bool)
        };
        hint("readOnlyHint") != Some(true) && hint("destructiveHint") != Some(false)
    }
}

/// One entry of `mcpServers`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// Its key in `mcpServers`; the prefix of its tools' names in the sandbox.
    pub name: String,
    /// How to reach it.
    pub transport: Transport,
    /// Which of its tools need approval.
    pub require_approval: RequireApproval,
}

/// A parsed `mcpServers` file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct McpConfig {
    /// Enabled servers, in file order.
    pub servers: Vec<ServerConfig>,
    /// Where it was read from, if from a file.
    pub source: Option<PathBuf>,
}

/// What is wrong with a configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read the MCP configuration {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Not JSON.
    #[error("{origin} is not valid JSON: {source}")]
    Json {
        /// The file (or "the MCP configuration").
        origin: String,
        /// Where and why.
        source: serde_json::Error,
    },
    /// A field is missing or has the wrong type.
    #[error("{origin}: {field}: {message}")]
    Field {
        /// The file (or "the MCP configuration").
        origin: String,
        /// JSON path of the field, e.g. `mcpServers.files.args[2]`.
        field: String,
        /// What is expected.
        message: String,
    },
    /// A `${VAR}` names a variable that is not set (and has no `:-default`).
    #[error(
        "{origin}: {field} uses ${{{var}}}, which is not set in the environment (set it, or write ${{{var}:-default}})"
    )]
    MissingVariable {
        /// The file (or "the MCP configuration").
        origin: String,
        /// JSON path of the field.
        field: String,
        /// The variable.
        var: String,
    },
}

impl McpConfig {
    /// Reads and parses a file, expanding `${VAR}` from this process's environment.
    ///
    /// ```
    /// let dir = std::env::temp_dir().join(format!("code-mode-mcp-doc-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir).unwrap();
    /// let file = dir.join("mcp.json");
    /// std::fs::write(&file, r#"{"mcpServers": {"x": {"command": 3}}}"#).unwrap();
    /// let e = code_mode_mcp::McpConfig::load(&file).unwrap_err().to_string();
    /// assert!(e.contains("mcp.json") && e.contains("mcpServers.x.command"), "{e}");
    /// ```
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut config = Self::parse_with(&text, &path.display().to_string(), &|k| {
            std::env::var(k).ok()
        })?;
        config.source = Some(path.to_path_buf());
        Ok(config)
    }

    /// Parses configuration text, expanding `${VAR}` from this process's environment.
    ///
    /// ```
    /// use code_mode_mcp::{McpConfig, Transport};
    /// let c = McpConfig::parse(r#"{"mcpServers": {
    ///     "everything": {"command": "node", "args": ["server.js"]},
    ///     "remote": {"url": "http://127.0.0.1:3001/mcp", "headers": {"X-Team": "${NO_SUCH_VAR_X:-blue}"}},
    ///     "off": {"command": "x", "disabled": true}
    /// }}"#).unwrap();
    /// assert_eq!(c.servers.len(), 2);
    /// assert!(matches!(&c.servers[1].transport, Transport::Http { headers, .. } if headers["X-Team"] == "blue"));
    /// assert!(McpConfig::parse(r#"{"mcpServers": {"bad": {"args": []}}}"#).is_err());
    /// ```
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        Self::parse_with(text, "the MCP configuration", &|k| std::env::var(k).ok())
    }

    /// Parses with `lookup` as the environment.
    pub fn parse_with(
        text: &str,
        origin: &str,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let root: Value = serde_json::from_str(text).map_err(|source| ConfigError::Json {
            origin: origin.to_owned(),
            source,
        })?;
        let field = |field: &str, message: &str| field_error(origin, field, message);
        let Some(root) = root.as_object() else {
            return Err(field("(top level)", "expected an object with `mcpServers`"));
        };
        let servers = match root.get("mcpServers") {
            None => {
                return Err(field(
                    "mcpServers",
                    "missing (the file must have an `mcpServers` object)",
                ));
            }
            Some(Value::Object(m)) => m,
            Some(_) => return Err(field("mcpServers", "expected an object of servers by name")),
        };
        let mut out = Vec::new();
        for (name, entry) in servers {
            if name.trim().is_empty() {
                return Err(field("mcpServers", "a server has an empty name"));
            }
            let Some(entry) = entry.as_object() else {
                return Err(field(&format!("mcpServers.{name}"), "expected an object"));
            };
            if entry.get("disabled").and_then(Value::as_bool) == Some(true) {
                continue;
            }
            let entry = Entry {
                origin,
                name,
                entry,
                lookup,
            };
            out.push(ServerConfig {
                name: name.clone(),
                transport: entry.transport()?,
                require_approval: entry.require_approval()?,
            });
        }
        Ok(Self {
            servers: out,
            source: None,
        })
    }
}

fn field_error(origin: &str, field: &str, message: &str) -> ConfigError {
    ConfigError::Field {
        origin: origin.to_owned(),
        field: field.to_owned(),
        message: message.to_owned(),
    }
}

/// One server's entry of `mcpServers`, read field by field; every error names the field
/// (`mcpServers.NAME.FIELD`).
struct Entry<'a> {
    origin: &'a str,
    name: &'a str,
    entry: &'a serde_json::Map<String, Value>,
    lookup: &'a dyn Fn(&str) -> Option<String>,
}

impl Entry<'_> {
    fn at(&self, field: &str) -> String {
        format!("mcpServers.{}.{field}", self.name)
    }

    fn field(&self, field: &str, message: &str) -> ConfigError {
        field_error(self.origin, field, message)
    }

    /// An optional string field.
    fn string(&self, key: &str) -> Result<Option<String>, ConfigError> {
        match self.entry.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(self.field(&self.at(key), "expected a string")),
        }
    }

    /// An optional object of strings, `${VAR}` expanded from the environment.
    fn map(&self, key: &str) -> Result<BTreeMap<String, String>, ConfigError> {
        let mut out = BTreeMap::new();
        match self.entry.get(key) {
            None | Some(Value::Null) => {}
            Some(Value::Object(m)) => {
                for (k, v) in m {
                    let Some(v) = v.as_str() else {
                        return Err(
                            self.field(&format!("{}.{k}", self.at(key)), "expected a string")
                        );
                    };
                    let value = expand(v, &|var| (self.lookup)(var)).map_err(|var| {
                        ConfigError::MissingVariable {
                            origin: self.origin.to_owned(),
                            field: format!("{}.{k}", self.at(key)),
                            var,
                        }
                    })?;
                    out.insert(k.clone(), value);
                }
            }
            Some(_) => return Err(self.field(&self.at(key), "expected an object of strings")),
        }
        Ok(out)
    }

    /// How the server is reached: `command` (stdio) or `url` (Streamable HTTP).
    fn transport(&self) -> Result<Transport, ConfigError> {
        let kind = self.string("type")?.or(self.string("transport")?);
        let whole = format!("mcpServers.{}", self.name);
        match (kind.as_deref(), self.string("command")?, self.string("url")?) {
            (Some("sse"), _, _) => Err(self.field(
                &self.at("type"),
                "the SSE transport (deprecated by the MCP specification) is not supported; use the server's Streamable HTTP endpoint (`\"type\": \"http\"`)",
            )),
            (Some(k), _, _)
                if !matches!(k, "stdio" | "http" | "streamable-http" | "streamableHttp") =>
            {
                Err(self.field(
                    &self.at("type"),
                    &format!("unknown transport {k:?}; expected \"stdio\" or \"http\""),
                ))
            }
            (_, Some(_), Some(_)) => Err(self.field(&whole, "has both `command` and `url`; keep one")),
            (_, Some(command), None) => self.stdio(command),
            (_, None, Some(url)) => self.http(url),
            (_, None, None) => Err(self.field(
                &whole,
                "needs `command` (a program speaking MCP on stdio) or `url` (a Streamable HTTP endpoint)",
            )),
        }
    }

    fn stdio(&self, command: String) -> Result<Transport, ConfigError> {
        if command.trim().is_empty() {
            return Err(self.field(&self.at("command"), "is empty"));
        }
        let args = match self.entry.get("args") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(a)) => a
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    v.as_str().map(str::to_owned).ok_or_else(|| {
                        self.field(&format!("{}[{i}]", self.at("args")), "expected a string")
                    })
                })
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(self.field(&self.at("args"), "expected an array of strings")),
        };
        Ok(Transport::Stdio {
            command,
            args,
            env: self.map("env")?,
            cwd: self.string("cwd")?.map(PathBuf::from),
        })
    }

    fn http(&self, url: String) -> Result<Transport, ConfigError> {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(self.field(&self.at("url"), "must start with http:// or https://"));
        }
        let headers = self.map("headers")?;
        for (k, v) in &headers {
            let at = format!("{}.{k}", self.at("headers"));
            if http::HeaderName::from_bytes(k.as_bytes()).is_err() {
                return Err(self.field(&at, "is not a valid header name"));
            }
            if http::HeaderValue::from_str(v).is_err() {
                return Err(self.field(&at, "is not a valid header value"));
            }
        }
        Ok(Transport::Http { url, headers })
    }

    /// `requireApproval`: `true`, `false`, `"destructive"` or a list of tool names.
    fn require_approval(&self) -> Result<RequireApproval, ConfigError> {
        Ok(match self.entry.get("requireApproval") {
            None | Some(Value::Null) | Some(Value::Bool(false)) => RequireApproval::default(),
            Some(Value::Bool(true)) => RequireApproval {
                all: true,
                ..RequireApproval::default()
            },
            Some(Value::String(s)) if s == "destructive" => RequireApproval {
                destructive: true,
                ..RequireApproval::default()
            },
            Some(Value::Array(list)) => {
                let mut rule = RequireApproval::default();
                for (i, v) in list.iter().enumerate() {
                    match v.as_str() {
                        Some("destructive") => rule.destructive = true,
                        Some(t) if !t.is_empty() => rule.tools.push(t.to_owned()),
                        _ => {
                            return Err(self.field(
                                &format!("{}[{i}]", self.at("requireApproval")),
                                "expected a tool name (or \"destructive\")",
                            ));
                        }
                    }
                }
                rule
            }
            Some(_) => {
                return Err(self.field(
                    &self.at("requireApproval"),
                    "expected true, false, \"destructive\" or an array of tool names",
                ));
            }
        })
    }
}

/// Expands `${VAR}` and `${VAR:-default}`; `$` not followed by `{` is kept. Returns the
/// name of an unset variable without a default.
fn expand(text: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[start..]);
            return Ok(out);
        };
        let inner = &after[..end];
        let (var, default) = match inner.split_once(":-") {
            Some((v, d)) => (v, Some(d)),
            None => (inner, None),
        };
        match lookup(var).filter(|v| !v.is_empty() || default.is_none()) {
            Some(v) => out.push_str(&v),
            None => match default {
                Some(d) => out.push_str(d),
                None => return Err(var.to_owned()),
            },
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<McpConfig, ConfigError> {
        McpConfig::parse_with(text, "mcp.json", &|k| match k {
            "TOKEN" => Some("s3cret".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        })
    }

    #[test]
    fn reads_both_transports_and_expands_variables() {
        let c = parse(
            r#"{"globalShortcut": "x", "mcpServers": {
                "a": {"command": "node", "args": ["s.js", "--flag"], "env": {"T": "Bearer ${TOKEN}", "D": "${NOPE:-d}", "E": "${EMPTY:-fallback}"}, "cwd": "/tmp", "autoApprove": []},
                "b": {"type": "http", "url": "https://h/mcp", "headers": {"Authorization": "Bearer ${TOKEN}"}}
            }}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.servers[0].name, "a");
        let Transport::Stdio { env, args, cwd, .. } = &c.servers[0].transport else {
            panic!("{:?}", c.servers[0]);
        };
        assert_eq!(env["T"], "Bearer s3cret");
        assert_eq!(env["D"], "d");
        assert_eq!(env["E"], "fallback");
        assert_eq!(args, &["s.js", "--flag"]);
        assert_eq!(cwd.as_deref(), Some(Path::new("/tmp")));
        let Transport::Http { headers, .. } = &c.servers[1].transport else {
            panic!("{:?}", c.servers[1]);
        };
        assert_eq!(headers["Authorization"], "Bearer s3cret");
        // Debug output never shows a value.
        assert!(!format!("{c:?}").contains("s3cret"));
    }

    #[test]
    fn every_mistake_names_the_file_and_the_field() {
        for (text, needle) in [
            ("[", "not valid JSON"),
            ("[]", "(top level)"),
            ("{}", "mcpServers: missing"),
            (r#"{"mcpServers": []}"#, "mcpServers: expected an object"),
            (
                r#"{"mcpServers": {"a": 1}}"#,
                "mcpServers.a: expected an object",
            ),
            (
                r#"{"mcpServers": {"a": {}}}"#,
                "mcpServers.a: needs `command`",
            ),
            (
                r#"{"mcpServers": {"a": {"command": ""}}}"#,
                "mcpServers.a.command: is empty",
            ),
            (
                r#"{"mcpServers": {"a": {"command": "x", "args": [1]}}}"#,
                "mcpServers.a.args[0]",
            ),
            (
                r#"{"mcpServers": {"a": {"command": "x", "args": "y"}}}"#,
                "mcpServers.a.args: expected an array",
            ),
            (
                r#"{"mcpServers": {"a": {"command": "x", "env": {"K": 1}}}}"#,
                "mcpServers.a.env.K",
            ),
            (
                r#"{"mcpServers": {"a": {"command": "x", "env": {"K": "${MISSING}"}}}}"#,
                "${MISSING}",
            ),
            (
                r#"{"mcpServers": {"a": {"url": "ftp://x"}}}"#,
                "mcpServers.a.url",
            ),
            (
                r#"{"mcpServers": {"a": {"url": "http://x", "headers": {"Bad Name": "v"}}}}"#,
                "not a valid header name",
            ),
            (
                r#"{"mcpServers": {"a": {"url": "http://x", "headers": {"K": "a\nb"}}}}"#,
                "not a valid header value",
            ),
            (
                r#"{"mcpServers": {"a": {"url": "http://x", "type": "sse"}}}"#,
                "SSE transport",
            ),
            (
                r#"{"mcpServers": {"a": {"url": "http://x", "type": "grpc"}}}"#,
                "unknown transport",
            ),
            (
                r#"{"mcpServers": {"a": {"url": "http://x", "command": "y"}}}"#,
                "both `command` and `url`",
            ),
            (r#"{"mcpServers": {"": {"command": "y"}}}"#, "empty name"),
            (
                r#"{"mcpServers": {"a": {"command": "x", "requireApproval": "yes"}}}"#,
                "mcpServers.a.requireApproval: expected true, false",
            ),
            (
                r#"{"mcpServers": {"a": {"command": "x", "requireApproval": ["ok", 3]}}}"#,
                "mcpServers.a.requireApproval[1]",
            ),
        ] {
            let e = parse(text)
                .err()
                .unwrap_or_else(|| panic!("accepted {text}"))
                .to_string();
            assert!(e.contains("mcp.json"), "{text}: {e}");
            assert!(e.contains(needle), "{text}: {e}");
        }
    }

    #[test]
    fn require_approval_forms() {
        let c = parse(
            r#"{"mcpServers": {
                "none": {"command": "x"},
                "all": {"command": "x", "requireApproval": true},
                "hint": {"command": "x", "requireApproval": "destructive"},
                "list": {"command": "x", "requireApproval": ["send_email", "destructive"]}
            }}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let rule = |name: &str| {
            c.servers
                .iter()
                .find(|s| s.name == name)
                .map(|s| s.require_approval.clone())
                .unwrap_or_default()
        };
        let send =
            serde_json::json!({"name": "send_email", "annotations": {"destructiveHint": false}});
        let read = serde_json::json!({"name": "read", "annotations": {"readOnlyHint": true}});
        let bare = serde_json::json!({"name": "rm"});
        assert!(!rule("none").covers(&send) && !rule("none").covers(&bare));
        assert!(rule("all").covers(&read));
        assert!(
            rule("hint").covers(&bare)
                && !rule("hint").covers(&read)
                && !rule("hint").covers(&send)
        );
        assert!(
            rule("list").covers(&send) && rule("list").covers(&bare) && !rule("list").covers(&read)
        );
    }

    #[test]
    fn expansion_keeps_plain_dollars() {
        let lookup = |k: &str| (k == "A").then(|| "1".to_owned());
        assert_eq!(expand("$A ${A} $${A} ${", &lookup), Ok("$A 1 $1 ${".into()));
        assert_eq!(expand("${B}", &lookup), Err("B".into()));
    }
}
