//! The library on the real QuickJS driver: registration checks, skills as tools and from
//! code, events, stats, trust gating, selection, the prompt, and two conversations end to
//! end through the chat agent with a scripted model (the only stand-in: no model runs here).

mod common;

use std::sync::{Arc, Mutex};

use code_mode::{CodeMode, Event, EventSink, Tool, ToolContext, ToolError};
use code_mode_chat::{Agent, Chunk, Message, ScriptedLlm, Turn};
use code_mode_skills::{
    InMemoryStorage, Registration, SelectionMethod, SkillError, SkillLibrary, SkillStorage,
    TrustLevel, TrustPolicy, TrustStrategy, Vocabulary,
};
use futures::StreamExt;
use serde_json::{Value, json};

fn code_mode() -> CodeMode {
    let population = Tool::new(
        "population",
        "Population of a city.",
        json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}),
        |v, _| async move {
            let city = v["city"].as_str().unwrap_or_default().to_owned();
            Ok::<_, ToolError>(json!({"city": city, "millions": city.len() as f64 / 2.0}))
        },
    )
    .unwrap();
    CodeMode::builder()
        .tool(population)
        .driver(Arc::new(code_mode_isolate_quickjs::QuickJsDriver::new()))
        .build()
        .unwrap()
}

fn library(strategy: TrustStrategy, policy: TrustPolicy) -> SkillLibrary {
    SkillLibrary::builder(Arc::new(InMemoryStorage::new()))
        .trust_strategy(strategy)
        .trust_policy(policy)
        .build()
}

fn compare() -> Registration {
    Registration {
        name: "compare_cities".into(),
        description: "Compares the populations of two cities.".into(),
        code: "const [a, b] = await Promise.all([external_population({ city: input.a }), external_population({ city: input.b })]);\nreturn { bigger: a.millions >= b.millions ? input.a : input.b };".into(),
        input_schema: json!({"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "string"}}, "required": ["a", "b"]}),
        output_schema: json!({"type": "object", "properties": {"bigger": {"type": "string"}}, "required": ["bigger"]}),
        usage_hints: vec!["population comparisons".into()],
        ..Registration::default()
    }
}

fn recorder() -> (EventSink, Arc<Mutex<Vec<Event>>>) {
    let events: Arc<Mutex<Vec<Event>>> = Arc::default();
    let e = events.clone();
    (
        EventSink::from_fn(move |ev| e.lock().unwrap_or_else(|p| p.into_inner()).push(ev)),
        events,
    )
}

fn names(events: &Arc<Mutex<Vec<Event>>>) -> Vec<String> {
    events
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .map(|e| e.name().to_owned())
        .collect()
}

fn ctx(id: &str, events: EventSink) -> ToolContext {
    ToolContext {
        tool_call_id: Some(id.into()),
        events,
        ..ToolContext::default()
    }
}

/// The session's tool `name`.
fn session_tool(session: &code_mode_skills::SkillSession, name: &str) -> code_mode::Tool {
    session
        .tools
        .iter()
        .find(|t| t.name() == name)
        .cloned()
        .unwrap_or_else(|| panic!("no tool {name}"))
}

fn user(text: &str) -> Message {
    Message::User {
        content: text.into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_checks_every_field() {
    let lib = library(TrustStrategy::default(), TrustPolicy::default());
    let first = lib.register(compare()).await.unwrap();
    assert_eq!((first.version, first.trust), (1, TrustLevel::Untrusted));
    let invalid = |r: Registration| {
        let lib = lib.clone();
        async move { lib.register(r).await.unwrap_err() }
    };
    assert!(matches!(
        invalid(Registration {
            name: "../x".into(),
            ..compare()
        })
        .await,
        SkillError::InvalidName { .. }
    ));
    assert!(matches!(
        invalid(Registration {
            name: "external_x".into(),
            ..compare()
        })
        .await,
        SkillError::InvalidName { .. }
    ));
    let e = invalid(Registration {
        name: "broken".into(),
        code: "return (;".into(),
        ..compare()
    })
    .await;
    assert!(e.to_string().contains("does not parse"), "{e}");
    let e = invalid(Registration {
        name: "bad_schema".into(),
        input_schema: json!({"type": 12}),
        ..compare()
    })
    .await;
    assert!(matches!(e, SkillError::Invalid { .. }), "{e}");
    let e = invalid(Registration {
        name: "bad_json".into(),
        output_schema: json!("{not json"),
        ..compare()
    })
    .await;
    assert!(e.to_string().contains("outputSchema"), "{e}");
    let e = invalid(Registration {
        name: "huge".into(),
        code: "x;".repeat(40_000),
        ..compare()
    })
    .await;
    assert!(e.to_string().contains("above the limit"), "{e}");
    assert!(matches!(
        invalid(compare()).await,
        SkillError::AlreadyExists { version: 1, .. }
    ));
    // Schemas may come as JSON text (as TanStack's tool takes them).
    let texty = lib
        .register(Registration {
            name: "texty".into(),
            input_schema: json!("{\"type\": \"object\"}"),
            ..compare()
        })
        .await
        .unwrap();
    assert_eq!(texty.input_schema, json!({"type": "object"}));
    // A new version keeps the id and creation time, and starts its stats afresh.
    lib.storage()
        .record_run(
            "compare_cities",
            &code_mode_skills::RunRecord::now(true, 1.0),
            &TrustStrategy::default(),
        )
        .await
        .unwrap();
    let v2 = lib
        .register(Registration {
            replace: true,
            ..compare()
        })
        .await
        .unwrap();
    assert_eq!(
        (v2.version, v2.id.as_str(), v2.created_at.as_str()),
        (2, first.id.as_str(), first.created_at.as_str())
    );
    assert_eq!(v2.stats.runs, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_skill_tool_runs_with_events_and_stats() {
    let lib = library(TrustStrategy::default(), TrustPolicy::permissive());
    lib.register(compare()).await.unwrap();
    let cm = code_mode();
    let session = lib
        .session(&cm, &[user("which city has more people, compare them")])
        .await
        .unwrap();
    assert_eq!(session.selected.len(), 1);
    let tool = session
        .tools
        .iter()
        .find(|t| t.name() == "compare_cities")
        .expect("skill tool");
    assert!(tool.description().starts_with("[SKILL]"));
    let (sink, events) = recorder();
    let out = tool
        .call(json!({"a": "Oslo", "b": "Copenhagen"}), ctx("call_7", sink))
        .await
        .unwrap();
    assert_eq!(out, json!({"bigger": "Copenhagen"}));
    let mut n = names(&events);
    assert_eq!(
        n.first().map(String::as_str),
        Some("code_mode:snippet_call")
    );
    assert_eq!(
        n.last().map(String::as_str),
        Some("code_mode:snippet_result")
    );
    n.sort();
    assert_eq!(
        n,
        [
            "code_mode:external_call",
            "code_mode:external_call",
            "code_mode:external_result",
            "code_mode:external_result",
            "code_mode:snippet_call",
            "code_mode:snippet_result"
        ]
    );
    for e in events.lock().unwrap_or_else(|p| p.into_inner()).iter() {
        assert_eq!(e.value()["toolCallId"], json!("call_7"));
    }
    let stats = lib
        .storage()
        .get("compare_cities")
        .await
        .unwrap()
        .unwrap()
        .stats;
    assert_eq!((stats.runs, stats.successes), (1, 1));
    assert!(stats.last_duration_ms.unwrap_or(0.0) > 0.0);

    // Bad input is refused before the code runs: no run, no events.
    let (sink, events) = recorder();
    let err = tool
        .call(json!({"a": "Oslo"}), ctx("call_8", sink))
        .await
        .unwrap_err();
    assert!(err.message().contains("\"b\""), "{}", err.message());
    assert!(names(&events).is_empty());
    // A skill that throws is a failed run, with a skill_error event.
    lib.register(Registration {
        name: "flaky".into(),
        description: "Fails.".into(),
        code: "if (input.fail) { throw new RangeError('no data for ' + input.city); }\nreturn 1;"
            .into(),
        input_schema: json!({"type": "object"}),
        output_schema: json!({"type": "number"}),
        ..Registration::default()
    })
    .await
    .unwrap();
    let (sink, events) = recorder();
    let err = lib
        .run(
            &cm,
            "flaky",
            json!({"fail": true, "city": "Atlantis"}),
            &ctx("call_9", sink),
        )
        .await
        .unwrap_err();
    assert!(
        err.message()
            .contains("RangeError: no data for Atlantis (line 1 of skill flaky)"),
        "{}",
        err.message()
    );
    assert_eq!(
        names(&events),
        ["code_mode:snippet_call", "code_mode:snippet_error"]
    );
    let flaky = lib.storage().get("flaky").await.unwrap().unwrap();
    assert_eq!((flaky.stats.runs, flaky.stats.failures), (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skills_call_skills_and_recursion_is_bounded() {
    let lib = library(TrustStrategy::default(), TrustPolicy::default());
    lib.register(compare()).await.unwrap();
    lib.register(Registration {
        name: "biggest_of_three".into(),
        description: "The most populous of three cities.".into(),
        code: "const ab = await snippet_compare_cities({ a: input.a, b: input.b });\nreturn await snippet_compare_cities({ a: ab.bigger, b: input.c });".into(),
        input_schema: json!({"type": "object"}),
        output_schema: json!({"type": "object"}),
        ..Registration::default()
    })
    .await
    .unwrap();
    lib.register(Registration {
        name: "forever".into(),
        description: "Calls itself.".into(),
        code: "return await snippet_forever(input);".into(),
        input_schema: json!({"type": "object"}),
        output_schema: json!({}),
        ..Registration::default()
    })
    .await
    .unwrap();
    let cm = code_mode();
    let (sink, events) = recorder();
    let out = lib
        .run(
            &cm,
            "biggest_of_three",
            json!({"a": "Rome", "b": "Lima", "c": "Kinshasa"}),
            &ctx("c1", sink),
        )
        .await
        .unwrap();
    assert_eq!(out, json!({"bigger": "Kinshasa"}));
    let n = names(&events);
    assert_eq!(
        n.iter().filter(|e| *e == "code_mode:snippet_call").count(),
        3,
        "{n:?}"
    );
    assert_eq!(
        lib.storage()
            .get("compare_cities")
            .await
            .unwrap()
            .unwrap()
            .stats
            .runs,
        2
    );

    let err = lib
        .run(&cm, "forever", json!({}), &ToolContext::default())
        .await
        .unwrap_err();
    assert!(err.message().contains("levels deep"), "{}", err.message());
    let forever = lib.storage().get("forever").await.unwrap().unwrap();
    assert_eq!(
        forever.stats.failures,
        code_mode_skills::MAX_SKILL_DEPTH as u64
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn execute_typescript_sees_skills_registered_in_the_same_conversation() {
    let lib = library(TrustStrategy::default(), TrustPolicy::default());
    let cm = code_mode();
    let session = lib.session(&cm, &[user("hello")]).await.unwrap();
    assert!(session.selected.is_empty());
    let tool = |name: &str| session_tool(&session, name);
    let (sink, events) = recorder();
    let registered = tool("register_snippet")
        .call(serde_json::to_value(json!({
            "name": "compare_cities", "description": "Compares populations.",
            "code": compare().code, "inputSchema": compare().input_schema.to_string(), "outputSchema": compare().output_schema,
        })).unwrap(), ctx("call_r", sink))
        .await
        .unwrap();
    assert_eq!(registered["success"], json!(true));
    assert_eq!(names(&events), ["snippet:registered"]);
    let (sink, events) = recorder();
    let result = tool("execute_typescript")
        .call(json!({"typescriptCode": "const r = await snippet_compare_cities({ a: 'Paris', b: 'Lyon' });\nreturn r.bigger;"}), ctx("call_x", sink))
        .await
        .unwrap();
    assert_eq!(result["result"], json!("Paris"), "{result}");
    let n = names(&events);
    assert!(
        n.contains(&"code_mode:snippet_call".to_owned())
            && n.contains(&"code_mode:snippet_result".to_owned()),
        "{n:?}"
    );
    assert_eq!(
        n.first().map(String::as_str),
        Some("code_mode:execution_started")
    );
    assert_eq!(
        n.iter()
            .filter(|e| *e == "code_mode:execution_started")
            .count(),
        1,
        "nested runs add no start event: {n:?}"
    );
    // search and get
    let found = tool("search_snippets")
        .call(
            json!({"query": "populations compare"}),
            ToolContext::default(),
        )
        .await
        .unwrap();
    assert_eq!(found[0]["name"], json!("compare_cities"));
    assert_eq!(found[0]["callableFromCode"], json!(true));
    let got = tool("get_snippet")
        .call(
            json!({"name": "snippet_compare_cities"}),
            ToolContext::default(),
        )
        .await
        .unwrap();
    assert_eq!(got["version"], json!(1));
    let missing = tool("get_snippet")
        .call(json!({"name": "nope"}), ToolContext::default())
        .await
        .unwrap_err();
    assert!(missing.message().contains("not found"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trust_gates_direct_tools() {
    let lib = library(TrustStrategy::relaxed(), TrustPolicy::default());
    lib.register(compare()).await.unwrap();
    let cm = code_mode();
    let conversation = [user("compare the population of two cities")];
    let first = lib.session(&cm, &conversation).await.unwrap();
    assert_eq!(first.selected.len(), 1);
    assert!(
        first.tools.iter().all(|t| t.name() != "compare_cities"),
        "untrusted skills are not direct tools"
    );
    assert!(
        first
            .system_prompt
            .contains("declare function snippet_compare_cities(")
    );
    let exec = first
        .tools
        .iter()
        .find(|t| t.name() == "execute_typescript")
        .unwrap();
    for _ in 0..3 {
        let r = exec
            .call(json!({"typescriptCode": "return (await snippet_compare_cities({ a: 'Oslo', b: 'Bergen' })).bigger"}), ToolContext::default())
            .await
            .unwrap();
        assert_eq!(r["success"], json!(true), "{r}");
    }
    assert_eq!(
        lib.storage()
            .get("compare_cities")
            .await
            .unwrap()
            .unwrap()
            .trust,
        TrustLevel::Provisional
    );
    let second = lib.session(&cm, &conversation).await.unwrap();
    assert!(
        second.tools.iter().any(|t| t.name() == "compare_cities"),
        "a provisional skill is a direct tool"
    );
    assert!(
        second
            .system_prompt
            .contains("`compare_cities` [◐ provisional]")
    );
}

fn scripted(turns: Vec<Turn>) -> Arc<ScriptedLlm> {
    Arc::new(ScriptedLlm::new(turns))
}

fn text(t: &str) -> Turn {
    ScriptedLlm::text(t)
}

fn call(id: &str, name: &str, args: Value) -> Turn {
    ScriptedLlm::tool_call(id, name, &args)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn selection_uses_the_model_and_falls_back_locally() {
    let storage = Arc::new(InMemoryStorage::new());
    let base = SkillLibrary::builder(storage.clone()).build();
    base.register(compare()).await.unwrap();
    for (name, description) in [
        ("weather_report", "Weather report for a city."),
        ("top_repos", "Top GitHub repositories."),
    ] {
        base.register(Registration {
            name: name.into(),
            description: description.into(),
            ..compare()
        })
        .await
        .unwrap();
    }
    let convo = [user("what's the weather like in Oslo?")];
    let with = |llm: Arc<ScriptedLlm>| {
        SkillLibrary::builder(storage.clone())
            .selector(llm)
            .max_skills_in_context(2)
            .build()
    };

    let llm = scripted(vec![text(
        "```json\n[\"top_repos\", \"no_such_skill\", \"top_repos\", \"weather_report\", \"compare_cities\"]\n```",
    )]);
    let s = with(llm.clone()).select(&convo).await;
    assert_eq!(s.method, SelectionMethod::Model);
    let picked: Vec<&str> = s.skills.iter().map(|k| k.name.as_str()).collect();
    assert_eq!(
        picked,
        ["top_repos", "weather_report"],
        "unknown and repeated names dropped, cap applied"
    );
    let prompt = match &llm.requests()[0].messages[0] {
        Message::User { content } => content.clone(),
        other => panic!("{other:?}"),
    };
    assert!(
        prompt.contains("user: what's the weather like in Oslo?")
            && prompt.contains("- weather_report: Weather report for a city."),
        "{prompt}"
    );

    let s = with(scripted(vec![text("I think the weather one.")]))
        .select(&convo)
        .await;
    assert_eq!(s.method, SelectionMethod::Lexical);
    assert!(
        s.note
            .as_deref()
            .unwrap_or_default()
            .contains("no JSON array")
    );
    assert_eq!(
        s.skills.first().map(|k| k.name.as_str()),
        Some("weather_report")
    );

    let s = with(scripted(vec![])).select(&convo).await;
    assert_eq!(
        s.method,
        SelectionMethod::Lexical,
        "a failing model falls back"
    );
    let s = base.select(&convo).await;
    assert_eq!(
        (s.method, s.skills[0].name.as_str()),
        (SelectionMethod::Lexical, "weather_report")
    );
    assert_eq!(base.select(&[]).await.method, SelectionMethod::None);
}

#[test]
fn the_prompt_section_is_stable() {
    let mut tool_skill = common::skill("compare_cities", 2);
    tool_skill.trust = TrustLevel::Trusted;
    let code_skill = common::skill("weather_report", 1);
    let policy = TrustPolicy::default();
    let selected = [tool_skill, code_skill];
    // TanStack AI 0.3.x's names: the text older clients' models were shown, unchanged.
    let skills = code_mode_skills::library_section_in(&selected, 7, &policy, Vocabulary::Skills);
    insta::assert_snapshot!(skills);
    insta::assert_snapshot!(
        "empty",
        code_mode_skills::library_section_in(&[], 0, &policy, Vocabulary::Skills)
    );
    // Current TanStack AI's names, the default.
    let snippets = code_mode_skills::library_section(&selected, 7, &policy);
    insta::assert_snapshot!("snippets", snippets);
    insta::assert_snapshot!(
        "snippets_empty",
        code_mode_skills::library_section(&[], 0, &policy)
    );
    for name in ["skill_", "search_skills", "get_skill", "register_skill"] {
        assert!(!snippets.contains(name), "{name} in the snippets section");
    }
}

fn chunk_names(chunks: &[Chunk]) -> Vec<String> {
    chunks
        .iter()
        .map(|c| match c {
            Chunk::Custom { name, .. } => name.clone(),
            other => other.label().to_owned(),
        })
        .collect()
}

/// Conversation 1: the model writes code, then saves it as a skill. Conversation 2: the
/// selector picks the skill, the model calls it from code three times, and its trust rises
/// (relaxed strategy). Conversation 3: the skill is now a direct tool and the model calls it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_skill_saved_in_one_conversation_serves_the_next() {
    let storage = Arc::new(InMemoryStorage::new());
    let cm = code_mode();
    let reg = compare();
    let run_agent = |lib: SkillLibrary, llm: Arc<ScriptedLlm>, conversation: Vec<Message>| {
        let cm = cm.clone();
        async move {
            let session = lib.session(&cm, &conversation).await.unwrap();
            let agent = Agent::new(llm, session.tools, vec![session.system_prompt], 8);
            let chunks: Vec<Chunk> = agent.run("thread", conversation).collect().await;
            (session.selected, chunks)
        }
    };

    // 1. Register.
    let model = scripted(vec![
        call(
            "call_1",
            "register_snippet",
            json!({
                "name": reg.name, "description": reg.description, "code": reg.code,
                "inputSchema": reg.input_schema, "outputSchema": reg.output_schema, "usageHints": reg.usage_hints,
            }),
        ),
        text("Saved compare_cities."),
    ]);
    let lib = SkillLibrary::builder(storage.clone())
        .trust_strategy(TrustStrategy::relaxed())
        .build();
    let (_, chunks) = run_agent(
        lib,
        model,
        vec![user("compare Oslo and Lima, and keep that for later")],
    )
    .await;
    let n = chunk_names(&chunks);
    assert!(n.contains(&"snippet:registered".to_owned()), "{n:?}");
    assert_eq!(n.last().map(String::as_str), Some("RUN_FINISHED"));
    assert!(storage.get("compare_cities").await.unwrap().is_some());

    // 2. Selected by the model; called from code three times.
    let code =
        "const r = await snippet_compare_cities({ a: 'Oslo', b: 'Lima' });\nreturn r.bigger;";
    let mut replies = vec![text("[\"compare_cities\"]")];
    for i in 0..3 {
        replies.push(call(
            &format!("call_c{i}"),
            "execute_typescript",
            json!({"typescriptCode": code}),
        ));
    }
    replies.push(text("Lima is bigger."));
    let model = scripted(replies);
    let lib = SkillLibrary::builder(storage.clone())
        .trust_strategy(TrustStrategy::relaxed())
        .selector(model.clone())
        .build();
    let (selected, chunks) = run_agent(
        lib,
        model.clone(),
        vec![user("which is bigger, Oslo or Lima? compare populations")],
    )
    .await;
    assert_eq!(
        selected.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
        ["compare_cities"]
    );
    let n = chunk_names(&chunks);
    assert_eq!(
        n.iter()
            .filter(|c| *c == "code_mode:snippet_result")
            .count(),
        3,
        "{n:?}"
    );
    let second_request = model.requests()[1].clone();
    assert!(
        second_request
            .system
            .iter()
            .any(|s| s.contains("snippet_compare_cities")),
        "the prompt declares the skill"
    );
    assert!(
        second_request
            .tools
            .iter()
            .all(|t| t.name != "compare_cities"),
        "not a direct tool while untrusted"
    );
    let skill = storage.get("compare_cities").await.unwrap().unwrap();
    assert_eq!(
        (skill.stats.runs, skill.trust),
        (3, TrustLevel::Provisional)
    );

    // 3. Now a direct tool.
    let model = scripted(vec![
        text("[\"compare_cities\"]"),
        call(
            "call_d",
            "compare_cities",
            json!({"a": "Rome", "b": "Lima"}),
        ),
        text("Rome is bigger."),
    ]);
    let lib = SkillLibrary::builder(storage.clone())
        .trust_strategy(TrustStrategy::relaxed())
        .selector(model.clone())
        .build();
    let (_, chunks) = run_agent(
        lib,
        model.clone(),
        vec![user("compare the populations of Rome and Lima")],
    )
    .await;
    let n = chunk_names(&chunks);
    assert!(
        n.contains(&"code_mode:snippet_call".to_owned())
            && n.contains(&"TOOL_CALL_RESULT".to_owned()),
        "{n:?}"
    );
    let result = chunks.iter().find_map(|c| match c {
        Chunk::ToolCallResult { content, .. } => Some(content.clone()),
        _ => None,
    });
    assert!(result.unwrap_or_default().contains("Rome"));
    assert_eq!(
        storage
            .get("compare_cities")
            .await
            .unwrap()
            .unwrap()
            .stats
            .runs,
        4
    );
}

/// A skill the application marks with `require_approval` asks before each call from a
/// program, through the approver of the execution that calls it; a denial is the program's
/// catchable `ApprovalDeniedError`, and an approved call runs the skill once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skills_marked_for_approval_ask_first() {
    use code_mode::{ApprovalChannel, ApprovalDecision, Approver};
    let lib = SkillLibrary::builder(Arc::new(InMemoryStorage::new()))
        .require_approval("compare_cities", code_mode::ApprovalPolicy::Always)
        .build();
    let cm = code_mode();
    lib.register(compare()).await.unwrap();
    let session = lib.session(&cm, &[user("hello")]).await.unwrap();
    let execute = session
        .tools
        .iter()
        .find(|t| t.name() == "execute_typescript")
        .cloned()
        .unwrap();
    let (approver, mut pending) = ApprovalChannel::new();
    let approver: Arc<dyn Approver> = Arc::new(approver);
    let program = json!({"typescriptCode": "const out = [];\nfor (const b of ['Lyon', 'Nice']) {\n  try { out.push((await snippet_compare_cities({ a: 'Paris', b })).bigger); } catch (e) { out.push(e.name + ': ' + e.message); }\n}\nreturn out;"});
    let (sink, events) = recorder();
    let ctx = ToolContext {
        approver: Some(approver),
        ..ctx("call_s", sink)
    };
    let run = tokio::spawn(async move { execute.call(program, ctx).await });
    let first = pending.recv().await.unwrap();
    assert_eq!(first.request().function, "snippet_compare_cities");
    assert_eq!(first.request().input, json!({"a": "Paris", "b": "Lyon"}));
    first.answer(ApprovalDecision::Approve);
    let second = pending.recv().await.unwrap();
    assert_eq!(second.request().input["b"], "Nice");
    second.answer(ApprovalDecision::deny("not Nice"));
    let result = run.await.unwrap().unwrap();
    assert_eq!(
        result["result"],
        json!([
            "Paris",
            "ApprovalDeniedError: snippet_compare_cities was not approved: not Nice"
        ]),
        "{result}"
    );
    let n = names(&events);
    assert_eq!(
        n.iter().filter(|e| *e == "code_mode:snippet_call").count(),
        1,
        "the denied call never ran: {n:?}"
    );
    assert_eq!(
        n.iter()
            .filter(|e| *e == "code_mode:approval_requested")
            .count(),
        2,
        "{n:?}"
    );
}

/// Each vocabulary, end to end through a session: the management tools' names, the
/// sandbox functions' prefix, the events' names and their payload field, and the name
/// checks, for current TanStack clients (`snippets`) and 0.3.x clients (`skills`). One
/// library stored under one vocabulary is served under the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_vocabulary_names_tools_functions_and_events_its_own_way() {
    let storage: Arc<dyn SkillStorage> = Arc::new(InMemoryStorage::new());
    let cm = code_mode();
    for (vocabulary, noun, other) in [
        (Vocabulary::Snippets, "snippet", "skill"),
        (Vocabulary::Skills, "skill", "snippet"),
    ] {
        let lib = SkillLibrary::builder(storage.clone())
            .vocabulary(vocabulary)
            .build();
        let session = lib.session(&cm, &[user("hello")]).await.unwrap();
        let tool_names: Vec<&str> = session.tools.iter().map(|t| t.name()).collect();
        for expected in [
            vocabulary.search_tool(),
            vocabulary.get_tool(),
            vocabulary.register_tool(),
        ] {
            assert!(
                tool_names.contains(&expected),
                "{vocabulary:?}: {tool_names:?}"
            );
        }
        assert!(
            !tool_names.iter().any(|n| n.contains(other)),
            "{vocabulary:?}: {tool_names:?}"
        );
        assert!(
            session
                .system_prompt
                .contains(&format!("`{noun}_<name>(input)`"))
        );
        let tool = |name: &str| session_tool(&session, name);
        // Saved in the first pass; the second replaces it, under the other vocabulary.
        let (sink, events) = recorder();
        let mut registration = json!({
            "name": "compare_cities", "description": "Compares populations.",
            "code": compare().code, "inputSchema": compare().input_schema, "outputSchema": compare().output_schema,
        });
        if vocabulary == Vocabulary::Skills {
            registration["replace"] = json!(true);
        }
        let saved = tool(vocabulary.register_tool())
            .call(registration, ctx("call_r", sink))
            .await
            .unwrap();
        assert!(
            saved["message"]
                .as_str()
                .unwrap_or_default()
                .contains(&format!("{noun}_compare_cities(input)")),
            "{saved}"
        );
        assert_eq!(names(&events), [vocabulary.registered_event()]);
        let (sink, events) = recorder();
        let program = format!(
            "const r = await {noun}_compare_cities({{ a: 'Paris', b: 'Lyon' }});\nreturn [r.bigger, typeof {other}_compare_cities];"
        );
        let result = tool("execute_typescript")
            .call(json!({ "typescriptCode": program }), ctx("call_x", sink))
            .await
            .unwrap();
        assert_eq!(result["result"], json!(["Paris", "undefined"]), "{result}");
        let seen = events.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let call = seen
            .iter()
            .find(|e| e.name() == vocabulary.call_event())
            .unwrap_or_else(|| panic!("no {} event", vocabulary.call_event()));
        assert_eq!(call.value()[noun], json!("compare_cities"));
        assert!(call.value().get(other).is_none());
        assert!(seen.iter().any(|e| e.name() == vocabulary.result_event()));
        assert!(
            !seen
                .iter()
                .any(|e| e.name().contains(&format!(":{other}_")))
        );
        // Either vocabulary's prefix and tool names stay reserved.
        for reserved in ["skill_x", "snippet_x", "register_skill", "search_snippets"] {
            let refused = lib
                .register(Registration {
                    name: reserved.into(),
                    ..compare()
                })
                .await;
            assert!(refused.is_err(), "{reserved} was accepted");
        }
    }
}
