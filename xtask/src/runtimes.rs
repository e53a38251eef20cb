//! Run-time dependencies of the drivers, installed from the package registries into
//! `.cache/` of the workspace (ignored by git).

use std::process::Command;

use crate::matrix::Provision;
use crate::provision;

/// The V8 driver's Node 24 + isolated-vm runtime, installed by the crate's own setup binary
/// (the same one users run). Skipped, with the reason, when npm is missing.
pub fn v8() -> Result<Vec<(String, String)>, Provision> {
    let has_npm = Command::new("npm")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_npm {
        return Err(Provision::Skip(
            "npm is not installed (the V8 runtime comes from the npm registry)".into(),
        ));
    }
    let dir = provision::root().join(".cache/v8-runtime");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    provision::run(
        Command::new(cargo)
            .args([
                "run",
                "--quiet",
                "-p",
                "code-mode-isolate-v8",
                "--bin",
                "code-mode-v8-setup",
                "--",
            ])
            .arg(&dir),
    )
    .map_err(Provision::Fail)?;
    Ok(vec![(
        "CODE_MODE_V8_RUNTIME".to_owned(),
        dir.to_string_lossy().into_owned(),
    )])
}
