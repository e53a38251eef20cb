//! Approvals asked of the MCP client's user through elicitation.
//!
//! When a program run by `execute_typescript` calls a tool that needs approval, the server
//! sends the requesting client an `elicitation/create` request (form mode): a message naming
//! the function and its input, and a form with `approve` (yes/no), an optional `reason` and
//! an optional `input` (the edited input as JSON text). Accept with `approve: true` runs the
//! call (with the edited input when given); anything else denies it, with the reason. A
//! client that did not declare the elicitation capability cannot be asked: such calls are
//! denied with a message saying so, and never run.

use code_mode::{ApprovalDecision, ApprovalRequest, Approver, async_trait};
use rmcp::model::{ElicitRequestParams, ElicitationAction, ElicitationSchema};
use rmcp::service::{Peer, RoleServer};
use serde_json::Value;

/// Why calls are denied when the client cannot be asked.
pub(crate) const NO_ELICITATION: &str =
    "the MCP client does not support elicitation, so nobody can be asked to approve it";

/// Why calls are denied when the client can answer forms but only between requests
/// (protocol 2026-07-28 and newer forbid asking during a call) and this server cannot
/// pause the program until the next request.
pub(crate) const NO_PAUSE: &str = "the MCP client can only be asked between requests (protocol 2026-07-28), and this server's sandbox cannot pause a program until then (the QuickJS-WASM driver can), so nobody can be asked to approve it";

/// Whether the request comes from a client on protocol 2026-07-28 or newer, which forbids a
/// server's requests during a call (approvals then take `input_required` rounds) and asks
/// for log notifications per request.
pub(crate) fn is_modern(context: &rmcp::service::RequestContext<RoleServer>) -> bool {
    context
        .protocol_version()
        .is_some_and(|v| v >= rmcp::model::ProtocolVersion::V_2026_07_28)
}

/// Whether a client with `caps` answers form elicitations (a capability naming neither form
/// nor URL mode means form, as the specification's earlier versions had it). `caps` is
/// `RequestContext::client_capabilities`: the request's own at 2026-07-28, the session's
/// `initialize` before, so one rule serves both eras.
pub(crate) fn can_elicit(caps: Option<&rmcp::model::ClientCapabilities>) -> bool {
    caps.and_then(|c| c.elicitation.as_ref())
        .is_some_and(|e| e.form.is_some() || e.url.is_none())
}

/// Asks the client behind `peer`.
pub(crate) struct ElicitationApprover {
    pub(crate) peer: Peer<RoleServer>,
}

fn message(request: &ApprovalRequest) -> String {
    question(&request.function, &request.input)
}

/// The question asked about `function(input)`.
pub(crate) fn question(function: &str, input: &Value) -> String {
    let mut input = input.to_string();
    if input.len() > 2000 {
        let mut end = 2000;
        while !input.is_char_boundary(end) {
            end -= 1;
        }
        input.truncate(end);
        input.push('…');
    }
    format!("A program wants to call {function} with this input:\n{input}\nApprove this call?")
}

pub(crate) fn schema() -> Result<ElicitationSchema, &'static str> {
    ElicitationSchema::builder()
        .required_bool_with("approve", |b| b.description("Run this call"))
        .optional_string_with("reason", |s| {
            s.description("Why (shown to the program when denied)")
        })
        .optional_string_with("input", |s| {
            s.description("Run it with this input instead (JSON object), leave empty to keep it")
        })
        .build()
}

/// The decision an elicitation answer stands for.
pub(crate) fn decision_of(action: &ElicitationAction, content: Option<&Value>) -> ApprovalDecision {
    let field = |k: &str| content.and_then(|c| c.get(k));
    let reason = field("reason")
        .and_then(Value::as_str)
        .filter(|r| !r.trim().is_empty())
        .map(str::to_owned);
    match action {
        ElicitationAction::Accept if field("approve").and_then(Value::as_bool) == Some(true) => {
            match field("input").and_then(Value::as_str).map(str::trim) {
                None | Some("") => ApprovalDecision::Approve,
                Some(text) => match serde_json::from_str::<Value>(text) {
                    Ok(edited) => ApprovalDecision::ApproveWithInput(edited),
                    Err(e) => ApprovalDecision::deny(format!("the edited input is not JSON: {e}")),
                },
            }
        }
        ElicitationAction::Accept => ApprovalDecision::Deny {
            reason: Some(reason.unwrap_or_else(|| "denied by the user".into())),
        },
        ElicitationAction::Decline => ApprovalDecision::Deny {
            reason: Some(reason.unwrap_or_else(|| "declined by the user".into())),
        },
        _ => ApprovalDecision::deny("the user cancelled"),
    }
}

#[async_trait]
impl Approver for ElicitationApprover {
    async fn decide(&self, request: ApprovalRequest) -> ApprovalDecision {
        let requested_schema = match schema() {
            Ok(s) => s,
            Err(e) => {
                return ApprovalDecision::deny(format!("cannot build the approval form: {e}"));
            }
        };
        let params = ElicitRequestParams::FormElicitationParams {
            meta: None,
            message: message(&request),
            requested_schema,
        };
        match self.peer.create_elicitation(params).await {
            Ok(result) => decision_of(&result.action, result.content.as_ref()),
            Err(e) => ApprovalDecision::deny(format!("the MCP client could not be asked: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn answers_map_to_decisions() {
        assert!(schema().is_ok());
        let accept = ElicitationAction::Accept;
        assert_eq!(
            decision_of(&accept, Some(&json!({"approve": true}))),
            ApprovalDecision::Approve
        );
        assert_eq!(
            decision_of(
                &accept,
                Some(&json!({"approve": true, "input": "{\"a\": 1}"}))
            ),
            ApprovalDecision::ApproveWithInput(json!({"a": 1}))
        );
        assert_eq!(
            decision_of(&accept, Some(&json!({"approve": false, "reason": "no"}))),
            ApprovalDecision::deny("no")
        );
        assert_eq!(
            decision_of(&ElicitationAction::Decline, None),
            ApprovalDecision::deny("declined by the user")
        );
        assert!(matches!(
            decision_of(&accept, Some(&json!({"approve": true, "input": "{"}))),
            ApprovalDecision::Deny { .. }
        ));
    }
}
