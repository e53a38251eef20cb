//! The snapshot vault `code-mode` gives a driver that can pause durably (QuickJS-WASM):
//! `code-mode mcp` then asks clients on MCP protocol 2026-07-28 for approvals with
//! `input_required` rounds (or tasks), the program sealed in between (see `code-mode-mcp`).
//!
//! The key and its single-use ledger come from the environment through
//! [`code_mode_skills::DurableState`] (shared with the chat example): `CODE_MODE_SNAPSHOT_KEY`
//! (and `CODE_MODE_SNAPSHOT_KEY_ID`) makes paused programs survive a restart, with the ledger
//! under `--state-dir` or in `CODE_MODE_STATE_URL`'s PostgreSQL (feature `postgres`); without
//! a key, each process draws a random one and keeps its ledger in memory.

use std::path::Path;
use std::sync::OnceLock;

use code_mode::durable::SnapshotVault;
use code_mode_skills::{DurableState, DurableStateError};

/// This process's durable state, made once at startup ([`prepare`]).
static STATE: OnceLock<DurableState> = OnceLock::new();

/// Makes this process's key and ledger; an unusable persistent ledger for a persistent key
/// is an error naming what to fix (`--state-dir` is the CLI's state folder).
pub(crate) async fn prepare(state_dir: Option<&Path>) -> Result<(), String> {
    if STATE.get().is_some() {
        return Ok(());
    }
    // PostgreSQL is this binary's `postgres` feature, whatever else the build unified in.
    let state = DurableState::from_env(state_dir, cfg!(feature = "postgres"))
        .await
        .map_err(|e| match e {
            DurableStateError::NoStateFolder => "CODE_MODE_SNAPSHOT_KEY needs a ledger that outlives the process: give --state-dir (there is no home folder to default to)".to_owned(),
            DurableStateError::StateFolder { folder, reason } => format!(
                "CODE_MODE_SNAPSHOT_KEY needs a ledger that outlives the process, and the state folder {} cannot hold it: {reason} (give another --state-dir)",
                folder.display()
            ),
            other => other.to_string(),
        })?;
    let _ = STATE.set(state);
    Ok(())
}

/// The vault of this process; [`prepare`] must have run.
pub(crate) fn vault() -> Result<SnapshotVault, String> {
    STATE
        .get()
        .ok_or("the snapshot vault was not prepared at startup")?
        .vault()
        .map_err(|e| e.to_string())
}
