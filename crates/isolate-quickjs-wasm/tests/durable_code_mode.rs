//! Durable executions through `CodeMode` on the QuickJS-WASM driver: a program that calls
//! a tool needing approval is sealed, the `CodeMode` is dropped (a restart), and a new one
//! resumes the bytes with the person's answer. Its result, console lines and events must be
//! the ones a live approval with the same decision gives, each emitted once.

use std::sync::{Arc, Mutex};

use code_mode::durable::{
    Answer, DurableError, DurableOptions, DurableOutcome, Park, PausedExecution, ResumeError,
    SnapshotKey, SnapshotVault,
};
use code_mode::{
    ApprovalPolicy, ApproveAll, CodeMode, CodeModeResult, DenyAll, Event, EventSink,
    ExecuteOptions, Tool, ToolError,
};
use code_mode_isolate_quickjs_wasm::QuickJsWasmDriver;
use serde_json::{Value, json};

const AAD: &[u8] = b"tenant-1/session-9";

/// Every tool run, as `name input`.
type Ran = Arc<Mutex<Vec<String>>>;

fn tools(ran: &Ran) -> Vec<Tool> {
    let record = |name: &'static str, ran: &Ran| {
        let ran = ran.clone();
        move |input: Value, _| {
            ran.lock().unwrap().push(format!("{name} {input}"));
            async move {
                match name {
                    "refund" => Ok::<_, ToolError>(json!({ "refunded": input })),
                    _ => Ok(input),
                }
            }
        }
    };
    vec![
        Tool::new(
            "fast",
            "Echoes.",
            json!({"type": "object"}),
            record("fast", ran),
        )
        .unwrap(),
        Tool::new(
            "lookup",
            "Looks an order up.",
            json!({"type": "object"}),
            record("lookup", ran),
        )
        .unwrap(),
        Tool::new(
            "refund",
            "Refunds an order.",
            json!({
                "type": "object",
                "properties": {"order": {"type": "integer"}},
                "required": ["order"],
            }),
            record("refund", ran),
        )
        .unwrap()
        .require_approval(ApprovalPolicy::Always),
    ]
}

fn vault() -> SnapshotVault {
    SnapshotVault::new(SnapshotKey::new(3, [9; 32]))
}

/// A fresh `CodeMode` (as after a restart) with the same tools and key.
fn code_mode(ran: &Ran) -> CodeMode {
    CodeMode::builder()
        .tools(tools(ran))
        .driver(Arc::new(QuickJsWasmDriver::new()))
        .snapshot_vault(vault())
        .build()
        .unwrap()
}

fn recorder() -> (EventSink, Arc<Mutex<Vec<Event>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    (EventSink::from_fn(move |e| s.lock().unwrap().push(e)), seen)
}

/// Events without times, durations and approval ids, and without the ones only a durable
/// or only a live approval has.
fn normalised(events: &[Event]) -> Vec<Value> {
    events
        .iter()
        .filter(|e| {
            !e.name().starts_with("code_mode:approval_")
                && e.name() != "code_mode:execution_paused"
                && e.name() != "code_mode:execution_resumed"
        })
        .map(|e| {
            let mut v = e.value();
            if let Value::Object(m) = &mut v {
                for k in ["timestamp", "duration", "durationMs", "approvalId"] {
                    m.remove(k);
                }
            }
            json!([e.name(), v])
        })
        .collect()
}

fn opts(events: EventSink) -> ExecuteOptions {
    ExecuteOptions::new("call_7", events)
}

fn paused(outcome: DurableOutcome) -> PausedExecution {
    match outcome {
        DurableOutcome::Paused(p) => p,
        DurableOutcome::Finished(r) => panic!("expected a pause, got {r:?}"),
    }
}

fn finished(outcome: DurableOutcome) -> CodeModeResult {
    match outcome {
        DurableOutcome::Finished(r) => r,
        DurableOutcome::Paused(p) => panic!("expected the end, still waiting on {:?}", p.waiting),
    }
}

/// Runs `code` live with `approver`, and durably (pause, restart, resume with `answer`);
/// both results and event lists, and which tools ran.
async fn both(
    code: &str,
    approver: Arc<dyn code_mode::Approver>,
    answer: Answer,
) -> (
    (CodeModeResult, Vec<Event>, Vec<String>),
    (CodeModeResult, Vec<Event>, Vec<String>),
) {
    let ran: Ran = Ran::default();
    let (sink, events) = recorder();
    let live = code_mode(&ran)
        .execute(code, opts(sink).with_approver(approver))
        .await;
    let live = (
        live,
        events.lock().unwrap().clone(),
        ran.lock().unwrap().clone(),
    );

    let ran: Ran = Ran::default();
    let (sink, events) = recorder();
    let first = code_mode(&ran)
        .execute_durable(code, opts(sink.clone()), DurableOptions::new(AAD))
        .await
        .unwrap();
    let p = paused(first);
    assert_eq!(p.waiting.len(), 1, "{:?}", p.waiting);
    let call = p.waiting[0].call_id;
    // A restart: a new CodeMode, the same key.
    let result = finished(
        code_mode(&ran)
            .resume(
                &p.sealed,
                vec![(call, answer)],
                opts(sink),
                DurableOptions::new(AAD),
            )
            .await
            .unwrap(),
    );
    let durable = (
        result,
        events.lock().unwrap().clone(),
        ran.lock().unwrap().clone(),
    );
    (live, durable)
}

const APPROVED: &str = "interface Row { n: number }\nconst a: Row = await external_fast({ n: 1 });\nconsole.log('before', a.n);\nconst r: any = await external_refund({ order: 7 });\nconsole.log('after', JSON.stringify(r));\nreturn { a, r, last: await external_fast({ z: 2 }) };";

#[tokio::test]
async fn an_approval_answered_after_a_restart_ends_as_a_live_one() {
    let (live, durable) = both(APPROVED, Arc::new(ApproveAll), Answer::Approve).await;
    assert!(live.0.success, "{:?}", live.0);
    assert_eq!(durable.0, live.0);
    assert_eq!(
        durable.0.result,
        Some(json!({"a": {"n": 1}, "r": {"refunded": {"order": 7}}, "last": {"z": 2}}))
    );
    assert_eq!(
        durable.0.logs,
        vec!["before 1", "after {\"refunded\":{\"order\":7}}"]
    );
    // Every tool ran once, the approved one after the restart.
    assert_eq!(durable.2, live.2);
    assert_eq!(normalised(&durable.1), normalised(&live.1));

    let names: Vec<&str> = durable.1.iter().map(Event::name).collect();
    for once in [
        "code_mode:execution_started",
        "code_mode:approval_requested",
        "code_mode:execution_paused",
        "code_mode:execution_resumed",
        "code_mode:approval_resolved",
        "code_mode:execution_finished",
    ] {
        assert_eq!(
            names.iter().filter(|n| **n == once).count(),
            1,
            "{once} in {names:?}"
        );
    }
    let at = |name: &str| names.iter().position(|n| *n == name).unwrap();
    assert!(at("code_mode:approval_requested") < at("code_mode:execution_paused"));
    assert!(at("code_mode:execution_paused") < at("code_mode:execution_resumed"));
    assert!(at("code_mode:approval_resolved") < at("code_mode:execution_finished"));
    let requested = &durable.1[at("code_mode:approval_requested")].value();
    let resolved = &durable.1[at("code_mode:approval_resolved")].value();
    assert_eq!(requested["approvalId"], resolved["approvalId"]);
    assert_eq!(requested["input"], json!({"order": 7}));
    assert_eq!(resolved["outcome"], json!("approved"));
    assert_eq!(resolved["toolCallId"], json!("call_7"));
}

#[tokio::test]
async fn the_paused_execution_names_its_waiting_call_and_lines() {
    let ran = Ran::default();
    let (sink, events) = recorder();
    let p = paused(
        code_mode(&ran)
            .execute_durable(APPROVED, opts(sink), DurableOptions::new(AAD))
            .await
            .unwrap(),
    );
    let call = &p.waiting[0];
    assert_eq!(call.function, "external_refund");
    assert_eq!(call.input, json!({"order": 7}));
    let requested = events
        .lock()
        .unwrap()
        .iter()
        .find(|e| e.name() == "code_mode:approval_requested")
        .map(Event::value)
        .unwrap();
    assert_eq!(
        call.approval_id.as_deref(),
        requested["approvalId"].as_str()
    );
    assert_eq!(p.logs.len(), 1);
    assert_eq!(p.logs[0].message, "before 1");
    assert_eq!(*ran.lock().unwrap(), vec!["fast {\"n\":1}"]);
    let paused_event = events
        .lock()
        .unwrap()
        .iter()
        .find(|e| e.name() == "code_mode:execution_paused")
        .map(Event::value)
        .unwrap();
    assert_eq!(paused_event["sealedBytes"], json!(p.sealed.len()));
    assert_eq!(
        paused_event["waiting"][0]["function"],
        json!("external_refund")
    );
}

#[tokio::test]
async fn a_denial_after_a_restart_ends_as_a_live_one() {
    let code = "try { await external_refund({ order: 1 }); return 'ran'; } catch (e) { return e.name + ': ' + e.message; }";
    let (live, durable) = both(
        code,
        Arc::new(DenyAll("not during the freeze".into())),
        Answer::deny("not during the freeze"),
    )
    .await;
    assert_eq!(
        live.0.result,
        Some(json!(
            "ApprovalDeniedError: external_refund was not approved: not during the freeze"
        ))
    );
    assert_eq!(durable.0, live.0);
    assert!(durable.2.is_empty(), "a denied tool ran: {:?}", durable.2);
    assert_eq!(normalised(&durable.1), normalised(&live.1));
}

#[tokio::test]
async fn an_edited_input_is_checked_against_the_schema() {
    let code = "try { return await external_refund({ order: 1 }); } catch (e) { return e.name + ': ' + e.message; }";
    let ran = Ran::default();
    let start = || async {
        paused(
            code_mode(&ran)
                .execute_durable(code, opts(EventSink::none()), DurableOptions::new(AAD))
                .await
                .unwrap(),
        )
    };
    let p = start().await;
    let r = finished(
        code_mode(&ran)
            .resume(
                &p.sealed,
                vec![(
                    p.waiting[0].call_id,
                    Answer::ApproveWithInput(json!({"order": 2})),
                )],
                opts(EventSink::none()),
                DurableOptions::new(AAD),
            )
            .await
            .unwrap(),
    );
    assert_eq!(r.result, Some(json!({"refunded": {"order": 2}})));
    let p = start().await;
    let r = finished(
        code_mode(&ran)
            .resume(
                &p.sealed,
                vec![(
                    p.waiting[0].call_id,
                    Answer::ApproveWithInput(json!({"order": "two"})),
                )],
                opts(EventSink::none()),
                DurableOptions::new(AAD),
            )
            .await
            .unwrap(),
    );
    let text = r.result.unwrap();
    assert!(
        text.as_str().unwrap().starts_with(
            "ApprovalDeniedError: external_refund was not approved: the edited input was refused"
        ),
        "{text}"
    );
    assert_eq!(*ran.lock().unwrap(), vec!["refund {\"order\":2}"]);
}

#[tokio::test]
async fn the_application_answers_a_parked_call_without_running_the_tool() {
    let code = "const o = await external_lookup({ id: 5 });\nconsole.log('got', o.total);\nconst [x, y] = await Promise.all([external_lookup({ id: 6 }), external_fast({ k: 1 })]);\nreturn [o, x, y];";
    let ran = Ran::default();
    let park = || DurableOptions::new(AAD).park(Park::functions(["external_lookup"]));
    let (sink, events) = recorder();
    let p = paused(
        code_mode(&ran)
            .execute_durable(code, opts(sink.clone()), park())
            .await
            .unwrap(),
    );
    assert_eq!(p.waiting[0].approval_id, None);
    let step = code_mode(&ran)
        .resume(
            &p.sealed,
            vec![(p.waiting[0].call_id, Answer::Value(json!({"total": 12})))],
            opts(sink.clone()),
            park(),
        )
        .await
        .unwrap();
    // The second lookup is held too; `external_fast` ran before the pause.
    let p = paused(step);
    assert_eq!(p.waiting.len(), 1);
    assert_eq!(p.waiting[0].input, json!({"id": 6}));
    let r = finished(
        code_mode(&ran)
            .resume(
                &p.sealed,
                vec![(
                    p.waiting[0].call_id,
                    Answer::Error("the archive is offline".into()),
                )],
                opts(sink.clone()),
                park(),
            )
            .await
            .unwrap(),
    );
    let error = r.error.expect("the program should fail");
    assert_eq!(error.message, "the archive is offline");
    assert_eq!(error.line, Some(3));
    assert_eq!(r.logs, vec!["got 12"]);
    assert_eq!(*ran.lock().unwrap(), vec!["fast {\"k\":1}"]);
    let names: Vec<String> = events
        .lock()
        .unwrap()
        .iter()
        .map(|e| e.name().to_owned())
        .collect();
    assert_eq!(
        names.iter().filter(|n| *n == "code_mode:console").count(),
        1
    );
    assert_eq!(
        names
            .iter()
            .filter(|n| *n == "code_mode:execution_paused")
            .count(),
        2
    );
    assert_eq!(
        names
            .iter()
            .filter(|n| *n == "code_mode:external_result")
            .count(),
        2
    );
    assert_eq!(
        names
            .iter()
            .filter(|n| *n == "code_mode:external_error")
            .count(),
        1
    );
}

#[tokio::test]
async fn refusals_are_typed_and_a_snapshot_resumes_once() {
    let ran = Ran::default();
    let p = paused(
        code_mode(&ran)
            .execute_durable(APPROVED, opts(EventSink::none()), DurableOptions::new(AAD))
            .await
            .unwrap(),
    );
    let call = p.waiting[0].call_id;
    let cm = code_mode(&ran);
    let resume = |sealed: Vec<u8>, answers: Vec<(u32, Answer)>, aad: &'static [u8]| {
        let cm = cm.clone();
        async move {
            cm.resume(
                &sealed,
                answers,
                opts(EventSink::none()),
                DurableOptions::new(aad),
            )
            .await
        }
    };
    let err = resume(
        p.sealed.clone(),
        vec![(call, Answer::Approve)],
        b"other tenant",
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, DurableError::Resume(ResumeError::Forged)),
        "{err}"
    );
    let err = resume(p.sealed.clone(), vec![(call + 40, Answer::Approve)], AAD)
        .await
        .unwrap_err();
    assert!(
        matches!(err, DurableError::Resume(ResumeError::UnknownCall(_))),
        "{err}"
    );
    // The refusals claimed nothing: it still resumes, once.
    let r = finished(
        resume(p.sealed.clone(), vec![(call, Answer::Approve)], AAD)
            .await
            .unwrap(),
    );
    assert!(r.success);
    let err = resume(p.sealed.clone(), vec![(call, Answer::Approve)], AAD)
        .await
        .unwrap_err();
    assert!(
        matches!(err, DurableError::Resume(ResumeError::AlreadyResumed)),
        "{err}"
    );

    let no_vault = CodeMode::builder()
        .tools(tools(&ran))
        .driver(Arc::new(QuickJsWasmDriver::new()))
        .build()
        .unwrap();
    let err = no_vault
        .execute_durable(
            "return 1",
            opts(EventSink::none()),
            DurableOptions::new(AAD),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, DurableError::NoVault));
    assert!(err.to_string().contains("snapshot_vault"), "{err}");
}

#[tokio::test]
async fn a_program_that_waits_for_nothing_just_finishes() {
    let ran = Ran::default();
    let r = finished(
        code_mode(&ran)
            .execute_durable(
                "const x: number = 2;\nreturn x * (await external_fast({ m: 3 })).m;",
                opts(EventSink::none()),
                DurableOptions::new(AAD),
            )
            .await
            .unwrap(),
    );
    assert_eq!(r.result, Some(json!(6)));
}

/// Runs `code` durably, answering every waiting call with `Approve` at each pause, each
/// step on a new `CodeMode`; the result, the events and how many pauses.
async fn approving_every_pause(code: &str, ran: &Ran) -> (CodeModeResult, Vec<Event>, usize) {
    let (sink, events) = recorder();
    let mut step = code_mode(ran)
        .execute_durable(code, opts(sink.clone()), DurableOptions::new(AAD))
        .await
        .unwrap();
    let mut pauses = 0;
    loop {
        let p = match step {
            DurableOutcome::Finished(r) => return (r, events.lock().unwrap().clone(), pauses),
            DurableOutcome::Paused(p) => p,
        };
        pauses += 1;
        let answers = p
            .waiting
            .iter()
            .map(|w| (w.call_id, Answer::Approve))
            .collect();
        step = code_mode(ran)
            .resume(
                &p.sealed,
                answers,
                opts(sink.clone()),
                DurableOptions::new(AAD),
            )
            .await
            .unwrap();
    }
}

/// The same multiset of normalised events (calls that run concurrently may report in
/// another order when one of them waited for a person).
fn sorted(events: &[Event]) -> Vec<String> {
    let mut v: Vec<String> = normalised(events).iter().map(Value::to_string).collect();
    v.sort();
    v
}

#[tokio::test]
async fn a_corpus_of_paused_programs_ends_as_live_approvals() {
    let corpus = [
        (
            "inside Promise.all",
            "const r = await Promise.all([external_fast({ i: 1 }), external_refund({ order: 1 }), external_lookup({ s: 1 })]);\nconsole.log('all', r.length);\nreturn r;",
            1,
        ),
        (
            "two approvals at once",
            "const [a, b] = await Promise.all([external_refund({ order: 1 }), external_refund({ order: 2 })]);\nreturn [a, b];",
            1,
        ),
        (
            "fifty pauses in a loop",
            "let s = 0;\nfor (let i = 0; i < 50; i++) {\n  const r = await external_refund({ order: i });\n  s += r.refunded.order;\n  if (i % 10 === 0) console.log('at', i);\n}\nreturn s;",
            50,
        ),
        (
            "a heavy heap kept across",
            "const kept = new Map();\nfor (let i = 0; i < 40000; i++) kept.set(i, { id: i, name: 'row ' + i });\nconst r = await external_refund({ order: kept.size });\nreturn [kept.size, kept.get(39999).name, r.refunded.order];",
            1,
        ),
        (
            "an error after the pause",
            "await external_refund({ order: 3 });\nconst x: any = null;\nreturn x.field;",
            1,
        ),
    ];
    for (name, code, expected_pauses) in corpus {
        let ran = Ran::default();
        let (sink, events) = recorder();
        let live = code_mode(&ran)
            .execute(code, opts(sink).with_approver(Arc::new(ApproveAll)))
            .await;
        let live_events = events.lock().unwrap().clone();
        let mut live_ran = ran.lock().unwrap().clone();
        live_ran.sort();

        let ran = Ran::default();
        let (result, durable_events, pauses) = approving_every_pause(code, &ran).await;
        let mut durable_ran = ran.lock().unwrap().clone();
        durable_ran.sort();
        assert_eq!(result, live, "{name}");
        assert_eq!(pauses, expected_pauses, "{name}");
        assert_eq!(durable_ran, live_ran, "{name}: tool runs");
        assert_eq!(
            sorted(&durable_events),
            sorted(&live_events),
            "{name}: events"
        );
        let count = |events: &[Event], n: &str| events.iter().filter(|e| e.name() == n).count();
        assert_eq!(
            count(&durable_events, "code_mode:execution_paused"),
            pauses,
            "{name}"
        );
        assert_eq!(
            count(&durable_events, "code_mode:execution_resumed"),
            pauses,
            "{name}"
        );
        assert_eq!(
            count(&durable_events, "code_mode:approval_requested"),
            count(&live_events, "code_mode:approval_requested"),
            "{name}"
        );
    }
}
