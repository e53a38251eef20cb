//! Where skills live. One trait, several backends, one behaviour suite run against each
//! (`tests/storage.rs`).
//!
//! | backend | for |
//! |---|---|
//! | [`FileSystemStorage`] | the default: one machine, human-readable files, safe across processes |
//! | [`InMemoryStorage`] | tests and ephemeral use |
//! | `PostgresStorage` (feature `postgres`) | a fleet of app servers sharing one library |
//! | `MongoStorage` (feature `mongo`) | teams already on MongoDB |
//!
//! The file-system and PostgreSQL storages also keep paused chat executions
//! ([`code_mode_chat::PausedStore`]), so approvals survive a restart next to the skills,
//! and (feature `durable`) record which sealed executions were resumed
//! (`code_mode::durable::SnapshotLedger`), so one resumes once on a machine or a fleet.
//!
//! TanStack's browser `LocalStorage` backend has no Rust counterpart: a Rust application
//! runs on a server, where the file system or a database is the right home; a browser app
//! keeps its skills on its server through these backends.

mod fs;
#[cfg(feature = "durable")]
mod ledger_fs;
#[cfg(all(feature = "durable", feature = "postgres"))]
mod ledger_postgres;
mod memory;
#[cfg(feature = "mongo")]
mod mongo;
mod paused_fs;
#[cfg(feature = "postgres")]
mod paused_postgres;
#[cfg(feature = "postgres")]
mod postgres;

use async_trait::async_trait;

pub use fs::FileSystemStorage;
pub use memory::InMemoryStorage;
#[cfg(feature = "mongo")]
pub use mongo::{MongoStorage, from_document, to_document};
#[cfg(feature = "postgres")]
pub use postgres::PostgresStorage;

use crate::error::SkillError;
use crate::skill::{RunRecord, Skill};
use crate::trust::TrustStrategy;

/// What [`SkillStorage::list`] returns: the readable skills, and what was skipped.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SkillList {
    /// Every readable skill, by name.
    pub skills: Vec<Skill>,
    /// Entries that could not be read (each a [`SkillError::Corrupt`]); the rest still load.
    pub skipped: Vec<SkillError>,
}

/// What a save expects to find.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// No skill of that name (a registration).
    Absent,
    /// That version (a replacement; the saved skill's version must be one more).
    Version(u32),
}

/// A skill store. Implementations are safe for concurrent use, and never lose an update
/// under concurrency: saves are checked against [`Expect`], runs are counted atomically.
#[async_trait]
pub trait SkillStorage: Send + Sync {
    /// Backend name (`filesystem`, `memory`, `postgres`, `mongo`).
    fn backend(&self) -> &'static str;

    /// Every skill, sorted by name; unreadable entries are reported in
    /// [`SkillList::skipped`], not fatal.
    async fn list(&self) -> Result<SkillList, SkillError>;

    /// One skill by name (`None` if absent; an invalid name is an error).
    async fn get(&self, name: &str) -> Result<Option<Skill>, SkillError>;

    /// Saves `skill`: a new one with [`Expect::Absent`], or a new version of an existing one
    /// with [`Expect::Version`] of the stored version. The whole skill is written or nothing.
    async fn save(&self, skill: &Skill, expect: Expect) -> Result<(), SkillError>;

    /// Deletes a skill; `true` if it existed.
    async fn delete(&self, name: &str) -> Result<bool, SkillError>;

    /// Counts a run and applies `strategy`; returns the updated skill (`None` if absent).
    async fn record_run(
        &self,
        name: &str,
        run: &RunRecord,
        strategy: &TrustStrategy,
    ) -> Result<Option<Skill>, SkillError>;
}

/// The version check shared by the backends that read before they write.
pub(crate) fn check_expect(
    name: &str,
    found: Option<u32>,
    expect: Expect,
    new_version: u32,
) -> Result<(), SkillError> {
    match (expect, found) {
        (Expect::Absent, None) => Ok(()),
        (Expect::Absent, Some(version)) => Err(SkillError::AlreadyExists {
            name: name.to_owned(),
            version,
        }),
        (Expect::Version(_), None) => Err(SkillError::NotFound(name.to_owned())),
        (Expect::Version(expected), Some(found)) if expected != found => {
            Err(SkillError::VersionConflict {
                name: name.to_owned(),
                expected,
                found,
            })
        }
        (Expect::Version(expected), Some(_)) if new_version != expected + 1 => {
            Err(SkillError::Invalid {
                name: name.to_owned(),
                reason: format!(
                    "a replacement of version {expected} must be version {}",
                    expected + 1
                ),
            })
        }
        _ => Ok(()),
    }
}
