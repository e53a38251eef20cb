//! What went wrong with an upstream, in words a user can act on.
//!
//! Why: rmcp's errors wrap the transport's error in a frame naming the transport's Rust
//! type (`Transport [rmcp::transport::worker::WorkerTransport<…>] error: …`), which says
//! nothing to a user and everything about this crate's internals. The message shown is the
//! innermost cause (`Connection refused (os error 111)`), which is what happened.

/// The innermost cause of `e` (its own text when it has no source), without Rust type
/// names.
pub(crate) fn cause(e: &(dyn std::error::Error + 'static)) -> String {
    type HttpError = rmcp::transport::streamable_http_client::StreamableHttpError<reqwest::Error>;
    let mut inner = e;
    loop {
        // rmcp's HTTP client error does not name the reqwest error it wraps as its source.
        let next = match inner.downcast_ref::<HttpError>() {
            Some(HttpError::Client(client)) => Some(client as &(dyn std::error::Error + 'static)),
            _ => inner.source(),
        };
        match next {
            Some(next) => inner = next,
            None => break,
        }
    }
    without_type_names(&inner.to_string())
}

/// Why `initialize` failed: the transport's innermost cause, or rmcp's own account.
pub(crate) fn init_cause(e: &rmcp::service::ClientInitializeError) -> String {
    match e {
        rmcp::service::ClientInitializeError::TransportError { error, .. } => cause(error),
        other => without_type_names(&other.to_string()),
    }
}

/// `url` as it may be shown: without credentials (`user:password@`), query or fragment,
/// which may hold secrets after `${VAR}` expansion.
pub(crate) fn shown_url(url: &str) -> String {
    let end = url.find(['?', '#']).unwrap_or(url.len());
    let url = &url[..end];
    match (url.find("://"), url.find('@')) {
        (Some(scheme), Some(at)) if at > scheme && !url[scheme + 3..at].contains('/') => {
            format!("{}{}", &url[..scheme + 3], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

/// `text` with rmcp's `Transport [<type>] error: ` frames removed.
fn without_type_names(text: &str) -> String {
    let mut out = text.to_owned();
    while let Some(start) = out.find("Transport [") {
        let Some(len) = out[start..].find("] error: ") else {
            break;
        };
        out.replace_range(start..start + len + "] error: ".len(), "");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("Transport [rmcp::transport::worker::WorkerTransport<X<Y>>] error: outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn urls_are_shown_without_secrets() {
        for (url, shown) in [
            ("http://127.0.0.1:9/mcp", "http://127.0.0.1:9/mcp"),
            (
                "https://me:s3cret@example.com/mcp?key=s3cret#x",
                "https://example.com/mcp",
            ),
            ("https://example.com/a@b", "https://example.com/a@b"),
        ] {
            assert_eq!(shown_url(url), shown);
        }
    }

    #[test]
    fn the_innermost_cause_without_type_names() {
        let e = Outer(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "Connection refused",
        ));
        assert_eq!(cause(&e), "Connection refused");
        assert_eq!(
            without_type_names("Send message error Transport [a::B<c::D>] error: Client error: x"),
            "Send message error Client error: x"
        );
    }
}
