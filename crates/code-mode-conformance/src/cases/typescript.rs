//! The TypeScript stage and source positions: stripped forms, syntax and runtime errors with the line in the model's code, line terminators, code nested too deep to parse.

use super::*;

/// TypeScript syntax is stripped: interfaces, generics, `as`, enums, `!`, `satisfies`,
/// parameter properties, type aliases, abstract classes.
pub async fn typescript_forms(h: &Harness) {
    let code = r#"
interface Point { x: number; y: number }
type Pair<T> = [T, T];
enum Color { Red = "red", Green = "green" }
class Box<T> { constructor(public readonly value: T, private tag?: string) {} }
function first<T>(items: T[]): T | undefined { return items[0]; }
const p = { x: 1, y: 2 } as Point;
const q = { x: 3, y: 4 } satisfies Point;
const pair: Pair<number> = [p.x, q.y];
const maybe: number | undefined = first<number>([7]);
const res = await external_echo({ v: maybe! }) as { v: number };
return { pair, color: Color.Green, box: new Box<string>("b").value, v: res.v };
"#;
    let r = h.run_typescript(code).await;
    assert!(r.success, "{r:?}");
    assert_eq!(
        r.result,
        Some(json!({"pair": [1, 4], "color": "green", "box": "b", "v": 7}))
    );
}

/// A JavaScript syntax error is a `SyntaxError` with the line of the offending code; a
/// TypeScript one is a `TypeScriptError` with the line in the original code.
pub async fn syntax_error_reports_line(h: &Harness) {
    let r = h.run("const a = 1;\nconst b = 2;\nconst = 3;").await;
    let e = error(&r);
    assert_eq!(e.kind, ErrorKind::Syntax, "{e}");
    assert_eq!(e.line, Some(3), "{e}");

    let r = h
        .run_typescript("const a: number = 1;\n\nlet b: = 2;")
        .await;
    let e = r.error.expect("TypeScript syntax error");
    assert_eq!(e.kind, ErrorKind::TypeScript, "{e}");
    assert_eq!(e.line, Some(3), "{e}");
}

/// A runtime error reports the line in the original code, TypeScript types included.
pub async fn runtime_error_reports_line(h: &Harness) {
    let r = h
        .run("const a = 1;\nconst b = null;\n\nreturn b.missing;")
        .await;
    let e = error(&r);
    assert_eq!(e.kind, ErrorKind::Guest("TypeError".into()), "{e}");
    assert_eq!(e.line, Some(4), "{e}");

    let ts = "interface A {\n  x: number;\n}\nconst a: A = { x: 1 };\nconst f = (v: A): number => v.x;\nthrow new RangeError(`bad ${f(a)}`);";
    let r = h.run_typescript(ts).await;
    let e = r.error.expect("runtime error");
    assert_eq!(e.kind, ErrorKind::Guest("RangeError".into()), "{e}");
    assert_eq!(e.message, "bad 1");
    assert_eq!(e.line, Some(6), "{e}");

    // Code that needs TypeScript's transform mode (an enum) still maps lines back.
    let ts = "enum E { A, B }\nconst e: E = E.B;\nconst o: any = null;\nreturn o.field + e;";
    let r = h.run_typescript(ts).await;
    let e = r.error.expect("runtime error");
    assert_eq!(e.line, Some(4), "{e}");
}

/// Line numbers count line terminators as ECMAScript does (LF, CR, CRLF, U+2028, U+2029).
pub async fn lines_follow_ecmascript_line_terminators(h: &Harness) {
    for (code, line) in [
        ("const a = 1;\rconst b = 2;\rnull.x;", 3),
        ("const a = 1;\r\nconst b = 2;\r\nnull.x;", 3),
        ("const a = 1;\u{2028}const b = 2;\u{2029}null.x;", 3),
    ] {
        let r = h.run_typescript(code).await;
        let e = r.error.unwrap_or_else(|| panic!("{code:?} succeeded"));
        assert_eq!(e.line, Some(line), "{code:?}: {e}");
    }
}

/// Line terminators inside literals stay what the program wrote, whatever precedes them: a
/// regular expression holding a quote (after `return`, after `if (…)`, as an argument) does
/// not open a "string" that would swallow the rest, a U+2028/U+2029 in a later template or
/// string keeps its code unit, and error lines still count every terminator between tokens.
/// Generated over every terminator between statements and every such context.
pub async fn literals_keep_their_line_terminators(h: &Harness) {
    let contexts = [
        "if (s) /[\"'`]/.test(s);",
        "s = [/\"/.source][0];",
        "s = f(/'/);",
        "s = (1) / 2 / /`/.source.length + '';",
    ];
    let code_mode = h.code_mode(&crate::fixtures::Fixtures::default(), h.limits());
    for t in ["\n", "\r", "\r\n", "\u{2028}", "\u{2029}"] {
        for ctx in contexts {
            let code = format!(
                "let s = 'q'; const f = (v: RegExp) => v.source;{t}{ctx}{t}const a = `x\u{2028}y${{s}}\u{2029}`;{t}const b = 'p\u{2028}q';{t}if (a.length < 5) throw new Error('short');{t}return [a.charCodeAt(1), a.charCodeAt(a.length - 1), b.charCodeAt(1), typeof s];"
            );
            let r = code_mode
                .execute(&code, code_mode::ExecuteOptions::default())
                .await;
            assert_eq!(
                r.result,
                Some(serde_json::json!([8232, 8233, 8232, "string"])),
                "{code:?}: {r:?}"
            );
            let failing = code.replace("a.length < 5", "a.length > 1");
            let r = code_mode
                .execute(&failing, code_mode::ExecuteOptions::default())
                .await;
            let e = r.error.unwrap_or_else(|| panic!("{failing:?} succeeded"));
            assert_eq!(e.line, Some(5), "{failing:?}: {e}");
        }
    }
}

/// Absurdly nested code is refused with an error, never a crash of the host: through
/// `execute_typescript` (the TypeScript parser) and straight into the driver (the engine's
/// parser).
pub async fn deeply_nested_code_is_refused(h: &Harness) {
    for code in [
        format!("return {}1{};", "(".repeat(50_000), ")".repeat(50_000)),
        format!("return {}1;", "!".repeat(100_000)),
        format!("return {}1;", "[".repeat(50_000)) + &"]".repeat(50_000),
    ] {
        let r = h.run_typescript(&code).await;
        let e = r.error.expect("refused");
        assert_eq!(e.kind, ErrorKind::TypeScript, "{e}");
        let r = h.run(&code).await;
        assert!(
            !r.is_success(),
            "the driver accepted {} levels of nesting",
            code.len() / 2
        );
    }
    // What crashed the host in the outside test round: statement, type and chain nesting
    // that brackets do not show. `execute_typescript` refuses them; straight into the
    // driver (where some are valid JavaScript) any answer will do but a crash.
    for code in [
        format!(
            "let x = 0; if (x) {{}} {} else {{}}",
            "else if (x) {} ".repeat(15_000)
        ),
        format!(
            "let v: {}number{} = 1;",
            "Array<".repeat(30_000),
            ">".repeat(30_000)
        ),
        format!("type T = {}string; return 1;", "keyof ".repeat(40_000)),
        format!("let a: any = 1; return a{};", "!".repeat(200_000)),
        format!("let a: any = 1; return a{};", ".b".repeat(100_000)),
        format!("return 1{};", "..toString()".repeat(20_000)),
        format!("{} 1;", "l: ".repeat(60_000)),
        format!(
            "const C = {}Object {{}}; return 1;",
            "class extends ".repeat(15_000)
        ),
    ] {
        let r = h.run_typescript(&code).await;
        let e = r.error.expect("refused");
        assert_eq!(e.kind, ErrorKind::TypeScript, "{e}");
        assert!(e.message.contains("nests too deeply"), "{e}");
        let _ = h.run(&code).await;
    }
    h.assert_healthy().await;
}

/// The code's first and last lines are its own, whatever the wrapper around it: a syntax or
/// runtime error on either reports that line, a `//` comment on the last line swallows
/// nothing, and the program sees the same scope on every driver (the core's one wrapper).
pub async fn first_and_last_lines_belong_to_the_program(h: &Harness) {
    for lines in [1usize, 2, 5] {
        let filler: Vec<String> = (1..lines).map(|i| format!("const v{i} = {i};")).collect();
        let body = |last: &str| {
            let mut all = filler.clone();
            all.push(last.to_owned());
            all.join("\n")
        };
        for (last, kind) in [
            ("null.x; // the end", ErrorKind::Guest("TypeError".into())),
            ("throw new RangeError('last') // no newline after", ErrorKind::Guest("RangeError".into())),
            ("const = 1; // a syntax error", ErrorKind::Syntax),
        ] {
            let code = body(last);
            let r = h.run(&code).await;
            let e = error(&r);
            assert_eq!(e.kind, kind, "{code:?}: {e}");
            assert_eq!(e.line, Some(lines as u32), "{code:?}: {e}");
        }
        let code = body("return [typeof arguments, 1] // a comment on the last line");
        assert_eq!(value(&h.run(&code).await), json!(["undefined", 1]), "{code:?}");
    }
    // On the first line, before anything else.
    let r = h.run("null.x;\nreturn 1").await;
    assert_eq!(error(&r).line, Some(1), "{}", error(&r));
}
