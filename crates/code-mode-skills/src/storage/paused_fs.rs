//! Paused executions in the file-system storage's directory (a [`PausedStore`]), so a
//! single-machine server keeps its chat approvals across a restart next to its skills.
//!
//! ```text
//! skills/.paused/
//!   63616c6c5f39           one entry: the key in hex; 8 bytes of expiry (ms since the
//!                          epoch, little-endian), then the sealed bytes
//! ```
//!
//! An entry is written to a temporary name, fsynced and renamed into place (whole or not at
//! all). Taking renames it to a name only the taker knows before reading it, so of two
//! processes taking the same key, one gets it and the other finds nothing. Expired entries
//! are removed by the next write.

use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use code_mode_chat::{PausedStore, StoreError};

use super::FileSystemStorage;

/// Keys longer than this are refused: a file name holds at most 255 bytes, and a key is
/// written in hex.
const MAX_KEY_BYTES: usize = 120;

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn failed(op: &str, path: &Path, e: std::io::Error) -> StoreError {
    StoreError(format!("cannot {op} {}: {e}", path.display()))
}

impl FileSystemStorage {
    fn paused_dir(&self) -> PathBuf {
        self.dir().join(".paused")
    }

    fn paused_path(&self, key: &str) -> Result<PathBuf, StoreError> {
        if key.is_empty() || key.len() > MAX_KEY_BYTES {
            return Err(StoreError(format!(
                "a paused-execution key must be 1 to {MAX_KEY_BYTES} bytes, not {}",
                key.len()
            )));
        }
        let hex: String = key.bytes().map(|b| format!("{b:02x}")).collect();
        Ok(self.paused_dir().join(hex))
    }

    fn put_blocking(
        &self,
        key: &str,
        bytes: &[u8],
        expires_at: SystemTime,
    ) -> Result<(), StoreError> {
        let path = self.paused_path(key)?;
        let dir = self.paused_dir();
        std::fs::create_dir_all(&dir).map_err(|e| failed("create", &dir, e))?;
        self.purge_expired(&dir);
        let tmp = dir.join(format!(
            ".tmp-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        let written = (|| {
            let mut f = File::create(&tmp)?;
            f.write_all(&unix_ms(expires_at).to_le_bytes())?;
            f.write_all(bytes)?;
            f.sync_all()?;
            drop(f);
            std::fs::rename(&tmp, &path)?;
            File::open(&dir)?.sync_all()
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        written.map_err(|e| failed("write", &path, e))
    }

    fn take_blocking(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let path = self.paused_path(key)?;
        let claimed = self.paused_dir().join(format!(
            ".taken-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        match std::fs::rename(&path, &claimed) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(failed("claim", &path, e)),
        }
        let read = std::fs::read(&claimed);
        let _ = std::fs::remove_file(&claimed);
        let bytes = read.map_err(|e| failed("read", &path, e))?;
        let Some((expiry, data)) = bytes.split_first_chunk::<8>() else {
            return Err(StoreError(format!("{} is truncated", path.display())));
        };
        let expires_at = UNIX_EPOCH + Duration::from_millis(u64::from_le_bytes(*expiry));
        Ok((expires_at > SystemTime::now()).then(|| data.to_vec()))
    }

    /// Removes the expired entries (best effort: a failure here only delays the cleanup).
    fn purge_expired(&self, dir: &Path) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        let now = unix_ms(SystemTime::now());
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let mut expiry = [0u8; 8];
            let expired = File::open(entry.path())
                .and_then(|mut f| f.read_exact(&mut expiry))
                .is_ok_and(|()| u64::from_le_bytes(expiry) <= now);
            if expired {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
}

/// Keeps paused chat executions in `<dir>/.paused/` (see the module docs).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use std::time::{Duration, SystemTime};
/// use code_mode_chat::PausedStore;
/// use code_mode_skills::FileSystemStorage;
/// let dir = std::env::temp_dir().join(format!("paused-doc-{}", std::process::id()));
/// let storage = FileSystemStorage::new(&dir).unwrap();
/// let later = SystemTime::now() + Duration::from_secs(60);
/// storage.put("call_1", b"sealed".to_vec(), later).await.unwrap();
/// assert_eq!(storage.take("call_1").await.unwrap(), Some(b"sealed".to_vec()));
/// assert_eq!(storage.take("call_1").await.unwrap(), None);
/// # std::fs::remove_dir_all(&dir).ok();
/// # }
/// ```
#[async_trait]
impl PausedStore for FileSystemStorage {
    async fn put(
        &self,
        key: &str,
        bytes: Vec<u8>,
        expires_at: SystemTime,
    ) -> Result<(), StoreError> {
        let me = self.clone();
        let key = key.to_owned();
        tokio::task::spawn_blocking(move || me.put_blocking(&key, &bytes, expires_at))
            .await
            .map_err(|e| StoreError(format!("the storage task failed: {e}")))?
    }

    async fn take(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let me = self.clone();
        let key = key.to_owned();
        tokio::task::spawn_blocking(move || me.take_blocking(&key))
            .await
            .map_err(|e| StoreError(format!("the storage task failed: {e}")))?
    }
}
