//! Grammar-aware fuzzing of the TypeScript stage with deeply nested programs.
//!
//! A generator builds programs from every recursive production of the grammar (expressions,
//! statements, types, classes, templates), nests them to random depths with random mixes, and
//! feeds them to `strip_typescript`. The property: the stage answers (a value or a
//! `TypeScriptError`) and never takes the process down, and a program whose real nesting is
//! above the limit is refused as too deep. A crash is a failed test run (the process dies).
//!
//! `cargo test` runs a short, fixed-seed round plus the regression corpus
//! (`tests/corpus/nesting.tsv`). A long round: `CODE_MODE_FUZZ_SECS=600 cargo test --release
//! -p code-mode --test nesting_fuzz -- --nocapture` (`cargo xtask fuzz` does that), with
//! `CODE_MODE_FUZZ_SEED` to replay a seed.

use std::time::{Duration, Instant};

use code_mode::driver::MAX_NESTING;
use code_mode::{ErrorKind, strip_typescript};

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// One level of nesting around `inner`, in the syntactic category of the result.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Cat {
    Expr,
    Stmt,
    Type,
}

/// Productions: (category of the result, category of the hole, template with `@` as hole).
const PRODUCTIONS: &[(Cat, Cat, &str)] = &[
    (Cat::Expr, Cat::Expr, "(@)"),
    (Cat::Expr, Cat::Expr, "!@"),
    (Cat::Expr, Cat::Expr, "- @"),
    (Cat::Expr, Cat::Expr, "typeof @"),
    (Cat::Expr, Cat::Expr, "await @"),
    (Cat::Expr, Cat::Expr, "[@]"),
    (Cat::Expr, Cat::Expr, "{a: @}"),
    (Cat::Expr, Cat::Expr, "{[@]: 1}"),
    (Cat::Expr, Cat::Expr, "(@).b"),
    (Cat::Expr, Cat::Expr, "(@)!"),
    (Cat::Expr, Cat::Expr, "(@)()"),
    (Cat::Expr, Cat::Expr, "(@)[0]"),
    (Cat::Expr, Cat::Expr, "f(@)"),
    (Cat::Expr, Cat::Expr, "(@) as any"),
    (Cat::Expr, Cat::Expr, "(@) satisfies unknown"),
    (Cat::Expr, Cat::Expr, "a ? @ : 0"),
    (Cat::Expr, Cat::Expr, "a ? 0 : @"),
    (Cat::Expr, Cat::Expr, "x => @"),
    (Cat::Expr, Cat::Expr, "async (x) => @"),
    (Cat::Expr, Cat::Expr, "`${@}`"),
    (Cat::Expr, Cat::Expr, "1 + @"),
    (Cat::Expr, Cat::Expr, "(@) + 1"),
    (Cat::Expr, Cat::Expr, "a = @"),
    (Cat::Expr, Cat::Expr, "new C(@)"),
    (Cat::Expr, Cat::Expr, "a?.(@)"),
    (Cat::Expr, Cat::Expr, "<any>(@)"),
    (Cat::Expr, Cat::Stmt, "(() => { @ })()"),
    (Cat::Expr, Cat::Stmt, "function () { @ }"),
    (Cat::Expr, Cat::Stmt, "class extends (@, Object) {}"),
    (Cat::Expr, Cat::Type, "(0 as @)"),
    (Cat::Expr, Cat::Type, "f<@>()"),
    (Cat::Stmt, Cat::Stmt, "if (x) @"),
    (Cat::Stmt, Cat::Stmt, "if (x) {} else @"),
    (Cat::Stmt, Cat::Stmt, "if (x) x; else @"),
    (Cat::Stmt, Cat::Stmt, "while (x) @"),
    (Cat::Stmt, Cat::Stmt, "for (;;) @"),
    (Cat::Stmt, Cat::Stmt, "do @ while (x)"),
    (Cat::Stmt, Cat::Stmt, "{ @ }"),
    (Cat::Stmt, Cat::Stmt, "l: @"),
    (Cat::Stmt, Cat::Stmt, "try { @ } finally {}"),
    (Cat::Stmt, Cat::Stmt, "function g() { @ }"),
    (Cat::Stmt, Cat::Stmt, "switch (x) { case 1: @ }"),
    (Cat::Stmt, Cat::Stmt, "namespace N { @ }"),
    (Cat::Stmt, Cat::Expr, "x = @;"),
    (Cat::Stmt, Cat::Expr, "if (@) {}"),
    (Cat::Stmt, Cat::Expr, "return @;"),
    (Cat::Stmt, Cat::Type, "type T = @;"),
    (Cat::Stmt, Cat::Type, "let v: @;"),
    (Cat::Type, Cat::Type, "Array<@>"),
    (Cat::Type, Cat::Type, "keyof @"),
    (Cat::Type, Cat::Type, "readonly (@)[]"),
    (Cat::Type, Cat::Type, "(@)[]"),
    (Cat::Type, Cat::Type, "(@)"),
    (Cat::Type, Cat::Type, "() => @"),
    (Cat::Type, Cat::Type, "{ a: @ }"),
    (Cat::Type, Cat::Type, "[@]"),
    (Cat::Type, Cat::Type, "(@) | 1"),
    (Cat::Type, Cat::Type, "T extends @ ? 1 : 0"),
    (Cat::Type, Cat::Type, "Promise<@>[\"then\"]"),
];

/// Leaves per category, to close the innermost hole.
fn leaf(cat: Cat) -> &'static str {
    match cat {
        Cat::Expr => "1",
        Cat::Stmt => "x;",
        Cat::Type => "string",
    }
}

/// A program with `depth` nested productions; returns it and its real nesting depth.
fn generate(rng: &mut Rng, depth: usize, mix: usize) -> String {
    // Choose a small set of productions so that some programs are uniform chains (the worst
    // cases) and others mix categories.
    let chosen: Vec<usize> = (0..mix).map(|_| rng.below(PRODUCTIONS.len())).collect();
    let mut prefix = String::new();
    let mut suffixes: Vec<&str> = Vec::new();
    let mut cat = Cat::Stmt;
    for _ in 0..depth {
        // Prefer productions that fit the current hole; bridge otherwise.
        let candidates: Vec<usize> = chosen
            .iter()
            .copied()
            .filter(|&p| PRODUCTIONS[p].0 == cat)
            .collect();
        let p = if candidates.is_empty() {
            let fitting: Vec<usize> = (0..PRODUCTIONS.len())
                .filter(|&p| PRODUCTIONS[p].0 == cat)
                .collect();
            fitting[rng.below(fitting.len())]
        } else {
            candidates[rng.below(candidates.len())]
        };
        let (_, hole, template) = PRODUCTIONS[p];
        let (before, after) = template.split_once('@').unwrap_or((template, ""));
        prefix.push_str(before);
        suffixes.push(after);
        cat = hole;
    }
    prefix.push_str(leaf(cat));
    for s in suffixes.iter().rev() {
        prefix.push_str(s);
    }
    prefix
}

fn check(code: &str, real_depth: usize, what: &str) {
    match strip_typescript(code) {
        Ok(_) => assert!(
            real_depth <= MAX_NESTING,
            "{what}: {real_depth} levels of real nesting were accepted: {}",
            &code[..code.len().min(200)]
        ),
        Err(e) => assert!(
            matches!(e.kind, ErrorKind::TypeScript),
            "{what}: unexpected error kind {e}"
        ),
    }
}

#[test]
fn deep_programs_never_crash_the_typescript_stage() {
    let secs: u64 = std::env::var("CODE_MODE_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let seed: u64 = std::env::var("CODE_MODE_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5EED_C0DE);
    let mut rng = Rng(seed | 1);
    let budget = Duration::from_secs(secs);
    let started = Instant::now();
    let (mut runs, mut accepted, mut refused) = (0u64, 0u64, 0u64);
    let mut slowest = (Duration::ZERO, String::new());
    // Replaying a failure: `CODE_MODE_FUZZ_REPLAY=<run>` generates up to that run without
    // running the earlier ones and writes its program next to the test binary.
    let replay: Option<u64> = std::env::var("CODE_MODE_FUZZ_REPLAY")
        .ok()
        .and_then(|s| s.parse().ok());
    let min_runs = 400;
    while runs < min_runs || started.elapsed() < budget || replay.is_some() {
        let depth = match rng.below(4) {
            0 => rng.below(200),
            1 => 200 + rng.below(1000),
            2 => MAX_NESTING + rng.below(MAX_NESTING),
            _ => rng.below(20_000),
        };
        let mix = 1 + rng.below(4);
        let code = generate(&mut rng, depth, mix);
        if let Some(target) = replay {
            if runs < target {
                runs += 1;
                continue;
            }
            let path =
                std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("nesting-fuzz-replay.ts");
            std::fs::write(&path, &code).unwrap_or_else(|e| panic!("{e}"));
            eprintln!("run {runs} ({depth} deep) written to {}", path.display());
            return;
        }
        let one = Instant::now();
        let outcome = strip_typescript(&code);
        if one.elapsed() > slowest.0 {
            slowest = (one.elapsed(), code.chars().take(120).collect());
        }
        match outcome {
            Ok(_) => {
                accepted += 1;
                assert!(
                    depth <= MAX_NESTING,
                    "seed {seed}, run {runs}: {depth} productions deep was accepted: {}",
                    &code[..code.len().min(300)]
                );
            }
            Err(e) => {
                refused += 1;
                assert!(
                    matches!(e.kind, ErrorKind::TypeScript),
                    "seed {seed}, run {runs}: {e}"
                );
            }
        }
        runs += 1;
    }
    eprintln!(
        "nesting fuzz: seed {seed}: {runs} programs in {:.1} s ({accepted} accepted, {refused} refused), 0 crashes; slowest {:.1} ms: {}",
        started.elapsed().as_secs_f64(),
        slowest.0.as_secs_f64() * 1000.0,
        slowest.1
    );
}

/// The programs the outside test round crashed the host with, and every construct nested far
/// past the limit, from `tests/corpus/nesting.tsv` (name, prefix, repeated unit, count,
/// suffix; `\t` separated, `\n` in a field written as `\n`).
#[test]
fn regression_corpus() {
    let corpus = include_str!("corpus/nesting.tsv");
    let mut n = 0;
    for line in corpus
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let fields: Vec<String> = line.split('\t').map(|f| f.replace("\\n", "\n")).collect();
        let [name, prefix, unit, count, suffix] = fields.as_slice() else {
            panic!("bad corpus line: {line}");
        };
        let count: usize = count.parse().unwrap_or_else(|e| panic!("{name}: {e}"));
        let code = format!("{prefix}{}{suffix}", unit.repeat(count));
        check(&code, count, name);
        n += 1;
    }
    assert!(n >= 20, "the corpus lost entries: {n}");
}

/// Deep programs just under the limit still work: the limit is not a lottery.
#[test]
fn every_production_nested_300_deep_is_accepted() {
    for (cat, hole, template) in PRODUCTIONS {
        // `<T>(…)` and labels are weighted by their parse cost (see `nesting.rs`).
        if cat != hole
            || template.contains("namespace")
            || template.starts_with("<any>")
            || template.starts_with("l:")
        {
            continue;
        }
        let (before, after) = template.split_once('@').unwrap_or((template, ""));
        let body = format!("{}{}{}", before.repeat(300), leaf(*cat), after.repeat(300));
        let code = match cat {
            Cat::Expr => format!("let a: any, f: any, C: any, x: any; return {body};"),
            Cat::Stmt => format!("let x: any = 0; {body}"),
            Cat::Type => format!("type X<T> = {body};"),
        };
        if let Err(e) = strip_typescript(&code) {
            assert!(
                !e.message.contains("nests too deeply"),
                "{template} ×300 refused: {e}"
            );
        }
    }
}
