//! The durable-pause part of `cargo xtask bench` (`benches/src/bin/durable_bench.rs`):
//! snapshot sizes, seal and resume times on the QuickJS-WASM driver.

use std::fmt::Write as _;

const HEADING: &str = "## Durable pause (QuickJS-WASM)";

/// `cargo xtask bench --durable-only`: runs this benchmark alone and replaces its section of
/// `docs/benchmarks.md` (or inserts it before the soak's), keeping the other sections.
pub fn replace_section() -> anyhow::Result<()> {
    let section = section(200)?;
    let path = crate::provision::root().join("docs/benchmarks.md");
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    let out = match text.find(HEADING) {
        Some(start) => {
            let rest = &text[start + HEADING.len()..];
            let next = rest.find("\n## ").map(|i| i + 1);
            let soak = rest.find(crate::soak::BEGIN);
            let end = [next, soak]
                .into_iter()
                .flatten()
                .min()
                .map_or(text.len(), |i| start + HEADING.len() + i);
            format!("{}{section}{}", &text[..start], &text[end..])
        }
        None => match text.find(crate::soak::BEGIN) {
            Some(at) => format!("{}{section}{}", &text[..at], &text[at..]),
            None => format!("{text}\n{section}"),
        },
    };
    std::fs::write(&path, out)?;
    println!("wrote {}", path.display());
    Ok(())
}

/// Builds and runs the durable-pause benchmark; returns its section of `docs/benchmarks.md`.
pub fn section(runs: usize) -> anyhow::Result<String> {
    let mut md = format!("{HEADING}\n\n");
    let v = crate::bench_bin::run(
        "durable_bench",
        &["--features", "quickjs-wasm"],
        &["--runs".into(), runs.to_string().into()],
        &[],
    )?;
    writeln!(
        md,
        "A program paused at a call waiting for approval is sealed (guest memory and host records, LZ4-compressed, ChaCha20-Poly1305 with the application's key) and resumed from the bytes: opened and checked, restored into a new instance, the approved call run, the program run to its result. Small: one call before the approval. Heap-heavy: a 40,000-entry `Map` kept across the pause. Medians of {} runs (heavy: a quarter as many), `benches/src/bin/durable_bench.rs`.\n",
        v["runs"]
    )?;
    writeln!(
        md,
        "| program | guest image (raw) | sealed (compressed) | seal | resume to the result | seal + resume |\n|---|---|---|---|---|---|"
    )?;
    for (label, key) in [("small", "small"), ("heap-heavy", "heavy")] {
        let r = &v[key];
        let kib = |k: &str| r[k].as_f64().unwrap_or(f64::NAN) / 1024.0;
        let ms = |k: &str| r[k].as_f64().unwrap_or(f64::NAN) / 1000.0;
        writeln!(
            md,
            "| {label} | {:.0} KiB | {:.0} KiB | {:.2} ms | {:.2} ms | {:.2} ms |",
            kib("image_bytes"),
            kib("sealed_bytes"),
            ms("seal_us"),
            ms("resume_us"),
            ms("total_us"),
        )?;
    }
    let total = v["small"]["total_us"].as_f64().unwrap_or(f64::NAN) / 1000.0;
    writeln!(
        md,
        "\nTarget: seal + resume ≤ 5 ms for a typical paused program; the small program takes {total:.2} ms ({}). For scale, a whole fresh-context `return 1 + 1` on this driver takes {:.2} ms.\n",
        if total <= 5.0 { "met" } else { "missed" },
        v["fresh_us"].as_f64().unwrap_or(f64::NAN) / 1000.0
    )?;
    Ok(md)
}
