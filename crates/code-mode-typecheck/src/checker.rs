//! The checker: one long-lived helper process (Node running `helper/checker.mjs`, which
//! keeps the TypeScript 7 compiler loaded), started on first use, reused, and replaced
//! when it crashes or overruns the check time limit.
//!
//! Checks go one at a time through the helper (a warm check takes a few milliseconds, so
//! queueing costs less than a second compiler would in memory). A check that overruns
//! [`TypeScriptOptions::check_timeout`] kills the helper (a pathological type can keep the
//! compiler busy for a long time) and fails; the next check starts a new one.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use code_mode::{CheckRequest, CheckerError, TypeChecker, TypeDiagnostic};
use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use crate::runtime::{RuntimeError, TypeScriptRuntime};

/// Longest accepted [`TypeScriptOptions::check_timeout`].
pub const MAX_CHECK_TIMEOUT: Duration = Duration::from_secs(60);

/// How the checker finds its runtime and bounds its work.
#[derive(Debug, Clone)]
pub struct TypeScriptOptions {
    /// Runtime folder; default `$CODE_MODE_TYPESCRIPT`, then
    /// [`TypeScriptRuntime::default_dir`].
    pub runtime_dir: Option<PathBuf>,
    /// Longest one check may take (default 3 s; 1 ms to 60 s accepted). Past it the helper is
    /// killed and the check fails (in `report` mode the program then runs unchecked).
    pub check_timeout: Duration,
    /// Longest the helper may take to start and load the compiler (default 15 s).
    pub start_timeout: Duration,
}

impl Default for TypeScriptOptions {
    fn default() -> Self {
        Self {
            runtime_dir: None,
            check_timeout: Duration::from_secs(3),
            start_timeout: Duration::from_secs(15),
        }
    }
}

/// Why the checker could not be made or could not answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TypeCheckError {
    /// The runtime is missing or could not be prepared.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// An option is out of range.
    #[error("{option} is {value:?}; it must be between {min:?} and {max:?}")]
    Option {
        /// The option's name.
        option: &'static str,
        /// The value given.
        value: Duration,
        /// Smallest accepted.
        min: Duration,
        /// Largest accepted.
        max: Duration,
    },
    /// The helper could not start or stopped answering.
    #[error("the TypeScript checker helper {0}")]
    Helper(String),
    /// The check ran past its time limit; the helper was stopped.
    #[error("the type check took longer than its limit of {0:?} and was stopped")]
    Timeout(Duration),
}

/// Type-checks programs with the TypeScript 7 compiler (see the crate documentation).
pub struct TypeScriptChecker {
    runtime: TypeScriptRuntime,
    options: TypeScriptOptions,
    helper: tokio::sync::Mutex<Option<Helper>>,
}

impl std::fmt::Debug for TypeScriptChecker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TypeScriptChecker")
            .field("runtime", &self.runtime)
            .field("check_timeout", &self.options.check_timeout)
            .finish_non_exhaustive()
    }
}

impl TypeScriptChecker {
    /// A checker with the default options. Fails, saying what to install, when the runtime
    /// is missing; the helper itself starts on the first check.
    pub fn new() -> Result<Self, TypeCheckError> {
        Self::with_options(TypeScriptOptions::default())
    }

    /// A checker with `options`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use code_mode_typecheck::{TypeScriptChecker, TypeScriptOptions};
    /// let err = TypeScriptChecker::with_options(TypeScriptOptions {
    ///     check_timeout: Duration::ZERO,
    ///     ..TypeScriptOptions::default()
    /// })
    /// .unwrap_err();
    /// assert!(err.to_string().contains("check_timeout"));
    /// ```
    pub fn with_options(options: TypeScriptOptions) -> Result<Self, TypeCheckError> {
        for (option, value) in [
            ("check_timeout", options.check_timeout),
            ("start_timeout", options.start_timeout),
        ] {
            let min = Duration::from_millis(1);
            if value < min || value > MAX_CHECK_TIMEOUT {
                return Err(TypeCheckError::Option {
                    option,
                    value,
                    min,
                    max: MAX_CHECK_TIMEOUT,
                });
            }
        }
        let runtime = TypeScriptRuntime::locate(options.runtime_dir.as_deref())?;
        Ok(Self {
            runtime,
            options,
            helper: tokio::sync::Mutex::new(None),
        })
    }

    /// The runtime in use.
    pub fn runtime(&self) -> &TypeScriptRuntime {
        &self.runtime
    }

    /// Starts the helper now instead of on the first check.
    pub async fn warm_up(&self) -> Result<(), TypeCheckError> {
        let mut helper = self.helper.lock().await;
        if helper.is_none() {
            *helper = Some(self.start().await?);
        }
        Ok(())
    }

    /// Checks one request (see [`TypeChecker::check`]).
    pub async fn check_request(
        &self,
        request: &CheckRequest,
    ) -> Result<Vec<TypeDiagnostic>, TypeCheckError> {
        let mut slot = self.helper.lock().await;
        let helper = match slot.as_mut() {
            Some(h) => h,
            None => slot.insert(self.start().await?),
        };
        let answer = tokio::time::timeout(self.options.check_timeout, helper.check(request)).await;
        match answer {
            Ok(Ok(Ok(diagnostics))) => Ok(diagnostics),
            // The compiler refused this request; the helper is fine.
            Ok(Ok(Err(message))) => Err(TypeCheckError::Helper(format!("failed: {message}"))),
            Ok(Err(e)) => {
                let e = e.with_stderr(&helper.stderr);
                if let Some(mut h) = slot.take() {
                    h.kill().await;
                }
                Err(e)
            }
            Err(_) => {
                if let Some(mut h) = slot.take() {
                    h.kill().await;
                }
                Err(TypeCheckError::Timeout(self.options.check_timeout))
            }
        }
    }

    async fn start(&self) -> Result<Helper, TypeCheckError> {
        let script = self.runtime.helper_script()?;
        let work = WorkDir::create()?;
        let mut command = Command::new(self.runtime.node());
        command.arg(&script).arg(&work.0);
        // Its own process group, so stopping it stops the compiler it started too.
        #[cfg(unix)]
        command.process_group(0);
        let mut child = command
            .current_dir(self.runtime.dir())
            // The helper needs nothing from the host environment; it gets nothing.
            .env_clear()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                TypeCheckError::Helper(format!(
                    "cannot start ({} {}): {e}",
                    self.runtime.node().display(),
                    script.display()
                ))
            })?;
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            let _ = child.kill().await;
            return Err(TypeCheckError::Helper("has no pipes".into()));
        };
        let stderr_tail = Arc::new(Mutex::new(String::new()));
        let tail_task = tokio::spawn(keep_tail(stderr, stderr_tail.clone()));
        let mut helper = Helper {
            child,
            _work: work,
            stdin,
            lines: BufReader::new(stdout).lines(),
            next_id: 0,
            stderr: stderr_tail,
        };
        let ready = tokio::time::timeout(self.options.start_timeout, helper.lines.next_line());
        match ready.await {
            Ok(Ok(Some(line))) if line.contains("\"ready\":true") => Ok(helper),
            Ok(Ok(Some(line))) => {
                helper.kill().await;
                Err(TypeCheckError::Helper(format!("started with {line:?}")))
            }
            Ok(Ok(None)) | Ok(Err(_)) => {
                helper.kill().await;
                // Its last words may still be in the pipe: read them to the end (the pipe
                // closes with the process) before saying why it stopped.
                let _ = tokio::time::timeout(std::time::Duration::from_secs(2), tail_task).await;
                Err(TypeCheckError::Helper("exited while starting".into())
                    .with_stderr(&helper.stderr))
            }
            Err(_) => {
                helper.kill().await;
                Err(TypeCheckError::Helper(format!(
                    "did not start within {:?}",
                    self.options.start_timeout
                )))
            }
        }
    }
}

#[async_trait]
impl TypeChecker for TypeScriptChecker {
    async fn check(&self, request: &CheckRequest) -> Result<Vec<TypeDiagnostic>, CheckerError> {
        self.check_request(request)
            .await
            .map_err(|e| CheckerError(e.to_string()))
    }
}

impl TypeCheckError {
    fn with_stderr(self, tail: &Mutex<String>) -> Self {
        let text = tail.lock().map(|t| t.trim().to_owned()).unwrap_or_default();
        match self {
            Self::Helper(m) if !text.is_empty() => Self::Helper(format!("{m}: {text}")),
            other => other,
        }
    }
}

struct Helper {
    child: Child,
    /// The folder of its two files: held (never read) so that it is removed when the
    /// helper is dropped.
    _work: WorkDir,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
    next_id: u64,
    stderr: Arc<Mutex<String>>,
}

#[derive(Deserialize)]
struct Answer {
    id: Option<u64>,
    #[serde(default)]
    diagnostics: Option<Vec<TypeDiagnostic>>,
    #[serde(default)]
    error: Option<String>,
}

impl Helper {
    /// Sends one request and reads its answer: the diagnostics, or the helper's own refusal
    /// (inner `Err`); the outer `Err` means the helper is broken.
    async fn check(
        &mut self,
        request: &CheckRequest,
    ) -> Result<Result<Vec<TypeDiagnostic>, String>, TypeCheckError> {
        self.next_id += 1;
        let id = self.next_id;
        let mut line = serde_json::to_string(&serde_json::json!({
            "id": id,
            "declarations": request.declarations,
            "source": request.source,
        }))
        .map_err(|e| TypeCheckError::Helper(format!("request not encodable: {e}")))?;
        line.push('\n');
        let broken = |e: std::io::Error| TypeCheckError::Helper(format!("stopped answering: {e}"));
        self.stdin
            .write_all(line.as_bytes())
            .await
            .map_err(broken)?;
        self.stdin.flush().await.map_err(broken)?;
        loop {
            let Some(text) = self.lines.next_line().await.map_err(broken)? else {
                return Err(TypeCheckError::Helper("exited".into()));
            };
            let Ok(answer) = serde_json::from_str::<Answer>(&text) else {
                continue;
            };
            if answer.id != Some(id) {
                continue; // an answer to an earlier, abandoned request
            }
            return Ok(match (answer.diagnostics, answer.error) {
                (Some(d), _) => Ok(d),
                (None, Some(e)) => Err(e),
                (None, None) => Err("an empty answer".into()),
            });
        }
    }

    async fn kill(&mut self) {
        self.kill_group();
        let _ = self.child.kill().await;
    }

    /// Stops the helper and the compiler process it started (same process group).
    fn kill_group(&mut self) {
        #[cfg(unix)]
        if let Some(pid) = self.child.id().and_then(|p| i32::try_from(p).ok()) {
            // SAFETY: kill(2) with a negative pid signals that process group; the group was
            // created for this helper (`process_group(0)`) and holds nothing else.
            unsafe {
                libc::kill(-pid, libc::SIGKILL);
            }
        }
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        self.kill_group();
        let _ = self.child.start_kill();
    }
}

/// A private folder (mode 700) for the helper's files, removed when dropped.
struct WorkDir(PathBuf);

impl WorkDir {
    fn create() -> Result<Self, TypeCheckError> {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir = std::env::temp_dir().join(format!(
            "code-mode-typecheck-{}-{n}-{nanos:08x}",
            std::process::id()
        ));
        let mut builder = std::fs::DirBuilder::new();
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(&dir).map_err(|e| {
            TypeCheckError::Helper(format!("cannot create its folder {}: {e}", dir.display()))
        })?;
        Ok(Self(dir))
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Keeps the last 2 KiB of the helper's standard error, for error messages.
async fn keep_tail(mut stderr: tokio::process::ChildStderr, tail: Arc<Mutex<String>>) {
    let mut buf = [0u8; 1024];
    while let Ok(n) = stderr.read(&mut buf).await {
        if n == 0 {
            break;
        }
        if let Ok(mut t) = tail.lock() {
            t.push_str(&String::from_utf8_lossy(&buf[..n]));
            if t.len() > 2048 {
                let mut cut = t.len() - 2048;
                while !t.is_char_boundary(cut) {
                    cut += 1;
                }
                t.replace_range(..cut, "");
            }
        }
    }
}
