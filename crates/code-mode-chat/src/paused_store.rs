//! Where sealed executions wait between two requests (see the `durable` module, feature
//! `durable`): a store of opaque bytes by key, each entry handed out once.
//!
//! Why bytes: a sealed execution is already encrypted and authenticated by its vault, so a
//! store needs no schema and cannot leak or forge one; it only has to keep an entry whole,
//! drop it when it expires, and give it to one taker. The trait is always compiled so
//! storage crates (the skills crate's file and Postgres storages) implement it without the
//! sandbox features.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::SystemTime;

use async_trait::async_trait;

/// Why a [`PausedStore`] failed.
#[derive(Debug, thiserror::Error)]
#[error("the paused-execution store failed: {0}")]
pub struct StoreError(pub String);

/// Where sealed executions wait between two requests: opaque bytes by key (the id of the
/// `execute_typescript` call), each handed out once.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use std::time::{Duration, SystemTime};
/// use code_mode_chat::{MemoryPausedStore, PausedStore};
/// let store = MemoryPausedStore::default();
/// let later = SystemTime::now() + Duration::from_secs(60);
/// store.put("call_1", b"sealed".to_vec(), later).await.unwrap();
/// assert_eq!(store.take("call_1").await.unwrap(), Some(b"sealed".to_vec()));
/// assert_eq!(store.take("call_1").await.unwrap(), None);
/// # }
/// ```
#[async_trait]
pub trait PausedStore: Send + Sync + std::fmt::Debug {
    /// Keeps `bytes` under `key` until `expires_at`, replacing an entry of that key. Written
    /// whole or not at all.
    async fn put(
        &self,
        key: &str,
        bytes: Vec<u8>,
        expires_at: SystemTime,
    ) -> Result<(), StoreError>;

    /// Removes and returns the entry of `key`; `None` when there is none or it expired. Of
    /// two concurrent takers, at most one gets it.
    async fn take(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
}

/// A [`PausedStore`] in this process's memory (tests, single-process servers that only need
/// a paused execution not to hold a sandbox). Expired entries are dropped as new ones come.
#[derive(Debug, Default)]
pub struct MemoryPausedStore {
    entries: Mutex<HashMap<String, (Vec<u8>, SystemTime)>>,
}

#[async_trait]
impl PausedStore for MemoryPausedStore {
    async fn put(
        &self,
        key: &str,
        bytes: Vec<u8>,
        expires_at: SystemTime,
    ) -> Result<(), StoreError> {
        let now = SystemTime::now();
        let mut map = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.retain(|_, (_, at)| *at > now);
        map.insert(key.to_owned(), (bytes, expires_at));
        Ok(())
    }

    async fn take(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let entry = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(key);
        Ok(entry.and_then(|(bytes, at)| (at > SystemTime::now()).then_some(bytes)))
    }
}
