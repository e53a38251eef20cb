//! Console capture and the live `code_mode:*` events and spans of an execution.

use super::*;

/// Console methods are captured with their level and formatted.
pub async fn console_levels_and_formatting(h: &Harness) {
    let r = h
        .run("console.log('a', 1, true, null, undefined, {k: [1]}); console.info('i'); console.warn('w'); console.error('e'); console.debug('d'); return 0")
        .await;
    value(&r);
    let lines: Vec<(LogLevel, &str)> = r
        .logs
        .iter()
        .map(|e| (e.level, e.message.as_str()))
        .collect();
    assert_eq!(
        lines,
        vec![
            (LogLevel::Log, "a 1 true null undefined {\"k\":[1]}"),
            (LogLevel::Info, "i"),
            (LogLevel::Warn, "w"),
            (LogLevel::Error, "e"),
            (LogLevel::Debug, "d"),
        ]
    );
    let r = h.run("const o = {}; o.self = o; console.log(o, Symbol('s'), 5n, new TypeError('bad')); return 1").await;
    value(&r);
    assert_eq!(r.logs.len(), 1);
    assert!(
        r.logs[0].message.contains("Symbol(s) 5n TypeError: bad"),
        "{:?}",
        r.logs
    );
    // An error's name must be a string (else `Error`) and its message too (else none); a
    // getter that throws counts as absent and never escapes console.log.
    let r = h
        .run(concat!(
            "const a = new Error('m'); Object.defineProperty(a, 'name', { get() { throw new Error('no'); } });\n",
            "const b = new RangeError('x'); Object.defineProperty(b, 'message', { get() { throw 1; } });\n",
            "const c = new Error('y'); c.name = 42;\n",
            "const d = new TypeError(''); d.message = 7;\n",
            "console.log(a); console.log(b); console.log(c); console.log(d); return 'done'"
        ))
        .await;
    assert_eq!(value(&r), json!("done"), "{r:?}");
    let lines: Vec<&str> = r.logs.iter().map(|e| e.message.as_str()).collect();
    assert_eq!(lines, ["Error: m", "RangeError", "Error: y", "TypeError"]);
}

/// A log flood is capped (entries and bytes) with one truncation marker, and the program
/// still completes.
pub async fn console_caps(h: &Harness) {
    let limits = h.limits_with(|b| b.max_log_entries(100));
    let r = h
        .run_with(
            &Fixtures::default(),
            limits,
            "for (let i = 0; i < 100000; i++) console.log('line', i); return 'done'",
        )
        .await;
    assert_eq!(value(&r), json!("done"));
    assert_eq!(r.logs.len(), 101);
    assert_eq!(r.logs[100].message, TRUNCATION_MARKER);

    let limits = h.limits_with(|b| b.max_log_bytes(1000));
    let r = h
        .run_with(
            &Fixtures::default(),
            limits,
            "console.log('x'.repeat(5000)); console.log('after'); return 1",
        )
        .await;
    value(&r);
    let total: usize = r.logs.iter().map(|e| e.message.len()).sum();
    assert!(
        total <= 1000 + TRUNCATION_MARKER.len(),
        "{total} bytes kept"
    );
    assert_eq!(
        r.logs.last().map(|e| e.message.as_str()),
        Some(TRUNCATION_MARKER)
    );
}

/// Console lines reach the sink while the program runs, before it finishes.
pub async fn console_events_are_live(h: &Harness) {
    let seen: Arc<Mutex<Vec<(String, Instant)>>> = Arc::default();
    let s = seen.clone();
    let sink: ConsoleSink = Arc::new(move |_, m| {
        s.lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((m.to_owned(), Instant::now()))
    });
    let ctx = h
        .context_with(&Fixtures::default(), h.limits(), Some(sink))
        .await;
    let r = ctx.execute("console.log('first'); await external_sleep({ms: 200}); console.log('second'); return 1").await;
    let finished = Instant::now();
    ctx.dispose().await;
    value(&r);
    let seen = seen.lock().unwrap_or_else(|p| p.into_inner());
    assert_eq!(
        seen.iter().map(|(m, _)| m.as_str()).collect::<Vec<_>>(),
        ["first", "second"]
    );
    assert!(
        finished.duration_since(seen[0].1) >= Duration::from_millis(150),
        "first console line was not delivered live"
    );
}

/// `execute_typescript` events carry the tool-call id and come in order, console live.
pub async fn events_are_tagged_and_ordered(h: &Harness) {
    let (sink, mut rx) = EventSink::channel();
    let cm = h.code_mode(&Fixtures::default(), h.limits());
    let code = "console.log('start');\nconst r = await external_echo({q: 1});\ntry { await external_fail({message: 'nope'}); } catch {}\nreturn r.q;";
    let r = cm.execute(code, ExecuteOptions::new("call_42", sink)).await;
    assert!(r.success, "{r:?}");
    let mut names = Vec::new();
    while let Ok(event) = rx.try_recv() {
        assert_eq!(event.tool_call_id.as_deref(), Some("call_42"));
        assert_eq!(event.value()["toolCallId"], json!("call_42"));
        names.push(event.name().to_owned());
    }
    assert_eq!(
        names,
        [
            "code_mode:execution_started",
            "code_mode:console",
            "code_mode:external_call",
            "code_mode:external_result",
            "code_mode:external_call",
            "code_mode:external_error",
            "code_mode:execution_finished",
        ]
    );
}

/// What a tracing backend receives from one execution (the spans `code_mode`'s `trace`
/// module documents, exported to memory through `tracing-opentelemetry`): one
/// `execute_tool execute_typescript` span under the caller's, with one child per tool call
/// (parallel, sequential and failing ones alike), console lines and the truncation as its
/// events, and a timeout as an error with its name.
pub async fn execution_spans_form_the_documented_tree(h: &Harness) {
    let fixtures = Fixtures::default();
    let cm = h.code_mode(&fixtures, h.limits_with(|b| b.max_log_entries(20)));
    let code = "const [a, b] = await Promise.all([external_echo({ n: 1 }), external_echo({ n: 2 })]);\nconst c = await external_add({ a: a.n, b: b.n });\ntry { await external_fail({ message: 'no' }); } catch (e) { console.log('caught', e.message); }\nfor (let i = 0; i < 50; i++) console.log('line', i);\nreturn c;";
    let run = async {
        let r = cm
            .execute(
                code,
                ExecuteOptions::new("call_spans", EventSink::default()),
            )
            .await;
        assert_eq!(
            r.result.as_ref().and_then(Value::as_f64),
            Some(3.0),
            "{r:?}"
        );
    };
    let Some((root, spans)) = crate::spans::record(5, run).await else {
        eprintln!("span tree not checked: this process already has a global tracing subscriber");
        return;
    };
    assert_eq!(spans.len(), 5, "{spans:#?}");
    let exec = spans
        .iter()
        .find(|s| s.name == "execute_tool execute_typescript")
        .unwrap_or_else(|| panic!("no execution span: {spans:#?}"));
    assert_eq!(
        exec.parent, root.id,
        "the execution is a child of the caller's span"
    );
    let driver = h.driver().name().to_owned();
    let bytes = code.len().to_string();
    for (key, want) in [
        ("gen_ai.operation.name", "execute_tool"),
        ("gen_ai.tool.name", "execute_typescript"),
        ("gen_ai.tool.call.id", "call_spans"),
        ("code_mode.driver", driver.as_str()),
        ("code_mode.code.bytes", bytes.as_str()),
        ("code_mode.outcome", "ok"),
        ("code_mode.tool_calls", "4"),
        ("code_mode.logs", "21"),
    ] {
        assert_eq!(exec.attr(key), Some(want), "{key}: {exec:#?}");
    }
    assert!(
        !exec.error && exec.attr("error.type").is_none(),
        "{exec:#?}"
    );
    let consoles = exec.events.iter().filter(|e| *e == "console").count();
    assert_eq!(consoles, 20, "{:?}", exec.events);
    assert_eq!(
        exec.events.last().map(String::as_str),
        Some("console truncated")
    );
    let mut children: Vec<_> = spans.iter().filter(|s| s.parent == exec.id).collect();
    children.sort_by(|a, b| a.name.cmp(&b.name));
    let names: Vec<&str> = children.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "execute_tool external_add",
            "execute_tool external_echo",
            "execute_tool external_echo",
            "execute_tool external_fail"
        ]
    );
    for echo in &children[1..3] {
        assert_eq!(echo.attr("gen_ai.tool.name"), Some("echo"));
        assert_eq!(echo.attr("code_mode.input.bytes"), Some("7"), "{echo:#?}");
        assert_eq!(echo.attr("code_mode.output.bytes"), Some("7"), "{echo:#?}");
        assert_eq!(echo.attr("code_mode.outcome"), Some("ok"));
        // Values are recorded only when the application opts in.
        assert!(echo.attr("gen_ai.tool.call.arguments").is_none());
    }
    let fail = children[3];
    assert_eq!(fail.attr("code_mode.outcome"), Some("error"));
    assert_eq!(fail.attr("error.type"), Some("ToolError"));
    assert!(fail.error, "{fail:#?}");

    let cm = h.code_mode(&fixtures, h.short_limits());
    let run = async {
        let r = cm
            .execute("while (true) {}", ExecuteOptions::default())
            .await;
        assert_eq!(r.error.map(|e| e.kind), Some(ErrorKind::Timeout));
    };
    let Some((root, spans)) = crate::spans::record(1, run).await else {
        return;
    };
    assert_eq!(spans.len(), 1, "{spans:#?}");
    let exec = &spans[0];
    assert_eq!(exec.parent, root.id);
    assert_eq!(exec.attr("code_mode.outcome"), Some("error"));
    assert_eq!(exec.attr("error.type"), Some("TimeoutError"));
    assert_eq!(exec.attr("code_mode.tool_calls"), Some("0"));
    assert!(exec.error, "{exec:#?}");
    h.assert_healthy().await;
}

/// Objects nested past the value limit log as the same marker on every driver (engines
/// stringify different depths before giving up); shallower ones log their JSON, and a cycle
/// logs as `String(value)`.
pub async fn console_logs_deep_values_alike(h: &Harness) {
    let code = "const make = (n, arr) => { let v = 1; for (let i = 0; i < n; i++) v = arr ? [v] : { a: v }; return v; };
        const cyclic = { n: 1 }; cyclic.self = cyclic;
        const deepCycle = make(70, false); let inner = deepCycle; for (let i = 0; i < 69; i++) inner = inner.a; inner.a = deepCycle;
        for (const [n, arr] of [[10, false], [64, true], [65, false], [100, true], [10000, false], [10000, true]]) console.log(make(n, arr));
        console.log(cyclic);
        console.log('x', make(65, true), 'y');
        console.log(deepCycle);";
    let r = h.run(code).await;
    assert!(r.is_success(), "{r:?}");
    let objects = |n: usize| "{\"a\":".repeat(n) + "1" + &"}".repeat(n);
    let arrays = |n: usize| "[".repeat(n) + "1" + &"]".repeat(n);
    let deep = "[nested deeper than 64 levels]";
    let expected = vec![
        objects(10),
        arrays(64),
        deep.to_owned(),
        deep.to_owned(),
        deep.to_owned(),
        deep.to_owned(),
        "[object Object]".to_owned(),
        format!("x {deep} y"),
        deep.to_owned(),
    ];
    let got: Vec<String> = r.logs.iter().map(|l| l.message.clone()).collect();
    assert_eq!(got, expected);
}
