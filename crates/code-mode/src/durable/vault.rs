//! The sealed form of a paused execution, and resuming it.
//!
//! A snapshot carries authority (which call waits, so what an approval authorises; the call
//! and time budgets left; the lines a person will be shown) and data (every tool input and
//! result the program saw, and stale heap bytes), so it is encrypted, not only signed:
//! ChaCha20-Poly1305 (ring) with the whole header as associated data, plus the
//! application's own associated data (a tenant or session id) that is not stored. The
//! header binds it to the driver, the guest (engine id) and the binding set, and carries an
//! expiry and a random id for single use. Opening checks everything before any byte reaches
//! a sandbox; the guest image itself only ever runs inside the sandbox, so even a forged one
//! is no worse than hostile guest code.
//!
//! Layout (integers little-endian): `magic[8] version:u16 key_id:u32 id[16] created_ms:u64
//! expires_ms:u64 engine_id[32] bindings_id[32] driver_len:u8 driver nonce[12]
//! plain_len:u64`, then the LZ4 block of `record_len:u32 record(JSON) image`, encrypted,
//! then the 16-byte tag.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{
    DurableDriver, Park, PendingCall, Reply, ResumeError, SealError, Step, Suspended, bindings_id,
    durable_driver,
};
use crate::console::LogState;
use crate::driver::{ContextConfig, IsolateDriver};

const MAGIC: &[u8; 8] = b"CMPAUSE\0";
/// The sealed format this build writes and reads.
pub const FORMAT_VERSION: u16 = 1;
const TAG_LEN: usize = 16;
/// Fixed part of the header before the driver name.
const FIXED: usize = 8 + 2 + 4 + 16 + 8 + 8 + 32 + 32 + 1;
/// The longest time-to-live a vault accepts.
pub const MAX_TTL: Duration = Duration::from_secs(90 * 24 * 3600);
/// How long a sealed execution can be resumed by default: a week.
pub const DEFAULT_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
/// The largest paused execution a vault seals or opens by default (its plain size).
pub const DEFAULT_MAX_BYTES: u64 = 64 << 20;

/// A 256-bit key that seals paused executions, with an id for rotation. Its bytes never
/// appear in `Debug` output.
///
/// ```
/// use code_mode::durable::SnapshotKey;
/// let key = SnapshotKey::new(7, [42; 32]);
/// assert_eq!(key.id(), 7);
/// assert!(!format!("{key:?}").contains("42"));
/// ```
#[derive(Clone)]
pub struct SnapshotKey {
    id: u32,
    key: [u8; 32],
}

impl std::fmt::Debug for SnapshotKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl SnapshotKey {
    /// A key from its bytes (keep them in the application's secret store).
    pub fn new(id: u32, key: [u8; 32]) -> Self {
        Self { id, key }
    }

    /// A fresh random key.
    pub fn generate(id: u32) -> Result<Self, SealError> {
        let mut key = [0u8; 32];
        SystemRandom::new()
            .fill(&mut key)
            .map_err(|_| SealError::Random("cannot draw a key".into()))?;
        Ok(Self { id, key })
    }

    /// The key's id, written in every snapshot it seals.
    pub fn id(&self) -> u32 {
        self.id
    }

    fn aead(&self) -> Result<LessSafeKey, ResumeError> {
        UnboundKey::new(&CHACHA20_POLY1305, &self.key)
            .map(LessSafeKey::new)
            .map_err(|_| ResumeError::Forged)
    }
}

/// Where single use of snapshots is recorded. A valid snapshot could otherwise be resumed
/// twice, running an approved side effect twice; authentication cannot prevent that, a
/// store can. `claim` must be atomic (a compare-and-swap in a database shared by every
/// process that resumes). [`MemoryLedger`] serves one process; the skills crate's file and
/// PostgreSQL storages serve a machine or a fleet. A ledger that fails refuses the resume.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use std::time::{Duration, SystemTime};
/// use code_mode::durable::{MemoryLedger, SnapshotLedger};
/// let ledger = MemoryLedger::default();
/// let until = SystemTime::now() + Duration::from_secs(60);
/// assert!(ledger.claim([1; 16], until).await.unwrap());
/// assert!(!ledger.claim([1; 16], until).await.unwrap());
/// # }
/// ```
#[async_trait::async_trait]
pub trait SnapshotLedger: Send + Sync + std::fmt::Debug {
    /// Records that snapshot `id` (valid until `expires_at`) is being resumed: `true` if
    /// this is its first claim, `false` if it was claimed before; an error (the store is
    /// unreachable) refuses the resume.
    async fn claim(&self, id: [u8; 16], expires_at: SystemTime) -> Result<bool, String>;
}

/// A [`SnapshotLedger`] in this process's memory; ids are forgotten once expired (an
/// expired snapshot is refused anyway).
#[derive(Debug, Default)]
pub struct MemoryLedger {
    claimed: Mutex<HashMap<[u8; 16], SystemTime>>,
}

#[async_trait::async_trait]
impl SnapshotLedger for MemoryLedger {
    async fn claim(&self, id: [u8; 16], expires_at: SystemTime) -> Result<bool, String> {
        let mut claimed = self.claimed.lock().unwrap_or_else(|p| p.into_inner());
        let now = SystemTime::now();
        claimed.retain(|_, until| *until > now);
        Ok(claimed.insert(id, expires_at).is_none())
    }
}

type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// Seals paused executions and opens them again: the key (and older keys still accepted),
/// the time-to-live, the size cap and the single-use ledger.
///
/// ```
/// use std::time::Duration;
/// use code_mode::durable::{SnapshotKey, SnapshotVault};
/// let vault = SnapshotVault::builder(SnapshotKey::new(2, [1; 32]))
///     .also_open(SnapshotKey::new(1, [0; 32]))
///     .ttl(Duration::from_secs(3600))
///     .build()
///     .unwrap();
/// # let _ = vault;
/// assert!(SnapshotVault::builder(SnapshotKey::new(1, [0; 32])).ttl(Duration::ZERO).build().is_err());
/// ```
#[derive(Clone)]
pub struct SnapshotVault {
    seal: SnapshotKey,
    open: Vec<SnapshotKey>,
    ttl: Duration,
    max_bytes: u64,
    ledger: Arc<dyn SnapshotLedger>,
    now: Clock,
}

impl std::fmt::Debug for SnapshotVault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotVault")
            .field("key", &self.seal.id)
            .field("ttl", &self.ttl)
            .field("max_bytes", &self.max_bytes)
            .field("ledger", &self.ledger)
            .finish_non_exhaustive()
    }
}

/// Settings of a [`SnapshotVault`].
#[derive(Clone)]
pub struct SnapshotVaultBuilder {
    vault: SnapshotVault,
}

impl std::fmt::Debug for SnapshotVaultBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.vault.fmt(f)
    }
}

impl SnapshotVaultBuilder {
    /// Also opens snapshots sealed with `key` (an older key during rotation).
    #[must_use]
    pub fn also_open(mut self, key: SnapshotKey) -> Self {
        self.vault.open.push(key);
        self
    }

    /// How long a sealed execution can be resumed ([`DEFAULT_TTL`]; at most [`MAX_TTL`]).
    #[must_use]
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.vault.ttl = ttl;
        self
    }

    /// The largest paused execution sealed or opened, in bytes of its plain (uncompressed)
    /// form ([`DEFAULT_MAX_BYTES`]; at least 1 MiB, at most 4 GiB). Pausing a larger one
    /// fails with [`SealError::TooLarge`].
    #[must_use]
    pub fn max_bytes(mut self, max: u64) -> Self {
        self.vault.max_bytes = max;
        self
    }

    /// Where single use is recorded ([`MemoryLedger`] by default: one process).
    #[must_use]
    pub fn ledger(mut self, ledger: Arc<dyn SnapshotLedger>) -> Self {
        self.vault.ledger = ledger;
        self
    }

    /// The clock expiry is measured on (the system clock by default; tests move it).
    #[must_use]
    pub fn clock(mut self, now: impl Fn() -> SystemTime + Send + Sync + 'static) -> Self {
        self.vault.now = Arc::new(now);
        self
    }

    /// The vault, or what is out of range.
    pub fn build(self) -> Result<SnapshotVault, SealError> {
        let v = &self.vault;
        if v.ttl.is_zero() || v.ttl > MAX_TTL {
            return Err(SealError::Config(format!(
                "the time-to-live must be between 1 s and {} days, got {:?}",
                MAX_TTL.as_secs() / 86_400,
                v.ttl
            )));
        }
        if v.max_bytes < (1 << 20) || v.max_bytes > (4 << 30) {
            return Err(SealError::Config(format!(
                "max_bytes must be between 1 MiB and 4 GiB, got {}",
                v.max_bytes
            )));
        }
        let mut ids: Vec<u32> = v.open.iter().map(|k| k.id).collect();
        ids.sort_unstable();
        if ids.windows(2).any(|w| w[0] == w[1]) {
            return Err(SealError::Config("two keys share an id".into()));
        }
        Ok(self.vault)
    }
}

/// The host records, sealed as JSON next to the guest image.
#[derive(Serialize, Deserialize)]
struct Record {
    pending: Vec<PendingCall>,
    calls: u32,
    logs: LogState,
    used_micros: u64,
    code_lines: u32,
    fuel: Option<u64>,
    #[serde(default)]
    meta: Value,
}

/// A snapshot whose authenticity and bindings were checked.
pub(crate) struct Opened {
    id: [u8; 16],
    expires_at: SystemTime,
    pub(crate) suspended: Suspended,
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Reads little-endian fields off the front of a slice.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ResumeError> {
        if self.0.len() < n {
            return Err(ResumeError::Malformed("it is truncated".into()));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], ResumeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }
    fn u16(&mut self) -> Result<u16, ResumeError> {
        Ok(u16::from_le_bytes(self.array()?))
    }
    fn u32(&mut self) -> Result<u32, ResumeError> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64, ResumeError> {
        Ok(u64::from_le_bytes(self.array()?))
    }
}

impl SnapshotVault {
    /// A vault sealing with `key`.
    pub fn builder(key: SnapshotKey) -> SnapshotVaultBuilder {
        SnapshotVaultBuilder {
            vault: Self {
                open: vec![key.clone()],
                seal: key,
                ttl: DEFAULT_TTL,
                max_bytes: DEFAULT_MAX_BYTES,
                ledger: Arc::new(MemoryLedger::default()),
                now: Arc::new(SystemTime::now),
            },
        }
    }

    /// A vault with the default settings.
    pub fn new(key: SnapshotKey) -> Self {
        Self::builder(key).vault
    }

    /// Seals a paused execution's record; `aad` must be given again to open it.
    pub(crate) fn seal(&self, s: &Suspended, aad: &[u8]) -> Result<Vec<u8>, SealError> {
        let record = serde_json::to_vec(&Record {
            pending: s.pending.clone(),
            calls: s.calls,
            logs: s.logs.clone(),
            used_micros: u64::try_from(s.used.as_micros()).unwrap_or(u64::MAX),
            code_lines: s.code_lines,
            fuel: s.fuel,
            meta: s.meta.clone(),
        })
        .map_err(|e| SealError::Config(format!("cannot encode the record: {e}")))?;
        let plain_len = 4 + record.len() + s.image.len();
        if plain_len as u64 > self.max_bytes {
            return Err(SealError::TooLarge {
                bytes: plain_len as u64,
                max: self.max_bytes,
            });
        }
        let mut plain = Vec::with_capacity(plain_len);
        plain.extend_from_slice(
            &u32::try_from(record.len())
                .unwrap_or(u32::MAX)
                .to_le_bytes(),
        );
        plain.extend_from_slice(&record);
        plain.extend_from_slice(&s.image);
        let mut body = lz4_flex::block::compress(&plain);
        drop(plain);

        let rng = SystemRandom::new();
        let mut id = [0u8; 16];
        let mut nonce = [0u8; NONCE_LEN];
        rng.fill(&mut id)
            .and_then(|()| rng.fill(&mut nonce))
            .map_err(|_| SealError::Random("cannot draw a nonce".into()))?;
        let now = (self.now)();
        let driver = s.driver.as_bytes();
        let driver_len = u8::try_from(driver.len())
            .map_err(|_| SealError::Config("the driver name is longer than 255 bytes".into()))?;
        let mut out = Vec::with_capacity(FIXED + driver.len() + 20 + body.len() + TAG_LEN);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&self.seal.id.to_le_bytes());
        out.extend_from_slice(&id);
        out.extend_from_slice(&unix_ms(now).to_le_bytes());
        out.extend_from_slice(&unix_ms(now + self.ttl).to_le_bytes());
        out.extend_from_slice(&s.engine_id);
        out.extend_from_slice(&s.bindings_id);
        out.push(driver_len);
        out.extend_from_slice(driver);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&(plain_len as u64).to_le_bytes());
        let key = self
            .seal
            .aead()
            .map_err(|_| SealError::Config("the key cannot be used".into()))?;
        let tag = key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(associated(&out, aad)),
                &mut body,
            )
            .map_err(|_| SealError::Config("the execution is too large to encrypt".into()))?;
        out.extend_from_slice(&body);
        out.extend_from_slice(tag.as_ref());
        Ok(out)
    }

    /// The calls a sealed execution waits on (authenticated; its single use is not
    /// claimed): what to show the person asked to answer them.
    pub fn pending(&self, sealed: &[u8], aad: &[u8]) -> Result<Vec<PendingCall>, ResumeError> {
        Ok(self.open(sealed, aad)?.suspended.pending)
    }

    /// Authenticates, decrypts and decodes `sealed`, checking its version, key, size and
    /// expiry (not yet the driver, guest and bindings it is bound to, nor single use).
    pub(crate) fn open(&self, sealed: &[u8], aad: &[u8]) -> Result<Opened, ResumeError> {
        let mut r = Reader(sealed);
        if r.take(MAGIC.len())? != MAGIC {
            return Err(ResumeError::Malformed(
                "it does not start with the snapshot magic".into(),
            ));
        }
        let version = r.u16()?;
        if version != FORMAT_VERSION {
            return Err(ResumeError::Version {
                found: version,
                supported: FORMAT_VERSION,
            });
        }
        let key_id = r.u32()?;
        let key = self
            .open
            .iter()
            .find(|k| k.id == key_id)
            .ok_or(ResumeError::UnknownKey(key_id))?;
        let id: [u8; 16] = r.array()?;
        let _created = r.u64()?;
        let expires_ms = r.u64()?;
        let engine_id: [u8; 32] = r.array()?;
        let bindings_id: [u8; 32] = r.array()?;
        let driver_len = r.take(1)?[0] as usize;
        let driver = std::str::from_utf8(r.take(driver_len)?)
            .map_err(|_| ResumeError::Malformed("the driver name is not UTF-8".into()))?
            .to_owned();
        let nonce: [u8; NONCE_LEN] = r.array()?;
        let plain_len = r.u64()?;
        let header_len = sealed.len() - r.0.len();
        // LZ4 never grows a block by more than 1/255 plus a little.
        let slack = self.max_bytes / 255 + 64 + TAG_LEN as u64;
        let body_len = r.0.len() as u64;
        if plain_len > self.max_bytes || body_len > self.max_bytes + slack {
            return Err(ResumeError::TooLarge {
                bytes: plain_len.max(body_len),
                max: self.max_bytes,
            });
        }
        if r.0.len() < TAG_LEN {
            return Err(ResumeError::Malformed("it is truncated".into()));
        }
        let mut body = r.0.to_vec();
        let opened = key
            .aead()?
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(associated(&sealed[..header_len], aad)),
                &mut body,
            )
            .map_err(|_| ResumeError::Forged)?;
        let now_ms = unix_ms((self.now)());
        if now_ms >= expires_ms {
            return Err(ResumeError::Expired {
                ago_secs: (now_ms - expires_ms) / 1000,
            });
        }
        let plain_len = usize::try_from(plain_len)
            .map_err(|_| ResumeError::Malformed("its size does not fit in memory".into()))?;
        let mut plain = vec![0u8; plain_len];
        let n = lz4_flex::block::decompress_into(opened, &mut plain)
            .map_err(|e| ResumeError::Malformed(format!("its body does not decompress: {e}")))?;
        if n != plain_len {
            return Err(ResumeError::Malformed(
                "its body is shorter than declared".into(),
            ));
        }
        let mut p = Reader(&plain);
        let record_len = p.u32()? as usize;
        let record: Record = serde_json::from_slice(p.take(record_len)?)
            .map_err(|e| ResumeError::Malformed(format!("its record is not readable: {e}")))?;
        let image = p.0.to_vec();
        Ok(Opened {
            id,
            expires_at: UNIX_EPOCH + Duration::from_millis(expires_ms),
            suspended: Suspended {
                driver,
                engine_id,
                bindings_id,
                pending: record.pending,
                calls: record.calls,
                logs: record.logs,
                used: Duration::from_micros(record.used_micros),
                code_lines: record.code_lines,
                fuel: record.fuel,
                image,
                meta: record.meta,
            },
        })
    }
}

/// The associated data: the stored header, then the application's.
fn associated(header: &[u8], aad: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(header.len() + 8 + aad.len());
    out.extend_from_slice(header);
    out.extend_from_slice(&(aad.len() as u64).to_le_bytes());
    out.extend_from_slice(aad);
    out
}

/// Checks an opened execution against the resuming driver, configuration and answers.
fn check(
    s: &Suspended,
    durable: &dyn DurableDriver,
    config: &ContextConfig,
    answers: &[(u32, Reply)],
) -> Result<(), ResumeError> {
    if s.driver != durable.name() {
        return Err(ResumeError::Mismatch { what: "driver" });
    }
    if s.engine_id != durable.engine_id() {
        return Err(ResumeError::Mismatch {
            what: "guest module",
        });
    }
    if s.bindings_id != bindings_id(&config.bindings) {
        return Err(ResumeError::Mismatch {
            what: "binding set",
        });
    }
    let limits = &config.limits;
    for (i, call) in s.pending.iter().enumerate() {
        if s.pending[..i].iter().any(|c| c.call_id == call.call_id) {
            return Err(ResumeError::Malformed(format!(
                "call {} is listed twice",
                call.call_id
            )));
        }
        if config.bindings.get(&call.function).is_none() {
            return Err(ResumeError::Invalid(format!(
                "it waits on {}, which is not a binding here",
                call.function
            )));
        }
    }
    for (i, (id, _)) in answers.iter().enumerate() {
        if !s.pending.iter().any(|c| c.call_id == *id) || answers[..i].iter().any(|a| a.0 == *id) {
            return Err(ResumeError::UnknownCall(*id));
        }
    }
    if s.calls > limits.max_tool_calls() {
        return Err(ResumeError::Invalid(format!(
            "it made {} tool calls, over this configuration's limit of {}",
            s.calls,
            limits.max_tool_calls()
        )));
    }
    if s.used >= limits.timeout() {
        return Err(ResumeError::Invalid(format!(
            "it already used {:?} of execution time, the whole timeout of {:?}",
            s.used,
            limits.timeout()
        )));
    }
    let entries = s.logs.entries.len() as u64;
    if entries > u64::from(limits.max_log_entries()) + 1 || s.logs.bytes > limits.max_log_bytes() {
        return Err(ResumeError::Invalid(format!(
            "its {entries} console lines ({} bytes) are over this configuration's caps",
            s.logs.bytes
        )));
    }
    Ok(())
}

/// Resumes a sealed execution on `driver`: opens `sealed` with `vault` and the same `aad`
/// it was sealed with, checks it against the driver (name, guest), `config` (binding set,
/// limits) and `answers` (each names a waiting call, once), claims its single use in the
/// vault's ledger, then continues the program with the answers. Held calls left unanswered
/// stay held: the step may be [`Step::Paused`] again, with a new snapshot to seal.
///
/// Nothing reaches a sandbox before every check has passed. A [`Reply::Deliver`] runs no
/// tool (the application decided the call's outcome); a [`Reply::Run`] starts the call's
/// binding inside the resumed execution (an approved call).
pub async fn resume(
    driver: &dyn IsolateDriver,
    vault: &SnapshotVault,
    sealed: &[u8],
    aad: &[u8],
    config: ContextConfig,
    answers: Vec<(u32, Reply)>,
    park: Park,
) -> Result<Step, ResumeError> {
    durable_driver(driver)?;
    let opened = vault.open(sealed, aad)?;
    let durable = admit(driver, vault, &opened, &config, &answers).await?;
    durable
        .resume_suspended(config, opened.suspended, answers, park)
        .await
}

/// The checks of [`resume`] after [`SnapshotVault::open`] (driver, guest, bindings, limits,
/// answers) and the claim of its single use: the durable driver to continue it on.
pub(crate) async fn admit<'d>(
    driver: &'d dyn IsolateDriver,
    vault: &SnapshotVault,
    opened: &Opened,
    config: &ContextConfig,
    answers: &[(u32, Reply)],
) -> Result<&'d dyn DurableDriver, ResumeError> {
    let durable = durable_driver(driver)?;
    check(&opened.suspended, durable, config, answers)?;
    let first = vault
        .ledger
        .claim(opened.id, opened.expires_at)
        .await
        .map_err(ResumeError::Ledger)?;
    if !first {
        return Err(ResumeError::AlreadyResumed);
    }
    Ok(durable)
}
