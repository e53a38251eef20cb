//! Installs what tests need beyond cargo, from the package registries only (npm, Debian),
//! so that `cargo xtask test` works on a fresh machine with no manual setup.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

/// The workspace root (xtask lives one level below it).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Runs a command to completion, failing with its name when it fails.
pub fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let shown = format!("{cmd:?}");
    let status = cmd
        .status()
        .with_context(|| format!("cannot start {shown}"))?;
    if !status.success() {
        bail!("{shown} failed with {status}");
    }
    Ok(())
}

/// `npm ci` in `dir` unless its `node_modules` already matches `package-lock.json`.
/// The lockfile pins versions and integrity hashes without download addresses, so npm
/// fetches from whichever registry the machine is configured for.
pub fn npm_ci(dir: &Path) -> anyhow::Result<()> {
    npm_ci_with(dir, &[])
}

/// [`npm_ci`] without running install scripts (the packages ship prebuilt binaries).
pub fn npm_ci_ignore_scripts(dir: &Path) -> anyhow::Result<()> {
    npm_ci_with(dir, &["--ignore-scripts"])
}

fn npm_ci_with(dir: &Path, extra: &[&str]) -> anyhow::Result<()> {
    let lock = dir.join("package-lock.json");
    let installed = dir.join("node_modules/.package-lock.json");
    let fresh = match (modified(&lock), modified(&installed)) {
        (Some(l), Some(i)) => i >= l,
        _ => false,
    };
    if fresh {
        return Ok(());
    }
    println!("== npm ci in {} ==", dir.display());
    run(Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .args(extra)
        .current_dir(dir))
}

fn modified(path: &Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// The Chromium to drive: `$CHROMIUM`, else Debian's `/usr/bin/chromium`, installed with
/// apt-get when missing (as root, or through sudo).
pub fn chromium() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("CHROMIUM") {
        return Ok(PathBuf::from(path));
    }
    let debian = PathBuf::from("/usr/bin/chromium");
    if debian.exists() {
        return Ok(debian);
    }
    println!("== installing Debian chromium (apt-get) ==");
    apt_install(&["chromium"])?;
    if !debian.exists() {
        bail!("apt-get reported success but /usr/bin/chromium is missing");
    }
    Ok(debian)
}

/// `apt-get install` Debian packages, as root or through sudo.
pub fn apt_install(packages: &[&str]) -> anyhow::Result<()> {
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    let prefix: &[&str] = if is_root { &[] } else { &["sudo", "-n"] };
    let apt = |args: &[&str]| -> anyhow::Result<()> {
        let mut all: Vec<&str> = prefix.to_vec();
        all.push("apt-get");
        all.extend_from_slice(args);
        run(Command::new(all[0])
            .args(&all[1..])
            .env("DEBIAN_FRONTEND", "noninteractive"))
        .with_context(|| {
            format!(
                "cannot install {packages:?} with apt-get; install them yourself (as root: `apt-get install {}`)",
                packages.join(" ")
            )
        })
    };
    apt(&["update", "-qq"])?;
    let mut args = vec!["install", "-y", "-qq", "--no-install-recommends"];
    args.extend_from_slice(packages);
    apt(&args)
}
