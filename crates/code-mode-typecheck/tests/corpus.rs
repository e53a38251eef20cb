//! The labelled corpus (`tests/corpus/*.ts`): correct programs (including the README's
//! quickstart and `code-mode demo`'s, copied from their sources by the first test) must pass
//! the check unchanged and run; programs with typical model mistakes must be caught with the
//! right error codes on the right lines.
//!
//! Each file starts with `// expect: ok` or `// expect: CODE@LINE ...` (lines of the file
//! itself), optionally preceded by `// returns: <JSON Schema>`: the result must match it, as
//! a skill's must match its output schema. Needs the runtime (`CODE_MODE_TYPESCRIPT`, set by
//! `cargo xtask test`).

mod common;

use std::collections::BTreeSet;

use code_mode::{ExecuteOptions, TypeCheckMode};
use serde_json::Value;

struct Case {
    name: String,
    code: String,
    expected: Option<BTreeSet<(u32, u32)>>,
    returns: Option<Value>,
}

fn corpus() -> Vec<Case> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "ts"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let code = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{e}"));
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let mut returns = None;
            let mut expected = None;
            for line in code.lines().take(2) {
                if let Some(schema) = line.strip_prefix("// returns: ") {
                    returns = Some(
                        serde_json::from_str(schema).unwrap_or_else(|e| panic!("{name}: {e}")),
                    );
                } else if let Some(spec) = line.strip_prefix("// expect: ") {
                    expected = Some(if spec.trim() == "ok" {
                        None
                    } else {
                        Some(
                            spec.split_whitespace()
                                .map(|item| {
                                    let (c, l) = item
                                        .split_once('@')
                                        .unwrap_or_else(|| panic!("{name}: {item}"));
                                    (
                                        l.parse().unwrap_or_else(|e| panic!("{name}: {e}")),
                                        c.parse().unwrap_or_else(|e| panic!("{name}: {e}")),
                                    )
                                })
                                .collect(),
                        )
                    });
                }
            }
            let expected = expected.unwrap_or_else(|| panic!("{name} has no `// expect:` line"));
            Case {
                name,
                code,
                expected,
                returns,
            }
        })
        .collect()
}

/// The README's and the demo's programs are in the corpus exactly as in their sources.
#[test]
fn the_readme_and_demo_programs_are_the_real_ones() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let read =
        |p: &str| std::fs::read_to_string(root.join(p)).unwrap_or_else(|e| panic!("{p}: {e}"));
    let demo = read("crates/code-mode-cli/src/demo.rs");
    let program = demo
        .split("pub const PROGRAM: &str = r#\"")
        .nth(1)
        .and_then(|rest| rest.split("\"#;").next())
        .unwrap_or_else(|| panic!("the demo's PROGRAM was not found"));
    let corpus = read("crates/code-mode-typecheck/tests/corpus/02_demo_restock.ts");
    assert_eq!(corpus.strip_prefix("// expect: ok\n"), Some(program));
    let readme = read("README.md");
    let quickstart = read("crates/code-mode-typecheck/tests/corpus/01_readme_quickstart.ts");
    let body: Vec<&str> = quickstart.lines().skip(1).collect();
    assert!(
        readme.contains(&body.join("\\n")),
        "the README's program is not {body:?}"
    );
}

/// Tests that need the compiler (`cargo xtask test` skips `compiler::` without npm).
mod compiler {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_corpus_is_checked_as_labelled() {
        let checker = common::checker();
        let code_mode = common::code_mode(TypeCheckMode::Report, checker);
        let cases = corpus();
        assert!(cases.len() >= 30, "{} programs", cases.len());
        let (mut correct, mut mistakes, mut failures) = (0, 0, Vec::new());
        for case in &cases {
            let mut opts = ExecuteOptions {
                extra_bindings: common::skill_bindings(),
                ..ExecuteOptions::default()
            };
            opts.expected_output = case.returns.clone();
            let r = code_mode.execute(&case.code, opts).await;
            let found: BTreeSet<(u32, u32)> =
                r.type_errors.iter().map(|d| (d.line, d.code)).collect();
            match &case.expected {
                None => {
                    correct += 1;
                    if !found.is_empty() {
                        failures.push(format!(
                            "{}: expected no type error, got {:?}",
                            case.name, r.type_errors
                        ));
                    } else if !r.success {
                        failures.push(format!(
                            "{}: passed the check but failed to run: {:?}",
                            case.name, r.error
                        ));
                    }
                }
                Some(want) => {
                    mistakes += 1;
                    if &found != want {
                        failures.push(format!(
                            "{}: expected (line, code) {want:?}, got {:?}",
                            case.name, r.type_errors
                        ));
                    }
                }
            }
        }
        eprintln!(
            "corpus: {correct} correct programs, {mistakes} with mistakes, {} mislabelled",
            failures.len()
        );
        assert!(failures.is_empty(), "{}", failures.join("\n"));
        assert!(
            correct >= 10 && mistakes >= 15,
            "{correct} correct, {mistakes} mistakes"
        );
    }
}
