//! The chat example's browser test: installs the page's npm packages (lockfile-pinned),
//! builds the page with Vite, makes sure Debian Chromium is there, then runs the ignored-by-
//! default test `examples/tests/chat_e2e.rs` (it needs all three).

use std::path::Path;
use std::process::Command;

use crate::provision;

/// The browser tests' names, so the workspace run can skip them when the page or Chromium
/// cannot be provisioned.
pub const TEST_NAMES: &[&str] = &[
    "page_shows_live_events_before_the_result",
    "page_approves_and_denies_a_call_inside_a_program",
    "page_answers_two_approvals_in_one_program",
    "page_answers_three_approvals_in_one_program",
    "page_answers_approvals_asked_at_once",
    "page_resumes_an_approval_after_the_server_restarts",
];

/// Provisions the page and Chromium; returns the environment the test needs.
pub fn provision() -> anyhow::Result<Vec<(String, String)>> {
    let web = provision::root().join("examples/chat-server/web");
    provision::npm_ci(&web)?;
    println!("== building the chat page (vite) ==");
    provision::run(
        Command::new("npm")
            .args(["run", "--silent", "build"])
            .current_dir(&web),
    )?;
    let chromium = provision::chromium()?;
    Ok(vec![(
        "CHROMIUM".to_owned(),
        chromium.to_string_lossy().into_owned(),
    )])
}

/// `cargo test` arguments running only the browser test.
pub fn test_args() -> Vec<&'static str> {
    vec![
        "test",
        "-p",
        "code-mode-examples",
        "--test",
        "chat_e2e",
        "--",
        "--ignored",
    ]
}

/// `cargo xtask e2e`: provision, run the test, and keep the screenshot where asked.
pub fn run(screenshot: Option<&Path>) -> anyhow::Result<()> {
    let mut env = provision()?;
    if let Some(path) = screenshot {
        let absolute = std::env::current_dir()?.join(path);
        env.push((
            "CODE_MODE_E2E_SCREENSHOT".to_owned(),
            absolute.to_string_lossy().into_owned(),
        ));
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    provision::run(Command::new(cargo).args(test_args()).envs(env))
}
