//! `code-mode`: run TypeScript in a sandbox (`run`), serve Code Mode to MCP clients (`mcp`),
//! or watch code-mode at work (`demo`).
//!
//! Exit codes: 0 success, 1 the code failed, 2 usage error (bad flags, unreadable file,
//! unavailable driver).

mod approve;
mod demo;
#[cfg(feature = "quickjs-wasm")]
mod durable;
mod mcp;
mod render;

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use code_mode::{CodeMode, EventSink, ExecuteOptions, Limits, Tool, ToolError, TypeCheckMode};
use code_mode_drivers::{DriverOptions, driver_by_name};
use code_mode_typecheck::TypeScriptChecker;
use serde_json::json;

#[derive(Parser)]
#[command(
    name = "code-mode",
    version,
    about = "Run LLM-written TypeScript in a secure sandbox"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone)]
pub(crate) struct SandboxArgs {
    /// Sandbox driver.
    #[arg(long, default_value = "quickjs", value_parser = clap::builder::PossibleValuesParser::new(code_mode_drivers::ALL_DRIVERS))]
    driver: String,
    /// Wall-clock timeout in milliseconds (1..=900000), tool calls included.
    #[arg(long, default_value_t = 30_000)]
    timeout_ms: u64,
    /// Memory limit in MiB (1..=16384).
    #[arg(long, default_value_t = 128)]
    memory_mb: u64,
    /// Stack limit in KiB (16..=65536).
    #[arg(long, default_value_t = 512)]
    stack_kb: u64,
    /// Tool calls allowed per execution (1..=1000000).
    #[arg(long, default_value_t = 1000)]
    max_tool_calls: u32,
    /// URL of the code-mode Worker (cloudflare driver). The authorization is read from
    /// CODE_MODE_WORKER_AUTHORIZATION, never from a flag.
    #[arg(long)]
    worker_url: Option<String>,
    /// Type-check programs against the tool declarations before they run: `report` runs
    /// them anyway and adds `typeErrors` to the result, `block` runs only programs without
    /// type errors. Needs the TypeScript runtime (`cargo run -p code-mode-typecheck --bin
    /// code-mode-typecheck-setup`, or CODE_MODE_TYPESCRIPT).
    #[arg(long, default_value = "off", value_parser = clap::builder::PossibleValuesParser::new(["off", "report", "block"]))]
    typecheck: String,
    /// Where state that must outlive the process is kept (the single-use ledger of paused
    /// programs when CODE_MODE_SNAPSHOT_KEY is set). Default: $XDG_DATA_HOME/code-mode or
    /// ~/.local/share/code-mode. CODE_MODE_STATE_URL (a PostgreSQL connection string) keeps
    /// it in a database instead.
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// A tool whose calls need a person's approval before they run (its name in the
    /// sandbox without `external_`, e.g. `echo` or `files_write_file`); repeatable. MCP
    /// servers can also mark their tools with `requireApproval` in the config file.
    #[arg(long = "require-approval", value_name = "TOOL")]
    require_approval: Vec<String>,
}

/// How upstream MCP servers are reached.
#[derive(clap::Args, Clone, Debug)]
pub(crate) struct UpstreamArgs {
    /// How long each upstream MCP server may take to start and answer `initialize`, in
    /// milliseconds (`npx` may download a server on first use).
    #[arg(long, default_value_t = 30_000, value_parser = clap::value_parser!(u64).range(1..=600_000))]
    mcp_startup_timeout_ms: u64,
    /// Refuse to start when any upstream MCP server cannot be used. By default such a
    /// server is left out (said on standard error), tried again in the background, and its
    /// tools are offered once it answers.
    #[arg(long)]
    mcp_strict: bool,
}

impl UpstreamArgs {
    pub(crate) fn options(&self) -> code_mode_mcp::McpOptions {
        code_mode_mcp::McpOptions {
            startup_timeout: Duration::from_millis(self.mcp_startup_timeout_ms),
            strict: self.mcp_strict,
            ..Default::default()
        }
    }
}

/// A listening address: `IP:PORT`, or `HOST:PORT` with a host name, read as the first
/// address it resolves to (`localhost:8808` is loopback).
fn listen_address(text: &str) -> Result<std::net::SocketAddr, String> {
    use std::net::ToSocketAddrs;
    if let Ok(addr) = text.parse() {
        return Ok(addr);
    }
    let mut found = text
        .to_socket_addrs()
        .map_err(|e| format!("expected IP:PORT or HOST:PORT ({e})"))?;
    found
        .next()
        .ok_or_else(|| format!("{text} resolves to no address"))
}

#[derive(Subcommand)]
enum Command {
    /// Run a TypeScript file (or `-` for standard input) and print the result as JSON.
    Run {
        /// The program: a function body that may `await` and `return`.
        file: PathBuf,
        #[command(flatten)]
        sandbox: SandboxArgs,
        /// Stream events as JSON lines on standard error while the code runs.
        #[arg(long)]
        events: bool,
        /// An `mcpServers` file: its servers' tools become `external_<server>_<tool>`.
        #[arg(long)]
        mcp_config: Option<PathBuf>,
        #[command(flatten)]
        upstream: UpstreamArgs,
        /// Who decides on calls that need approval: `ask` on the terminal (y / n [reason] /
        /// e {json}), approve `all`, or deny them all (`none`).
        #[arg(long, default_value = "ask", value_parser = clap::builder::PossibleValuesParser::new(["ask", "all", "none"]))]
        approve: String,
    },
    /// Serve Code Mode over MCP (stdio by default): `execute_typescript` runs programs
    /// against the tools of the servers in `--config`.
    Mcp {
        /// An `mcpServers` file (the format desktop and IDE MCP clients use). Without it,
        /// programs get the `echo` and `sleep` helpers only.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Serve Streamable HTTP at `/mcp` on this address (e.g. 127.0.0.1:8808 or
        /// localhost:8808) instead of stdio. A non-loopback address requires
        /// CODE_MODE_MCP_TOKEN.
        #[arg(long, value_parser = listen_address)]
        http: Option<std::net::SocketAddr>,
        #[command(flatten)]
        upstream: UpstreamArgs,
        /// A library folder of saved programs ("snippets"): programs may call them
        /// (`snippet_<name>`), and `search_snippets`, `get_snippet`, `register_snippet` and
        /// trusted snippets are offered as tools.
        #[arg(long)]
        skills: Option<PathBuf>,
        /// The names the library goes by: `snippets` (current TanStack AI, the default) or
        /// `skills` (`skill_<name>`, `search_skills`, ... as in TanStack AI 0.3.x).
        #[arg(long, default_value = "snippets", value_parser = clap::builder::ValueParser::new(|s: &str| s.parse::<code_mode_skills::Vocabulary>()), requires = "skills")]
        vocabulary: code_mode_skills::Vocabulary,
        #[command(flatten)]
        sandbox: SandboxArgs,
    },
    /// Run a realistic LLM-style program against example tools and show what happens.
    Demo {
        #[command(flatten)]
        sandbox: SandboxArgs,
        /// Print the whole system prompt instead of its first lines.
        #[arg(long)]
        full_prompt: bool,
    },
}

pub(crate) fn usage_error(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("code-mode: {message}");
    ExitCode::from(2)
}

pub(crate) fn build(sandbox: &SandboxArgs, tools: Vec<Tool>) -> Result<CodeMode, String> {
    let limits = Limits::builder()
        .timeout(Duration::from_millis(sandbox.timeout_ms))
        .memory_mib(sandbox.memory_mb)
        .stack_kib(sandbox.stack_kb)
        .max_tool_calls(sandbox.max_tool_calls)
        .build()
        .map_err(|e| e.to_string())?;
    let mut options = DriverOptions::from_env();
    if sandbox.worker_url.is_some() {
        options.worker_url = sandbox.worker_url.clone();
    }
    let driver = driver_by_name(&sandbox.driver, &options).map_err(|e| e.to_string())?;
    let tools = mark_approvals(tools, &sandbox.require_approval)?;
    #[cfg(feature = "quickjs-wasm")]
    let durable = driver.durable().is_some();
    let mut builder = CodeMode::builder()
        .tools(tools)
        .driver(driver)
        .limits(limits)
        .secret_parameters(warn_on_stderr());
    #[cfg(feature = "quickjs-wasm")]
    if durable {
        builder = builder.snapshot_vault(durable::vault()?);
    }
    let mode: TypeCheckMode = sandbox.typecheck.parse().map_err(|e| format!("{e}"))?;
    if mode != TypeCheckMode::Off {
        match checker() {
            Ok(checker) => builder = builder.type_check(mode, checker),
            // Without the compiler, `report` runs programs unchecked (said once); `block`
            // cannot keep its promise and refuses to start.
            Err(e) if mode == TypeCheckMode::Report => {
                static WARNED: std::sync::Once = std::sync::Once::new();
                WARNED.call_once(|| {
                    eprintln!("code-mode: warning: programs run without a type check: {e}")
                });
            }
            Err(e) => return Err(format!("--typecheck block: {e}")),
        }
    }
    builder.build().map_err(|e| e.to_string())
}

/// Marks the tools named by `--require-approval`. A name matching no tool would leave that
/// tool's calls unasked under its real spelling, so the first build (at startup) refuses it,
/// naming the closest tools; later builds (an upstream's tools changed) say it on standard
/// error once, since tools may come and go.
fn mark_approvals(tools: Vec<Tool>, names: &[String]) -> Result<Vec<Tool>, String> {
    static STARTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    let at_startup = !STARTED.swap(true, std::sync::atomic::Ordering::SeqCst);
    for name in names {
        let name = name.strip_prefix("external_").unwrap_or(name);
        if tools.iter().any(|t| t.name() == name) {
            continue;
        }
        let closest = code_mode_mcp::closest_names(name, tools.iter().map(|t| t.name()), 3);
        let hint = code_mode_mcp::closest_hint(&closest);
        let message = format!("--require-approval {name}: no tool has that name{hint}");
        if at_startup {
            return Err(message);
        }
        static SAID: std::sync::Mutex<std::collections::BTreeSet<String>> =
            std::sync::Mutex::new(std::collections::BTreeSet::new());
        if SAID
            .lock()
            .map(|mut s| s.insert(name.to_owned()))
            .unwrap_or(true)
        {
            eprintln!("code-mode: warning: {message}");
        }
    }
    Ok(tools
        .into_iter()
        .map(|t| {
            let marked = names
                .iter()
                .any(|n| n.strip_prefix("external_").unwrap_or(n) == t.name());
            if marked {
                t.require_approval(code_mode::ApprovalPolicy::Always)
            } else {
                t
            }
        })
        .collect())
}

/// Secret-looking tool parameters (e.g. an upstream MCP tool asking for `apiKey`), said on
/// standard error once per tool and path (the CLI has no log subscriber, and rebuilds its
/// toolset when an upstream's tools change).
fn warn_on_stderr() -> code_mode::SecretParameterPolicy {
    static SAID: std::sync::Mutex<std::collections::BTreeSet<(String, String)>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    code_mode::SecretParameterPolicy::Callback(std::sync::Arc::new(|p| {
        let first = SAID
            .lock()
            .map(|mut said| said.insert((p.tool.clone(), p.path.clone())))
            .unwrap_or(true);
        if first {
            eprintln!("code-mode: warning: {p}");
        }
    }))
}

/// The process's one type checker (its helper starts on the first check and serves every
/// Code Mode this process builds).
fn checker() -> Result<std::sync::Arc<dyn code_mode::TypeChecker>, String> {
    static CHECKER: std::sync::OnceLock<Result<std::sync::Arc<TypeScriptChecker>, String>> =
        std::sync::OnceLock::new();
    CHECKER
        .get_or_init(|| {
            TypeScriptChecker::new()
                .map(std::sync::Arc::new)
                .map_err(|e| e.to_string())
        })
        .clone()
        .map(|c| c as std::sync::Arc<dyn code_mode::TypeChecker>)
}

/// Tools available to `code-mode run`: a few harmless helpers for trying things out.
pub(crate) fn run_tools() -> Vec<Tool> {
    let echo = Tool::new(
        "echo",
        "Returns its input unchanged.",
        json!({"type": "object"}),
        |input, _| async move { Ok::<_, ToolError>(input) },
    );
    let sleep = Tool::new(
        "sleep",
        "Waits `ms` milliseconds (at most 10 s), then returns {slept: ms}.",
        json!({"type": "object", "properties": {"ms": {"type": "integer", "minimum": 0, "maximum": 10000}}, "required": ["ms"]}),
        |input, _| async move {
            let ms = input["ms"].as_u64().unwrap_or(0);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Ok::<_, ToolError>(json!({"slept": ms}))
        },
    );
    [echo, sleep].into_iter().filter_map(Result::ok).collect()
}

async fn run(
    file: PathBuf,
    sandbox: SandboxArgs,
    events: bool,
    mcp_config: Option<PathBuf>,
    upstream: UpstreamArgs,
    approve: String,
) -> ExitCode {
    let program_on_stdin = file.as_os_str() == "-";
    let code = if program_on_stdin {
        let mut s = String::new();
        match std::io::stdin().read_to_string(&mut s) {
            Ok(_) => s,
            Err(e) => return usage_error(format!("cannot read standard input: {e}")),
        }
    } else {
        match std::fs::read_to_string(&file) {
            Ok(s) => s,
            Err(e) => return usage_error(format!("cannot read {}: {e}", file.display())),
        }
    };
    let mut tools = run_tools();
    // Kept alive for the run: the upstream processes stop when it drops.
    let _upstream = match mcp_config {
        Some(path) => match mcp::connect(&path, &upstream).await {
            Ok(u) => {
                tools.extend(u.tools());
                Some(u)
            }
            Err(e) => return usage_error(e),
        },
        None => None,
    };
    let code_mode = match build(&sandbox, tools) {
        Ok(c) => c,
        Err(e) => return usage_error(e),
    };
    let sink = if events {
        EventSink::from_fn(|event| {
            let line = json!({"name": event.name(), "value": event.value()});
            eprintln!("{line}");
        })
    } else {
        EventSink::none()
    };
    let opts = ExecuteOptions::new("cli", sink)
        .with_approver(approve::approver(&approve, program_on_stdin));
    let result = code_mode.execute(&code, opts).await;
    print_result(&result)
}

/// Prints the result as pretty JSON; the exit code says whether the code succeeded.
pub(crate) fn print_result(result: &code_mode::CodeModeResult) -> ExitCode {
    println!(
        "{}",
        serde_json::to_string_pretty(&result.to_json()).unwrap_or_default()
    );
    if result.success {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    // Traces and metrics go to an OTLP collector when OTEL_EXPORTER_OTLP_ENDPOINT is set;
    // otherwise nothing is installed. Flushed after the result is printed, for at most
    // OTLP_EXIT_BUDGET: a collector that is down costs that much, once, with a warning.
    let telemetry = match code_mode_otel::init_from_env("code-mode") {
        Ok(t) => t,
        Err(e) => {
            eprintln!("code-mode: warning: no telemetry: {e}");
            None
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return usage_error(format!("cannot start the async runtime: {e}")),
    };
    let code = runtime.block_on(async move {
        // A driver that pauses durably gets its key and ledger once, before anything runs.
        #[cfg(feature = "quickjs-wasm")]
        if let Command::Run { sandbox, .. }
        | Command::Mcp { sandbox, .. }
        | Command::Demo { sandbox, .. } = &cli.command
            && sandbox.driver == "quickjs-wasm"
            && let Err(e) = durable::prepare(sandbox.state_dir.as_deref()).await
        {
            return usage_error(e);
        }
        match cli.command {
            Command::Run {
                file,
                sandbox,
                events,
                mcp_config,
                upstream,
                approve,
            } => run(file, sandbox, events, mcp_config, upstream, approve).await,
            Command::Mcp {
                config,
                http,
                upstream,
                skills,
                vocabulary,
                sandbox,
            } => mcp::serve(config, http, upstream, skills, vocabulary, sandbox).await,
            Command::Demo {
                sandbox,
                full_prompt,
            } => match build(&sandbox, demo::tools()) {
                Ok(code_mode) => demo::run(code_mode, full_prompt).await,
                Err(e) => usage_error(e),
            },
        }
    });
    if let Some(telemetry) = telemetry
        && let Err(e) = telemetry.shutdown(OTLP_EXIT_BUDGET)
    {
        eprintln!("code-mode: warning: telemetry not exported: {e}");
    }
    code
}

/// How long the CLI waits at exit for its last telemetry export, at most.
const OTLP_EXIT_BUDGET: Duration = Duration::from_millis(500);
