//! Approvals for clients on MCP protocol 2026-07-28 (multi round-trip requests) with the
//! execution sealed between rounds: the call answers `input_required` with one approval
//! form per waiting call and the sealed execution as `requestState`; the client's retry
//! resumes it, also on another server instance (a restart), with nothing kept in between.

use std::sync::{Arc, Mutex};

use code_mode::durable::{SnapshotKey, SnapshotVault};
use code_mode::{ApprovalPolicy, CodeMode, Tool, ToolError};
use code_mode_mcp::CodeModeServer;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, ClientCapabilities, ElicitRequestParams, ElicitResult,
    ElicitationAction, GetTaskParams, Implementation, InitializeRequestParams, InitializeResult,
    InputRequest, ProtocolVersion, ServerCapabilities, TaskPayload, UpdateTaskParams,
};
use rmcp::service::{RequestContext, RoleClient, RoleServer, RunningService, serve_directly};
use rmcp::{ClientHandler, ErrorData};
use serde_json::{Value, json};

type Ran = Arc<Mutex<Vec<Value>>>;

fn server(ran: &Ran) -> Option<CodeModeServer> {
    if !code_mode_drivers::enabled_drivers().contains(&"quickjs-wasm") {
        eprintln!("skipped: the quickjs-wasm driver is not enabled in this build");
        return None;
    }
    let log = ran.clone();
    let refund = Tool::new(
        "refund",
        "Refunds an order.",
        json!({"type": "object", "properties": {"order": {"type": "integer"}}, "required": ["order"]}),
        move |input: Value, _| {
            log.lock().unwrap().push(input.clone());
            async move { Ok::<_, ToolError>(json!({"refunded": input["order"]})) }
        },
    )
    .unwrap()
    .require_approval(ApprovalPolicy::Always);
    let server = CodeModeServer::new(vec![refund], None, |tools| {
        let driver = code_mode_drivers::driver_by_name("quickjs-wasm", &Default::default())
            .map_err(|e| e.to_string())?;
        CodeMode::builder()
            .tools(tools)
            .driver(driver)
            .snapshot_vault(SnapshotVault::new(SnapshotKey::new(4, [3; 32])))
            .build()
            .map_err(|e| e.to_string())
    })
    .unwrap();
    Some(server)
}

/// Answers approval forms: `approve` for order 1 and 3 (order 3 with an edit to 30), a
/// denial with a reason for the others; records each question.
#[derive(Clone, Default)]
struct Person {
    questions: Arc<Mutex<Vec<String>>>,
    /// Declares the tasks extension.
    tasks: bool,
}

impl ClientHandler for Person {
    fn get_info(&self) -> rmcp::model::ClientConfig {
        let capabilities = ClientCapabilities::builder().enable_elicitation();
        let capabilities = if self.tasks {
            capabilities.enable_tasks().build()
        } else {
            capabilities.build()
        };
        rmcp::model::ClientConfig::new(
            capabilities,
            Implementation::new("durable-test-client", "1.0.0"),
        )
    }

    async fn create_elicitation(
        &self,
        request: ElicitRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<ElicitResult, ErrorData> {
        let ElicitRequestParams::FormElicitationParams { message, .. } = request else {
            return Err(ErrorData::invalid_params("not a form", None));
        };
        self.questions.lock().unwrap().push(message.clone());
        let content = if message.contains("{\"order\":1}") {
            json!({"approve": true})
        } else if message.contains("{\"order\":3}") {
            json!({"approve": true, "input": "{\"order\": 30}"})
        } else {
            json!({"approve": false, "reason": "not this one"})
        };
        Ok(ElicitResult::new(ElicitationAction::Accept).with_content(content))
    }
}

fn connect(
    server: CodeModeServer,
    person: Person,
    protocol: ProtocolVersion,
) -> RunningService<RoleClient, Person> {
    connect_with(
        server,
        person,
        protocol,
        ClientCapabilities::builder().enable_elicitation().build(),
    )
}

fn connect_with(
    server: CodeModeServer,
    person: Person,
    protocol: ProtocolVersion,
    capabilities: ClientCapabilities,
) -> RunningService<RoleClient, Person> {
    let (server_io, client_io) = tokio::io::duplex(1 << 20);
    let client_info = InitializeRequestParams::new(
        capabilities,
        Implementation::new("durable-test-client", "1.0.0"),
    )
    .with_protocol_version(protocol.clone());
    let mut server_info =
        InitializeResult::new(ServerCapabilities::builder().enable_tools().build());
    server_info.protocol_version = protocol;
    tokio::spawn(async move {
        let running =
            serve_directly::<RoleServer, _, _, _, _>(server, server_io, Some(client_info));
        let _ = running.waiting().await;
    });
    serve_directly::<RoleClient, _, _, _, _>(person, client_io, Some(server_info.into()))
}

fn execute(code: &str) -> CallToolRequestParams {
    CallToolRequestParams::new("execute_typescript").with_arguments(
        json!({"typescriptCode": code})
            .as_object()
            .cloned()
            .unwrap_or_default(),
    )
}

const PROGRAM: &str = "const out = [];\nfor (const order of [1, 2, 3]) {\n  try { out.push(await external_refund({ order })); } catch (e) { out.push([e.name, e.message]); }\n}\nreturn out;";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approvals_travel_as_input_required_rounds() {
    let ran = Ran::default();
    let Some(server) = server(&ran) else {
        return;
    };
    let person = Person::default();
    let client = connect(server, person.clone(), ProtocolVersion::V_2026_07_28);
    // rmcp's client answers each round's forms through `Person` and calls again.
    let result = client.call_tool(execute(PROGRAM)).await.unwrap();
    let structured = result.structured_content.clone().unwrap_or_default();
    assert_eq!(
        structured["result"],
        json!([
            {"refunded": 1},
            ["ApprovalDeniedError", "external_refund was not approved: not this one"],
            {"refunded": 30}
        ]),
        "{structured}"
    );
    let questions = person.questions.lock().unwrap().clone();
    assert_eq!(questions.len(), 3, "{questions:?}");
    assert!(questions[0].contains("external_refund"), "{}", questions[0]);
    assert_eq!(
        *ran.lock().unwrap(),
        vec![json!({"order": 1}), json!({"order": 30})]
    );
    let _ = client.cancel().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_state_resumes_on_another_server_and_only_as_issued() {
    let ran = Ran::default();
    let Some(first) = server(&ran) else {
        return;
    };
    let client = connect(first, Person::default(), ProtocolVersion::V_2026_07_28);
    let code = "const r = await external_refund({ order: 1 });\nreturn r;";
    let CallToolResponse::InputRequired(asked) =
        client.call_tool_once(execute(code)).await.unwrap()
    else {
        panic!("expected input_required")
    };
    let _ = client.cancel().await;
    let state = asked.request_state.clone().unwrap();
    assert!(state.starts_with("cm1."), "{state}");
    let requests = asked.input_requests.clone().unwrap();
    let (key, request) = requests.iter().next().unwrap();
    assert!(key.starts_with("approve-"), "{key}");
    assert!(matches!(request, InputRequest::Elicitation(_)));
    assert!(ran.lock().unwrap().is_empty());

    // Another server instance (a restart): same tools, same key.
    let client = connect(
        server(&ran).unwrap(),
        Person::default(),
        ProtocolVersion::V_2026_07_28,
    );
    let answer = serde_json::to_value(
        ElicitResult::new(ElicitationAction::Accept).with_content(json!({"approve": true})),
    )
    .unwrap();
    let mut responses = rmcp::model::InputResponses::new();
    responses.insert(key.clone(), answer);
    let forged = format!("{}A", &state[..state.len() - 1]);
    let retry = |state: String| {
        execute(code)
            .with_input_responses(responses.clone())
            .with_request_state(state)
    };
    let CallToolResponse::Complete(refused) = client.call_tool_once(retry(forged)).await.unwrap()
    else {
        panic!("expected a result")
    };
    assert_eq!(refused.is_error, Some(true));
    let CallToolResponse::Complete(done) =
        client.call_tool_once(retry(state.clone())).await.unwrap()
    else {
        panic!("expected a result")
    };
    let structured = done.structured_content.clone().unwrap_or_default();
    assert_eq!(structured["result"], json!({"refunded": 1}), "{structured}");
    assert_eq!(*ran.lock().unwrap(), vec![json!({"order": 1})]);
    // The same state again: already resumed.
    let CallToolResponse::Complete(again) = client.call_tool_once(retry(state)).await.unwrap()
    else {
        panic!("expected a result")
    };
    assert_eq!(again.is_error, Some(true));
    let text = serde_json::to_string(&again.content).unwrap();
    assert!(text.contains("already"), "{text}");
    assert_eq!(ran.lock().unwrap().len(), 1);
    let _ = client.cancel().await;
}

/// The task's state, polled until `done` accepts it (5 s at most).
async fn poll(
    client: &RunningService<RoleClient, Person>,
    task_id: &str,
    done: impl Fn(&TaskPayload) -> bool,
) -> TaskPayload {
    for _ in 0..250 {
        let got = client.get_task(GetTaskParams::new(task_id)).await.unwrap();
        if done(&got.task.payload) {
            return got.task.payload;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("the task never reached the expected state")
}

/// A client that declared the tasks extension gets a task: `input_required` with the
/// approval forms while the program waits (its execution sealed in the task), answered with
/// `tasks/update`; then `completed` with the program's result.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_with_tasks_gets_a_task_that_waits_for_its_answers() {
    let ran = Ran::default();
    let Some(server) = server(&ran) else {
        return;
    };
    let client = connect_with(
        server,
        Person {
            tasks: true,
            ..Person::default()
        },
        ProtocolVersion::V_2026_07_28,
        ClientCapabilities::builder()
            .enable_elicitation()
            .enable_tasks()
            .build(),
    );
    let code = "const [a, b] = await Promise.all([external_refund({ order: 1 }), external_refund({ order: 2 })]).catch((e) => [e.message, null]);\nreturn { a, b };";
    let response = client.call_tool_once(execute(code)).await.unwrap();
    let CallToolResponse::Task(created) = response else {
        panic!(
            "expected a task, got {}",
            if matches!(response, CallToolResponse::InputRequired(_)) {
                "input_required"
            } else {
                "a result"
            }
        )
    };
    let id = created.task.task_id.clone();
    let TaskPayload::InputRequired { input_requests } = poll(
        &client,
        &id,
        |p| matches!(p, TaskPayload::InputRequired { input_requests } if input_requests.len() == 2),
    )
    .await
    else {
        unreachable!()
    };
    assert!(ran.lock().unwrap().is_empty());
    let mut responses = rmcp::model::InputResponses::new();
    for key in input_requests.keys() {
        let content = if responses.is_empty() {
            json!({"approve": true})
        } else {
            json!({"approve": true, "input": "{\"order\": 20}"})
        };
        let answer = ElicitResult::new(ElicitationAction::Accept).with_content(content);
        responses.insert(key.clone(), serde_json::to_value(answer).unwrap());
    }
    client
        .update_task(UpdateTaskParams::new(id.clone(), responses))
        .await
        .unwrap();
    let TaskPayload::Completed { result } =
        poll(&client, &id, |p| matches!(p, TaskPayload::Completed { .. })).await
    else {
        unreachable!()
    };
    assert_eq!(
        result["structuredContent"]["result"],
        json!({"a": {"refunded": 1}, "b": {"refunded": 20}}),
        "{result:?}"
    );
    let mut ran = ran.lock().unwrap().clone();
    ran.sort_by_key(|v| v["order"].as_i64());
    assert_eq!(ran, vec![json!({"order": 1}), json!({"order": 20})]);
    let _ = client.cancel().await;
}
