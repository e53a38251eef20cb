//! Builds the guest: QuickJS-ng + `guest/glue.c`, compiled to a wasm32-wasi reactor.
//!
//! Where the module comes from, in order:
//! 1. `CODE_MODE_QUICKJS_WASM=/path/to/guest.wasm`: a module built elsewhere;
//! 2. `guest/prebuilt/quickjs-guest.wasm`: the module a release step put in the package
//!    (`cargo xtask guest-wasm`), so users without a WASI toolchain can build the crate;
//! 3. compiled here, with clang for `wasm32-wasi` and wasi-libc (Debian: `clang-19 lld-19
//!    libclang-rt-19-dev-wasm32 wasi-libc`, installed by `cargo xtask`), from the QuickJS-ng
//!    sources of the `rquickjs-sys` crate that cargo already fetched (or
//!    `CODE_MODE_QUICKJS_SRC=/dir/with/quickjs.c`). The sources are copied to OUT_DIR and
//!    patched there, so the JS stack limit works under WASI; nothing is vendored.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The `rquickjs-sys` version pinned in Cargo.toml, whose `quickjs/` folder holds the sources.
const RQUICKJS_SYS: &str = "rquickjs-sys-0.14.0";
const PREBUILT: &str = "guest/prebuilt/quickjs-guest.wasm";
/// Linear-memory (shadow) stack of the guest, at the bottom of memory (`--stack-first`), so an
/// overflow traps instead of corrupting data.
const SHADOW_STACK: u32 = 8 * 1024 * 1024;

fn main() {
    println!("cargo:rerun-if-changed=guest/glue.c");
    println!("cargo:rerun-if-changed={PREBUILT}");
    for var in ["CODE_MODE_QUICKJS_WASM", "CODE_MODE_QUICKJS_SRC", "WASI_CC"] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    println!("cargo:rustc-env=CODE_MODE_QJS_SHADOW_STACK={SHADOW_STACK}");
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let target = out.join("quickjs-guest.wasm");

    if let Ok(path) = env::var("CODE_MODE_QUICKJS_WASM") {
        copy(Path::new(&path), &target);
        return;
    }
    if Path::new(PREBUILT).is_file() {
        copy(Path::new(PREBUILT), &target);
        return;
    }
    let Some(src) = quickjs_sources() else {
        fail(&format!(
            "cannot find the QuickJS-ng sources ({RQUICKJS_SYS}/quickjs in cargo's registry); set CODE_MODE_QUICKJS_SRC to a folder holding quickjs.c"
        ));
    };
    let cc = find_clang().unwrap_or_else(|| {
        fail("no clang that targets wasm32-wasi was found. Run `cargo xtask wasi-toolchain` (Debian: apt-get install clang-19 lld-19 libclang-rt-19-dev-wasm32 wasi-libc), set WASI_CC, or set CODE_MODE_QUICKJS_WASM to a prebuilt guest module")
    });
    build(&cc, &src, &out, &target);
}

fn fail(message: &str) -> ! {
    eprintln!("error: {message}");
    panic!("code-mode-isolate-quickjs-wasm: {message}");
}

fn copy(from: &Path, to: &Path) {
    if let Err(e) = fs::copy(from, to) {
        fail(&format!(
            "cannot copy the guest module {}: {e}",
            from.display()
        ));
    }
}

fn quickjs_sources() -> Option<PathBuf> {
    if let Ok(dir) = env::var("CODE_MODE_QUICKJS_SRC") {
        return Some(PathBuf::from(dir));
    }
    let home = env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))?;
    let registries = fs::read_dir(home.join("registry").join("src")).ok()?;
    registries
        .filter_map(Result::ok)
        .map(|r| r.path().join(RQUICKJS_SYS).join("quickjs"))
        .find(|dir| dir.join("quickjs.c").is_file())
}

fn find_clang() -> Option<String> {
    if let Ok(cc) = env::var("WASI_CC") {
        return Some(cc);
    }
    ["clang-19", "clang-22", "clang-20", "clang-21", "clang"]
        .into_iter()
        .find(|cc| {
            Command::new(cc)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .map(str::to_owned)
}

/// Copies quickjs.c into OUT_DIR with four changes: the JS stack limit works under WASI
/// (upstream turns it off there); the stack guard sets `cm_stack_overflow` when it fires;
/// stack traces leave out the frames of code evaluated as `<prelude>`; and a setter for the
/// realm's random seed, so that every instance made from one snapshot gets its own
/// `Math.random` sequence.
fn patch(src: &Path, out: &Path) -> PathBuf {
    let text = fs::read_to_string(src.join("quickjs.c"))
        .unwrap_or_else(|e| fail(&format!("cannot read quickjs.c: {e}")));
    let patched = text
        .replacen("#ifdef __wasi__\n    rt->stack_size = 0;\n#endif\n", "", 1)
        .replacen(
            "#if defined(__wasi__)\n    rt->stack_limit = 0; /* no limit */\n#else\n    if (rt->stack_size == 0) {",
            "#if 0\n#else\n    if (rt->stack_size == 0 || rt->stack_size >= rt->stack_top) {",
            1,
        );
    if !patched.contains("rt->stack_size >= rt->stack_top")
        || patched.contains("rt->stack_size = 0;\n#endif")
    {
        fail("the stack-limit patch does not apply to this QuickJS-ng version");
    }
    // The engine's stack guard tells the glue it fired, so the driver never has to read a
    // thrown error's text to know a stack overflow from a program's own `RangeError`.
    let guard =
        "static JSValue JS_ThrowStackOverflow(JSContext *ctx)\n{\n    return JS_ThrowRangeError(";
    if !patched.contains(guard) {
        fail("the stack-overflow patch does not apply to this QuickJS-ng version");
    }
    let patched = patched.replacen(
        guard,
        "int cm_stack_overflow;\nstatic JSValue JS_ThrowStackOverflow(JSContext *ctx)\n{\n    cm_stack_overflow = 1;\n    return JS_ThrowRangeError(",
        1,
    );
    // A program's stacks show its own frames only: the prelude that runs it and the
    // bindings it calls are machinery. Skipped where the trace is built (only when an error
    // is made), so no formatter runs and nothing changes for executions without errors.
    let frame = "            backtrace_barrier = b->backtrace_barrier;\n        }\n";
    if patched.matches(frame).count() != 1 || !patched.contains("\nstatic void build_backtrace(") {
        fail("the stack-trace patch does not apply to this QuickJS-ng version");
    }
    let patched = patched
        .replacen(
            frame,
            "            backtrace_barrier = b->backtrace_barrier;\n        }\n        if (b && cm_is_prelude(ctx, b->filename))\n            continue;\n",
            1,
        )
        .replacen(
            "\nstatic void build_backtrace(",
            "\nstatic bool cm_is_prelude(JSContext *ctx, JSAtom filename)\n{\n    static JSAtom prelude = JS_ATOM_NULL;\n    if (prelude == JS_ATOM_NULL)\n        prelude = JS_NewAtom(ctx, \"<prelude>\");\n    return filename == prelude;\n}\n\nstatic void build_backtrace(",
            1,
        );
    let patched = patched
        + "\nvoid cm_set_random_seed(JSContext *ctx, uint64_t seed)\n{\n    ctx->random_state = seed ? seed : 1;\n}\n";
    let path = out.join("quickjs_patched.c");
    fs::write(&path, patched)
        .unwrap_or_else(|e| fail(&format!("cannot write {}: {e}", path.display())));
    path
}

fn build(cc: &str, src: &Path, out: &Path, target: &Path) {
    let glue = PathBuf::from("guest/glue.c");
    let units = [
        (patch(src, out), "quickjs.o"),
        (src.join("libregexp.c"), "libregexp.o"),
        (src.join("libunicode.c"), "libunicode.o"),
        (src.join("dtoa.c"), "dtoa.o"),
        (glue, "glue.o"),
    ];
    let include = format!("-I{}", src.display());
    let children: Vec<_> = units
        .iter()
        .map(|(c, o)| {
            Command::new(cc)
                .args([
                    "--target=wasm32-wasi",
                    "-O2",
                    "-D_GNU_SOURCE",
                    "-fvisibility=hidden",
                ])
                .args(["-Wno-everything", &include, "-c"])
                .arg(c)
                .arg("-o")
                .arg(out.join(o))
                .spawn()
                .unwrap_or_else(|e| fail(&format!("cannot run {cc}: {e}")))
        })
        .collect();
    for (mut child, (c, _)) in children.into_iter().zip(&units) {
        let ok = child.wait().is_ok_and(|s| s.success());
        if !ok {
            fail(&format!(
                "{cc} could not compile {} for wasm32-wasi; is wasi-libc installed (`cargo xtask wasi-toolchain`)?",
                c.display()
            ));
        }
    }
    let mut link = Command::new(cc);
    link.args(["--target=wasm32-wasi", "-mexec-model=reactor", "-O2"])
        .arg(format!("-Wl,-z,stack-size={SHADOW_STACK}"))
        .args(["-Wl,--stack-first", "-Wl,--strip-debug"]);
    for (_, o) in &units {
        link.arg(out.join(o));
    }
    let output = link
        .arg("-o")
        .arg(target)
        .output()
        .unwrap_or_else(|e| fail(&format!("cannot run {cc}: {e}")));
    if !output.status.success() {
        fail(&format!(
            "linking the guest failed (is lld installed?):\n{}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
}
