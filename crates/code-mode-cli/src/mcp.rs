//! `code-mode mcp` and `code-mode run --mcp-config`: Code Mode over MCP, both ways.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use code_mode_mcp::{CodeModeServer, HttpOptions, HttpServer, McpConfig, McpTools, Offer};
use code_mode_skills::{FileSystemStorage, SkillLibrary, Vocabulary};

use crate::{SandboxArgs, UpstreamArgs, build, run_tools, usage_error};

/// Reads `path` and connects its servers.
pub(crate) async fn connect(path: &Path, upstream: &UpstreamArgs) -> Result<Arc<McpTools>, String> {
    let config = McpConfig::load(path).map_err(|e| e.to_string())?;
    let tools = McpTools::connect(&config, upstream.options())
        .await
        .map_err(|e| e.to_string())?;
    for (_, why) in tools.unavailable() {
        eprintln!(
            "code-mode: warning: {why}; its tools are left out and it is tried again in the background (--mcp-strict refuses to start instead)"
        );
    }
    Ok(Arc::new(tools))
}

/// Serves until the client disconnects (stdio) or the process ends (HTTP).
pub(crate) async fn serve(
    config: Option<PathBuf>,
    http: Option<std::net::SocketAddr>,
    upstream_args: UpstreamArgs,
    skills: Option<PathBuf>,
    vocabulary: Vocabulary,
    sandbox: SandboxArgs,
) -> ExitCode {
    let upstream = match config {
        Some(path) => match connect(&path, &upstream_args).await {
            Ok(u) => Some(u),
            Err(e) => return usage_error(e),
        },
        None => None,
    };
    // Built once here: a bad flag is a usage error rather than a failed handshake.
    let server =
        match CodeModeServer::new(run_tools(), upstream, move |tools| build(&sandbox, tools)) {
            Ok(s) => s,
            Err(e) => return usage_error(e),
        };
    let server = match skills {
        Some(dir) => {
            let storage = match FileSystemStorage::new(&dir) {
                Ok(s) => s,
                Err(e) => return usage_error(format!("skills folder {}: {e}", dir.display())),
            };
            let library = SkillLibrary::builder(Arc::new(storage))
                .vocabulary(vocabulary)
                .build();
            server.with_offer(move |cm| {
                let library = library.clone();
                Box::pin(async move {
                    let session = library.session(&cm, &[]).await.map_err(|e| e.to_string())?;
                    Ok(Offer {
                        tools: session.tools,
                        instructions: session.system_prompt,
                    })
                })
            })
        }
        None => server,
    };
    // The instructions `initialize` answers with come from the first offer.
    if let Err(e) = server.offer().await {
        return usage_error(e);
    }
    let outcome = match http {
        None => code_mode_mcp::serve_stdio(server).await,
        Some(addr) => {
            let options = HttpOptions {
                token: std::env::var("CODE_MODE_MCP_TOKEN")
                    .ok()
                    .filter(|t| !t.is_empty()),
                ..HttpOptions::default()
            };
            match HttpServer::bind(server, addr, options).await {
                Ok(s) => {
                    eprintln!("code-mode: serving MCP at http://{}/mcp", s.local_addr());
                    s.run().await
                }
                Err(e) => return usage_error(e),
            }
        }
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("code-mode: {e}");
            ExitCode::from(1)
        }
    }
}
