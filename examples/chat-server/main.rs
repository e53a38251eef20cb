//! `examples/chat-server`: Code Mode behind a chat endpoint the TanStack AI React client can
//! use unchanged (`useChat({ connection: fetchServerSentEvents('/api/chat'), onCustomEvent })`).
//!
//! Run: `OPENAI_MODEL=gpt-4o-mini OPENAI_API_KEY=sk-... cargo run -p code-mode-examples --example chat-server`
//! (`OPENAI_BASE_URL` points it at a local OpenAI-compatible server such as Ollama:
//! `http://127.0.0.1:11434/v1`). `CODE_MODE_DRIVER` picks the sandbox driver, `PORT` the port.
//! Without a model it still starts, and explains in every answer what to set.

#[path = "app.rs"]
mod app;

use std::sync::Arc;

use code_mode_chat::{LlmAdapter, OpenAiCompatible};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
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
    let state = match app::state(llm, driver) {
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
