//! `code-mode-workerd [--install-only] [DIR]`: runs the code-mode Worker on a local workerd
//! (installing `workerd` from npm first if needed) and prints how to point the driver at it;
//! the Worker's token comes from `CODE_MODE_WORKER_TOKEN` if set. Stops on Enter.

use std::path::PathBuf;
use std::process::ExitCode;

use code_mode_isolate_cloudflare::LocalWorkerd;

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let install_only = args.iter().any(|a| a == "--install-only");
    args.retain(|a| a != "--install-only");
    let dir = args
        .first()
        .map(PathBuf::from)
        .unwrap_or_else(LocalWorkerd::default_dir);
    let binary = match std::env::var_os("CODE_MODE_WORKERD").map(PathBuf::from) {
        Some(b) => b,
        None if LocalWorkerd::binary_in(&dir).is_file() => LocalWorkerd::binary_in(&dir),
        None => {
            eprintln!("installing workerd into {} ...", dir.display());
            match LocalWorkerd::install(&dir) {
                Ok(b) => b,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
    };
    if install_only {
        println!("{}", binary.display());
        return ExitCode::SUCCESS;
    }
    let token = std::env::var("CODE_MODE_WORKER_TOKEN")
        .ok()
        .filter(|t| !t.is_empty());
    let workerd = match LocalWorkerd::start(&binary, token.as_deref()) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("code-mode Worker on {}", workerd.url());
    println!("export CODE_MODE_WORKER_URL={}", workerd.url());
    if token.is_some() {
        println!("export CODE_MODE_WORKER_AUTHORIZATION='Bearer <your CODE_MODE_WORKER_TOKEN>'");
    }
    println!("(press Enter to stop)");
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
    ExitCode::SUCCESS
}
