//! Running the Worker locally with `workerd`, Cloudflare's open-source runtime (from npm),
//! for development and tests: no Cloudflare account needed.
//!
//! A local workerd enforces no CPU or memory limit: an infinite loop wedges it and a memory
//! bomb aborts it. [`LocalWorkerd::restart_hook`] gives the driver a hook that kills it
//! (SIGKILL; SIGTERM is ignored once it is wedged) and starts it again on the same port, so
//! the next execution works.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::{CloudflareDriver, CloudflareOptions, FailureHook, STARTUP_TIMEOUT};

/// The npm `workerd` version the project installs and tests with.
pub const WORKERD_VERSION: &str = "1.20261117.1";

const WORKER_JS: &str = include_str!("../worker/worker.js");
const CONFIG: &str = include_str!("../worker/config.capnp");
const PACKAGE_JSON: &str = include_str!("../worker/package.json");

/// Why a local workerd cannot run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WorkerdError {
    /// The binary is missing.
    #[error(
        "workerd is not installed at {0}; install it with `cargo run -p code-mode-isolate-cloudflare --bin code-mode-workerd -- --install-only` (npm install workerd@{WORKERD_VERSION}) or set CODE_MODE_WORKERD to the binary"
    )]
    NotInstalled(PathBuf),
    /// It did not start.
    #[error("workerd did not start: {0}")]
    Start(String),
}

/// How long the restart hook waits for `/health` before it restarts workerd.
pub const RESTART_PROBE: Duration = Duration::from_millis(200);

/// A workerd process serving the code-mode Worker on 127.0.0.1.
pub struct LocalWorkerd {
    binary: PathBuf,
    dir: PathBuf,
    port: u16,
    token: Option<String>,
    child: Mutex<Option<Child>>,
}

impl std::fmt::Debug for LocalWorkerd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalWorkerd")
            .field("url", &self.url())
            .finish_non_exhaustive()
    }
}

impl LocalWorkerd {
    /// The default install folder: `~/.cache/code-mode/workerd-<version>`.
    pub fn default_dir() -> PathBuf {
        std::env::var_os("HOME")
            .map(|h| PathBuf::from(h).join(".cache"))
            .unwrap_or_else(std::env::temp_dir)
            .join("code-mode")
            .join(format!("workerd-{WORKERD_VERSION}"))
    }

    /// The binary: `$CODE_MODE_WORKERD` (a relative path is read against the working
    /// directory), else the one installed in [`Self::default_dir`], else the one in the
    /// checkout's `.cache/workerd` that `cargo xtask test` provisions.
    pub fn locate() -> Result<PathBuf, WorkerdError> {
        let path = code_mode::path_from_env("CODE_MODE_WORKERD").unwrap_or_else(|| {
            let default = Self::binary_in(&Self::default_dir());
            match code_mode::provisioned_in_checkout("workerd") {
                Some(checkout) if !default.is_file() => Self::binary_in(&checkout),
                _ => default,
            }
        });
        if path.is_file() {
            Ok(path)
        } else {
            Err(WorkerdError::NotInstalled(path))
        }
    }

    /// Installs the pinned `workerd` (`worker/package.json`, an exact version) from the npm
    /// registry into `dir` (`npm install --ignore-scripts`: the platform package carries the
    /// binary) and returns the binary.
    pub fn install(dir: &Path) -> Result<PathBuf, WorkerdError> {
        let fail = |m: String| WorkerdError::Start(format!("installing workerd: {m}"));
        std::fs::create_dir_all(dir).map_err(|e| fail(e.to_string()))?;
        std::fs::write(dir.join("package.json"), PACKAGE_JSON).map_err(|e| fail(e.to_string()))?;
        let out = Command::new("npm")
            .args([
                "install",
                "--ignore-scripts",
                "--no-audit",
                "--no-fund",
                "--no-package-lock",
            ])
            .current_dir(dir)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| fail(format!("cannot run npm ({e})")))?;
        if !out.status.success() {
            return Err(fail(String::from_utf8_lossy(&out.stderr).trim().to_owned()));
        }
        let binary = Self::binary_in(dir);
        if binary.is_file() {
            Ok(binary)
        } else {
            Err(WorkerdError::NotInstalled(binary))
        }
    }

    /// Where `npm install workerd` puts the Linux binary under `dir`.
    pub fn binary_in(dir: &Path) -> PathBuf {
        dir.join("node_modules/@cloudflare/workerd-linux-64/bin/workerd")
    }

    /// Starts workerd with the Worker on a free 127.0.0.1 port; `token` becomes the Worker's
    /// `AUTH_TOKEN` (clients then send `Authorization: Bearer <token>`).
    pub fn start(binary: &Path, token: Option<&str>) -> Result<Arc<Self>, WorkerdError> {
        let fail = |e: std::io::Error| WorkerdError::Start(e.to_string());
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(fail)?
            .port();
        let dir =
            std::env::temp_dir().join(format!("code-mode-workerd-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(fail)?;
        std::fs::write(dir.join("worker.js"), WORKER_JS).map_err(fail)?;
        std::fs::write(dir.join("config.capnp"), CONFIG).map_err(fail)?;
        std::fs::write(
            dir.join("guest-prelude.txt"),
            code_mode::driver::GUEST_PRELUDE,
        )
        .map_err(fail)?;
        let me = Arc::new(Self {
            binary: binary.to_path_buf(),
            dir,
            port,
            token: token.map(str::to_owned),
            child: Mutex::new(None),
        });
        me.restart()?;
        Ok(me)
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The `Authorization` value clients must send, if a token is set.
    pub fn authorization(&self) -> Option<String> {
        self.token.as_ref().map(|t| format!("Bearer {t}"))
    }

    /// Kills the process (if any) and starts a fresh one on the same port.
    pub fn restart(&self) -> Result<(), WorkerdError> {
        let mut child = self.child.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(mut old) = child.take() {
            let _ = old.kill();
            let _ = old.wait();
        }
        let log = std::fs::File::create(self.dir.join("workerd.log"))
            .map_err(|e| WorkerdError::Start(e.to_string()))?;
        let log2 = log
            .try_clone()
            .map_err(|e| WorkerdError::Start(e.to_string()))?;
        let mut command = Command::new(&self.binary);
        command
            .args(["serve", "--experimental", "config.capnp", "--socket-addr"])
            .arg(format!("http=127.0.0.1:{}", self.port))
            .current_dir(&self.dir)
            .env_clear()
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2);
        if let Some(token) = &self.token {
            command.env("CODE_MODE_WORKER_TOKEN", token);
        }
        let spawned = command
            .spawn()
            .map_err(|e| WorkerdError::Start(format!("{}: {e}", self.binary.display())))?;
        *child = Some(spawned);
        let started = Instant::now();
        while started.elapsed() < STARTUP_TIMEOUT {
            if self.healthy() {
                return Ok(());
            }
            if let Some(c) = child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                let log = std::fs::read_to_string(self.dir.join("workerd.log")).unwrap_or_default();
                return Err(WorkerdError::Start(format!(
                    "exited with {status}: {}",
                    log.trim()
                )));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Err(WorkerdError::Start(format!(
            "not healthy within {} s",
            STARTUP_TIMEOUT.as_secs()
        )))
    }

    /// True when `GET /health` answers 200 within half a second.
    pub fn healthy(&self) -> bool {
        self.answers_within(Duration::from_millis(500))
    }

    /// True when `GET /health` answers 200 within `wait`.
    pub fn answers_within(&self, wait: Duration) -> bool {
        let probe = || -> std::io::Result<bool> {
            let addr = std::net::SocketAddr::from(([127, 0, 0, 1], self.port));
            let mut s = TcpStream::connect_timeout(&addr, wait)?;
            s.set_read_timeout(Some(wait))?;
            s.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")?;
            let mut buf = [0u8; 64];
            let n = s.read(&mut buf)?;
            Ok(buf[..n].starts_with(b"HTTP/1.1 200"))
        };
        probe().unwrap_or(false)
    }

    /// A hook for [`CloudflareOptions::on_failure`]: restarts workerd when it no longer
    /// answers `/health` within [`RESTART_PROBE`] (an idle or waiting workerd answers in
    /// well under a millisecond; one still computing a timed-out program never does). A local workerd runs every isolate on one
    /// thread, so a program still computing past its deadline (it enforces no CPU limit)
    /// holds the health check too; one that timed out while waiting on tools does not, and
    /// then nothing is restarted (a restart would cut the executions running beside it).
    pub fn restart_hook(self: &Arc<Self>) -> FailureHook {
        let me = self.clone();
        Arc::new(move || {
            if me.answers_within(RESTART_PROBE) {
                return;
            }
            if let Err(e) = me.restart() {
                eprintln!("code-mode: restarting the local workerd failed: {e}");
            }
        })
    }

    /// A driver for this workerd (with its token and restart hook).
    pub fn driver(self: &Arc<Self>) -> Result<CloudflareDriver, code_mode::DriverError> {
        CloudflareDriver::new(
            CloudflareOptions::new(self.url())
                .authorization(self.authorization())
                .on_failure(self.restart_hook()),
        )
    }
}

impl Drop for LocalWorkerd {
    fn drop(&mut self) {
        if let Some(mut child) = self
            .child
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    /// `worker/guest-prelude.txt`, what `wrangler deploy` ships beside `worker.js`, is the
    /// core's guest prelude byte for byte (a link to it in the repository).
    #[test]
    fn the_shipped_prelude_is_the_core_prelude() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/worker/guest-prelude.txt");
        let shipped = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert!(
            shipped == code_mode::driver::GUEST_PRELUDE,
            "{path} differs from crates/code-mode/guest/prelude.js; link it there again"
        );
    }

    /// The Worker reads the program's lines from the core's wrapper: the code starts on
    /// `PROGRAM_FIRST_LINE` of the program module.
    #[test]
    fn the_worker_knows_where_the_code_starts() {
        let expected = format!(
            "const PREFIX_LINES = {}\n",
            code_mode::driver::PROGRAM_FIRST_LINE - 1
        );
        assert!(super::WORKER_JS.contains(&expected), "worker.js lacks {expected:?}");
    }
}
