//! `examples/chat-server`: Code Mode behind a chat endpoint the TanStack AI React client can
//! use unchanged (`useChat({ connection: fetchServerSentEvents('/api/chat'), onCustomEvent })`).
//!
//! Run: `OPENAI_MODEL=gpt-4o-mini OPENAI_API_KEY=sk-... cargo run -p code-mode-examples --example chat-server`
//! (`OPENAI_BASE_URL` points it at a local OpenAI-compatible server such as Ollama:
//! `http://127.0.0.1:11434/v1`). `CODE_MODE_DRIVER` picks the sandbox driver, `PORT` the port,
//! `OTEL_EXPORTER_OTLP_ENDPOINT` exports traces and metrics over OTLP,
//! `CODE_MODE_TYPECHECK` (`off`, `report` or `block`) type-checks the model's programs first
//! (with the runtime of `code-mode-typecheck-setup`, or `CODE_MODE_TYPESCRIPT`).
//! Without a model it still starts, and explains in every answer what to set.
//!
//! Durable approvals (`--features durable`): with `CODE_MODE_SNAPSHOT_KEY` (64 hex
//! characters), a program waiting for an approval is sealed (QuickJS-WASM, the default
//! driver then) into `CODE_MODE_STATE_DIR` or `CODE_MODE_STATE_URL`'s PostgreSQL (`--features
//! postgres`), so the server may restart before the answer comes.

#[path = "app.rs"]
mod app;

use std::sync::Arc;

use code_mode::{TypeCheckMode, TypeChecker};
use code_mode_chat::{LlmAdapter, OpenAiCompatible};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Traces and metrics go to an OTLP collector when OTEL_EXPORTER_OTLP_ENDPOINT is set
    // (the agent's model and tool calls, and each execution inside them).
    let _telemetry = match code_mode_otel::init_from_env("code-mode-chat-server") {
        Ok(t) => t,
        Err(e) => {
            eprintln!("chat-server: warning: no telemetry: {e}");
            None
        }
    };
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(serve())
}

async fn serve() -> Result<(), Box<dyn std::error::Error>> {
    let llm: Result<Arc<dyn LlmAdapter>, String> = match OpenAiCompatible::from_env() {
        Some(Ok(llm)) => Ok(Arc::new(llm)),
        Some(Err(e)) => Err(format!("the model configuration is invalid: {e}")),
        None => Err("No model is configured: set OPENAI_MODEL (and OPENAI_API_KEY, or OPENAI_BASE_URL for a local OpenAI-compatible server), then restart the server.".into()),
    };
    if let Err(why) = &llm {
        eprintln!("chat-server: {why}");
    }
    let durable = durable().await;
    let default_driver = if durable.is_some() {
        "quickjs-wasm"
    } else {
        "quickjs"
    };
    let driver_name = std::env::var("CODE_MODE_DRIVER").unwrap_or_else(|_| default_driver.into());
    if durable.is_some() && driver_name != "quickjs-wasm" {
        eprintln!(
            "chat-server: CODE_MODE_SNAPSHOT_KEY asks for durable approvals, which need CODE_MODE_DRIVER=quickjs-wasm (the driver that can seal a waiting program), not {driver_name:?}"
        );
        std::process::exit(2);
    }
    let driver = match code_mode_drivers::driver_by_name(
        &driver_name,
        &code_mode_drivers::DriverOptions::from_env(),
    ) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("chat-server: CODE_MODE_DRIVER: {e}");
            std::process::exit(2);
        }
    };
    let type_check = match type_check() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("chat-server: CODE_MODE_TYPECHECK: {e}");
            std::process::exit(2);
        }
    };
    let state = match app::state_full(llm, driver, type_check, durable.as_ref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("chat-server: {e}");
            std::process::exit(2);
        }
    };
    let web = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("chat-server/web/dist");
    let port = match std::env::var("PORT") {
        Err(_) => 3000,
        Ok(text) => match text.trim().parse::<u16>() {
            Ok(port) => port,
            Err(_) => {
                eprintln!("chat-server: PORT must be a port number from 0 to 65535, not {text:?}");
                std::process::exit(2);
            }
        },
    };
    let listener = match tokio::net::TcpListener::bind(("127.0.0.1", port)).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!(
                "chat-server: cannot listen on 127.0.0.1:{port} (PORT): {e}; set PORT to a free port"
            );
            std::process::exit(2);
        }
    };
    eprintln!(
        "chat-server: http://{} (driver {driver_name}{})",
        listener.local_addr()?,
        if durable.is_some() {
            ", durable approvals"
        } else {
            ""
        }
    );
    axum::serve(listener, app::router(state, Some(web))).await?;
    Ok(())
}

/// Durable approvals when this build has them (feature `durable`) and
/// `CODE_MODE_SNAPSHOT_KEY` is set: paused programs in `CODE_MODE_STATE_DIR` (default
/// `$XDG_DATA_HOME/code-mode`, else `~/.local/share/code-mode`) or in `CODE_MODE_STATE_URL`'s
/// PostgreSQL (feature `postgres`). A setting that cannot be used stops the server (exit 2).
#[cfg(feature = "durable")]
async fn durable() -> Option<app::Durable> {
    std::env::var_os("CODE_MODE_SNAPSHOT_KEY")?;
    let dir = std::env::var_os("CODE_MODE_STATE_DIR").map(std::path::PathBuf::from);
    // PostgreSQL is this example's `postgres` feature, whatever else the build unified in.
    match code_mode_skills::DurableState::from_env(dir.as_deref(), cfg!(feature = "postgres")).await
    {
        Ok(state) => Some(state),
        Err(e) => {
            use code_mode_skills::DurableStateError as E;
            let why = match e {
                E::StateFolder { folder, reason } => format!(
                    "CODE_MODE_STATE_DIR: the state folder {} cannot hold paused programs: {reason}",
                    folder.display()
                ),
                E::NoStateFolder => "CODE_MODE_SNAPSHOT_KEY needs a folder for paused programs: set CODE_MODE_STATE_DIR (there is no home folder to default to)".into(),
                other => other.to_string(),
            };
            eprintln!("chat-server: {why}");
            std::process::exit(2);
        }
    }
}

/// Without the `durable` feature, a key asks for what this build cannot do: said, and the
/// approvals stay in memory.
#[cfg(not(feature = "durable"))]
async fn durable() -> Option<app::Durable> {
    if std::env::var_os("CODE_MODE_SNAPSHOT_KEY").is_some() {
        eprintln!(
            "chat-server: warning: CODE_MODE_SNAPSHOT_KEY is set, but this build has no durable approvals (build the example with `--features durable`); approvals wait in memory"
        );
    }
    None
}

/// A type-check mode with the checker that serves it.
type TypeCheck = (TypeCheckMode, Arc<dyn TypeChecker>);

/// The type check `CODE_MODE_TYPECHECK` asks for. Without the compiler, `report` runs
/// programs unchecked (with a warning) and `block` refuses to start.
fn type_check() -> Result<Option<TypeCheck>, String> {
    let mode: TypeCheckMode = std::env::var("CODE_MODE_TYPECHECK")
        .unwrap_or_else(|_| "off".into())
        .parse()
        .map_err(|e| format!("{e}"))?;
    if mode == TypeCheckMode::Off {
        return Ok(None);
    }
    match code_mode_typecheck::TypeScriptChecker::new() {
        Ok(c) => Ok(Some((mode, Arc::new(c)))),
        Err(e) if mode == TypeCheckMode::Report => {
            eprintln!("chat-server: warning: programs run without a type check: {e}");
            Ok(None)
        }
        Err(e) => Err(e.to_string()),
    }
}
