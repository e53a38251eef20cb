//! `code-mode run --approve ask|all|none`: who decides on calls that need approval
//! (tools named by `--require-approval`, or an MCP server's `requireApproval`).
//!
//! `ask` asks on the terminal, one question at a time: the function and its input on
//! standard error, then a line from standard input (or from `/dev/tty` when the program
//! itself came from standard input): `y` approves, `n` (optionally followed by a reason)
//! denies, `e {json}` approves with that input instead. End of input denies.

use std::io::{BufRead, BufReader, Write};
use std::sync::{Arc, Mutex};

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
struct TerminalApprover {
    input: Arc<Mutex<Option<Input>>>,
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
            input: Arc::new(Mutex::new(input)),
        }
    }
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
        let input = self.input.clone();
        let asked = tokio::task::spawn_blocking(move || {
            // One question at a time: the lock is held from the question to its answer.
            let mut guard = input.lock().unwrap_or_else(|p| p.into_inner());
            let Some(reader) = guard.as_mut() else {
                return ApprovalDecision::deny("there is no terminal to ask on");
            };
            let mut stderr = std::io::stderr().lock();
            let _ = writeln!(
                stderr,
                "code-mode: approve {} with {}?",
                request.function, request.input
            );
            loop {
                let _ = write!(
                    stderr,
                    "code-mode: [y]es / [n]o [reason] / [e]dit {{json}} > "
                );
                let _ = stderr.flush();
                let mut line = String::new();
                match reader.read_line(&mut line) {
                    Ok(0) | Err(_) => {
                        let _ = writeln!(stderr);
                        *guard = None;
                        return ApprovalDecision::deny("no answer (end of input)");
                    }
                    Ok(_) => match parse_answer(&line) {
                        Ok(decision) => return decision,
                        Err(problem) => {
                            let _ = writeln!(stderr, "code-mode: {problem}");
                        }
                    },
                }
            }
        });
        asked
            .await
            .unwrap_or_else(|_| ApprovalDecision::deny("the terminal prompt failed"))
    }

    fn withdrawn(&self, approval_id: &str) {
        eprintln!("\ncode-mode: approval {approval_id} withdrawn (the program ended first)");
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
