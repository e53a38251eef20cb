//! Serving a chunk stream as a `text/event-stream` HTTP response (axum).
//!
//! The body streams each chunk as it is produced. When the client disconnects, the server
//! drops the body, which drops the chunk stream and so aborts the agent loop and any running
//! sandbox execution.

use std::convert::Infallible;

use axum::body::Body;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use futures::StreamExt;
use futures::stream::BoxStream;

use crate::{Chunk, sse};

/// An SSE response streaming `chunks`, with TanStack AI's headers.
pub fn sse_response(chunks: BoxStream<'static, Chunk>) -> Response {
    let body = Body::from_stream(chunks.map(|c| Ok::<_, Infallible>(sse::encode(&c))));
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    for (name, value) in sse::HEADERS {
        headers.insert(name, HeaderValue::from_static(value));
    }
    headers.insert(
        header::HeaderName::from_static("x-accel-buffering"),
        HeaderValue::from_static("no"),
    );
    response
}
