//! Cloudflare sandbox driver for code-mode: the model's code runs in a Dynamic Worker on
//! Cloudflare's edge (loaded through a `worker_loader` binding, with no outbound network);
//! the application's tools stay on this host and are called back over one WebSocket per
//! execution.
//!
//! Unlike TanStack's driver, the program runs **once**: the Worker sends each tool call as
//! the code awaits it (parallel calls stay parallel) and waits for the answer, so there are
//! no re-runs from the top, no duplicated logs or side effects, no skipped calls, and the
//! deadline covers the whole execution. The Worker checks `Authorization` in constant time and
//! refuses malformed or oversized frames; this driver refuses malformed or oversized answers
//! and never waits past its deadline.
//!
//! The Worker ships in `worker/` (`worker.js`, a `wrangler.toml` template, a local workerd
//! config). [`LocalWorkerd`] runs it on this machine with Cloudflare's open-source runtime
//! (`workerd` from npm), which is what the tests and `code-mode-workerd` use.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use code_mode::{ContextConfig, IsolateDriver};
//! use code_mode_isolate_cloudflare::{CloudflareDriver, CloudflareOptions};
//!
//! let driver = CloudflareDriver::new(CloudflareOptions::new("https://code-mode.example.workers.dev")
//!     .authorization(std::env::var("CODE_MODE_WORKER_AUTHORIZATION").ok()))?;
//! let ctx = driver.create_context(ContextConfig::default()).await?;
//! let r = ctx.execute("return [1, 2, 3].map((x) => x * 2)").await;
//! # Ok(()) }
//! ```
//!
//! Differences from the in-process drivers, by the nature of a Worker: each execution runs in
//! a fresh Dynamic Worker, so globals do not persist between executions of one context;
//! `eval` and `new Function` are disabled (as in every production Worker); memory and CPU
//! limits are Cloudflare's (a local workerd has none: the driver's deadline, and a restart of
//! the local runtime, stand in for them).

mod context;
mod endpoint;
mod local;
mod local_pool;
mod protocol;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use code_mode::{ContextConfig, DriverError, ExecutionError, IsolateContext, IsolateDriver};

pub use local::{LocalWorkerd, RESTART_PROBE, WORKERD_VERSION, WorkerdError};
pub use local_pool::LocalWorkerdPool;

use crate::context::CloudflareContext;
use crate::endpoint::{Endpoint, Endpoints};

/// Called after an execution timed out or lost its connection (e.g. to restart a local
/// runtime that hung or crashed).
pub type FailureHook = Arc<dyn Fn() + Send + Sync>;

/// Driver name.
pub const DRIVER_NAME: &str = "cloudflare";

/// Where the Worker is and how to talk to it.
#[derive(Clone)]
pub struct CloudflareOptions {
    worker_url: String,
    authorization: Option<String>,
    max_message_bytes: usize,
    on_failure: Option<FailureHook>,
    replicas: Vec<(String, Option<FailureHook>)>,
}

impl std::fmt::Debug for CloudflareOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CloudflareOptions")
            .field("worker_url", &self.worker_url)
            .field(
                "authorization",
                &self.authorization.as_ref().map(|_| "<set>"),
            )
            .field("max_message_bytes", &self.max_message_bytes)
            .field(
                "replicas",
                &self.replicas.iter().map(|r| &r.0).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl CloudflareOptions {
    /// The driver ([`CloudflareDriver::new`]).
    pub fn build(self) -> Result<CloudflareDriver, DriverError> {
        CloudflareDriver::new(self)
    }

    /// Options from the environment: the Worker's URL from `CODE_MODE_WORKER_URL` (required)
    /// and its token from `CODE_MODE_WORKER_AUTHORIZATION` (when the Worker has one).
    pub fn from_env() -> Result<Self, DriverError> {
        let url = std::env::var("CODE_MODE_WORKER_URL")
            .ok()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                DriverError::new(
                    DRIVER_NAME,
                    "no Worker URL: set CODE_MODE_WORKER_URL; `cargo run -p code-mode-isolate-cloudflare --bin code-mode-workerd` runs one locally",
                )
            })?;
        let authorization = std::env::var("CODE_MODE_WORKER_AUTHORIZATION")
            .ok()
            .filter(|s| !s.is_empty());
        Ok(Self::new(url).authorization(authorization))
    }

    /// The Worker's base URL (`https://…`, `http://127.0.0.1:…`, or `ws(s)://…`).
    pub fn new(worker_url: impl Into<String>) -> Self {
        Self {
            worker_url: worker_url.into(),
            authorization: None,
            max_message_bytes: 8 * 1024 * 1024,
            on_failure: None,
            replicas: Vec::new(),
        }
    }

    /// The `Authorization` header value (`Bearer <token>`), if the Worker has a token. Read
    /// it from the environment or a secret store, never from a command-line flag.
    #[must_use]
    pub fn authorization(mut self, value: Option<String>) -> Self {
        self.authorization = value;
        self
    }

    /// Largest frame accepted from the Worker (default 8 MiB).
    #[must_use]
    pub fn max_message_bytes(mut self, bytes: usize) -> Self {
        self.max_message_bytes = bytes;
        self
    }

    /// Runs `hook` after an execution at the main URL timed out or lost its connection.
    #[must_use]
    pub fn on_failure(mut self, hook: FailureHook) -> Self {
        self.on_failure = Some(hook);
        self
    }

    /// Another copy of the same Worker (same authorization), with its own failure hook.
    /// Each execution goes to the copy with the fewest executions in flight that is not
    /// recovering. Cloudflare scales a deployed Worker by itself; this is for self-hosted
    /// workerd, which runs every isolate of a process on one thread
    /// ([`LocalWorkerdPool`] uses it).
    ///
    /// ```
    /// use code_mode_isolate_cloudflare::{CloudflareDriver, CloudflareOptions};
    /// let options = CloudflareOptions::new("http://127.0.0.1:8787")
    ///     .replica("http://127.0.0.1:8788", None);
    /// assert!(CloudflareDriver::new(options).is_ok());
    /// let bad = CloudflareOptions::new("http://127.0.0.1:8787").replica("file:///x", None);
    /// assert!(CloudflareDriver::new(bad).is_err());
    /// ```
    #[must_use]
    pub fn replica(
        mut self,
        worker_url: impl Into<String>,
        on_failure: Option<FailureHook>,
    ) -> Self {
        self.replicas.push((worker_url.into(), on_failure));
        self
    }
}

/// Settings shared by the contexts of a driver.
pub(crate) struct Shared {
    endpoints: Endpoints,
    authorization: Option<String>,
    max_message_bytes: usize,
}

/// `ws(s)://…/execute` for a Worker's base URL.
fn execute_url(worker_url: &str) -> Result<String, DriverError> {
    let url = worker_url.trim().trim_end_matches('/');
    let ws = if let Some(rest) = url.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if let Some(rest) = url.strip_prefix("http://") {
        format!("ws://{rest}")
    } else if url.starts_with("ws://") || url.starts_with("wss://") {
        url.to_owned()
    } else {
        return Err(DriverError::new(
            DRIVER_NAME,
            format!("the Worker URL {url:?} must start with https://, http://, wss:// or ws://"),
        ));
    };
    Ok(format!("{ws}/execute"))
}

/// An execution failure of this driver (connection, protocol).
pub(crate) fn driver_error(message: impl Into<String>) -> ExecutionError {
    ExecutionError::internal(format!("Cloudflare driver: {}", message.into()))
}

/// The Cloudflare driver.
pub struct CloudflareDriver {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for CloudflareDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CloudflareDriver")
            .field("execute_urls", &self.shared.endpoints.urls())
            .finish()
    }
}

impl CloudflareDriver {
    /// Starts configuring a driver for the Worker at `worker_url`: [`CloudflareOptions`] is
    /// the builder.
    ///
    /// ```
    /// use code_mode_isolate_cloudflare::CloudflareDriver;
    /// let driver = CloudflareDriver::builder("http://127.0.0.1:8787")
    ///     .authorization(Some("token".into()))
    ///     .build();
    /// assert!(driver.is_ok());
    /// ```
    pub fn builder(worker_url: impl Into<String>) -> CloudflareOptions {
        CloudflareOptions::new(worker_url)
    }

    /// The driver configured from the environment ([`CloudflareOptions::from_env`]).
    pub fn from_env() -> Result<Self, DriverError> {
        Self::new(CloudflareOptions::from_env()?)
    }

    /// A driver for the Worker at `options`' URL (and its replicas). Every URL must be
    /// http(s) or ws(s).
    ///
    /// ```
    /// use code_mode_isolate_cloudflare::{CloudflareDriver, CloudflareOptions};
    /// assert!(CloudflareDriver::new(CloudflareOptions::new("ftp://nope")).is_err());
    /// assert!(CloudflareDriver::new(CloudflareOptions::new("http://127.0.0.1:8787")).is_ok());
    /// ```
    pub fn new(options: CloudflareOptions) -> Result<Self, DriverError> {
        let mut endpoints = vec![Endpoint::new(
            execute_url(&options.worker_url)?,
            options.on_failure,
        )];
        for (url, hook) in options.replicas {
            endpoints.push(Endpoint::new(execute_url(&url)?, hook));
        }
        if options.max_message_bytes < 1024 {
            return Err(DriverError::new(
                DRIVER_NAME,
                "max_message_bytes must be at least 1024",
            ));
        }
        Ok(Self {
            shared: Arc::new(Shared {
                endpoints: Endpoints::new(endpoints),
                authorization: options.authorization,
                max_message_bytes: options.max_message_bytes,
            }),
        })
    }
}

#[async_trait]
impl IsolateDriver for CloudflareDriver {
    fn name(&self) -> &str {
        DRIVER_NAME
    }

    async fn create_context(
        &self,
        config: ContextConfig,
    ) -> Result<Box<dyn IsolateContext>, DriverError> {
        let timing = config.clone();
        Ok(Box::new(code_mode::driver::EngineContext::new(
            Box::new(CloudflareContext::new(self.shared.clone(), config)),
            &timing,
        )))
    }
}

/// How long a local workerd may take to start.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(15);
