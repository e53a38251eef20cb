//! Where the drivers and the type checker find the runtimes they start (Node, workerd,
//! the TypeScript compiler), read the same way by every crate.
//!
//! Why: each crate read its `CODE_MODE_*` variable as given, so a relative path worked
//! until a child process ran in another folder ("No such file or directory"), and a
//! checkout whose `cargo xtask test` had provisioned `.cache/` still asked the user to
//! install into the per-user cache. Paths are made absolute against the working directory
//! when read, and a checkout's `.cache/<name>` is the last place looked.

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
