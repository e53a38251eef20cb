//! Errors of the skill library. Messages go back to the model (registration) or to the
//! operator (storage), so each says what was wrong and what to do.

use std::path::PathBuf;

/// What went wrong.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SkillError {
    /// The name is not a valid skill name.
    #[error(
        "invalid skill name {name:?}: {reason} (names are lower snake_case identifiers such as `top_repos`, at most 64 characters)"
    )]
    InvalidName {
        /// The name given.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A field of the skill is invalid (schema, code, size).
    #[error("invalid skill {name:?}: {reason}")]
    Invalid {
        /// The skill.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// No such skill.
    #[error("skill {0:?} not found")]
    NotFound(String),
    /// The name is taken.
    #[error(
        "skill {name:?} already exists (version {version}); choose another name, or pass replace: true to save a new version"
    )]
    AlreadyExists {
        /// The name.
        name: String,
        /// Its current version.
        version: u32,
    },
    /// Someone else saved a newer version first.
    #[error(
        "skill {name:?} changed concurrently: expected version {expected}, found {found}; reload it and retry"
    )]
    VersionConflict {
        /// The name.
        name: String,
        /// The version the writer based its change on.
        expected: u32,
        /// The version found.
        found: u32,
    },
    /// A stored skill cannot be read.
    #[error("stored skill at {location} is corrupt: {reason}")]
    Corrupt {
        /// File path or record key.
        location: String,
        /// What is wrong.
        reason: String,
    },
    /// A file operation failed.
    #[error("{op} {path}: {reason}")]
    Io {
        /// What was attempted.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        reason: String,
    },
    /// The database failed.
    #[error("{backend} storage: {reason}")]
    Backend {
        /// `postgres`, `mongo`, ...
        backend: &'static str,
        /// What failed.
        reason: String,
    },
}
