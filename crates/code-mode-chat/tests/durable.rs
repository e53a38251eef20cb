//! Durable approvals in a chat: a program waiting for approval is sealed into the store and
//! the response ends; the agent (and its `CodeMode`) is dropped, as in a restart; a new
//! agent gets the follow-up conversation with the client's answer and continues the same
//! execution (the approved call runs once, now), then the model's next turn.

use std::sync::{Arc, Mutex};

use code_mode::durable::{SnapshotKey, SnapshotVault};
use code_mode::{ApprovalPolicy, CodeMode, Tool, ToolError};
use code_mode_chat::{
    Agent, Chunk, DurableApprovals, MemoryPausedStore, Message, PausedStore, ScriptedLlm, ToolCall,
};
use futures::StreamExt;
use serde_json::{Value, json};

const PROGRAM: &str = "const o: any = await external_order({ id: 7 });\nconsole.log('order', o.id);\nconst r: any = await external_refund({ order: o.id, amount: 30 });\nconsole.log('refunded');\nreturn { refunded: r.amount };";

type Ran = Arc<Mutex<Vec<(String, Value)>>>;

fn runs(r: &Ran) -> Vec<(String, Value)> {
    r.lock().unwrap().clone()
}

fn one(name: &str, input: Value) -> (String, Value) {
    (name.to_owned(), input)
}

/// The QuickJS-WASM driver, when the build has it (`cargo xtask test` enables it).
fn durable_driver() -> Option<Arc<dyn code_mode::IsolateDriver>> {
    if !code_mode_drivers::enabled_drivers().contains(&"quickjs-wasm") {
        eprintln!("skipped: the quickjs-wasm driver is not enabled in this build");
        return None;
    }
    Some(
        code_mode_drivers::driver_by_name("quickjs-wasm", &Default::default())
            .unwrap_or_else(|e| panic!("{e}")),
    )
}

/// The tests' Code Mode, its vault holding `key` (the tests' own is `[5; 32]`).
fn code_mode_keyed(
    driver: Arc<dyn code_mode::IsolateDriver>,
    ran: &Ran,
    key: [u8; 32],
) -> CodeMode {
    let log = |name: &'static str| {
        let ran = ran.clone();
        move |input: Value, _| {
            ran.lock().unwrap().push((name.to_owned(), input.clone()));
            async move { Ok::<_, ToolError>(input) }
        }
    };
    let order = Tool::new(
        "order",
        "Reads an order.",
        json!({"type": "object"}),
        log("order"),
    )
    .unwrap();
    let refund = Tool::new(
        "refund",
        "Refunds an order.",
        json!({"type": "object"}),
        log("refund"),
    )
    .unwrap()
    .require_approval(ApprovalPolicy::Always);
    CodeMode::builder()
        .tools([order, refund])
        .driver(driver)
        .snapshot_vault(SnapshotVault::new(SnapshotKey::new(1, key)))
        .build()
        .unwrap()
}

/// An agent (as one server process) over `store`, with the model's `turns`.
fn agent(
    driver: Arc<dyn code_mode::IsolateDriver>,
    ran: &Ran,
    store: Arc<dyn PausedStore>,
    turns: Vec<code_mode_chat::Turn>,
) -> (Agent, Arc<ScriptedLlm>) {
    agent_keyed(driver, ran, store, turns, [5; 32])
}

/// [`agent`] whose vault holds `key`.
fn agent_keyed(
    driver: Arc<dyn code_mode::IsolateDriver>,
    ran: &Ran,
    store: Arc<dyn PausedStore>,
    turns: Vec<code_mode_chat::Turn>,
    key: [u8; 32],
) -> (Agent, Arc<ScriptedLlm>) {
    let cm = code_mode_keyed(driver, ran, key);
    let llm = Arc::new(ScriptedLlm::new(turns));
    let agent = Agent::new(
        llm.clone(),
        cm.as_tools(),
        vec![cm.system_prompt().to_owned()],
        4,
    )
    .with_durable_approvals(DurableApprovals::new(cm, store));
    (agent, llm)
}

fn call() -> ToolCall {
    ToolCall {
        id: "call_9".into(),
        name: "execute_typescript".into(),
        arguments: json!({"typescriptCode": PROGRAM}).to_string(),
    }
}

/// The conversation the client sends back after its user answered.
fn follow_up(approved: bool) -> Vec<Message> {
    vec![
        Message::User {
            content: "refund order 7".into(),
        },
        Message::Assistant {
            content: String::new(),
            tool_calls: vec![call()],
        },
        Message::Tool {
            tool_call_id: "call_9".into(),
            content: json!({"approved": approved, "pendingExecution": true}).to_string(),
        },
    ]
}

fn customs(chunks: &[Chunk]) -> Vec<(String, Value)> {
    chunks
        .iter()
        .filter_map(|c| match c {
            Chunk::Custom { name, value, .. } => Some((name.clone(), value.clone())),
            _ => None,
        })
        .collect()
}

fn result_of(chunks: &[Chunk]) -> Value {
    let content = chunks
        .iter()
        .find_map(|c| match c {
            Chunk::ToolCallResult { content, .. } => Some(content.clone()),
            _ => None,
        })
        .expect("a tool result");
    serde_json::from_str(&content).unwrap()
}

/// First request: the program runs up to the approval and the response ends.
async fn first_request(
    driver: &Arc<dyn code_mode::IsolateDriver>,
    ran: &Ran,
    store: &Arc<dyn PausedStore>,
) {
    let (agent, _) = agent(
        driver.clone(),
        ran,
        store.clone(),
        vec![ScriptedLlm::tool_call(
            "call_9",
            "execute_typescript",
            &json!({"typescriptCode": PROGRAM}),
        )],
    );
    let chunks: Vec<Chunk> = agent
        .run_as(
            "thread_1",
            "run_1",
            vec![Message::User {
                content: "refund order 7".into(),
            }],
        )
        .collect()
        .await;
    let events = customs(&chunks);
    let asked = events
        .iter()
        .find(|(n, _)| n == "approval-requested")
        .map(|(_, v)| v.clone())
        .expect("the client is asked");
    assert_eq!(asked["toolCallId"], json!("call_9"));
    assert_eq!(asked["input"]["function"], json!("external_refund"));
    assert_eq!(asked["input"]["input"], json!({"order": 7, "amount": 30}));
    assert_eq!(asked["approval"]["needsApproval"], json!(true));
    assert!(
        events
            .iter()
            .any(|(n, _)| n == "code_mode:execution_paused")
    );
    assert!(
        !events
            .iter()
            .any(|(n, _)| n == "code_mode:execution_finished")
    );
    assert!(
        matches!(chunks.last(), Some(Chunk::RunFinished { .. })),
        "{chunks:?}"
    );
    assert!(
        !chunks
            .iter()
            .any(|c| matches!(c, Chunk::ToolCallResult { .. }))
    );
    assert_eq!(runs(ran), vec![one("order", json!({"id": 7}))]);
}

#[tokio::test]
async fn an_approval_answered_after_a_restart_continues_the_same_program() {
    let Some(driver) = durable_driver() else {
        return;
    };
    let ran = Ran::default();
    let store: Arc<dyn PausedStore> = Arc::new(MemoryPausedStore::default());
    first_request(&driver, &ran, &store).await;

    // A restart: a new agent, a new CodeMode; only the store and the key remain.
    let (agent, llm) = agent(
        driver,
        &ran,
        store.clone(),
        vec![ScriptedLlm::text("Refunded 30.")],
    );
    let chunks: Vec<Chunk> = agent
        .run_as("thread_1", "run_2", follow_up(true))
        .collect()
        .await;
    let events = customs(&chunks);
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        vec![
            "code_mode:execution_resumed",
            "code_mode:approval_resolved",
            "code_mode:external_call",
            "code_mode:external_result",
            "code_mode:console",
            "code_mode:execution_finished",
        ]
    );
    assert_eq!(events[4].1["message"], json!("refunded"));
    let result = result_of(&chunks);
    assert_eq!(result["success"], json!(true), "{result}");
    assert_eq!(result["result"], json!({"refunded": 30}));
    assert_eq!(result["logs"], json!(["order 7", "refunded"]));
    // Each tool ran once: the order before the pause, the refund after the restart.
    assert_eq!(
        runs(&ran),
        vec![
            one("order", json!({"id": 7})),
            one("refund", json!({"order": 7, "amount": 30}))
        ]
    );
    // The model sees the program's result, not the approval answer.
    let seen = &llm.requests()[0].messages;
    let Some(Message::Tool { content, .. }) = seen.last() else {
        panic!("{seen:?}")
    };
    assert_eq!(serde_json::from_str::<Value>(content).unwrap(), result);
    let text: String = chunks
        .iter()
        .filter_map(|c| match c {
            Chunk::TextMessageContent { delta, .. } => Some(delta.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(text, "Refunded 30.");
    // Single use: the same answer again runs nothing, and the model is told it was
    // answered and used, never to run the program again (before, it read "run it again if
    // it is still needed", an invitation to refund twice).
    let (agent, llm) = agent_again(&ran, store).await;
    let chunks: Vec<Chunk> = agent
        .run_as("thread_1", "run_3", follow_up(true))
        .collect()
        .await;
    let said = last_tool_message(&llm).unwrap_or_default();
    assert!(
        said.contains("already answered") && said.contains("Do not run the program again"),
        "{said} {chunks:?}"
    );
    assert!(!said.contains("run it again if"), "{said}");
    assert_eq!(ran.lock().unwrap().len(), 2);
}

async fn agent_again(ran: &Ran, store: Arc<dyn PausedStore>) -> (Agent, Arc<ScriptedLlm>) {
    let driver = durable_driver().unwrap();
    agent(driver, ran, store, vec![ScriptedLlm::text("ok")])
}

#[tokio::test]
async fn a_denial_after_a_restart_reaches_the_program() {
    let Some(driver) = durable_driver() else {
        return;
    };
    let ran = Ran::default();
    let store: Arc<dyn PausedStore> = Arc::new(MemoryPausedStore::default());
    first_request(&driver, &ran, &store).await;
    let (agent, _) = agent(
        driver,
        &ran,
        store,
        vec![ScriptedLlm::text("Not refunded.")],
    );
    let chunks: Vec<Chunk> = agent
        .run_as("thread_1", "run_2", follow_up(false))
        .collect()
        .await;
    let result = result_of(&chunks);
    assert_eq!(result["success"], json!(false));
    assert_eq!(result["error"]["name"], json!("ApprovalDeniedError"));
    assert_eq!(
        result["error"]["message"],
        json!("external_refund was not approved: denied in the chat")
    );
    assert_eq!(runs(&ran), vec![one("order", json!({"id": 7}))]);
    let resolved = customs(&chunks)
        .into_iter()
        .find(|(n, _)| n == "code_mode:approval_resolved")
        .unwrap();
    assert_eq!(resolved.1["outcome"], json!("denied"));
}

#[tokio::test]
async fn an_answer_without_a_store_entry_is_a_clear_error_for_the_model() {
    let Some(driver) = durable_driver() else {
        return;
    };
    let ran = Ran::default();
    let store: Arc<dyn PausedStore> = Arc::new(MemoryPausedStore::default());
    let (agent, llm) = agent(driver, &ran, store, vec![ScriptedLlm::text("Sorry.")]);
    let chunks: Vec<Chunk> = agent
        .run_as("thread_1", "run_2", follow_up(true))
        .collect()
        .await;
    assert!(
        !chunks
            .iter()
            .any(|c| matches!(c, Chunk::ToolCallResult { .. }))
    );
    assert_eq!(told(&llm), Some(true), "{chunks:?}");
    assert!(ran.lock().unwrap().is_empty());
}

/// An answer that cannot open the program (the server restarted with another key) tells the
/// model so and keeps the program: once the key is right again, the same answer resumes it,
/// and nothing before the pause runs twice. (The entry was taken, then lost, before.)
#[tokio::test]
async fn an_answer_opened_with_the_wrong_key_keeps_the_program() {
    let Some(driver) = durable_driver() else {
        return;
    };
    let ran = Ran::default();
    let store: Arc<dyn PausedStore> = Arc::new(MemoryPausedStore::default());
    first_request(&driver, &ran, &store).await;
    let (wrong, llm) = agent_keyed(
        driver.clone(),
        &ran,
        store.clone(),
        vec![ScriptedLlm::text("Trouble.")],
        [6; 32],
    );
    let chunks: Vec<Chunk> = wrong
        .run_as("thread_1", "run_2", follow_up(true))
        .collect()
        .await;
    let result = result_of(&chunks);
    let said = result.to_string();
    assert!(
        said.contains("could not be resumed") && said.contains("it is kept"),
        "{said}"
    );
    assert!(!said.contains("run it again"), "{said}");
    assert_eq!(llm.requests().len(), 1);
    assert_eq!(runs(&ran), vec![one("order", json!({"id": 7}))]);
    let (right, _) = agent(driver, &ran, store, vec![ScriptedLlm::text("Refunded 30.")]);
    let chunks: Vec<Chunk> = right
        .run_as("thread_1", "run_3", follow_up(true))
        .collect()
        .await;
    let result = result_of(&chunks);
    assert_eq!(result["result"], json!({"refunded": 30}), "{result}");
    assert_eq!(
        runs(&ran),
        vec![
            one("order", json!({"id": 7})),
            one("refund", json!({"order": 7, "amount": 30}))
        ]
    );
}

/// The last tool message of the model's first request.
fn last_tool_message(llm: &ScriptedLlm) -> Option<String> {
    let request = llm.requests().into_iter().next()?;
    match request.messages.last() {
        Some(Message::Tool { content, .. }) => Some(content.clone()),
        _ => None,
    }
}

/// Whether the model was told the paused program is gone (`None`: it was not asked).
fn told(llm: &ScriptedLlm) -> Option<bool> {
    let request = llm.requests().into_iter().next()?;
    let Some(Message::Tool { content, .. }) = request.messages.last() else {
        return Some(false);
    };
    Some(content.contains("no longer running"))
}
