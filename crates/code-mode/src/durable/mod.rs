//! Durable pause: an execution whose outstanding calls all wait for an answer that may come
//! much later (a person's approval tomorrow, after a restart, on another machine) is sealed
//! into bytes and its sandbox released; resuming the bytes in any process continues the
//! program exactly where it stopped.
//!
//! Why not replay: re-running the program and feeding it recorded results (what Vercel's
//! and Cloudflare's code modes do) repeats every step before the pause and breaks on any
//! non-determinism. A driver that can capture its whole guest between two host calls
//! (QuickJS in WebAssembly: no wasm frame is live while a call is pending, so the guest is
//! its linear memory plus a few host records) continues instead; no earlier call runs again.
//!
//! The parts every such driver shares are here, written once:
//! - [`Park`]: which calls are held back instead of started (they need a person, or the
//!   application will answer them later). A driver pauses only when every outstanding call
//!   is held back; calls that can run are awaited and delivered first.
//! - [`Suspended`]: the host records of a paused execution (held calls with their inputs,
//!   calls counted, console lines so far, time used, the driver's guest image).
//! - [`SnapshotVault`] (feature `durable`): the sealed form, authenticated and encrypted
//!   with an application key, bound to the driver's engine and the binding set, with a
//!   time-to-live, a size cap and a single-use hook ([`SnapshotLedger`]).
//! - [`resume`] (feature `durable`): opens sealed bytes, checks them against the resuming
//!   configuration and hands them to the driver.
//!
//! A driver implements [`DurableDriver`] and returns it from
//! [`IsolateDriver::durable`](crate::IsolateDriver::durable); the others answer `None`, and
//! [`durable_driver`] turns that into a clear [`ResumeError::Unsupported`].

mod error;
#[cfg(feature = "durable")]
mod execution;
#[cfg(feature = "durable")]
mod vault;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[cfg(feature = "durable")]
use crate::bindings::Bindings;
use crate::bindings::GuestError;
use crate::console::{LogEntry, LogState};
use crate::driver::{ContextConfig, ExecutionResult, IsolateDriver};
use crate::error::DriverError;

pub use error::{ResumeError, SealError};
#[cfg(feature = "durable")]
pub use execution::{
    Answer, DurableError, DurableOptions, DurableOutcome, PausedExecution, WaitingCall,
};
#[cfg(feature = "durable")]
pub use vault::{
    DEFAULT_MAX_BYTES, DEFAULT_TTL, FORMAT_VERSION, MAX_TTL, MemoryLedger, SnapshotKey,
    SnapshotLedger, SnapshotVault, SnapshotVaultBuilder, resume,
};
#[cfg(feature = "durable")]
pub(crate) use vault::{Opened, admit};

/// A call the program made that waits for an answer from outside the sandbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingCall {
    /// The guest's id of the call: answers name it.
    pub call_id: u32,
    /// The global function the program called (`external_deleteFile`).
    pub function: String,
    /// Its input.
    pub args: Value,
}

type ParkFn = dyn Fn(&str, &Value) -> bool + Send + Sync;

/// What a held call gets when its execution resumes.
///
/// ```
/// use code_mode::durable::Reply;
/// use serde_json::json;
/// let ran = Reply::run(json!({"path": "/tmp/a"}));
/// let answered = Reply::value(json!(42));
/// let failed = Reply::error("Error", "the payment service refused it");
/// assert!(matches!(ran, Reply::Run { .. }));
/// assert!(matches!(answered, Reply::Deliver(Ok(_))));
/// assert!(matches!(failed, Reply::Deliver(Err(_))));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// The call's outcome, decided outside the sandbox: the program's `await` gets the value
    /// or throws the error.
    Deliver(Result<Value, GuestError>),
    /// Start the call now, through its binding, with this input (the program's, or an
    /// approver's edit): it runs inside the resumed execution, under its time budget and
    /// cancellation, and is not counted against the call budget again.
    Run {
        /// The input the binding gets.
        input: Value,
    },
}

impl Reply {
    /// The program's `await` gets `value`.
    pub fn value(value: Value) -> Self {
        Self::Deliver(Ok(value))
    }

    /// The program's `await` throws an error named `name` with `message`.
    pub fn error(name: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Deliver(Err(GuestError {
            name: name.into(),
            message: message.into(),
        }))
    }

    /// The call runs now with `input`.
    pub fn run(input: Value) -> Self {
        Self::Run { input }
    }
}

/// Which calls a durable execution holds back instead of starting.
///
/// ```
/// use code_mode::durable::Park;
/// use serde_json::json;
/// let park = Park::functions(["external_approve"]);
/// assert!(park.applies("external_approve", &json!({})));
/// assert!(!park.applies("external_read", &json!({})));
/// let large = Park::when(|_, input| input["amount"].as_f64().unwrap_or(0.0) > 100.0);
/// assert!(large.applies("external_pay", &json!({"amount": 500})));
/// ```
#[derive(Clone)]
pub struct Park(Arc<ParkFn>);

impl std::fmt::Debug for Park {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Park(..)")
    }
}

impl Park {
    /// Holds back the calls for which `predicate(function, input)` is true.
    pub fn when(predicate: impl Fn(&str, &Value) -> bool + Send + Sync + 'static) -> Self {
        Self(Arc::new(predicate))
    }

    /// Holds back every call of these global functions.
    pub fn functions<I, S>(names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let names: Vec<String> = names.into_iter().map(Into::into).collect();
        Self::when(move |function, _| names.iter().any(|n| n == function))
    }

    /// Holds nothing back: the execution runs as an ordinary one.
    pub fn never() -> Self {
        Self::when(|_, _| false)
    }

    /// Whether the call `function(input)` is held back.
    pub fn applies(&self, function: &str, input: &Value) -> bool {
        (self.0)(function, input)
    }
}

/// How a durable execution (or one step of a resumed one) ended.
#[derive(Debug)]
pub enum Step {
    /// The program ran to its end (or failed).
    Finished(ExecutionResult),
    /// Every outstanding call is held back: the execution is paused.
    Paused(Paused),
}

/// A paused execution, in memory: its held calls, its lines so far and its state. Seal it
/// with a [`SnapshotVault`] to store it; its sandbox is already released.
#[derive(Debug, Clone, PartialEq)]
pub struct Paused {
    suspended: Suspended,
}

impl Paused {
    /// Wraps a driver's record of a paused execution.
    pub fn new(suspended: Suspended) -> Self {
        Self { suspended }
    }

    /// The calls waiting for an answer, in the order the program made them.
    pub fn pending(&self) -> &[PendingCall] {
        &self.suspended.pending
    }

    /// The console lines so far (already sent to the live sink; a resumed execution's
    /// result holds them once, followed by the later ones).
    pub fn logs(&self) -> &[LogEntry] {
        &self.suspended.logs.entries
    }

    /// Execution time used before the pause (the pause itself does not count).
    pub fn time_used(&self) -> Duration {
        self.suspended.used
    }

    /// Bytes of the driver's guest image (before compression).
    pub fn image_bytes(&self) -> usize {
        self.suspended.image.len()
    }

    /// The driver's record.
    pub fn suspended(&self) -> &Suspended {
        &self.suspended
    }

    /// Sets what is sealed with the execution besides the driver's record (see
    /// [`Suspended::meta`]).
    pub fn set_meta(&mut self, meta: Value) {
        self.suspended.meta = meta;
    }

    /// Seals the execution with `vault`; `aad` is bound to the bytes (a tenant or session
    /// id) and must be given again to resume them.
    #[cfg(feature = "durable")]
    pub fn seal(&self, vault: &SnapshotVault, aad: &[u8]) -> Result<Vec<u8>, SealError> {
        vault.seal(&self.suspended, aad)
    }
}

/// Everything a driver needs to continue a paused execution: the host records, which core
/// seals and checks, and the driver's own image of its guest, which only the driver reads.
#[derive(Debug, Clone, PartialEq)]
pub struct Suspended {
    /// The driver that paused it ([`DurableDriver::name`]).
    pub driver: String,
    /// The driver's engine identity ([`DurableDriver::engine_id`]): the guest code and
    /// layout the image belongs to.
    pub engine_id: [u8; 32],
    /// The binding set the program saw ([`bindings_id`]).
    pub bindings_id: [u8; 32],
    /// The calls waiting for an answer.
    pub pending: Vec<PendingCall>,
    /// Tool calls counted so far against the call budget.
    pub calls: u32,
    /// The console lines so far and the buffer's counters.
    pub logs: LogState,
    /// Execution time used so far.
    pub used: Duration,
    /// Lines of the program, to map error lines.
    pub code_lines: u32,
    /// Fuel left, on a driver that counts it.
    pub fuel: Option<u64>,
    /// The driver's image of its guest.
    pub image: Vec<u8>,
    /// What the application (or [`CodeMode`](crate::CodeMode)) keeps with the execution,
    /// sealed with it: the program's source for line mapping, its tool-call id. `Null` when
    /// nothing is kept.
    pub meta: Value,
}

/// The identity of a binding set: the SHA-256 digest of its sorted names, so a
/// snapshot cannot be resumed where a binding it may call was renamed or removed.
///
/// ```
/// use code_mode::{Binding, Bindings};
/// use code_mode::durable::bindings_id;
/// let echo = |name: &str| Binding::new(name, |a| Box::pin(async move { Ok(a) })).unwrap();
/// let ab = Bindings::new().with(echo("a")).unwrap().with(echo("b")).unwrap();
/// let ba = Bindings::new().with(echo("b")).unwrap().with(echo("a")).unwrap();
/// let a = Bindings::new().with(echo("a")).unwrap();
/// assert_eq!(bindings_id(&ab), bindings_id(&ba));
/// assert_ne!(bindings_id(&ab), bindings_id(&a));
/// ```
#[cfg(feature = "durable")]
pub fn bindings_id(bindings: &Bindings) -> [u8; 32] {
    let mut names: Vec<&str> = bindings.iter().map(|b| b.name()).collect();
    names.sort_unstable();
    let mut text = String::from("code-mode bindings v1\n");
    for name in names {
        text.push_str(name);
        text.push('\n');
    }
    digest(text.as_bytes())
}

/// The SHA-256 digest of `bytes`.
#[cfg(feature = "durable")]
pub fn digest(bytes: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// A driver that can pause an execution durably and resume it in any process.
#[async_trait]
pub trait DurableDriver: Send + Sync {
    /// The driver's name (as [`IsolateDriver::name`]).
    fn name(&self) -> &str;

    /// The identity of the guest code and layout a paused image belongs to: an image is
    /// only resumed by a driver with the same identity.
    fn engine_id(&self) -> [u8; 32];

    /// Runs `code` in a fresh context of `config`, holding back the calls `park` names;
    /// pauses when every outstanding call is held back.
    async fn start(
        &self,
        config: ContextConfig,
        code: &str,
        park: Park,
    ) -> Result<Step, DriverError>;

    /// Continues a paused execution (already opened and checked by core's `resume`) with
    /// replies to some or all of its held calls (each names a held call once); held calls
    /// left without a reply stay held.
    async fn resume_suspended(
        &self,
        config: ContextConfig,
        suspended: Suspended,
        replies: Vec<(u32, Reply)>,
        park: Park,
    ) -> Result<Step, ResumeError>;
}

/// The durable side of `driver`, or [`ResumeError::Unsupported`] naming it.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use code_mode::durable::{durable_driver, ResumeError};
/// let driver = code_mode_isolate_quickjs::QuickJsDriver::new();
/// let err = durable_driver(&driver).err().unwrap();
/// assert!(matches!(err, ResumeError::Unsupported { .. }));
/// assert!(err.to_string().contains("quickjs"));
/// # }
/// ```
pub fn durable_driver(driver: &dyn IsolateDriver) -> Result<&dyn DurableDriver, ResumeError> {
    driver.durable().ok_or_else(|| ResumeError::Unsupported {
        driver: driver.name().to_owned(),
    })
}
