//! `typecheck_bench`: what the type check costs (`cargo xtask bench` runs it and writes its
//! section of `docs/benchmarks.md`).
//!
//! A 20-line program of the kind a model writes, against 10 and against 200 tool
//! declarations, through `CodeMode` in `report` mode with the native QuickJS driver: the
//! check alone is the difference between an execution with the check and one without.
//! Cold: a new checker (its helper starts, loads the compiler) and its first check. Warm:
//! later checks, each of a different program (a new line each time, so nothing is cached).
//!
//! Usage: typecheck_bench --runs N --out FILE (with CODE_MODE_TYPESCRIPT set).

use std::sync::Arc;
use std::time::Instant;

use code_mode::{CodeMode, ExecuteOptions, Tool, ToolError, TypeCheckMode};
use code_mode_benches::median;
use code_mode_typecheck::TypeScriptChecker;
use serde_json::{Value, json};

fn tools(n: usize) -> Vec<Tool> {
    (0..n)
        .filter_map(|i| {
            Tool::new(
                format!("tool{i}"),
                "Looks something up.",
                json!({"type": "object", "properties": {
                    "city": {"type": "string"}, "days": {"type": "integer"},
                    "units": {"enum": ["metric", "imperial"]}
                }, "required": ["city", "days"]}),
                |_, _| async { Ok::<_, ToolError>(json!({"temp": 20, "items": [{"name": "a", "price": 1}]})) },
            )
            .and_then(|t| {
                t.with_output_schema(json!({"type": "object", "properties": {
                    "temp": {"type": "number"},
                    "items": {"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string"}, "price": {"type": "number"}}, "required": ["name", "price"]}}
                }, "required": ["temp", "items"]}))
            })
            .ok()
        })
        .collect()
}

/// 20 lines: ten calls, each followed by a line using its result.
fn program(variant: usize) -> String {
    let mut s = String::new();
    for i in 0..10 {
        s.push_str(&format!(
            "const r{i} = await external_tool{i}({{ city: 'Paris', days: {} }});\n",
            i + variant
        ));
        s.push_str(&format!(
            "console.log(r{i}.temp, r{i}.items.map((x) => x.name).join(','));\n"
        ));
    }
    s.push_str(&format!("return {variant};"));
    s
}

fn code_mode(n: usize, checker: Option<Arc<TypeScriptChecker>>) -> CodeMode {
    let mut b = CodeMode::builder()
        .tools(tools(n))
        .driver(Arc::new(code_mode_isolate_quickjs::QuickJsDriver::new()));
    if let Some(c) = checker {
        b = b.type_check(TypeCheckMode::Report, c);
    }
    b.build().unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let (runs, out) = code_mode_benches::report_args(50);
    let mut report = serde_json::Map::new();
    // Cold: five fresh checkers, each timed from creation to the end of its first check.
    let mut cold = Vec::new();
    for k in 0..5 {
        let started = Instant::now();
        let checker = Arc::new(TypeScriptChecker::new().unwrap_or_else(|e| panic!("{e}")));
        let cm = code_mode(10, Some(checker));
        let r = cm.execute(&program(k), ExecuteOptions::default()).await;
        assert!(r.success && r.type_errors.is_empty(), "{r:?}");
        cold.push(started.elapsed().as_secs_f64() * 1e3);
    }
    report.insert("cold_ms".into(), json!(median(cold)));
    let checker = Arc::new(TypeScriptChecker::new().unwrap_or_else(|e| panic!("{e}")));
    for n in [10usize, 200] {
        let checked = code_mode(n, Some(checker.clone()));
        let plain = code_mode(n, None);
        let (mut with, mut without) = (Vec::new(), Vec::new());
        for k in 0..runs + 5 {
            let t = Instant::now();
            let r = checked
                .execute(&program(1000 * n + k), ExecuteOptions::default())
                .await;
            let a = t.elapsed().as_secs_f64() * 1e3;
            assert!(r.success && r.type_errors.is_empty(), "{r:?}");
            let t = Instant::now();
            let _ = plain
                .execute(&program(1000 * n + k), ExecuteOptions::default())
                .await;
            let b = t.elapsed().as_secs_f64() * 1e3;
            if k >= 5 {
                with.push(a);
                without.push(b);
            }
        }
        let (w, wo) = (median(with), median(without));
        report.insert(format!("warm_{n}_ms"), json!(w - wo));
        report.insert(format!("run_{n}_ms"), json!(wo));
    }
    report.insert("runs".into(), json!(runs));
    code_mode_benches::write_report(out, &Value::Object(report));
}
