//! `code-mode-typecheck-setup [DIR]`: installs the type checker's pinned runtime (TypeScript
//! 7 and Node.js 24, prebuilt, from the npm registry) into DIR, or into the default cache
//! folder the checker looks in.
//!
//! One line for users: `cargo run -p code-mode-typecheck --bin code-mode-typecheck-setup`.

use std::path::PathBuf;
use std::process::ExitCode;

use code_mode_typecheck::TypeScriptRuntime;

fn main() -> ExitCode {
    let dir = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(TypeScriptRuntime::default_dir);
    if dir.to_str().is_some_and(|d| d == "--help" || d == "-h") {
        println!(
            "usage: code-mode-typecheck-setup [DIR]   (default {})",
            TypeScriptRuntime::default_dir().display()
        );
        return ExitCode::SUCCESS;
    }
    if let Ok(r) = TypeScriptRuntime::locate(Some(&dir)) {
        println!(
            "the type checker's runtime is installed in {}",
            r.dir().display()
        );
        return ExitCode::SUCCESS;
    }
    eprintln!(
        "installing the type checker's runtime into {} ...",
        dir.display()
    );
    match TypeScriptRuntime::install(&dir) {
        Ok(r) => {
            println!("installed in {}", r.dir().display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
