//! `CodeMode` end to end on the native QuickJS driver: prompt, tool specs, lazy tools and
//! `discover_tools`, input checks, tool registry form, events.

use std::sync::Arc;

use code_mode::{
    CodeMode, CodeModeError, ErrorKind, EventSink, ExecuteOptions, Limits, Tool, ToolContext,
    ToolDefinitionError, ToolError,
};
use code_mode_isolate_quickjs::QuickJsDriver;
use serde_json::{Value, json};

fn weather() -> Tool {
    Tool::new(
        "getWeather",
        "Current weather for a city. Uses the national service.",
        json!({"type": "object", "properties": {"city": {"type": "string", "description": "City name."}, "units": {"enum": ["c", "f"]}}, "required": ["city"]}),
        |input, ctx: ToolContext| async move {
            ctx.emit_custom("weather:progress", json!({"city": input["city"]}));
            Ok::<_, ToolError>(json!({"city": input["city"], "temp": 21}))
        },
    )
    .expect("tool")
    .with_output_schema(json!({"type": "object", "properties": {"city": {"type": "string"}, "temp": {"type": "number"}}, "required": ["city", "temp"]}))
    .expect("output schema")
}

fn forecast() -> Tool {
    Tool::new(
        "getForecast",
        "Seven-day forecast. Slow; call only when needed.",
        json!({"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 1, "maximum": 7}}, "required": ["city"]}),
        |input, _| async move { Ok::<_, ToolError>(json!({"city": input["city"], "days": [18, 19, 20]})) },
    )
    .expect("tool")
    .lazy(true)
}

fn code_mode(tools: Vec<Tool>) -> CodeMode {
    CodeMode::builder()
        .tools(tools)
        .driver(Arc::new(QuickJsDriver::new()))
        .build()
        .expect("code mode")
}

#[test]
fn system_prompt_snapshot() {
    insta::assert_snapshot!(code_mode(vec![weather(), forecast()]).system_prompt());
}

#[test]
fn system_prompt_without_lazy_tools_snapshot() {
    let limits = Limits::builder()
        .timeout_ms(5_500)
        .memory_mib(64)
        .max_tool_calls(50)
        .build()
        .expect("limits");
    let cm = CodeMode::builder()
        .tool(weather())
        .driver(Arc::new(QuickJsDriver::new()))
        .limits(limits)
        .build()
        .expect("cm");
    assert!(!cm.system_prompt().contains("Discoverable"));
    insta::assert_snapshot!(cm.system_prompt());
}

#[test]
fn tool_specs() {
    let cm = code_mode(vec![weather(), forecast()]);
    let specs = cm.tool_specs();
    assert_eq!(
        specs.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
        ["execute_typescript", "discover_tools"]
    );
    insta::assert_json_snapshot!(specs.iter().map(|s| json!({"name": s.name, "description": s.description, "input": s.input_schema, "output": s.output_schema})).collect::<Vec<_>>());
    let eager_only = code_mode(vec![weather()]);
    assert!(eager_only.discover_tool_spec().is_none());
    assert_eq!(eager_only.tool_specs().len(), 1);
}

#[test]
fn construction_errors() {
    let driver = Arc::new(QuickJsDriver::new());
    assert_eq!(
        CodeMode::builder().driver(driver.clone()).build().err(),
        Some(CodeModeError::NoTools)
    );
    assert_eq!(
        CodeMode::builder().tool(weather()).build().err(),
        Some(CodeModeError::NoDriver)
    );
    let err = CodeMode::builder()
        .tool(weather())
        .tool(weather())
        .driver(driver)
        .build()
        .err();
    assert!(
        matches!(
            err,
            Some(CodeModeError::Tool(ToolDefinitionError::Duplicate { .. }))
        ),
        "{err:?}"
    );
    for bad in ["get-weather", "1st", "class", "", "discover_tools", "a b"] {
        assert!(
            Tool::new(bad, "", json!({"type": "object"}), |v, _| async move {
                Ok::<_, ToolError>(v)
            })
            .is_err(),
            "{bad:?}"
        );
    }
}

#[tokio::test]
async fn discover_tools() {
    let cm = code_mode(vec![weather(), forecast()]);
    let out = cm.discover(&json!({"toolNames": ["external_getForecast", "getWeather", "nope"]}));
    let tools = out["tools"].as_array().expect("tools");
    assert_eq!(tools.len(), 2);
    assert_eq!(tools[0]["name"], json!("external_getForecast"));
    assert!(tools[0]["typeStub"].as_str().unwrap_or_default().contains(
        "declare function external_getForecast(input: GetForecastInput): Promise<unknown>;"
    ));
    let errors = out["errors"].as_array().expect("errors");
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0]
            .as_str()
            .unwrap_or_default()
            .contains("Unknown tool: 'nope'")
    );
    let bad = cm.discover(&json!({"toolNames": "getForecast"}));
    assert!(
        bad["errors"][0]
            .as_str()
            .unwrap_or_default()
            .contains("must be an array")
    );
    // Lazy tools are callable.
    let r = cm
        .execute(
            "return (await external_getForecast({city: 'Oslo'})).days.length",
            ExecuteOptions::default(),
        )
        .await;
    assert_eq!(r.result, Some(json!(3)));
}

#[tokio::test]
async fn input_validation_of_execute_typescript() {
    let cm = code_mode(vec![weather()]);
    let (sink, mut rx) = EventSink::channel();
    let r = cm
        .call_execute_tool(
            &json!({"code": "return 1"}),
            ExecuteOptions::new("c1", sink.clone()),
        )
        .await;
    assert_eq!(
        r.error.as_ref().map(|e| e.kind.clone()),
        Some(ErrorKind::Validation)
    );
    let r = cm
        .execute("", ExecuteOptions::new("c1", sink.clone()))
        .await;
    assert_eq!(
        r.error.as_ref().map(|e| e.kind.clone()),
        Some(ErrorKind::Validation)
    );
    let big = "x".repeat(code_mode::DEFAULT_MAX_CODE_BYTES + 1);
    let r = cm.execute(&big, ExecuteOptions::new("c1", sink)).await;
    assert!(
        r.error
            .as_ref()
            .is_some_and(|e| e.message.contains("above the limit"))
    );
    // Only execution_finished (phase validate-input) was emitted, three times.
    let mut n = 0;
    while let Ok(e) = rx.try_recv() {
        assert_eq!(e.name(), "code_mode:execution_finished");
        assert_eq!(e.value()["phase"], json!("validate-input"));
        n += 1;
    }
    assert_eq!(n, 3);
}

#[tokio::test]
async fn as_tools_runs_through_the_tool_context() {
    let cm = code_mode(vec![weather(), forecast()]);
    let tools = cm.as_tools();
    assert_eq!(tools.len(), 2);
    let (sink, mut rx) = EventSink::channel();
    let ctx = ToolContext {
        tool_call_id: Some("call_9".into()),
        events: sink,
        ..ToolContext::default()
    };
    let out = tools[0]
        .call(json!({"typescriptCode": "const w = await external_getWeather({city: 'Paris'});\nreturn w.temp;"}), ctx)
        .await
        .expect("execute_typescript never fails as a tool");
    assert_eq!(out, json!({"success": true, "result": 21, "logs": []}));
    let mut names = Vec::new();
    while let Ok(e) = rx.try_recv() {
        assert_eq!(e.value()["toolCallId"], json!("call_9"));
        names.push(e.name().to_owned());
    }
    assert!(names.contains(&"weather:progress".to_owned()), "{names:?}");
    let discovered = tools[1]
        .call(
            json!({"toolNames": ["getForecast"]}),
            ToolContext::default(),
        )
        .await
        .expect("discover");
    assert_eq!(
        discovered["tools"][0]["name"],
        json!("external_getForecast")
    );
}

#[tokio::test]
async fn output_validation_and_result_shape() {
    let bad = Tool::new(
        "bad",
        "Returns the wrong shape.",
        json!({"type": "object"}),
        |_, _| async move { Ok::<_, ToolError>(json!({"oops": true})) },
    )
    .expect("tool")
    .with_output_schema(json!({"type": "object", "required": ["id"]}))
    .expect("schema");
    let cm = code_mode(vec![bad]);
    let r = cm.execute("try { await external_bad(); } catch (e) { console.error(e.message); }\nconst x: number = 1;\nthrow new TypeError('line three');", ExecuteOptions::default()).await;
    let v: Value = r.to_json();
    assert_eq!(v["success"], json!(false));
    assert_eq!(
        v["error"],
        json!({"name": "TypeError", "message": "line three", "line": 3})
    );
    assert!(
        v["logs"][0]
            .as_str()
            .unwrap_or_default()
            .starts_with("ERROR: Output validation failed for tool bad"),
        "{v}"
    );
}

/// The catalogue of lazy tools in each description mode (TanStack's
/// `lazyToolsConfig.includeDescription`): the system prompt and `discover_tools`'s
/// description, snapshotted per mode.
#[test]
fn lazy_tool_catalogue_in_each_description_mode() {
    use code_mode::CatalogDetail;
    for (mode, detail) in [
        ("name_only", CatalogDetail::NameOnly),
        ("first_sentence", CatalogDetail::FirstSentence),
        ("full", CatalogDetail::Full),
    ] {
        let cm = CodeMode::builder()
            .tools(vec![weather(), forecast()])
            .driver(Arc::new(QuickJsDriver::new()))
            .catalog_detail(detail)
            .build()
            .expect("cm");
        let discover = cm.discover_tool_spec().expect("discover_tools").description;
        let line = cm
            .system_prompt()
            .lines()
            .find(|l| l.contains("external_getForecast"))
            .unwrap_or_default()
            .to_owned();
        match detail {
            CatalogDetail::NameOnly => assert!(!line.contains("Seven-day"), "{line}"),
            CatalogDetail::FirstSentence => {
                assert!(
                    line.contains("Seven-day forecast.") && !line.contains("Slow"),
                    "{line}"
                )
            }
            CatalogDetail::Full => assert!(line.contains("call only when needed"), "{line}"),
        }
        insta::assert_snapshot!(
            format!("lazy_catalogue_{mode}"),
            format!(
                "{}\n\n--- discover_tools description ---\n{discover}",
                cm.system_prompt()
            )
        );
    }
}
