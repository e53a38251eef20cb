//! Approval cases: a call that needs a person's approval waits for the decision while the
//! sandbox stays alive, on every driver (see `code_mode`'s `approval` module).
//!
//! Each case runs a [`CodeMode`] over the driver with the standard fixtures plus `pay`, a
//! tool that needs approval and records every input it runs with, and answers through an
//! [`ApprovalChannel`] so the case decides when and how.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use code_mode::{
    ApprovalChannel, ApprovalDecision, ApprovalPolicy, Approver, CodeMode, CodeModeResult, Event,
    EventSink, ExecuteOptions, Limits, PendingApproval, Tool, ToolError,
};
use serde_json::{Value, json};
use tokio::sync::mpsc::UnboundedReceiver;

use crate::Harness;
use crate::fixtures::{Fixtures, tools};

/// Inputs `pay` ran with, in order.
type Paid = Arc<Mutex<Vec<Value>>>;

fn pay_tool(paid: &Paid) -> Tool {
    let paid = paid.clone();
    Tool::new(
        "pay",
        "Pays an amount (needs approval).",
        json!({
            "type": "object",
            "properties": {"amount": {"type": "number", "minimum": 0}, "to": {"type": "string"}},
            "required": ["amount"],
            "additionalProperties": false
        }),
        move |input, _ctx| {
            let paid = paid.clone();
            async move {
                paid.lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .push(input.clone());
                Ok::<_, ToolError>(json!({"paid": input["amount"]}))
            }
        },
    )
    .expect("valid pay tool")
    .require_approval(ApprovalPolicy::when(|input| {
        input["amount"].as_f64().unwrap_or(0.0) > 0.0
    }))
}

struct Setup {
    code_mode: CodeMode,
    paid: Paid,
    fixtures: Fixtures,
}

impl Setup {
    fn new(h: &Harness, limits: Limits) -> Self {
        let paid = Paid::default();
        let fixtures = Fixtures::default();
        let code_mode = CodeMode::builder()
            .tools(tools(&fixtures))
            .tool(pay_tool(&paid))
            .driver(h.driver().clone())
            .limits(limits)
            .build()
            .expect("valid code mode");
        Self {
            code_mode,
            paid,
            fixtures,
        }
    }

    fn paid(&self) -> Vec<Value> {
        self.paid
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Starts `code` with `approver`, returning the running execution and its events.
    fn start(
        &self,
        code: &str,
        approver: Option<Arc<dyn Approver>>,
    ) -> (
        tokio::task::JoinHandle<CodeModeResult>,
        UnboundedReceiver<Event>,
    ) {
        let (events, rx) = EventSink::channel();
        let mut opts = ExecuteOptions::new("call_approval", events);
        opts.approver = approver;
        let cm = self.code_mode.clone();
        let code = code.to_owned();
        (
            tokio::spawn(async move { cm.execute(&code, opts).await }),
            rx,
        )
    }
}

async fn next_request(rx: &mut UnboundedReceiver<PendingApproval>) -> PendingApproval {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("an approval request within 10 s")
        .expect("the approver is alive")
}

async fn finish(run: tokio::task::JoinHandle<CodeModeResult>) -> CodeModeResult {
    tokio::time::timeout(Duration::from_secs(20), run)
        .await
        .expect("the execution ends within 20 s")
        .expect("the execution task does not panic")
}

fn drain(rx: &mut UnboundedReceiver<Event>) -> Vec<Event> {
    let mut out = Vec::new();
    while let Ok(e) = rx.try_recv() {
        out.push(e);
    }
    out
}

fn named<'a>(events: &'a [Event], name: &str) -> Vec<&'a Event> {
    events.iter().filter(|e| e.name() == name).collect()
}

/// Nothing runs before the decision; the program's other calls keep running meanwhile;
/// approval runs the tool once with the program's input, and the events say so.
pub async fn approval_runs_nothing_before_the_decision(h: &Harness) {
    let s = Setup::new(h, h.limits());
    let (approver, mut pending) = ApprovalChannel::new();
    let (run, mut events) = s.start(
        "const p = external_pay({ amount: 12, to: 'ada' });\nconst e = await external_echo({ n: 1 });\nconst r = await p;\nreturn [e, r];",
        Some(Arc::new(approver)),
    );
    let question = next_request(&mut pending).await;
    assert_eq!(question.request().function, "external_pay");
    assert_eq!(question.request().input, json!({"amount": 12, "to": "ada"}));
    assert_eq!(
        question.request().tool_call_id.as_deref(),
        Some("call_approval")
    );
    // The other call runs while `pay` waits.
    for _ in 0..200 {
        if s.fixtures.call_count() > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(s.fixtures.call_count(), 1, "echo ran while pay was waiting");
    assert!(s.paid().is_empty(), "pay ran before the decision");
    assert!(question.answer(ApprovalDecision::Approve));
    let r = finish(run).await;
    assert!(r.success, "{r:?}");
    assert_eq!(r.result, Some(json!([{"n": 1}, {"paid": 12}])));
    assert_eq!(s.paid(), vec![json!({"amount": 12, "to": "ada"})]);
    let events = drain(&mut events);
    let requested = named(&events, "code_mode:approval_requested");
    let resolved = named(&events, "code_mode:approval_resolved");
    assert_eq!(requested.len(), 1, "{events:?}");
    assert_eq!(resolved.len(), 1, "{events:?}");
    let (req, res) = (requested[0].value(), resolved[0].value());
    assert_eq!(req["approvalId"], res["approvalId"]);
    assert_eq!(req["function"], "external_pay");
    assert_eq!(req["input"], json!({"amount": 12, "to": "ada"}));
    assert_eq!(req["toolCallId"], "call_approval");
    assert_eq!(res["approved"], true);
    assert_eq!(res["outcome"], "approved");
    // A call the policy does not cover runs without asking.
    let (run, _events) = s.start("return await external_pay({ amount: 0 })", None);
    assert_eq!(finish(run).await.result, Some(json!({"paid": 0})));
    h.assert_healthy().await;
}

/// A denial reaches the program as a catchable `ApprovalDeniedError` with the reason; the
/// tool never runs, and no `external_call` event says it did. Without an approver the call is denied the same way, saying why.
pub async fn approval_denied_is_a_catchable_error(h: &Harness) {
    let s = Setup::new(h, h.limits());
    let (approver, mut pending) = ApprovalChannel::new();
    let code = "try { await external_pay({ amount: 99 }); return 'paid'; } catch (e) { return [e.name, e.message, e instanceof Error]; }";
    let (run, mut events) = s.start(code, Some(Arc::new(approver)));
    let question = next_request(&mut pending).await;
    question.answer(ApprovalDecision::deny("over the monthly budget"));
    let r = finish(run).await;
    assert_eq!(
        r.result,
        Some(json!([
            "ApprovalDeniedError",
            "external_pay was not approved: over the monthly budget",
            true
        ])),
        "{r:?}"
    );
    assert!(s.paid().is_empty());
    let events = drain(&mut events);
    let resolved = named(&events, "code_mode:approval_resolved");
    assert_eq!(resolved[0].value()["outcome"], "denied");
    assert_eq!(resolved[0].value()["reason"], "over the monthly budget");
    // The call never started: no `external_call`, only its error.
    assert!(
        named(&events, "code_mode:external_call").is_empty(),
        "{events:?}"
    );
    assert_eq!(
        named(&events, "code_mode:external_error").len(),
        1,
        "{events:?}"
    );

    let (run, _events) = s.start(code, None);
    let r = finish(run).await;
    assert_eq!(
        r.result,
        Some(json!([
            "ApprovalDeniedError",
            "external_pay was not approved: it needs approval and no approver is configured",
            true
        ])),
        "{r:?}"
    );
    assert!(s.paid().is_empty());
    // Uncaught, it fails the execution with that name.
    let (run, _events) = s.start("await external_pay({ amount: 1 }); return 1", None);
    let r = finish(run).await;
    assert_eq!(
        r.error.map(|e| e.kind.name().to_owned()).as_deref(),
        Some("ApprovalDeniedError")
    );
}

/// No decision within the approval-wait limit: the call is denied with a clear reason, and
/// the approver is told the request is withdrawn.
pub async fn approval_wait_has_its_own_limit(h: &Harness) {
    let limits = h.limits_with(|l| l.approval_timeout(Duration::from_millis(300)));
    let s = Setup::new(h, limits);
    let (approver, mut pending) = ApprovalChannel::new();
    let (run, mut events) = s.start(
        "try { await external_pay({ amount: 5 }); return 'paid'; } catch (e) { return [e.name, e.message]; }",
        Some(Arc::new(approver)),
    );
    let mut question = next_request(&mut pending).await;
    tokio::time::timeout(Duration::from_secs(10), question.withdrawn())
        .await
        .expect("the request is withdrawn after the wait limit");
    let r = finish(run).await;
    assert_eq!(
        r.result,
        Some(json!([
            "ApprovalDeniedError",
            "external_pay was not approved: no decision within 300 ms"
        ])),
        "{r:?}"
    );
    assert!(
        !question.answer(ApprovalDecision::Approve),
        "a late answer is refused"
    );
    assert!(s.paid().is_empty());
    let events = drain(&mut events);
    let resolved = named(&events, "code_mode:approval_resolved");
    assert_eq!(resolved.len(), 1, "{events:?}");
    assert_eq!(resolved[0].value()["outcome"], "timeout");
}

/// Two approvals pending at once inside one `Promise.all`, answered in the opposite order:
/// each call gets its own decision.
pub async fn two_pending_approvals_resolve_in_any_order(h: &Harness) {
    let s = Setup::new(h, h.limits());
    let (approver, mut pending) = ApprovalChannel::new();
    let (run, _events) = s.start(
        "return await Promise.all([\n  external_pay({ amount: 1 }),\n  external_pay({ amount: 2 }).catch((e) => e.message),\n]);",
        Some(Arc::new(approver)),
    );
    let a = next_request(&mut pending).await;
    let b = next_request(&mut pending).await;
    let (first, second) = if a.request().input["amount"] == 1 {
        (a, b)
    } else {
        (b, a)
    };
    assert_ne!(first.request().approval_id, second.request().approval_id);
    assert!(second.answer(ApprovalDecision::deny("not this one")));
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(s.paid().is_empty());
    assert!(first.answer(ApprovalDecision::Approve));
    let r = finish(run).await;
    assert_eq!(
        r.result,
        Some(json!([
            {"paid": 1},
            "external_pay was not approved: not this one"
        ])),
        "{r:?}"
    );
    assert_eq!(s.paid(), vec![json!({"amount": 1})]);
}

/// Waiting for a decision does not use up the execution's timeout: a wait three times as
/// long as the timeout ends in success, and the timeout still applies to the program's own
/// time afterwards.
pub async fn approval_wait_does_not_use_the_timeout(h: &Harness) {
    let limits = h.limits_with(|l| l.timeout(Duration::from_millis(400)));
    let s = Setup::new(h, limits);
    let (approver, mut pending) = ApprovalChannel::new();
    let (run, _events) = s.start(
        "const r = await external_pay({ amount: 3 });\nreturn r;",
        Some(Arc::new(approver)),
    );
    let question = next_request(&mut pending).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(question.answer(ApprovalDecision::Approve));
    let r = finish(run).await;
    assert!(r.success, "the wait counted against the timeout: {r:?}");
    assert_eq!(r.result, Some(json!({"paid": 3})));

    let (approver, mut pending) = ApprovalChannel::new();
    let (run, _events) = s.start(
        "await external_pay({ amount: 3 });\nwhile (true) {}",
        Some(Arc::new(approver)),
    );
    next_request(&mut pending)
        .await
        .answer(ApprovalDecision::Approve);
    let r = finish(run).await;
    assert_eq!(
        r.error.map(|e| e.kind.name().to_owned()).as_deref(),
        Some("TimeoutError"),
        "the program's own time is still limited"
    );
    h.assert_healthy().await;
}

/// The hold stops the clock only while no guest code runs: a program that computes in short
/// slices between quick tool calls while an approval waits is charged for every slice, so
/// it times out on its own budget instead of computing for as long as the person takes.
/// Generated over slice shapes (a busy loop, string building, array sorting) and slice sizes.
pub async fn guest_code_during_an_approval_is_charged(h: &Harness) {
    let limits = h.limits_with(|l| l.timeout(Duration::from_millis(400)));
    let s = Setup::new(h, limits);
    // Each shape burns a slice of CPU; bounded by iterations as well as time, because a
    // Worker's clock does not advance while code runs.
    let shapes = [
        "const t = Date.now(); let i = 0; while (Date.now() - t < MS && i < 3e6) i++;",
        "const t = Date.now(); let s = ''; while (Date.now() - t < MS && s.length < 2e6) s += 'ab';",
        "const t = Date.now(); let k = 0; while (Date.now() - t < MS && k < 40) { [...Array(2000).keys()].map((x) => (x * 7919) % 2003).sort((a, b) => a - b); k++; }",
    ];
    for (shape, ms) in shapes.iter().zip([10, 25, 40]) {
        let slice = shape.replace("MS", &ms.to_string());
        let code = format!(
            "let done = false;\nexternal_pay({{ amount: 5 }}).then(() => {{ done = true; }}, () => {{ done = true; }});\nlet slices = 0;\nwhile (!done) {{ await external_echo({{ n: slices }}); {slice} slices++; }}\nreturn slices;"
        );
        let (approver, mut pending) = ApprovalChannel::new();
        let (run, _events) = s.start(&code, Some(Arc::new(approver)));
        let question = next_request(&mut pending).await;
        // The person takes 2.5 s: far more than the program's 400 ms of its own time.
        let answer = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(2500)).await;
            question.answer(ApprovalDecision::Approve)
        });
        let r = finish(run).await;
        assert_eq!(
            r.error
                .as_ref()
                .map(|e| e.kind.name().to_owned())
                .as_deref(),
            Some("TimeoutError"),
            "slices of {ms} ms ({shape}) computed for free while the approval waited: {r:?}"
        );
        let _ = answer.await;
        assert!(s.paid().is_empty(), "the withdrawn approval ran the tool");
    }
    h.assert_healthy().await;
}

/// The execution ends while a decision is pending (here: the caller cancels it, and a
/// program fails with a call still waiting): the approver is told the request is withdrawn,
/// and the tool never runs.
pub async fn pending_approval_is_withdrawn_when_the_execution_ends(h: &Harness) {
    let s = Setup::new(h, h.limits());
    let (approver, mut pending) = ApprovalChannel::new();
    let approver: Arc<dyn Approver> = Arc::new(approver);
    let (run, _events) = s.start(
        "return await external_pay({ amount: 7 });",
        Some(approver.clone()),
    );
    let mut question = next_request(&mut pending).await;
    run.abort();
    tokio::time::timeout(Duration::from_secs(10), question.withdrawn())
        .await
        .expect("cancelling the execution withdraws the request");
    assert!(!question.answer(ApprovalDecision::Approve));

    let (run, mut events) = s.start(
        "external_pay({ amount: 8 }).catch(() => {});\nawait external_sleep({ ms: 50 });\nthrow new Error('gave up');",
        Some(approver),
    );
    let mut question = next_request(&mut pending).await;
    let r = finish(run).await;
    assert_eq!(r.error.map(|e| e.message), Some("gave up".to_owned()));
    tokio::time::timeout(Duration::from_secs(10), question.withdrawn())
        .await
        .expect("a failed execution withdraws its pending requests");
    let events = drain(&mut events);
    let resolved = named(&events, "code_mode:approval_resolved");
    assert_eq!(resolved.len(), 1, "{events:?}");
    assert_eq!(resolved[0].value()["outcome"], "withdrawn");
    assert!(s.paid().is_empty());
    h.assert_healthy().await;
}

/// An approver may edit the input: a valid edit runs the tool with it (both versions in the
/// events); an edit that violates the tool's schema is refused and the tool does not run.
pub async fn edited_input_is_validated(h: &Harness) {
    let s = Setup::new(h, h.limits());
    let (approver, mut pending) = ApprovalChannel::new();
    let approver: Arc<dyn Approver> = Arc::new(approver);
    let code = "try { return await external_pay({ amount: 500, to: 'eve' }); } catch (e) { return [e.name, e.message]; }";
    let (run, mut events) = s.start(code, Some(approver.clone()));
    next_request(&mut pending)
        .await
        .answer(ApprovalDecision::ApproveWithInput(
            json!({"amount": 50, "to": "eve"}),
        ));
    let r = finish(run).await;
    assert_eq!(r.result, Some(json!({"paid": 50})), "{r:?}");
    assert_eq!(s.paid(), vec![json!({"amount": 50, "to": "eve"})]);
    let events = drain(&mut events);
    let requested = named(&events, "code_mode:approval_requested");
    let resolved = named(&events, "code_mode:approval_resolved");
    assert_eq!(
        requested[0].value()["input"],
        json!({"amount": 500, "to": "eve"})
    );
    assert_eq!(
        resolved[0].value()["editedInput"],
        json!({"amount": 50, "to": "eve"})
    );
    assert_eq!(resolved[0].value()["approved"], true);

    let (run, _events) = s.start(code, Some(approver));
    next_request(&mut pending)
        .await
        .answer(ApprovalDecision::ApproveWithInput(
            json!({"amount": "lots"}),
        ));
    let r = finish(run).await;
    let result = r.result.unwrap_or(Value::Null);
    assert_eq!(result[0], "ApprovalDeniedError", "{result}");
    let message = result[1].as_str().unwrap_or_default();
    assert!(
        message.starts_with("external_pay was not approved: the edited input was refused:")
            && message.contains("amount"),
        "{message}"
    );
    assert_eq!(s.paid().len(), 1, "the refused edit did not run");
}
