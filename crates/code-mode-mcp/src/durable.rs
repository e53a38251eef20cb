//! Approvals over MCP's multi round-trip requests (SEP-2322, protocol 2026-07-28 and newer)
//! with durable pauses (feature `durable`).
//!
//! From protocol 2026-07-28 a server may not send the client requests in the middle of a
//! call, so an approval cannot be an `elicitation/create` while the program waits. Instead
//! `tools/call` answers `input_required`: one elicitation form per call waiting for
//! approval (keyed `approve-<call id>`), and a `requestState` that is the sealed execution
//! itself (see `code_mode::durable`), in base64. The program's sandbox is released; the
//! server keeps nothing. The client asks its user and calls again with the answers and the
//! state, on any connection and any server process with the same tools and vault key: the
//! execution resumes where it stopped (the approved calls run now, denied ones throw in the
//! program), and the call completes, or asks again.
//!
//! A client that declared the tasks extension (SEP-2663) gets a task instead: the call
//! returns a task handle at once; while the program waits, the task is `input_required`
//! with the same approval forms (answered with `tasks/update`), the sealed execution is kept
//! in the task (no sandbox is held), and `tasks/get` gives the result in the end. Tasks
//! live in this server process (rmcp's `TaskManager`); a pause that must outlive it takes
//! the round-trip path.
//!
//! The state is authenticated and encrypted by the vault, so a client can neither read nor
//! forge it; single use is the vault's ledger's job (per process unless the application
//! gives it a shared one).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use code_mode::durable::{Answer, DurableOptions, DurableOutcome, WaitingCall};
use code_mode::{ApprovalDecision, CodeMode, ExecuteOptions};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, ElicitRequest,
    ElicitRequestParams, ElicitResult, InputRequest, InputRequests, InputRequiredResult,
    InputResponses,
};
use rmcp::service::{RequestContext, RoleServer};
use rmcp::task_manager::{TaskContext, TaskExit};
use serde_json::Value;

use crate::approval::{decision_of, question, schema};

/// Bound to every sealed execution this server hands out.
const AAD: &[u8] = b"code-mode-mcp/execute_typescript";

/// Marks a `requestState` of this format.
const STATE_PREFIX: &str = "cm1.";

/// Whether this call runs durably: `execute_typescript`, from a client on protocol
/// 2026-07-28 or newer, with a `CodeMode` that can pause durably.
pub(crate) fn applies(
    context: &RequestContext<RoleServer>,
    code_mode: &CodeMode,
    tool: &str,
) -> bool {
    tool == code_mode::EXECUTE_TOOL_NAME
        && code_mode.can_pause_durably()
        && crate::approval::is_modern(context)
}

/// Runs (or, with a `requestState`, resumes) `execute_typescript` durably.
pub(crate) async fn call(
    code_mode: &CodeMode,
    request: &CallToolRequestParams,
    opts: ExecuteOptions,
) -> CallToolResponse {
    let input = Value::Object(request.arguments.clone().unwrap_or_default());
    let durable = DurableOptions::new(AAD);
    let outcome = match &request.request_state {
        None => code_mode.call_execute_durable(&input, opts, durable).await,
        Some(state) => {
            let Some(sealed) = state
                .strip_prefix(STATE_PREFIX)
                .and_then(|b64| STANDARD.decode(b64).ok())
            else {
                return failed("the requestState is not one this server issued");
            };
            let answers = answers(request.input_responses.as_ref());
            code_mode.resume(&sealed, answers, opts, durable).await
        }
    };
    match outcome {
        Ok(DurableOutcome::Finished(result)) => {
            CallToolResponse::Complete(crate::server::call_result(&result))
        }
        Ok(DurableOutcome::Paused(paused)) => {
            let state = format!("{STATE_PREFIX}{}", STANDARD.encode(&paused.sealed));
            match requests(&paused.waiting) {
                Ok(requests) => CallToolResponse::InputRequired(InputRequiredResult::new(
                    Some(requests),
                    Some(state),
                )),
                Err(e) => failed(&e),
            }
        }
        Err(e) => failed(&format!("the paused program could not continue: {e}")),
    }
}

/// Runs `execute_typescript` durably as a task: each pause asks every waiting approval as
/// the task's input requests, keeping the sealed execution until the answers come.
pub(crate) async fn run_task(
    code_mode: std::sync::Arc<CodeMode>,
    request: CallToolRequestParams,
    tool_call_id: String,
    task: TaskContext,
) -> Result<CallToolResult, TaskExit> {
    let input = Value::Object(request.arguments.clone().unwrap_or_default());
    let opts = || ExecuteOptions::new(tool_call_id.as_str(), code_mode::EventSink::none());
    let mut outcome = code_mode
        .call_execute_durable(&input, opts(), DurableOptions::new(AAD))
        .await;
    loop {
        let paused = match outcome {
            Ok(DurableOutcome::Finished(result)) => {
                return Ok(crate::server::call_result(&result));
            }
            Ok(DurableOutcome::Paused(paused)) => paused,
            Err(e) => {
                return Ok(error_result(&format!(
                    "the program could not continue: {e}"
                )));
            }
        };
        let requests = match requests(&paused.waiting) {
            Ok(r) if !r.is_empty() => r,
            Ok(_) => {
                return Ok(error_result(
                    "the program paused on a call no one was asked about",
                ));
            }
            Err(e) => return Ok(error_result(&e)),
        };
        task.set_status_message(format!(
            "waiting for approval of {} call(s)",
            requests.len()
        ));
        let asked = requests.into_iter().map(|(key, request)| {
            let task = task.clone();
            async move {
                let answer = task.request_input(key.clone(), request).await;
                answer.map(|a| (key, a))
            }
        });
        let mut responses = InputResponses::new();
        for answered in futures::future::join_all(asked).await {
            let (key, answer) = answered?;
            responses.insert(key, answer);
        }
        task.set_status_message("running");
        outcome = code_mode
            .resume(
                &paused.sealed,
                answers(Some(&responses)),
                opts(),
                DurableOptions::new(AAD),
            )
            .await;
    }
}

fn error_result(message: &str) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(message.to_owned())])
}

fn failed(message: &str) -> CallToolResponse {
    CallToolResponse::Complete(CallToolResult::error(vec![ContentBlock::text(
        message.to_owned(),
    )]))
}

/// One approval form per call waiting for approval.
fn requests(waiting: &[WaitingCall]) -> Result<InputRequests, String> {
    let mut requests = InputRequests::new();
    for call in waiting.iter().filter(|w| w.approval_id.is_some()) {
        let requested_schema =
            schema().map_err(|e| format!("cannot build the approval form: {e}"))?;
        let params = ElicitRequestParams::FormElicitationParams {
            meta: None,
            message: question(&call.function, &call.input),
            requested_schema,
        };
        requests.insert(
            format!("approve-{}", call.call_id),
            InputRequest::Elicitation(ElicitRequest::new(params)),
        );
    }
    Ok(requests)
}

/// The answers in the client's `inputResponses`: each `approve-<call id>` elicitation
/// result, read as a live approval's is. Other keys are ignored (a call not answered keeps
/// waiting); an unreadable answer is a denial saying so.
fn answers(responses: Option<&InputResponses>) -> Vec<(u32, Answer)> {
    let mut out = Vec::new();
    for (key, value) in responses.into_iter().flatten() {
        let Some(call_id) = key
            .strip_prefix("approve-")
            .and_then(|id| id.parse::<u32>().ok())
        else {
            continue;
        };
        let decision = match serde_json::from_value::<ElicitResult>(value.clone()) {
            Ok(result) => decision_of(&result.action, result.content.as_ref()),
            Err(e) => ApprovalDecision::deny(format!("the answer could not be read: {e}")),
        };
        let answer = match decision {
            ApprovalDecision::Approve => Answer::Approve,
            ApprovalDecision::ApproveWithInput(input) => Answer::ApproveWithInput(input),
            ApprovalDecision::Deny { reason } => Answer::Deny { reason },
        };
        out.push((call_id, answer));
    }
    out
}
