//! A server's durable state from its environment: the snapshot vault that seals paused
//! programs, its single-use ledger, and the store where paused chat executions wait.
//!
//! Why here: the CLI's MCP server and the chat example need the same three things, read the
//! same way, and this crate holds the storages that keep them (a folder, or PostgreSQL).
//!
//! - `CODE_MODE_SNAPSHOT_KEY`: 64 hexadecimal characters (32 bytes), read from the
//!   environment so it never shows in a process list; `CODE_MODE_SNAPSHOT_KEY_ID` names it
//!   (default 1). With it, a paused program survives a restart. Without it, a random key is
//!   drawn, and the ledger and store live in memory (snapshots die with the process anyway).
//! - Single use lasts as long as the key: with a key from the environment, the ledger and
//!   the store are kept in `CODE_MODE_STATE_URL` (a PostgreSQL connection string, feature
//!   `postgres`) when set, else in a folder (`state_dir`, by default
//!   `$XDG_DATA_HOME/code-mode`, else `~/.local/share/code-mode`). A persistent key without a
//!   usable persistent ledger is an error, never a silent fallback to memory.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use code_mode::durable::{MemoryLedger, SnapshotKey, SnapshotLedger, SnapshotVault};
use code_mode_chat::{MemoryPausedStore, PausedStore};

/// Why the durable state could not be made; each names the setting to fix and never
/// repeats the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurableStateError {
    /// `CODE_MODE_SNAPSHOT_KEY` is not 64 hexadecimal characters.
    #[error("CODE_MODE_SNAPSHOT_KEY must be 64 hexadecimal characters (32 bytes); it has {length} characters{}", if *.hexadecimal { "" } else { ", not all hexadecimal" })]
    BadKey {
        /// Characters it has.
        length: usize,
        /// Whether they are all hexadecimal digits.
        hexadecimal: bool,
    },
    /// `CODE_MODE_SNAPSHOT_KEY_ID` is not a `u32`.
    #[error("CODE_MODE_SNAPSHOT_KEY_ID must be a number from 0 to 4294967295, not {0:?}")]
    BadKeyId(String),
    /// No key could be drawn.
    #[error("no random snapshot key could be drawn: {0}")]
    NoRandomKey(String),
    /// A persistent key, and no folder to keep its ledger in.
    #[error(
        "CODE_MODE_SNAPSHOT_KEY needs a ledger that outlives the process: give a state folder (there is no home folder to default to)"
    )]
    NoStateFolder,
    /// The state folder cannot hold the ledger or the store.
    #[error(
        "CODE_MODE_SNAPSHOT_KEY needs a ledger that outlives the process, and the state folder {folder} cannot hold it: {reason} (give another state folder)"
    )]
    StateFolder {
        /// The folder.
        folder: PathBuf,
        /// Why.
        reason: String,
    },
    /// `CODE_MODE_STATE_URL` is set but PostgreSQL cannot be used.
    #[error("CODE_MODE_STATE_URL: the PostgreSQL state cannot be used: {0}")]
    Postgres(String),
    /// `CODE_MODE_STATE_URL` is set in a build without PostgreSQL.
    #[error(
        "CODE_MODE_STATE_URL is set, but this build has no PostgreSQL support (the `postgres` feature)"
    )]
    NoPostgres,
    /// The vault refused its parts.
    #[error("the snapshot vault cannot be built: {0}")]
    Vault(String),
}

/// The key, ledger and paused-execution store of one server (see the module docs).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// // Without CODE_MODE_SNAPSHOT_KEY: a random key, memory only.
/// # unsafe { std::env::remove_var("CODE_MODE_SNAPSHOT_KEY"); std::env::remove_var("CODE_MODE_STATE_URL"); }
/// let state = code_mode_skills::DurableState::from_env(None, false).await.unwrap();
/// assert!(!state.is_persistent());
/// let _vault = state.vault().unwrap();
/// # }
/// ```
#[derive(Clone)]
pub struct DurableState {
    key: SnapshotKey,
    ledger: Arc<dyn SnapshotLedger>,
    paused: Arc<dyn PausedStore>,
    persistent: bool,
}

impl std::fmt::Debug for DurableState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DurableState")
            .field("ledger", &self.ledger)
            .field("paused", &self.paused)
            .field("persistent", &self.persistent)
            .finish_non_exhaustive()
    }
}

impl DurableState {
    /// Reads the environment (see the module docs); `state_dir` overrides the default folder.
    /// `postgres` says whether the calling binary offers PostgreSQL (its own `postgres`
    /// feature): without it, `CODE_MODE_STATE_URL` is refused even when this crate's
    /// PostgreSQL storage was compiled in for another member of the build.
    pub async fn from_env(
        state_dir: Option<&Path>,
        postgres: bool,
    ) -> Result<Self, DurableStateError> {
        let id = match std::env::var("CODE_MODE_SNAPSHOT_KEY_ID") {
            Ok(text) => text
                .trim()
                .parse::<u32>()
                .map_err(|_| DurableStateError::BadKeyId(text))?,
            Err(_) => 1,
        };
        let Ok(hex) = std::env::var("CODE_MODE_SNAPSHOT_KEY") else {
            let key = SnapshotKey::generate(id)
                .map_err(|e| DurableStateError::NoRandomKey(e.to_string()))?;
            return Ok(Self {
                key,
                ledger: Arc::new(MemoryLedger::default()),
                paused: Arc::new(MemoryPausedStore::default()),
                persistent: false,
            });
        };
        let key = SnapshotKey::new(id, parse_key(&hex)?);
        let (ledger, paused) = match std::env::var("CODE_MODE_STATE_URL")
            .ok()
            .filter(|u| !u.trim().is_empty())
        {
            Some(_) if !postgres => return Err(DurableStateError::NoPostgres),
            Some(url) => connect(&url).await?,
            None => {
                let dir = state_dir
                    .map(code_mode::absolute)
                    .or_else(default_state_dir)
                    .ok_or(DurableStateError::NoStateFolder)?;
                folder(&dir)?
            }
        };
        Ok(Self {
            key,
            ledger,
            paused,
            persistent: true,
        })
    }

    /// A vault sealing with this state's key, claiming through its ledger.
    pub fn vault(&self) -> Result<SnapshotVault, DurableStateError> {
        SnapshotVault::builder(self.key.clone())
            .ledger(self.ledger.clone())
            .build()
            .map_err(|e| DurableStateError::Vault(e.to_string()))
    }

    /// Where paused chat executions wait (`code_mode_chat::DurableApprovals`).
    pub fn paused_store(&self) -> Arc<dyn PausedStore> {
        self.paused.clone()
    }

    /// Whether paused programs survive a restart (the key came from the environment).
    pub fn is_persistent(&self) -> bool {
        self.persistent
    }
}

/// `$XDG_DATA_HOME/code-mode`, else `~/.local/share/code-mode`.
pub fn default_state_dir() -> Option<PathBuf> {
    std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .map(|base| base.join("code-mode"))
}

type Parts = (Arc<dyn SnapshotLedger>, Arc<dyn PausedStore>);

fn folder(dir: &Path) -> Result<Parts, DurableStateError> {
    let open = |name: &str| {
        let path = dir.join(name);
        crate::FileSystemStorage::new(&path).map_err(|e| DurableStateError::StateFolder {
            folder: path,
            reason: e.to_string(),
        })
    };
    Ok((
        Arc::new(open("snapshot-ledger")?),
        Arc::new(open("paused-executions")?),
    ))
}

#[cfg(feature = "postgres")]
async fn connect(url: &str) -> Result<Parts, DurableStateError> {
    let storage = Arc::new(
        crate::PostgresStorage::connect(url)
            .await
            .map_err(|e| DurableStateError::Postgres(e.to_string()))?,
    );
    Ok((storage.clone(), storage))
}

#[cfg(not(feature = "postgres"))]
async fn connect(_url: &str) -> Result<Parts, DurableStateError> {
    Err(DurableStateError::NoPostgres)
}

/// 32 bytes from 64 hexadecimal characters; the error never repeats the value.
fn parse_key(hex: &str) -> Result<[u8; 32], DurableStateError> {
    let hex = hex.trim();
    let bad = || DurableStateError::BadKey {
        length: hex.chars().count(),
        hexadecimal: hex.chars().all(|c| c.is_ascii_hexdigit()),
    };
    if hex.len() != 64 || !hex.is_ascii() {
        return Err(bad());
    }
    let mut key = [0u8; 32];
    for (i, byte) in key.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_64_hex_characters_and_errors_do_not_repeat_them() {
        assert_eq!(parse_key(&"0a".repeat(32)), Ok([10; 32]));
        let err = parse_key("secret-value").unwrap_err().to_string();
        assert!(
            err.contains("has 12 characters, not all hexadecimal"),
            "{err}"
        );
        assert!(!err.contains("secret-value"), "{err}");
        assert!(parse_key(&"zz".repeat(32)).is_err());
    }

    #[test]
    fn a_folder_holds_the_ledger_and_the_store_apart() {
        let dir =
            std::env::temp_dir().join(format!("code-mode-durable-state-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        assert!(folder(&dir).is_ok());
        assert!(dir.join("snapshot-ledger").is_dir() && dir.join("paused-executions").is_dir());
        let _ = std::fs::remove_dir_all(&dir);
        let file =
            std::env::temp_dir().join(format!("code-mode-durable-file-{}", std::process::id()));
        std::fs::write(&file, b"x").unwrap();
        let err = folder(&file)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("cannot hold it"), "{err}");
        let _ = std::fs::remove_file(&file);
    }
}
