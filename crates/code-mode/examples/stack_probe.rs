//! Peak stack of swc's TypeScript stage per construct and depth, the figures behind
//! `STACK_PER_BYTE` in `src/typescript.rs`. Measuring only: it paints the unused part of a
//! fresh stack and finds how far the stage wrote.
//!
//! `cargo run --release -p code-mode --features stack-probe --example stack_probe -- 2000`
//! (and without `--release`, with `--config 'profile.dev.package."*".opt-level=0'`, for
//! unoptimised dependencies).
use std::hint::black_box;

const SIZE: usize = 1024 * 1024 * 1024;

fn measure(code: &str) -> (usize, bool) {
    stacker::grow(SIZE, || {
        let marker = 0u8;
        let sp = &marker as *const u8 as usize;
        let low = (sp - SIZE + 64 * 1024) & !7;
        let high = sp - 16 * 1024;
        unsafe {
            let mut p = low;
            while p < high {
                std::ptr::write_volatile(p as *mut u64, 0xA5A5_A5A5_A5A5_A5A5);
                p += 8;
            }
        }
        let ok = black_box(code_mode::strip_typescript_unchecked(black_box(code))).is_ok();
        let mut p = low;
        unsafe {
            while p < high && std::ptr::read_volatile(p as *const u64) == 0xA5A5_A5A5_A5A5_A5A5 {
                p += 8;
            }
        }
        (sp - p, ok)
    })
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(2000);
    let cases: Vec<(&str, String)> = vec![
        (
            "parens",
            format!("return {}1{};", "(".repeat(n), ")".repeat(n)),
        ),
        ("not", format!("return {}1;", "!".repeat(n))),
        (
            "neg",
            format!("return {}1;", "-".repeat(n).replace("--", "- -")),
        ),
        ("ternary", format!("return {}0;", "a ? 1 : ".repeat(n))),
        ("assign", format!("let a; {}1;", "a = ".repeat(n))),
        ("arrow", format!("return {}1;", "x => ".repeat(n))),
        ("typeof", format!("return {}1;", "typeof ".repeat(n))),
        (
            "template",
            format!("return `{}{}`;", "${`".repeat(n), "`}".repeat(n)),
        ),
        (
            "elseif",
            format!("let x = 0; {} {{}}", "if (x) {} else ".repeat(n)),
        ),
        (
            "ifnobrace",
            format!("let x = 0; {} x;", "if (x) ".repeat(n)),
        ),
        (
            "generic",
            format!("let v: {}number{} = 1;", "Array<".repeat(n), ">".repeat(n)),
        ),
        ("keyof", format!("type T = {}string;", "keyof ".repeat(n))),
        ("nonnull", format!("let a: any; return a{};", "!".repeat(n))),
        ("member", format!("let a: any; return a{};", ".b".repeat(n))),
        (
            "numdot",
            format!("return 1{};", "..toString()".repeat(n / 4)),
        ),
        ("call", format!("let a: any; return a{};", "()".repeat(n))),
        ("index", format!("let a: any; return a{};", "[0]".repeat(n))),
        (
            "labels",
            format!(
                "{} x: ;",
                (0..n).map(|i| format!("l{i}: ")).collect::<String>()
            ),
        ),
        (
            "extends",
            ((0..n).map(|_| "class extends ").collect::<String>() + "Object {}").replacen(
                "class extends",
                "const C = class extends",
                1,
            ),
        ),
        ("sum", format!("return 1{};", " + 1".repeat(n))),
        ("as", format!("return 1{};", " as any".repeat(n))),
        (
            "arraytype",
            format!("let v: number{} = [];", "[]".repeat(n)),
        ),
        (
            "union",
            format!("type U = {}number;", "(".repeat(n))
                .replace("number;", &format!("number{};", ")".repeat(n))),
        ),
        ("blocks", format!("{}{}", "{".repeat(n), "}".repeat(n))),
        ("while", format!("let x = 0; {} x;", "while (x) ".repeat(n))),
        (
            "objects",
            format!("return {}1{};", "{a:".repeat(n), "}".repeat(n)),
        ),
        (
            "arrays",
            format!("return {}1{};", "[".repeat(n), "]".repeat(n)),
        ),
        (
            "fnbody",
            format!("{}{}", "function f() {".repeat(n), "}".repeat(n)),
        ),
        (
            "cond_type",
            format!("type C<T> = {}never;", "T extends string ? 1 : ".repeat(n)),
        ),
        ("fn_type", format!("type F = {}void;", "() => ".repeat(n))),
        ("qualified", format!("let v: a{} = 1;", ".b".repeat(n))),
        ("namespace", format!("namespace A{} {{}}", ".B".repeat(n))),
        (
            "enum_ns",
            format!("{}{}", "namespace A { ".repeat(n), "}".repeat(n)),
        ),
    ];
    for (name, code) in cases {
        let (used, ok) = measure(&code);
        println!(
            "{name:10} n={n:6} bytes={:7} stack={:10} per_level={:6} per_byte={:6} ok={ok}",
            code.len(),
            used,
            used / n.max(1),
            used / code.len()
        );
    }
}
