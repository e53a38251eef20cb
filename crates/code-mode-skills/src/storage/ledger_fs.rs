//! The single-use ledger of sealed executions in the file-system storage's directory (a
//! `code_mode::durable::SnapshotLedger`, feature `durable`), so every process of a machine
//! resuming snapshots refuses one resumed before.
//!
//! ```text
//! skills/.claims/
//!   3f2a…e1      one claimed snapshot id in hex; its content: the expiry, ms since the
//!                epoch (an expired snapshot is refused anyway, so its claim can go)
//! ```
//!
//! A claim creates its file with `create_new`: the file system decides, atomically, which
//! of two processes claims first. Expired claims are removed by later claims.

use std::fs::OpenOptions;
use std::io::{ErrorKind, Write};
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use code_mode::durable::SnapshotLedger;

use super::FileSystemStorage;

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

impl FileSystemStorage {
    fn claim_blocking(&self, id: [u8; 16], expires_at: SystemTime) -> Result<bool, String> {
        let dir = self.dir().join(".claims");
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let now = unix_ms(SystemTime::now());
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for entry in entries.flatten() {
                let expired = std::fs::read_to_string(entry.path())
                    .ok()
                    .and_then(|t| t.trim().parse::<u64>().ok())
                    .is_some_and(|at| at <= now);
                if expired {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
        let name: String = id.iter().map(|b| format!("{b:02x}")).collect();
        let path = dir.join(name);
        match OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(mut file) => {
                file.write_all(unix_ms(expires_at).to_string().as_bytes())
                    .and_then(|()| file.sync_all())
                    .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
                Ok(true)
            }
            Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(format!("cannot create {}: {e}", path.display())),
        }
    }
}

/// Claims snapshot ids as files in `<dir>/.claims/` (see the module docs).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use std::time::{Duration, SystemTime};
/// use code_mode::durable::SnapshotLedger;
/// use code_mode_skills::FileSystemStorage;
/// let dir = std::env::temp_dir().join(format!("ledger-doc-{}", std::process::id()));
/// let storage = FileSystemStorage::new(&dir).unwrap();
/// let until = SystemTime::now() + Duration::from_secs(60);
/// assert!(storage.claim([7; 16], until).await.unwrap());
/// assert!(!storage.claim([7; 16], until).await.unwrap());
/// # std::fs::remove_dir_all(&dir).ok();
/// # }
/// ```
#[async_trait]
impl SnapshotLedger for FileSystemStorage {
    async fn claim(&self, id: [u8; 16], expires_at: SystemTime) -> Result<bool, String> {
        let me = self.clone();
        tokio::task::spawn_blocking(move || me.claim_blocking(id, expires_at))
            .await
            .map_err(|e| format!("the storage task failed: {e}"))?
    }
}
