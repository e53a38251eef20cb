//! The limits: time (loops, never-settling calls and promises, long built-ins), memory, stack.

use super::*;

async fn assert_times_out(h: &Harness, fixtures: &Fixtures, code: &str) {
    let started = Instant::now();
    let ctx = h.context_with(fixtures, h.short_limits(), None).await;
    let r = ctx.execute(code).await;
    assert_kind(&r, ErrorKind::Timeout);
    assert!(
        started.elapsed() < h.short_timeout + Duration::from_secs(5),
        "timeout enforced too late: {:?}",
        started.elapsed()
    );
    // A timeout is terminal for the context.
    assert_kind(&ctx.execute("return 1").await, ErrorKind::Disposed);
    ctx.dispose().await;
    h.assert_healthy().await;
}

/// `while (true) {}` is stopped by the deadline.
pub async fn infinite_loop(h: &Harness) {
    assert_times_out(h, &Fixtures::default(), "while (true) {}").await;
    assert_times_out(
        h,
        &Fixtures::default(),
        "try { while (true) {} } catch (e) { return 'caught' } finally { while (true) {} }",
    )
    .await;
}

/// An infinite loop after an awaited tool call is also stopped.
pub async fn infinite_loop_after_await(h: &Harness) {
    assert_times_out(
        h,
        &Fixtures::default(),
        "await external_echo({}); while (true) {}",
    )
    .await;
    assert_times_out(
        h,
        &Fixtures::default(),
        "const f = async () => { await null; f(); }; f(); await external_never();",
    )
    .await;
}

/// A tool call that never returns is cut by the deadline.
pub async fn never_resolving_tool_call(h: &Harness) {
    assert_times_out(h, &Fixtures::default(), "await external_never(); return 1").await;
}

/// Awaiting a promise nothing can settle fails at once instead of waiting for the timeout.
pub async fn never_settling_promise(h: &Harness) {
    let started = Instant::now();
    let r = h.run("await new Promise(() => {}); return 1").await;
    assert_kind(&r, ErrorKind::Deadlock);
    assert!(started.elapsed() < Duration::from_secs(5));
}

async fn assert_memory_failure(h: &Harness, code: &str, strict: bool) {
    let limits = h.limits_with(|b| b.memory_mib(32));
    let r = h.run_with(&Fixtures::default(), limits, code).await;
    let e = error(&r);
    if strict && h.capabilities.reports_memory_limit {
        assert_eq!(e.kind, ErrorKind::MemoryLimit, "{code}: {e}");
    }
    h.assert_healthy().await;
}

/// Growing arrays hit the memory limit.
pub async fn memory_bomb_arrays(h: &Harness) {
    assert_memory_failure(
        h,
        "const a = []; while (true) a.push(new Array(100000).fill(1.5));",
        true,
    )
    .await;
    assert_memory_failure(
        h,
        "const a = []; while (true) a.push({x: a.length, y: [a.length]});",
        true,
    )
    .await;
}

/// Growing strings fail (out of memory, or the engine's maximum string length).
pub async fn memory_bomb_strings(h: &Harness) {
    assert_memory_failure(h, "let s = 'x'; while (true) s += s;", false).await;
    assert_memory_failure(
        h,
        "const parts = []; let i = 0; while (true) parts.push('y'.repeat(65536) + (i++));",
        true,
    )
    .await;
}

/// Large buffers hit the memory limit.
pub async fn memory_bomb_array_buffers(h: &Harness) {
    assert_memory_failure(
        h,
        "return new ArrayBuffer(1024 * 1024 * 1024).byteLength;",
        true,
    )
    .await;
    assert_memory_failure(
        h,
        "const b = []; while (true) b.push(new Uint8Array(1024 * 1024));",
        true,
    )
    .await;
}

/// Unbounded recursion is a `StackOverflowError`, never a crash.
pub async fn deep_recursion(h: &Harness) {
    for code in [
        "function f(n) { return f(n + 1) + 1; } return f(0);",
        "const g = async (n) => (await g(n + 1)) + 1; return await g(0);",
        "const o = {}; o.toString = function () { return String(this); }; return String(o);",
    ] {
        let ctx = h.context_with(&Fixtures::default(), h.limits(), None).await;
        let r = ctx.execute(code).await;
        assert_kind(&r, ErrorKind::StackOverflow);
        assert_kind(&ctx.execute("return 1").await, ErrorKind::Disposed);
        ctx.dispose().await;
    }
    h.assert_healthy().await;
}

/// Every stack limit the core accepts is safe: deep recursion at the smallest, a middling
/// and the largest limit ends in `StackOverflowError` (a driver may lower a limit its engine
/// cannot give, never raise it or crash).
pub async fn deep_recursion_at_every_stack_limit(h: &Harness) {
    for kib in [16, 8 * 1024, 64 * 1024] {
        let limits = h.limits_with(|b| b.stack_kib(kib));
        let ctx = h.context_with(&Fixtures::default(), limits, None).await;
        let r = ctx
            .execute("function f(n) { return n === 0 ? 0 : 1 + f(n - 1); } return f(1e8);")
            .await;
        let e = error(&r);
        assert_eq!(e.kind, ErrorKind::StackOverflow, "stack {kib} KiB: {e}");
        ctx.dispose().await;
    }
    h.assert_healthy().await;
}

/// Built-ins that loop over a huge array-like object end at the deadline like any other
/// code: the caller hears `TimeoutError` (or `MemoryLimitError`) within the deadline plus a
/// grace, and other contexts work meanwhile and after.
pub async fn long_builtins_stop_at_the_deadline(h: &Harness) {
    let limits = h.limits_with(|b| b.timeout(h.short_timeout));
    for code in [
        "return Array.prototype.includes.call({length: 2 ** 53 - 1}, 1)",
        "return Array.prototype.join.call({length: 2 ** 32 - 1}, '')",
        "return Array.prototype.lastIndexOf.call({length: 2 ** 53 - 1}, 1)",
        "const a = []; a.length = 2 ** 32 - 1; return a.indexOf(1)",
        "return Array.prototype.sort.call({length: 2 ** 32 - 1, 0: 1})",
        "return Array.prototype.concat.call([], {length: 2 ** 32 - 1, [Symbol.isConcatSpreadable]: true}).length",
    ] {
        let ctx = h.context_with(&Fixtures::default(), limits, None).await;
        let started = Instant::now();
        let r = ctx.execute(code).await;
        let took = started.elapsed();
        // An engine may also finish quickly (V8 handles sparse arrays well): any answer but a
        // hang, and no error other than the limits.
        if let Err(e) = &r.outcome {
            assert!(
                matches!(e.kind, ErrorKind::Timeout | ErrorKind::MemoryLimit),
                "{code}: {e}"
            );
        }
        // Every driver answers within 100 ms of the deadline (a loaded CI machine gets a
        // margin on top).
        assert!(
            took < h.short_timeout + Duration::from_millis(1000),
            "{code}: the caller waited {took:?} for a {:?} deadline",
            h.short_timeout
        );
        ctx.dispose().await;
        h.assert_healthy().await;
    }
}

/// Tool calls refused while the program is deep in a recursion (input nested too deeply,
/// calls past the cap) do not move the engine's stack limit: the recursion still ends in
/// `StackOverflowError`, never in a crash.
pub async fn refused_calls_deep_in_a_recursion_keep_the_stack_limit(h: &Harness) {
    let limits = h.limits_with(|b| b.max_tool_calls(5));
    let code = "let deep = 1; for (let i = 0; i < 70; i++) deep = [deep];
        function f(n) { if (n % 200 === 0) { external_echo({deep}).catch(() => {}); } return f(n + 1) + 1; }
        return f(1);";
    let r = h.run_with(&Fixtures::default(), limits, code).await;
    assert_kind(&r, ErrorKind::StackOverflow);
    h.assert_healthy().await;
}

/// Memory outside the engine's heap (a WebAssembly memory) cannot bypass the memory limit:
/// either WebAssembly is absent, or growing a memory past the limit fails.
pub async fn webassembly_memory_cannot_bypass_the_limit(h: &Harness) {
    let limits = h.limits_with(|b| b.memory_mib(64));
    let code = "if (typeof WebAssembly === 'undefined') return 'absent';
        const m = new WebAssembly.Memory({ initial: 1, maximum: 65536 });
        try { for (let i = 0; i < 16; i++) m.grow(1024); } catch (e) { return 'refused: ' + e.name; }
        return 'grew to ' + m.buffer.byteLength;";
    let r = h.run_with(&Fixtures::default(), limits, code).await;
    match &r.outcome {
        Ok(Some(v)) => {
            let v = v.as_str().unwrap_or_default();
            assert!(
                v == "absent" || v.starts_with("refused") || !h.capabilities.reports_memory_limit,
                "a WebAssembly memory bypassed the 64 MiB limit: {v}"
            );
        }
        Ok(None) => panic!("no answer"),
        Err(e) => assert_eq!(e.kind, ErrorKind::MemoryLimit, "{e}"),
    }
    h.assert_healthy().await;
}

/// Every way a program can make a buffer, each as one expression making about `CHUNK`
/// bytes (`i` is the chunk's number).
pub const BUFFER_PATHS: [(&str, &str); 9] = [
    ("a plain ArrayBuffer", "new ArrayBuffer(CHUNK)"),
    ("a typed array", "new Float64Array(CHUNK / 8)"),
    (
        "a typed array from an array-like",
        "new Uint8Array({ length: CHUNK })",
    ),
    (
        "a resizable ArrayBuffer, resized",
        "(() => { const b = new ArrayBuffer(8, { maxByteLength: CHUNK }); b.resize(CHUNK); return b; })()",
    ),
    (
        "a growable SharedArrayBuffer, grown",
        "(() => { if (typeof SharedArrayBuffer !== 'function') return new ArrayBuffer(CHUNK); const b = new SharedArrayBuffer(8, { maxByteLength: CHUNK }); b.grow(CHUNK); return b; })()",
    ),
    (
        "ArrayBuffer.prototype.transfer",
        "(typeof ArrayBuffer.prototype.transfer === 'function' ? new ArrayBuffer(8).transfer(CHUNK) : new ArrayBuffer(CHUNK))",
    ),
    (
        "structuredClone",
        "(typeof structuredClone === 'function' ? structuredClone(new Uint8Array(CHUNK / 64)) && new Uint8Array(CHUNK) : new Uint8Array(CHUNK))",
    ),
    (
        "a WebAssembly.Memory",
        "(typeof WebAssembly === 'object' && WebAssembly ? new WebAssembly.Memory({ initial: CHUNK / 65536 }) : new ArrayBuffer(CHUNK))",
    ),
    (
        "a typed array's constructor found through an instance",
        "new (Object.getPrototypeOf(new Uint8Array(1)).constructor)(CHUNK)",
    ),
];

/// Memory is charged on every allocation path, not only the constructors a driver listed:
/// each path, kept alive in a loop up to eight times the memory limit, ends the execution
/// (with `MemoryLimitError` or the engine's refusal as a `RangeError` or `TypeError`), and the driver
/// stays healthy. Generated over [`BUFFER_PATHS`].
pub async fn every_buffer_path_is_charged(h: &Harness) {
    const CHUNK: u64 = 8 * 1024 * 1024;
    let limits = h.limits_with(|b| b.memory_mib(32));
    for (what, expr) in BUFFER_PATHS {
        let expr = expr.replace("CHUNK", &CHUNK.to_string());
        let code = format!(
            "const keep = [];\nfor (let i = 0; i < 32; i++) keep.push({expr});\nreturn keep.length;"
        );
        let r = h.run_with(&Fixtures::default(), limits, &code).await;
        let e = match &r.outcome {
            Ok(v) => panic!("{what}: 256 MiB made under a 32 MiB limit (returned {v:?})"),
            Err(e) => e,
        };
        if h.capabilities.reports_memory_limit {
            // The limit, or the engine refusing the allocation outright.
            assert!(
                matches!(&e.kind, ErrorKind::MemoryLimit)
                    || e.kind == ErrorKind::Guest("RangeError".into())
                    || e.kind == ErrorKind::Guest("TypeError".into()),
                "{what}: {e}"
            );
        }
        h.assert_healthy().await;
    }
}
