//! The stdio transport to an upstream server, with every message it sends checked for depth
//! before rmcp parses it.
//!
//! Why: rmcp parses each line with serde_json, whose recursion limit refuses a message
//! nested past 128 levels; rmcp then drops the line, and the call it answered waits for the
//! execution's timeout. A tool output 300 levels deep must end like one 100 levels deep: as
//! the program's nesting error, at once. So the server's stdout passes through a task that
//! measures each line without recursing ([`json_text_depth`]); a line deeper than
//! [`MAX_MESSAGE_DEPTH`] that answers a request becomes a JSON-RPC error answering the same
//! request, any other such line is dropped (and logged). Shallower lines pass unchanged, and
//! values between the sandbox's limit and this one are refused by the bindings as usual.
//!
//! The child is killed when the transport is dropped (`kill_on_drop`), and `close` ends its
//! stdin, gives it [`EXIT_GRACE`] to exit, then kills it, as rmcp's own child transport does.

use std::time::Duration;

use code_mode::driver::{json_text_depth, too_deep_message};
use rmcp::service::{RoleClient, RxJsonRpcMessage, TxJsonRpcMessage};
use rmcp::transport::Transport;
use rmcp::transport::async_rw::AsyncRwTransport;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, DuplexStream};
use tokio::process::{Child, ChildStdin, ChildStdout};

/// The deepest message passed to rmcp: below serde_json's recursion limit (128), with room
/// for the JSON-RPC envelope above the sandbox's value limit (64).
pub(crate) const MAX_MESSAGE_DEPTH: usize = 120;

/// How long a server whose stdin was closed has to exit before it is killed.
pub(crate) const EXIT_GRACE: Duration = Duration::from_secs(2);

/// Size of the pipe between the checking task and rmcp.
const PIPE_BYTES: usize = 64 * 1024;

/// An upstream server process as an rmcp client transport.
pub(crate) struct StdioServer {
    child: Child,
    transport: AsyncRwTransport<RoleClient, DuplexStream, ChildStdin>,
}

impl StdioServer {
    /// Wraps a child spawned with piped stdin and stdout (and `kill_on_drop`).
    pub(crate) fn new(mut child: Child) -> std::io::Result<Self> {
        let (Some(stdout), Some(stdin)) = (child.stdout.take(), child.stdin.take()) else {
            return Err(std::io::Error::other(
                "the server's stdin and stdout must be piped",
            ));
        };
        let (checked, rmcp_side) = tokio::io::duplex(PIPE_BYTES);
        tokio::spawn(check_lines(stdout, checked));
        Ok(Self {
            child,
            transport: AsyncRwTransport::new_client(rmcp_side, stdin),
        })
    }
}

impl Transport<RoleClient> for StdioServer {
    type Error = std::io::Error;

    fn send(
        &mut self,
        item: TxJsonRpcMessage<RoleClient>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        self.transport.send(item)
    }

    fn receive(&mut self) -> impl Future<Output = Option<RxJsonRpcMessage<RoleClient>>> + Send {
        self.transport.receive()
    }

    async fn close(&mut self) -> Result<(), Self::Error> {
        let closed = self.transport.close().await;
        if tokio::time::timeout(EXIT_GRACE, self.child.wait())
            .await
            .is_err()
        {
            self.child.kill().await?;
        }
        closed
    }
}

/// Copies the server's lines to rmcp, replacing those too deep to parse.
async fn check_lines(stdout: ChildStdout, mut out: DuplexStream) {
    let mut reader = BufReader::new(stdout);
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let written = match checked_line(&line) {
            Checked::Pass => out.write_all(&line).await,
            Checked::Replace(text) => out.write_all(text.as_bytes()).await,
            Checked::Drop => Ok(()),
        };
        if written.is_err() {
            break;
        }
    }
    let _ = out.shutdown().await;
}

/// What becomes of one line from the server.
#[derive(Debug, PartialEq)]
pub(crate) enum Checked {
    Pass,
    /// A JSON-RPC error (with its newline) answering the request the line answered.
    Replace(String),
    Drop,
}

/// Checks one message (a line on stdio, an event's data on HTTP) from an upstream server.
pub(crate) fn checked_line(line: &[u8]) -> Checked {
    let text = String::from_utf8_lossy(line);
    let depth = json_text_depth(&text);
    if depth <= MAX_MESSAGE_DEPTH {
        return Checked::Pass;
    }
    let top = serde_json::from_str::<Value>(&flatten(&text, 1)).ok();
    let answers = top
        .as_ref()
        .filter(|m| m.get("method").is_none())
        .and_then(|m| m.get("id"))
        .filter(|id| id.is_string() || id.is_number());
    match answers {
        Some(id) => {
            let message = too_deep_message("The MCP server's answer", depth);
            let error =
                json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32603, "message": message}});
            Checked::Replace(format!("{error}\n"))
        }
        None => {
            tracing::warn!(
                depth,
                "an upstream MCP server sent a message nested too deep to read; it was dropped"
            );
            Checked::Drop
        }
    }
}

/// `text` (JSON) with every array or object nested deeper than `keep` levels replaced by
/// `null`, without recursing: what is left parses with any parser, and keeps the members a
/// message is routed by. Text that is not JSON stays not JSON.
fn flatten(text: &str, keep: usize) -> String {
    let mut out = String::with_capacity(text.len().min(4096));
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for c in text.chars() {
        let shown = depth <= keep;
        if in_string {
            if shown {
                out.push(c);
            }
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
            continue;
        }
        match c {
            '"' => {
                in_string = true;
                if shown {
                    out.push(c);
                }
            }
            '[' | '{' => {
                depth += 1;
                if depth == keep + 1 {
                    out.push_str("null");
                } else if depth <= keep {
                    out.push(c);
                }
            }
            ']' | '}' => {
                if depth <= keep {
                    out.push(c);
                }
                depth = depth.saturating_sub(1);
            }
            _ if shown => out.push(c),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(levels: usize) -> String {
        format!("{}1{}", "[".repeat(levels), "]".repeat(levels))
    }

    #[test]
    fn flatten_keeps_the_top_members_of_any_message() {
        for (text, want) in [
            (
                r#"{"id":7,"result":{"a":[1]}}"#,
                json!({"id": 7, "result": null}),
            ),
            (
                r#"{"id":"x]{","result":[{"b":"}"}]}"#,
                json!({"id": "x]{", "result": null}),
            ),
            (r#"{"id":1,"s":"a\"[b"}"#, json!({"id": 1, "s": "a\"[b"})),
            (r#"[1,[2]]"#, json!([1, null])),
        ] {
            let flat = flatten(text, 1);
            assert_eq!(
                serde_json::from_str::<Value>(&flat).ok(),
                Some(want),
                "{text} -> {flat}"
            );
        }
    }

    #[test]
    fn deep_answers_become_errors_for_their_request() {
        for levels in [MAX_MESSAGE_DEPTH - 3, MAX_MESSAGE_DEPTH - 2, 300, 100_000] {
            for id in [json!(3), json!("req-3")] {
                let line = format!(
                    r#"{{"jsonrpc":"2.0","id":{id},"result":{{"structuredContent":{}}}}}"#,
                    nested(levels)
                );
                let got = checked_line(line.as_bytes());
                if levels + 2 <= MAX_MESSAGE_DEPTH {
                    assert_eq!(got, Checked::Pass, "{levels}");
                    continue;
                }
                let Checked::Replace(text) = got else {
                    panic!("{levels}: {got:?}");
                };
                let reply: Value = serde_json::from_str(&text).unwrap_or_default();
                assert_eq!(reply["id"], id);
                let message = reply["error"]["message"].as_str().unwrap_or_default();
                assert!(
                    message.contains(&format!("nests {} levels", levels + 2)),
                    "{message}"
                );
            }
        }
    }

    #[test]
    fn deep_requests_and_notifications_are_dropped() {
        let deep = nested(500);
        for line in [
            format!(r#"{{"jsonrpc":"2.0","method":"notifications/message","params":{deep}}}"#),
            format!(
                r#"{{"jsonrpc":"2.0","id":1,"method":"sampling/createMessage","params":{deep}}}"#
            ),
            format!("not json {deep}"),
        ] {
            assert_eq!(checked_line(line.as_bytes()), Checked::Drop, "{line}");
        }
    }
}
