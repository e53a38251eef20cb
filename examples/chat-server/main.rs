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
    let driver_name = std::env::var("CODE_MODE_DRIVER").unwrap_or_else(|_| "quickjs".into());
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
    let state = match app::state_with(llm, driver, type_check) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("chat-server: {e}");
            std::process::exit(2);
        }
    };
    let web = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("chat-server/web/dist");
    let port = std::env::var("PORT").unwrap_or_else(|_| "3000".into());
    let listener = tokio::net::TcpListener::bind(format!("127.0.0.1:{port}")).await?;
    eprintln!(
        "chat-server: http://{} (driver {driver_name})",
        listener.local_addr()?
    );
    axum::serve(listener, app::router(state, Some(web))).await?;
    Ok(())
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
