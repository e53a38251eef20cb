//! What can go wrong sealing or resuming a paused execution.

/// Sealing a paused execution failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    /// The sealed execution would exceed the vault's size cap.
    #[error(
        "the paused execution takes {bytes} bytes sealed, over the snapshot limit of {max} bytes; raise SnapshotVaultBuilder::max_bytes or keep less data in the program's memory"
    )]
    TooLarge {
        /// Bytes it would take.
        bytes: u64,
        /// The cap.
        max: u64,
    },
    /// The system's random source failed (keys and nonces need it).
    #[error("the system random source failed: {0}")]
    Random(String),
    /// A vault setting is out of range.
    #[error("invalid snapshot vault setting: {0}")]
    Config(String),
}

/// Resuming a sealed execution was refused or failed. Every check runs before any byte
/// reaches a sandbox.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ResumeError {
    /// The driver cannot pause durably.
    #[error("the {driver} driver does not support durable pause; use the quickjs-wasm driver")]
    Unsupported {
        /// Its name.
        driver: String,
    },
    /// The bytes are not a sealed execution (truncated, wrong magic, bad lengths).
    #[error("not a sealed code-mode execution: {0}")]
    Malformed(String),
    /// Sealed by a format this build does not read.
    #[error("the snapshot format version {found} is not supported (this build reads {supported})")]
    Version {
        /// The snapshot's version.
        found: u16,
        /// The version this build reads.
        supported: u16,
    },
    /// Sealed with a key the vault does not hold.
    #[error("the snapshot was sealed with key {0}, which this vault does not hold")]
    UnknownKey(u32),
    /// Authentication failed.
    #[error(
        "the snapshot failed authentication: its bytes were changed, or it was sealed with another key or for another context (associated data)"
    )]
    Forged,
    /// Larger than the vault accepts.
    #[error("the snapshot takes {bytes} bytes, over the limit of {max} bytes")]
    TooLarge {
        /// Its size (sealed, or its declared plain size).
        bytes: u64,
        /// The cap.
        max: u64,
    },
    /// Its time-to-live has passed.
    #[error("the snapshot expired {ago_secs} s ago (its time-to-live has passed)")]
    Expired {
        /// Seconds since it expired.
        ago_secs: u64,
    },
    /// Sealed for another driver, guest or binding set.
    #[error(
        "the snapshot was sealed for another {what}; it can only be resumed by the same {what}"
    )]
    Mismatch {
        /// `driver`, `guest module` or `binding set`.
        what: &'static str,
    },
    /// Its single use was already claimed (see [`SnapshotLedger`](super::SnapshotLedger)).
    #[error(
        "the snapshot was already resumed; a paused execution resumes once (a re-pause seals a new snapshot)"
    )]
    AlreadyResumed,
    /// An answer names a call that is not waiting.
    #[error("call {0} is not waiting for an answer in this paused execution")]
    UnknownCall(u32),
    /// The state does not fit the resuming configuration (limits, records).
    #[error("the paused execution cannot resume here: {0}")]
    Invalid(String),
    /// The driver could not restore the guest.
    #[error("the sandbox could not be restored: {0}")]
    Driver(String),
    /// The single-use ledger could not record the claim; the snapshot is not resumed (it
    /// may be tried again).
    #[error("the single-use ledger failed, so the snapshot was not resumed: {0}")]
    Ledger(String),
}

impl ResumeError {
    /// Whether the snapshot is still unused after this error, so that it could resume once
    /// the cause is fixed (a key put back in the vault, a driver or configuration restored,
    /// a ledger reachable again). Every check runs before the snapshot's single use is
    /// claimed: only a claim made before ([`Self::AlreadyResumed`]) or a restore that failed
    /// after the claim ([`Self::Driver`]) used it, and a snapshot that expired or is not one
    /// ([`Self::Expired`], [`Self::Malformed`]) will never resume. A store that hands
    /// snapshots out once should keep the ones for which this is true.
    ///
    /// ```
    /// use code_mode::durable::ResumeError;
    /// assert!(ResumeError::Forged.leaves_snapshot_unused());
    /// assert!(ResumeError::UnknownKey(2).leaves_snapshot_unused());
    /// assert!(!ResumeError::AlreadyResumed.leaves_snapshot_unused());
    /// assert!(!ResumeError::Expired { ago_secs: 1 }.leaves_snapshot_unused());
    /// ```
    pub fn leaves_snapshot_unused(&self) -> bool {
        match self {
            Self::Unsupported { .. }
            | Self::Version { .. }
            | Self::UnknownKey(_)
            | Self::Forged
            | Self::TooLarge { .. }
            | Self::Mismatch { .. }
            | Self::UnknownCall(_)
            | Self::Invalid(_)
            | Self::Ledger(_) => true,
            Self::Malformed(_) | Self::Expired { .. } | Self::AlreadyResumed | Self::Driver(_) => {
                false
            }
        }
    }
}
