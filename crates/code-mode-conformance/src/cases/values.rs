//! What a program returns: every JSON type, nothing, non-JSON values, sizes and nesting of results, strings that must survive the round trip.

use super::*;

/// Every JSON type comes back as itself.
pub async fn returns_every_json_type(h: &Harness) {
    let cases = [
        ("return 42", json!(42)),
        ("return -1.5", json!(-1.5)),
        ("return 'text ✓'", json!("text ✓")),
        ("return true", json!(true)),
        ("return null", Value::Null),
        ("return [1, 'a', null, [2]]", json!([1, "a", null, [2]])),
        (
            "return {a: {b: [1, {c: false}]}, d: 'x'}",
            json!({"a": {"b": [1, {"c": false}]}, "d": "x"}),
        ),
        ("return new Date(0)", json!("1970-01-01T00:00:00.000Z")),
    ];
    for (code, expected) in cases {
        let r = h.run(code).await;
        assert_eq!(r.outcome, Ok(Some(expected.clone())), "{code}");
    }
}

/// No `return` (or `return undefined`) succeeds with no value.
pub async fn no_return_gives_no_value(h: &Harness) {
    for code in [
        "const x = 1;",
        "return undefined",
        "return",
        "// only a comment",
    ] {
        let r = h.run(code).await;
        assert_eq!(r.outcome, Ok(None), "{code}");
    }
}

/// Top-level await works, including on host calls and promise chains.
pub async fn top_level_await(h: &Harness) {
    let r = h
        .run("const a = await Promise.resolve(1); const b = await external_echo({n: a + 1}); return [a, b.n, await (async () => 3)()]")
        .await;
    assert_eq!(value(&r), json!([1, 2, 3]));
}

/// A result above `max_result_bytes` is a `ResultTooLargeError`.
pub async fn huge_return_value(h: &Harness) {
    let limits = h.limits_with(|b| b.max_result_bytes(10_000));
    let r = h
        .run_with(&Fixtures::default(), limits, "return 'x'.repeat(20000)")
        .await;
    assert_kind(&r, ErrorKind::ResultTooLarge);
    let r = h
        .run_with(
            &Fixtures::default(),
            limits,
            "return Array.from({length: 5000}, (_, i) => i)",
        )
        .await;
    assert_kind(&r, ErrorKind::ResultTooLarge);
    let r = h
        .run_with(&Fixtures::default(), limits, "return 'x'.repeat(9000)")
        .await;
    assert_eq!(value(&r).as_str().map(str::len), Some(9000));
}

/// Functions, symbols, BigInt and cycles are refused with a clear `ResultError`.
pub async fn non_json_results(h: &Harness) {
    for code in [
        "return () => 1",
        "return Symbol('s')",
        "return 10n",
        "return {n: 10n}",
        "const a = {}; a.self = a; return a",
    ] {
        let r = h.run(code).await;
        let e = error(&r);
        assert_eq!(e.kind, ErrorKind::Result, "{code}: {e}");
        assert!(e.message.contains("JSON"), "{code}: {e}");
    }
    // Nested non-JSON members follow JSON semantics (dropped or null).
    let r = h.run("return {f() {}, u: undefined, a: [() => 1]}").await;
    assert_eq!(value(&r), json!({"a": [null]}));
}

/// One nesting limit for results and tool inputs, the same on every driver: a value at the
/// limit passes whole, one level over is refused with the documented message (never a parse
/// failure, a silently changed value or a dead sandbox), far over too.
pub async fn value_nesting_limit(h: &Harness) {
    let max = code_mode::MAX_VALUE_DEPTH;
    let nest =
        |d: usize| format!("let v = 1; for (let i = 0; i < {d}; i++) v = i % 2 ? [v] : {{k: v}};");
    let r = h.run(&format!("{} return v;", nest(max))).await;
    assert_eq!(code_mode::driver::value_depth(&value(&r)), max);
    for depth in [max + 1, 300] {
        let r = h.run(&format!("{} return v;", nest(depth))).await;
        let e = error(&r);
        assert_eq!(e.kind, ErrorKind::Result, "{depth}: {e}");
        assert!(
            e.message.contains(&format!("the limit is {max}")),
            "{depth}: {e}"
        );
    }
    // Tool input: at the limit it reaches the tool whole; over it the call throws a
    // catchable TypeError and the tool never runs.
    let fixtures = Fixtures::default();
    let code = format!(
        "{} const back = await external_echo({{v}}); return back.v === undefined ? 'lost' : 'ok';",
        nest(max - 1)
    );
    let r = h.run_with(&fixtures, h.limits(), &code).await;
    assert_eq!(value(&r), json!("ok"));
    assert_eq!(fixtures.call_count(), 1);
    for depth in [max, 300] {
        let code = format!(
            "{} try {{ await external_echo({{v}}); return 'called'; }} catch (e) {{ return e.name + ': ' + e.message; }}",
            nest(depth)
        );
        let r = h.run_with(&fixtures, h.limits(), &code).await;
        let v = value(&r);
        let text = v.as_str().unwrap_or_default();
        assert!(
            text.starts_with("TypeError: external_echo's input nests")
                && text.contains(&format!("the limit is {max}")),
            "{depth}: {v}"
        );
    }
    assert_eq!(
        fixtures.call_count(),
        1,
        "a too deep input reached the tool"
    );
    h.assert_healthy().await;
}

/// Strings the host and guest exchange keep their content: lone surrogates in console
/// lines become U+FFFD (never an exception in the program), NUL characters in the program's
/// text and values survive.
pub async fn odd_strings_survive(h: &Harness) {
    let r = h
        .run("console.log('a\\uD800b'); console.log('\\uDC00'); return 'ok'")
        .await;
    assert_eq!(value(&r), json!("ok"));
    let lines: Vec<String> = r.logs.iter().map(|e| e.to_line()).collect();
    assert_eq!(lines, ["a\u{FFFD}b", "\u{FFFD}"], "{lines:?}");
    let r = h.run("return ['x\\uD800', '\\uD83D\\uDE00']").await;
    assert_eq!(value(&r), json!(["x\u{FFFD}", "😀"]));
    // A raw NUL inside a string literal of the program, and one in the result.
    let r = h
        .run("const s = 'a\0b'; return [s.length, s.charCodeAt(1), 'x\\u0000y']")
        .await;
    assert_eq!(value(&r), json!([3, 0, "x\u{0}y"]));
}

/// Strings that would break out of generated code round-trip exactly.
pub async fn hostile_strings_round_trip(h: &Harness) {
    let hostile = "\"); process.exit(1); //`${globalThis}`\\'\u{2028}\u{0}</script>";
    let code = format!(
        "const r = await external_echo({{s: {}}}); return r.s",
        serde_json::to_string(hostile).unwrap_or_default()
    );
    let r = h.run(&code).await;
    assert_eq!(value(&r), json!(hostile));
}

/// The result limit counts UTF-8 bytes of the JSON text on every driver, with one wording: a
/// multibyte result of exactly the limit passes, one byte more is `ResultTooLargeError` with
/// the core's exact message.
pub async fn result_limit_counts_utf8_bytes(h: &Harness) {
    let limit = 1_000;
    let limits = h.limits_with(|b| b.max_result_bytes(limit));
    // `"` + 499 × `é` (2 bytes each) + `"` = 1,000 bytes of JSON, but 501 UTF-16 units.
    let exact = "return 'é'.repeat(499)";
    let r = h.run_with(&Fixtures::default(), limits, exact).await;
    assert_eq!(value(&r).as_str().map(str::len), Some(998), "{exact}");
    let over = "return 'é'.repeat(499) + 'a'";
    let r = h.run_with(&Fixtures::default(), limits, over).await;
    let e = error(&r);
    let expected = code_mode::ExecutionError::result_too_large(1_001, limit);
    assert_eq!(
        (&e.kind, &e.message),
        (&expected.kind, &expected.message),
        "{over}"
    );
    // Plain ASCII over the limit: the same wording, wherever the driver measures it.
    let r = h
        .run_with(&Fixtures::default(), limits, "return 'x'.repeat(2000)")
        .await;
    let e = error(&r);
    let expected = code_mode::ExecutionError::result_too_large(2_002, limit);
    assert_eq!((&e.kind, &e.message), (&expected.kind, &expected.message));
    // The class, not one example: generated mixes of 1-, 2-, 3- and 4-byte characters (4-byte
    // ones are two UTF-16 units), each exactly at the limit and one byte over.
    let alphabet = ['a', 'é', '€', '😀', 'ß', '中', '𝄞', 'z'];
    let mut seed: u32 = 0x9e37_79b9;
    for round in 0..12 {
        let mut text = String::new();
        loop {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let c = alphabet[(seed >> 24) as usize % alphabet.len()];
            if text.len() + c.len_utf8() > limit as usize - 2 {
                break;
            }
            text.push(c);
        }
        // Pad with ASCII to exactly `limit` bytes of JSON (the quotes are the other two).
        text.push_str(&"a".repeat(limit as usize - 2 - text.len()));
        let exact = format!("return '{text}'");
        let r = h.run_with(&Fixtures::default(), limits, &exact).await;
        assert_eq!(
            value(&r).as_str(),
            Some(text.as_str()),
            "round {round}: at the limit"
        );
        let over = format!("return '{text}a'");
        let r = h.run_with(&Fixtures::default(), limits, &over).await;
        let e = error(&r);
        let expected = code_mode::ExecutionError::result_too_large(limit + 1, limit);
        assert_eq!(
            (&e.kind, &e.message),
            (&expected.kind, &expected.message),
            "round {round}: one byte over"
        );
    }
}
