//! Where the drivers and the type checker find the runtimes they start (Node, workerd,
//! the TypeScript compiler), read the same way by every crate.
//!
//! Why: each crate read its `CODE_MODE_*` variable as given, so a relative path worked
//! until a child process ran in another folder ("No such file or directory"), and a
//! checkout whose `cargo xtask test` had provisioned `.cache/` still asked the user to
//! install into the per-user cache. Paths are made absolute against the working directory
//! when read, and a checkout's `.cache/<name>` is the last place looked.
//!
//! Installing is shared too ([`install_pinned_npm`], [`write_if_changed`], [`content_hash`]):
//! the V8 runtime and the TypeScript runtime are both pinned npm packages put into a folder
//! with `npm ci`, and each crate used to carry its own copy of the installer.

use std::path::{Path, PathBuf};

/// The path in the environment variable `name`, made absolute against the working
/// directory (`None` when unset or empty).
///
/// ```
/// // Safety of the example: no other thread reads the environment here.
/// unsafe { std::env::set_var("CODE_MODE_EXAMPLE_DIR", "some/runtime") };
/// let path = code_mode::path_from_env("CODE_MODE_EXAMPLE_DIR").unwrap();
/// assert!(path.is_absolute() && path.ends_with("some/runtime"));
/// assert_eq!(code_mode::path_from_env("CODE_MODE_EXAMPLE_UNSET"), None);
/// ```
pub fn path_from_env(name: &str) -> Option<PathBuf> {
    let value = std::env::var_os(name).filter(|v| !v.is_empty())?;
    Some(absolute(Path::new(&value)))
}

/// `path` made absolute against the working directory (unchanged if that is unknown).
///
/// ```
/// let path = code_mode::absolute(std::path::Path::new("runtime"));
/// assert!(path.is_absolute() && path.ends_with("runtime"));
/// assert_eq!(code_mode::absolute(std::path::Path::new("/opt/x")), std::path::PathBuf::from("/opt/x"));
/// ```
pub fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// `.cache/<name>` of the checkout this crate was built from, where `cargo xtask`
/// provisions runtimes, if it exists (never for a crate built from the registry).
///
/// ```
/// assert_eq!(code_mode::provisioned_in_checkout("no-such-runtime-anywhere"), None);
/// ```
pub fn provisioned_in_checkout(name: &str) -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent()?.parent()?;
    if !root.join("Cargo.toml").is_file() || !root.join("xtask").is_dir() {
        return None;
    }
    let dir = root.join(".cache").join(name);
    dir.is_dir().then_some(dir)
}

/// Why a pinned npm runtime could not be installed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NpmInstallError {
    /// A file of the runtime folder could not be written.
    #[error("cannot write {path}: {reason}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The system's reason.
        reason: String,
    },
    /// `npm` could not be started.
    #[error("cannot run npm ({0}); install Node.js and npm first")]
    NoNpm(String),
    /// `npm ci` failed; the last lines of its error output.
    #[error("npm ci exited with {status}: {tail}")]
    Failed {
        /// Its exit status.
        status: String,
        /// The last five non-empty lines of its standard error, joined by ` | `.
        tail: String,
    },
}

/// Installs the npm packages pinned by `package_json` and `package_lock` into `dir` with
/// `npm ci --ignore-scripts` (nothing is compiled and no install script runs; the lockfile
/// decides every version). Needs `npm` on `PATH`; standard input is closed.
///
/// ```no_run
/// let dir = std::path::Path::new("/tmp/some-runtime");
/// code_mode::driver::install_pinned_npm(dir, r#"{"private":true}"#, "{}")?;
/// # Ok::<(), code_mode::driver::NpmInstallError>(())
/// ```
pub fn install_pinned_npm(
    dir: &Path,
    package_json: &str,
    package_lock: &str,
) -> Result<(), NpmInstallError> {
    std::fs::create_dir_all(dir).map_err(|e| NpmInstallError::Io {
        path: dir.to_path_buf(),
        reason: e.to_string(),
    })?;
    for (name, text) in [
        ("package.json", package_json),
        ("package-lock.json", package_lock),
    ] {
        let path = dir.join(name);
        write_if_changed(&path, text).map_err(|e| NpmInstallError::Io {
            path,
            reason: e.to_string(),
        })?;
    }
    let output = std::process::Command::new("npm")
        .args(["ci", "--ignore-scripts", "--no-audit", "--no-fund"])
        .current_dir(dir)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| NpmInstallError::NoNpm(e.to_string()))?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    Err(NpmInstallError::Failed {
        status: output.status.to_string(),
        tail: lines[lines.len().saturating_sub(5)..].join(" | "),
    })
}

/// Writes `text` to `path` unless the file already holds exactly it. Written whole under a
/// temporary name, then renamed: a reader (another process starting the same runtime) never
/// sees half a file.
///
/// ```
/// let path = std::env::temp_dir().join(format!("code-mode-doc-{}.txt", std::process::id()));
/// code_mode::driver::write_if_changed(&path, "one")?;
/// code_mode::driver::write_if_changed(&path, "one")?; // unchanged: not written again
/// assert_eq!(std::fs::read_to_string(&path)?, "one");
/// # std::fs::remove_file(&path)?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn write_if_changed(path: &Path, text: &str) -> std::io::Result<()> {
    if std::fs::read_to_string(path).is_ok_and(|old| old == text) {
        return Ok(());
    }
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, path))
}

/// A stable 64-bit hash (FNV-1a) of `bytes`: names a script written next to a runtime after
/// its content, so two versions of a crate sharing one runtime folder never overwrite each
/// other's script.
///
/// ```
/// assert_eq!(code_mode::driver::content_hash(b""), 0xcbf2_9ce4_8422_2325);
/// assert_ne!(code_mode::driver::content_hash(b"a"), code_mode::driver::content_hash(b"b"));
/// ```
pub fn content_hash(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}
