//! Transports for [`CodeModeServer`]: stdio, and Streamable HTTP at `/mcp`.
//!
//! HTTP listens on loopback unless told otherwise; any other address needs a bearer token
//! (read from the environment by the CLI, never a flag), checked in constant time. Browser
//! requests are held to the MCP specification's DNS-rebinding rules: the `Host` must be a
//! loopback name on a loopback bind, and an `Origin`, when present, must be a loopback
//! origin (or one the caller allows).

use std::net::SocketAddr;
use std::sync::Arc;

use rmcp::ServiceExt;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};

use crate::server::CodeModeServer;

/// Why a server cannot run.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A non-loopback address without a token.
    #[error(
        "serving on {0} (not a loopback address) requires a bearer token: set CODE_MODE_MCP_TOKEN (clients then send `Authorization: Bearer <token>`)"
    )]
    TokenRequired(SocketAddr),
    /// The token is unusable.
    #[error("the bearer token must be at least 16 characters of visible ASCII")]
    WeakToken,
    /// The address cannot be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The transport failed.
    #[error("the MCP connection failed: {0}")]
    Transport(String),
}

/// Serves `server` on standard input/output until the client disconnects.
pub async fn serve_stdio(server: CodeModeServer) -> Result<(), ServeError> {
    let running = server
        .serve(rmcp::transport::stdio())
        .await
        .map_err(|e| ServeError::Transport(e.to_string()))?;
    running
        .waiting()
        .await
        .map_err(|e| ServeError::Transport(e.to_string()))?;
    Ok(())
}

/// HTTP serving options.
#[derive(Debug, Clone, Default)]
pub struct HttpOptions {
    /// Required for a non-loopback address: clients send `Authorization: Bearer <token>`.
    pub token: Option<String>,
    /// Browser origins allowed besides loopback ones (`https://app.example.com:443`).
    pub allowed_origins: Vec<String>,
}

/// A bound HTTP server; [`HttpServer::run`] serves until the process ends.
pub struct HttpServer {
    listener: tokio::net::TcpListener,
    router: axum::Router,
    addr: SocketAddr,
}

impl std::fmt::Debug for HttpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpServer")
            .field("addr", &self.addr)
            .finish()
    }
}

/// Checks `Authorization: Bearer <token>`: the scheme in any case (RFC 7235), one or more
/// spaces, the token compared in constant time.
fn authorized(header: Option<&http::HeaderValue>, token: &str) -> bool {
    let Some(got) = header.and_then(|h| h.to_str().ok()) else {
        return false;
    };
    let Some((scheme, credentials)) = got.split_once(' ') else {
        return false;
    };
    if !scheme.eq_ignore_ascii_case("bearer") {
        return false;
    }
    let credentials = credentials.trim_start_matches(' ');
    let (a, b) = (credentials.as_bytes(), token.as_bytes());
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        diff |= usize::from(a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0));
    }
    diff == 0
}

impl HttpServer {
    /// Binds `addr` and prepares `/mcp`.
    pub async fn bind(
        server: CodeModeServer,
        addr: SocketAddr,
        options: HttpOptions,
    ) -> Result<Self, ServeError> {
        let loopback = addr.ip().is_loopback();
        if let Some(t) = &options.token
            && (t.len() < 16 || !t.bytes().all(|b| b.is_ascii_graphic()))
        {
            return Err(ServeError::WeakToken);
        }
        if !loopback && options.token.is_none() {
            return Err(ServeError::TokenRequired(addr));
        }
        let mut origins: Vec<String> =
            ["http://localhost:*", "http://127.0.0.1:*", "http://[::1]:*"]
                .into_iter()
                .map(str::to_owned)
                .collect();
        origins.extend(options.allowed_origins.iter().cloned());
        let mut config = StreamableHttpServerConfig::default()
            .with_allowed_origins(origins)
            .enforce_origin_validation();
        if !loopback {
            // Any Host may reach a server bound to a public address; the token guards it.
            config = config.disable_allowed_hosts();
        }
        let service = StreamableHttpService::new(
            // Requests of 2026-07-28 clients come without a session: parked executions are
            // not bound to one here (their random, single-use key is what guards them).
            move || Ok(server.session().unbound()),
            Arc::new(LocalSessionManager::default()),
            config,
        );
        let mut router = axum::Router::new().nest_service("/mcp", service);
        if let Some(token) = options.token.clone() {
            let token: Arc<str> = token.into();
            router = router.layer(axum::middleware::from_fn(
                move |req: axum::extract::Request, next: axum::middleware::Next| {
                    let token = token.clone();
                    async move {
                        if authorized(req.headers().get(http::header::AUTHORIZATION), &token) {
                            next.run(req).await
                        } else {
                            axum::response::IntoResponse::into_response((
                                http::StatusCode::UNAUTHORIZED,
                                [(http::header::WWW_AUTHENTICATE, "Bearer")],
                                "missing or wrong bearer token",
                            ))
                        }
                    }
                },
            ));
        }
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| ServeError::Bind { addr, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| ServeError::Bind { addr, source })?;
        Ok(Self {
            listener,
            router,
            addr,
        })
    }

    /// The bound address (with the real port when `:0` was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until the process ends.
    pub async fn run(self) -> Result<(), ServeError> {
        axum::serve(self.listener, self.router)
            .await
            .map_err(|e| ServeError::Transport(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_checks_are_exact() {
        let h = |s: &str| http::HeaderValue::from_str(s).ok();
        for good in [
            "Bearer 0123456789abcdef",
            "bearer 0123456789abcdef",
            "BEARER 0123456789abcdef",
            "bEaReR  0123456789abcdef",
        ] {
            assert!(authorized(h(good).as_ref(), "0123456789abcdef"), "{good}");
        }
        for bad in [
            "Bearer 0123456789abcde",
            "Bearer 0123456789abcdefg",
            "Bearer 0123456789ABCDEF",
            "Basic 0123456789abcdef",
            "Bearer0123456789abcdef",
            "Bearer",
            "0123456789abcdef",
            "",
        ] {
            assert!(!authorized(h(bad).as_ref(), "0123456789abcdef"), "{bad}");
        }
        assert!(!authorized(None, "0123456789abcdef"));
    }
}
