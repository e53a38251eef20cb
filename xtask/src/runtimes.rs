//! Run-time dependencies of the drivers, installed from the package registries into
//! `.cache/` of the workspace (ignored by git).

use std::process::Command;

use crate::matrix::Provision;
use crate::provision;

/// The V8 driver's Node 24 + isolated-vm runtime, installed by the crate's own setup binary
/// (the same one users run). Skipped, with the reason, when npm is missing.
pub fn v8() -> Result<Vec<(String, String)>, Provision> {
    let has_npm = Command::new("npm")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_npm {
        return Err(Provision::Skip(
            "npm is not installed (the V8 runtime comes from the npm registry)".into(),
        ));
    }
    let dir = provision::root().join(".cache/v8-runtime");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    provision::run(
        Command::new(cargo)
            .args([
                "run",
                "--quiet",
                "-p",
                "code-mode-isolate-v8",
                "--bin",
                "code-mode-v8-setup",
                "--",
            ])
            .arg(&dir),
    )
    .map_err(Provision::Fail)?;
    Ok(vec![(
        "CODE_MODE_V8_RUNTIME".to_owned(),
        dir.to_string_lossy().into_owned(),
    )])
}

/// Cloudflare's `workerd` from npm (into `.cache/workerd`), installed by the driver crate's
/// own `code-mode-workerd --install-only`. Skipped, with the reason, when npm is missing.
pub fn workerd() -> Result<Vec<(String, String)>, Provision> {
    let has_npm = Command::new("npm")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_npm {
        return Err(Provision::Skip(
            "npm is not installed (workerd comes from the npm registry)".into(),
        ));
    }
    let dir = provision::root().join(".cache/workerd");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "run",
            "--quiet",
            "-p",
            "code-mode-isolate-cloudflare",
            "--bin",
            "code-mode-workerd",
            "--",
            "--install-only",
        ])
        .arg(&dir)
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| Provision::Fail(e.into()))?;
    if !out.status.success() {
        return Err(Provision::Fail(anyhow::anyhow!(
            "installing workerd failed ({})",
            out.status
        )));
    }
    let binary = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    Ok(vec![("CODE_MODE_WORKERD".to_owned(), binary)])
}

/// A throwaway PostgreSQL server on 127.0.0.1 for the skills storage tests: Debian's
/// server binaries (installed with apt-get when missing), a fresh cluster in `target/`,
/// trust authentication, fsync off. Stopped (killed) when dropped.
pub struct Postgres {
    child: std::process::Child,
    /// `host=127.0.0.1 port=N user=postgres`.
    pub config: String,
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn postgres_bin() -> Option<std::path::PathBuf> {
    let mut versions: Vec<_> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("postgres").exists() && p.join("initdb").exists())
        .collect();
    versions.sort();
    versions.pop()
}

/// Starts the server (installing it first if needed).
pub fn postgres() -> Result<Postgres, Provision> {
    let bin = match postgres_bin() {
        Some(b) => b,
        None => {
            println!("== installing Debian postgresql (apt-get) ==");
            provision::apt_install(&["postgresql"]).map_err(Provision::Fail)?;
            postgres_bin().ok_or_else(|| {
                Provision::Fail(anyhow::anyhow!(
                    "postgresql installed but no server binary found"
                ))
            })?
        }
    };
    let dir = provision::root().join("target/postgres-test");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| Provision::Fail(e.into()))?;
    // PostgreSQL refuses to run as root: run it as the `postgres` user then.
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    let command = |program: &std::path::Path| {
        if is_root {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            Command::new(program)
        }
    };
    if is_root {
        provision::run(
            Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&dir),
        )
        .map_err(Provision::Fail)?;
    }
    let data = dir.join("data");
    provision::run(
        command(&bin.join("initdb"))
            .args([
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
                "-D",
            ])
            .arg(&data)
            .stdout(std::process::Stdio::null()),
    )
    .map_err(Provision::Fail)?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| Provision::Fail(e.into()))?;
    let child = command(&bin.join("postgres"))
        .arg("-D")
        .arg(&data)
        .args(["-p", &port.to_string(), "-k"])
        .arg(&dir)
        .args([
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "fsync=off",
            "-c",
            "max_connections=200",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(
            std::fs::File::create(dir.join("server.log")).map_err(|e| Provision::Fail(e.into()))?,
        )
        .spawn()
        .map_err(|e| Provision::Fail(e.into()))?;
    let server = Postgres {
        child,
        config: format!("host=127.0.0.1 port={port} user=postgres"),
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let ready = Command::new(bin.join("pg_isready"))
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", "postgres"])
            .stdout(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ready {
            return Ok(server);
        }
        if std::time::Instant::now() > deadline {
            return Err(Provision::Fail(anyhow::anyhow!(
                "PostgreSQL did not start; see {}",
                dir.join("server.log").display()
            )));
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}
