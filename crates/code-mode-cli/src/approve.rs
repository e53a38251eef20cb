//! `code-mode run --approve ask|all|none`: who decides on calls that need approval
//! (tools named by `--require-approval`, or an MCP server's `requireApproval`).
//!
//! `ask` asks on the terminal, one question at a time: the function and its input on
//! standard error, then a line from standard input (or from `/dev/tty` when the program
//! itself came from standard input): `y` approves, `n` (optionally followed by a reason)
//! denies, `e {json}` approves with that input instead. End of input denies.

use std::io::{BufRead, BufReader, Write};
use std::sync::Arc;

use code_mode::{ApprovalDecision, ApprovalRequest, ApproveAll, Approver, DenyAll, async_trait};

/// The approver of `--approve MODE`; `program_on_stdin` says where answers are read from.
pub(crate) fn approver(mode: &str, program_on_stdin: bool) -> Arc<dyn Approver> {
    match mode {
        "all" => Arc::new(ApproveAll),
        "none" => Arc::new(DenyAll("denied by --approve none".into())),
        _ => Arc::new(TerminalApprover::new(program_on_stdin)),
    }
}

type Input = Box<dyn BufRead + Send>;

/// Asks on the terminal; answers are read one line per question.
///
/// Why a reader thread: reading a line blocks until the person types it, and nothing may
/// wait behind that. Lines are read on a thread of their own and handed over a channel; the
/// questions take turns on an async lock; standard error is locked only to write a line.
/// So events, other output and the result go on while a question is open, and a question
/// withdrawn (the program ended first) is said on the terminal without waiting for input.
struct TerminalApprover {
    /// Where answers come from, until the reader thread takes it (at the first question).
    source: std::sync::Mutex<Option<Input>>,
    /// Answer lines, one question at a time; `None` once input ended.
    lines: tokio::sync::Mutex<Option<tokio::sync::mpsc::UnboundedReceiver<String>>>,
}

impl TerminalApprover {
    fn new(program_on_stdin: bool) -> Self {
        let input: Option<Input> = if program_on_stdin {
            std::fs::File::open("/dev/tty")
                .ok()
                .map(|f| Box::new(BufReader::new(f)) as Input)
        } else {
            Some(Box::new(BufReader::new(std::io::stdin())))
        };
        Self {
            source: std::sync::Mutex::new(input),
            lines: tokio::sync::Mutex::new(None),
        }
    }

    /// Starts the reader thread (once): each line of input, until it ends.
    fn start_reading(&self) -> Option<tokio::sync::mpsc::UnboundedReceiver<String>> {
        let mut reader = self
            .source
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()?;
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let spawned = std::thread::Builder::new()
            .name("code-mode-approvals".into())
            .spawn(move || {
                loop {
                    let mut line = String::new();
                    match reader.read_line(&mut line) {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {
                            if tx.send(line).is_err() {
                                break;
                            }
                        }
                    }
                }
            });
        spawned.ok().map(|_| rx)
    }
}

/// Writes `text` on standard error, holding its lock only for that.
fn say(text: &str) {
    let mut stderr = std::io::stderr().lock();
    let _ = stderr.write_all(text.as_bytes());
    let _ = stderr.flush();
}

/// The decision an answer line stands for.
pub(crate) fn parse_answer(line: &str) -> Result<ApprovalDecision, String> {
    let line = line.trim();
    let (word, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
    match word.to_ascii_lowercase().as_str() {
        "y" | "yes" => Ok(ApprovalDecision::Approve),
        "n" | "no" => Ok(ApprovalDecision::Deny {
            reason: Some(if rest.trim().is_empty() {
                "denied at the terminal".to_owned()
            } else {
                rest.trim().to_owned()
            }),
        }),
        "e" | "edit" => serde_json::from_str(rest.trim())
            .map(ApprovalDecision::ApproveWithInput)
            .map_err(|e| format!("the edited input is not JSON: {e}")),
        _ => Err(format!(
            "expected y, n [reason] or e {{json}}, got {line:?}"
        )),
    }
}

#[async_trait]
impl Approver for TerminalApprover {
    async fn decide(&self, request: ApprovalRequest) -> ApprovalDecision {
        // One question at a time; a question dropped half-way (withdrawn) frees the turn.
        let mut lines = self.lines.lock().await;
        if lines.is_none() {
            *lines = self.start_reading();
        }
        let Some(rx) = lines.as_mut() else {
            return ApprovalDecision::deny("there is no terminal to ask on");
        };
        say(&format!(
            "code-mode: approve {} with {}?\n",
            request.function, request.input
        ));
        loop {
            say("code-mode: [y]es / [n]o [reason] / [e]dit {json} > ");
            let Some(line) = rx.recv().await else {
                say("\n");
                return ApprovalDecision::deny("no answer (end of input)");
            };
            match parse_answer(&line) {
                Ok(decision) => return decision,
                Err(problem) => say(&format!("code-mode: {problem}\n")),
            }
        }
    }

    fn withdrawn(&self, approval_id: &str) {
        say(&format!(
            "\ncode-mode: approval {approval_id} withdrawn (the program ended first); no answer is needed\n"
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn answers() {
        assert_eq!(parse_answer("y\n"), Ok(ApprovalDecision::Approve));
        assert_eq!(parse_answer(" YES "), Ok(ApprovalDecision::Approve));
        assert_eq!(
            parse_answer("n too expensive"),
            Ok(ApprovalDecision::deny("too expensive"))
        );
        assert_eq!(
            parse_answer("no"),
            Ok(ApprovalDecision::deny("denied at the terminal"))
        );
        assert_eq!(
            parse_answer("e {\"ms\": 1}"),
            Ok(ApprovalDecision::ApproveWithInput(json!({"ms": 1})))
        );
        assert!(parse_answer("e {").is_err());
        assert!(parse_answer("maybe").is_err());
    }
}
