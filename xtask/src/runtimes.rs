//! Run-time dependencies of the drivers, installed from the package registries into
//! `.cache/` of the workspace (ignored by git).

use std::path::PathBuf;
use std::process::Command;

use crate::matrix::Provision;
use crate::provision;

fn has_npm() -> bool {
    Command::new("npm")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Installs the npm lockfile `from` (a folder of the repository holding package.json and
/// package-lock.json) into `.cache/<name>` with `npm ci --ignore-scripts`, without building
/// any Rust: running a crate's setup binary would compile its dependency tree with another
/// feature set than the test run's.
fn npm_install(from: &str, name: &str, files: &[&str]) -> Result<std::path::PathBuf, Provision> {
    if !has_npm() {
        return Err(Provision::Skip(format!(
            "npm is not installed (the {name} runtime comes from the npm registry)"
        )));
    }
    let src = provision::root().join(from);
    let dir = provision::root().join(".cache").join(name);
    std::fs::create_dir_all(&dir).map_err(|e| Provision::Fail(e.into()))?;
    for file in files {
        let text = std::fs::read(src.join(file)).map_err(|e| Provision::Fail(e.into()))?;
        if std::fs::read(dir.join(file)).ok().as_deref() != Some(text.as_slice()) {
            std::fs::write(dir.join(file), text).map_err(|e| Provision::Fail(e.into()))?;
        }
    }
    if files.contains(&"package-lock.json") {
        provision::npm_ci_ignore_scripts(&dir).map_err(Provision::Fail)?;
    } else {
        // workerd's lockfile cannot list the other platforms' optional packages here; its
        // version is exact, and so are the platform packages it depends on.
        provision::run(
            Command::new("npm")
                .args([
                    "install",
                    "--ignore-scripts",
                    "--no-audit",
                    "--no-fund",
                    "--no-package-lock",
                ])
                .current_dir(&dir),
        )
        .map_err(Provision::Fail)?;
    }
    Ok(dir)
}

/// The V8 driver's Node 24 + isolated-vm runtime (the crate's `runtime/` lockfile), into
/// `.cache/v8-runtime`. Skipped, with the reason, when npm is missing.
pub fn v8() -> Result<Vec<(String, String)>, Provision> {
    let dir = npm_install(
        "crates/isolate-v8/runtime",
        "v8-runtime",
        &["package.json", "package-lock.json"],
    )?;
    Ok(vec![(
        "CODE_MODE_V8_RUNTIME".to_owned(),
        dir.to_string_lossy().into_owned(),
    )])
}

/// The MCP servers and tools the `code-mode-mcp` and `code-mode-cli` tests run (the
/// crate's `tests/servers/package.json`: the reference server, the Inspector, the
/// conformance suite and Node 24, pinned), into `.cache/mcp-servers`. Skipped, with the
/// reason, when npm is missing.
pub fn mcp_servers() -> Result<Vec<(String, String)>, Provision> {
    let dir = npm_install(
        "crates/code-mode-mcp/tests/servers",
        "mcp-servers",
        // No lockfile: npm's lock of the Inspector's tree misses an optional package and
        // `npm ci` then refuses it; the four packages are pinned to exact versions. The
        // test server script is copied beside them, where its imports resolve.
        &["package.json", "odd-server.mjs"],
    )?;
    Ok(vec![(
        "CODE_MODE_TEST_MCP_SERVERS".to_owned(),
        dir.to_string_lossy().into_owned(),
    )])
}

/// The type checker's TypeScript 7 + Node 24 runtime (the `code-mode-typecheck` crate's
/// `runtime/` lockfile), into `.cache/typescript`. Skipped, with the reason, when npm is
/// missing.
pub fn typescript() -> Result<Vec<(String, String)>, Provision> {
    let dir = npm_install(
        "crates/code-mode-typecheck/runtime",
        "typescript",
        &["package.json", "package-lock.json"],
    )?;
    Ok(vec![(
        "CODE_MODE_TYPESCRIPT".to_owned(),
        dir.to_string_lossy().into_owned(),
    )])
}

/// A virtual environment at `.cache/<name>` holding the exact versions of `requirements`
/// (a path under the checkout), made again when they change. Skipped when `python3` with
/// `venv` is missing (`why` says what it would have provided).
pub fn python_venv(name: &str, requirements: &str, why: &str) -> Result<PathBuf, Provision> {
    let python3 = Command::new("python3")
        .args(["-c", "import venv, sys; assert sys.version_info >= (3, 10)"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !python3 {
        return Err(Provision::Skip(format!(
            "python3 3.10+ with venv is not installed ({why})"
        )));
    }
    let requirements = provision::root().join(requirements);
    let dir = provision::root().join(".cache").join(name);
    let python = dir.join("bin/python");
    let wanted = std::fs::read_to_string(&requirements).map_err(|e| Provision::Fail(e.into()))?;
    let stamp = dir.join("installed-requirements.txt");
    if std::fs::read_to_string(&stamp).ok().as_deref() != Some(wanted.as_str()) || !python.is_file()
    {
        provision::run(
            Command::new("python3")
                .arg("-m")
                .arg("venv")
                .arg("--clear")
                .arg(&dir),
        )
        .map_err(Provision::Fail)?;
        provision::run(
            Command::new(&python)
                .args([
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                    "-r",
                ])
                .arg(&requirements),
        )
        .map_err(Provision::Fail)?;
        std::fs::write(&stamp, &wanted).map_err(|e| Provision::Fail(e.into()))?;
    }
    Ok(dir)
}

/// The official Python MCP SDK (`crates/code-mode-cli/tests/python/requirements.txt`, an
/// exact version) in a virtual environment at `.cache/python-mcp`, for the tests that drive
/// `code-mode mcp` with it. Skipped, with the reason, when `python3` (with `venv`) is missing.
pub fn python_mcp() -> Result<Vec<(String, String)>, Provision> {
    let dir = python_venv(
        "python-mcp",
        "crates/code-mode-cli/tests/python/requirements.txt",
        "the Python MCP SDK comes from PyPI",
    )?;
    let python = dir.join("bin/python");
    Ok(vec![(
        "CODE_MODE_TEST_PYTHON".to_owned(),
        python.to_string_lossy().into_owned(),
    )])
}

/// Cloudflare's `workerd` (the crate's `worker/` lockfile), into `.cache/workerd`. Skipped,
/// with the reason, when npm is missing.
pub fn workerd() -> Result<Vec<(String, String)>, Provision> {
    let dir = npm_install(
        "crates/isolate-cloudflare/worker",
        "workerd",
        &["package.json"],
    )?;
    let binary = dir.join("node_modules/@cloudflare/workerd-linux-64/bin/workerd");
    if !binary.is_file() {
        return Err(Provision::Fail(anyhow::anyhow!(
            "npm installed workerd but {} is missing (workerd's prebuilt binary is linux-x64 here)",
            binary.display()
        )));
    }
    Ok(vec![(
        "CODE_MODE_WORKERD".to_owned(),
        binary.to_string_lossy().into_owned(),
    )])
}

/// A throwaway PostgreSQL server on 127.0.0.1 for the skills storage tests: Debian's
/// server binaries (installed with apt-get when missing), a fresh cluster in the system temporary folder,
/// trust authentication, fsync off.
///
/// The postmaster is this process's own child (no `runuser` in between, whose death would
/// orphan it): it is stopped (immediate shutdown, then reaped) when this value is dropped,
/// and the kernel stops it if xtask dies without dropping it (interrupted, killed), through
/// the parent-death signal set in the child.
pub struct Postgres {
    child: std::process::Child,
    port: u16,
    /// The cluster's folder, removed once the server is gone.
    dir: std::path::PathBuf,
    /// `host=127.0.0.1 port=N user=postgres`.
    pub config: String,
}

impl Postgres {
    /// Port the server listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the server and waits until it is gone.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        // SIGQUIT: immediate shutdown; the postmaster stops its backends and exits.
        // SAFETY: plain syscall on the pid of our own (unreaped) child.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGQUIT);
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) | Err(_) => break,
                Ok(None) if std::time::Instant::now() > deadline => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    break;
                }
                Ok(None) => std::thread::sleep(std::time::Duration::from_millis(20)),
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.shutdown();
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

/// Numeric id of `user` (`id -u`) or of its group (`id -g`).
fn id_of(flag: &str, user: &str) -> Option<u32> {
    let out = Command::new("id").args([flag, user]).output().ok()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// Starts the server (installing it first if needed).
pub fn postgres() -> Result<Postgres, Provision> {
    use std::os::unix::process::CommandExt;
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
    // In the system's temporary folder, not the checkout: when the server runs as `postgres`
    // it must be able to reach its folder, and a checkout may sit below a folder only its
    // owner can enter (`mktemp -d` makes such folders).
    let dir = std::env::temp_dir().join(format!("code-mode-postgres-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| Provision::Fail(e.into()))?;
    // PostgreSQL refuses to run as root: run it as the `postgres` user then.
    // SAFETY: `geteuid` has no preconditions.
    let is_root = unsafe { libc::geteuid() } == 0;
    let ids = if is_root {
        Some(
            id_of("-u", "postgres")
                .zip(id_of("-g", "postgres"))
                .ok_or_else(|| Provision::Fail(anyhow::anyhow!("no `postgres` user")))?,
        )
    } else {
        None
    };
    let command = |program: &std::path::Path| {
        let mut c = Command::new(program);
        if let Some((uid, gid)) = ids {
            c.uid(uid).gid(gid);
        }
        // SAFETY: only async-signal-safe calls between fork and exec. The parent-death
        // signal is set after the uid change (which clears it), and a parent that already
        // died is caught by the `getppid` check.
        unsafe {
            c.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGQUIT) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if libc::getppid() == 1 {
                    return Err(std::io::Error::other("xtask exited"));
                }
                Ok(())
            });
        }
        c
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
        port,
        dir: dir.clone(),
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

/// Debian packages that compile the QuickJS-WASM driver's guest (clang for `wasm32-wasi`,
/// its linker and builtins, wasi-libc).
pub const WASI_PACKAGES: &[&str] = &[
    "clang-19",
    "lld-19",
    "libclang-rt-19-dev-wasm32",
    "wasi-libc",
];

/// True when clang can compile and link a `wasm32-wasi` reactor here.
fn wasi_toolchain_works() -> bool {
    let dir = std::env::temp_dir().join(format!("code-mode-wasi-probe-{}", std::process::id()));
    if std::fs::create_dir_all(&dir).is_err() {
        return false;
    }
    let c = dir.join("probe.c");
    let ok = std::fs::write(&c, "#include <stdlib.h>\n__attribute__((export_name(\"f\"))) void *f(int n) { return malloc(n); }\n").is_ok()
        && Command::new("clang-19")
            .args(["--target=wasm32-wasi", "-mexec-model=reactor", "-O2", "-o"])
            .arg(dir.join("probe.wasm"))
            .arg(&c)
            .output()
            .is_ok_and(|o| o.status.success());
    let _ = std::fs::remove_dir_all(&dir);
    ok
}

/// The QuickJS-WASM guest's toolchain: installed with apt-get when clang cannot build a
/// `wasm32-wasi` module yet. Needed before the workspace builds (the crate's build script
/// compiles the guest).
pub fn wasi_toolchain() -> Result<Vec<(String, String)>, Provision> {
    if std::env::var_os("CODE_MODE_QUICKJS_WASM").is_some() || wasi_toolchain_works() {
        return Ok(Vec::new());
    }
    println!(
        "== installing the wasm32-wasi toolchain (apt-get {}) ==",
        WASI_PACKAGES.join(" ")
    );
    provision::apt_install(WASI_PACKAGES).map_err(Provision::Fail)?;
    if !wasi_toolchain_works() {
        return Err(Provision::Fail(anyhow::anyhow!(
            "{} are installed but clang-19 still cannot build a wasm32-wasi module",
            WASI_PACKAGES.join(" ")
        )));
    }
    Ok(Vec::new())
}

/// The optional drivers of `code-mode-benches` whose runtime can be provisioned here.
pub struct BenchDrivers {
    /// Its cargo features that enable them, comma-separated.
    pub features: String,
    /// The environment their runtimes need.
    pub env: Vec<(String, String)>,
    /// The V8 runtime's environment alone (TanStack's baseline runs on its Node), if any.
    pub v8_env: Option<Vec<(String, String)>>,
}

/// Provisions the runtimes of the optional drivers; one that cannot be provisioned here is
/// left out, with a line saying why (`job`: what it would not be, e.g. "measured").
pub fn bench_drivers(job: &str) -> anyhow::Result<BenchDrivers> {
    let mut features = Vec::new();
    let mut env = Vec::new();
    let mut v8_env = None;
    match wasi_toolchain() {
        Ok(_) => features.push("quickjs-wasm"),
        Err(Provision::Skip(why)) => println!("QuickJS-WASM driver not {job}: {why}"),
        Err(Provision::Fail(e)) => return Err(e),
    }
    match v8() {
        Ok(e) => {
            env.extend(e.iter().cloned());
            v8_env = Some(e);
            features.push("v8");
        }
        Err(Provision::Skip(why)) => println!("V8 driver not {job}: {why}"),
        Err(Provision::Fail(e)) => return Err(e),
    }
    match workerd() {
        Ok(e) => {
            env.extend(e);
            features.push("cloudflare");
        }
        Err(Provision::Skip(why)) => println!("Cloudflare driver not {job}: {why}"),
        Err(Provision::Fail(e)) => return Err(e),
    }
    Ok(BenchDrivers {
        features: features.join(","),
        env,
        v8_env,
    })
}

#[cfg(test)]
mod tests {
    /// The test server leaves nothing behind: after `stop` no process holds its port and
    /// the postmaster is reaped. Runs where the server binaries are installed (`cargo xtask
    /// test` installs them before running the tests).
    #[test]
    fn postgres_stops_and_leaves_nothing_listening() {
        if super::postgres_bin().is_none() {
            eprintln!("skipped: no PostgreSQL server binaries on this machine");
            return;
        }
        let server = match super::postgres() {
            Ok(s) => s,
            Err(crate::matrix::Provision::Skip(why)) => {
                eprintln!("skipped: {why}");
                return;
            }
            Err(crate::matrix::Provision::Fail(e)) => panic!("cannot start PostgreSQL: {e:#}"),
        };
        let port = server.port();
        let pid = server.child.id();
        assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
        server.stop();
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
            "something still listens on 127.0.0.1:{port}"
        );
        // No process of that pid is left (the postmaster was reaped, its backends gone).
        assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
        let leftovers = std::process::Command::new("pgrep")
            .args(["-f", &format!("postgres-test-{}", std::process::id())])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default();
        assert!(leftovers.is_empty(), "postgres processes left: {leftovers}");
    }
}
