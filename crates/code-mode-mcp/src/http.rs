//! The Streamable HTTP client to an upstream server, with every server-sent event checked for
//! depth before rmcp parses it.
//!
//! Why: as on stdio (see `stdio.rs`), rmcp parses each event with serde_json, whose
//! recursion limit refuses a message nested past 128 levels; on HTTP the parse failure ends
//! the whole session ("Transport closed") instead of failing one call. This client is
//! reqwest's own rmcp client with the events of every stream passed through
//! [`checked_line`]: an answer too deep to read becomes a JSON-RPC error answering the same
//! request, any other such event loses its data (rmcp skips it). A plain JSON body is
//! parsed by rmcp's client before this one sees it: when it cannot be read, the request it
//! answered gets a JSON-RPC error saying so, and the session goes on.
//!
//! The reqwest client is built as rmcp builds its own: no idle connection pool, and only
//! same-origin 307/308 redirects followed (a cross-origin one would replay the session id
//! and the configured headers, which may hold credentials, to another host).

use std::collections::HashMap;
use std::sync::Arc;

use futures::StreamExt;
use futures::stream::BoxStream;
use http::{HeaderName, HeaderValue};
use rmcp::model::{ClientJsonRpcMessage, ErrorData, RequestId, ServerJsonRpcMessage};
use rmcp::transport::streamable_http_client::{
    SseError, StreamableHttpClient, StreamableHttpError, StreamableHttpPostResponse,
    StreamableHttpResponseLimits,
};
use sse_stream::Sse;

use crate::stdio::{Checked, checked_line};

/// reqwest's rmcp client, with server-sent events checked for depth.
#[derive(Clone)]
pub(crate) struct CheckedHttp(reqwest::Client);

/// Redirects followed for one request, at most.
const MAX_REDIRECTS: usize = 10;

impl CheckedHttp {
    pub(crate) fn new() -> Result<Self, reqwest::Error> {
        let redirects = reqwest::redirect::Policy::custom(|attempt| {
            let keeps_body = matches!(
                attempt.status(),
                reqwest::StatusCode::TEMPORARY_REDIRECT | reqwest::StatusCode::PERMANENT_REDIRECT
            );
            let same_origin = attempt
                .previous()
                .first()
                .is_some_and(|first| first.origin() == attempt.url().origin());
            if !keeps_body || !same_origin {
                attempt.stop()
            } else if attempt.previous().len() > MAX_REDIRECTS {
                attempt.error(format!("more than {MAX_REDIRECTS} redirects"))
            } else {
                attempt.follow()
            }
        });
        reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .redirect(redirects)
            .build()
            .map(Self)
    }
}

type Failure = StreamableHttpError<reqwest::Error>;
type Events = BoxStream<'static, Result<Sse, SseError>>;

/// The id of a request (what awaits an answer).
fn request_id(message: &ClientJsonRpcMessage) -> Option<RequestId> {
    match message {
        ClientJsonRpcMessage::Request(request) => Some(request.id.clone()),
        _ => None,
    }
}

/// A POST's outcome as rmcp may read it: an answer to the request `id` that could not be
/// read fails that request only.
fn settle(
    id: Option<RequestId>,
    outcome: Result<StreamableHttpPostResponse, Failure>,
) -> Result<StreamableHttpPostResponse, Failure> {
    match (outcome, id) {
        (Ok(response), _) => Ok(check_response(response)),
        (Err(StreamableHttpError::UnexpectedServerResponse(why)), Some(id)) => {
            let error = ErrorData::internal_error(
                format!("the MCP server's answer cannot be read: {why}"),
                None,
            );
            Ok(StreamableHttpPostResponse::Json(
                ServerJsonRpcMessage::error(error, Some(id)),
                None,
            ))
        }
        (Err(e), _) => Err(e),
    }
}

/// One event, as rmcp may read it.
fn check_event(mut event: Sse) -> Sse {
    if let Some(data) = &event.data {
        match checked_line(data.as_bytes()) {
            Checked::Pass => {}
            Checked::Replace(text) => event.data = Some(text.trim_end().to_owned()),
            Checked::Drop => event.data = None,
        }
    }
    event
}

fn check_events(events: Events) -> Events {
    events.map(|e| e.map(check_event)).boxed()
}

fn check_response(response: StreamableHttpPostResponse) -> StreamableHttpPostResponse {
    match response {
        StreamableHttpPostResponse::Sse(events, session) => {
            StreamableHttpPostResponse::Sse(check_events(events), session)
        }
        other => other,
    }
}

impl StreamableHttpClient for CheckedHttp {
    type Error = reqwest::Error;

    async fn post_message(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<StreamableHttpPostResponse, Failure> {
        let id = request_id(&message);
        let outcome = self
            .0
            .post_message(uri, message, session_id, auth_header, custom_headers)
            .await;
        settle(id, outcome)
    }

    async fn post_message_with_max_sse_event_size(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
        max_sse_event_size: usize,
    ) -> Result<StreamableHttpPostResponse, Failure> {
        let id = request_id(&message);
        let outcome = self
            .0
            .post_message_with_max_sse_event_size(
                uri,
                message,
                session_id,
                auth_header,
                custom_headers,
                max_sse_event_size,
            )
            .await;
        settle(id, outcome)
    }

    async fn post_message_with_response_limits(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
        limits: StreamableHttpResponseLimits,
    ) -> Result<StreamableHttpPostResponse, Failure> {
        let id = request_id(&message);
        let outcome = self
            .0
            .post_message_with_response_limits(
                uri,
                message,
                session_id,
                auth_header,
                custom_headers,
                limits,
            )
            .await;
        settle(id, outcome)
    }

    async fn delete_session(
        &self,
        uri: Arc<str>,
        session_id: Arc<str>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<(), Failure> {
        self.0
            .delete_session(uri, session_id, auth_header, custom_headers)
            .await
    }

    async fn get_stream(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<Events, Failure> {
        self.0
            .get_stream(uri, session_id, last_event_id, auth_header, custom_headers)
            .await
            .map(check_events)
    }

    async fn get_stream_with_max_sse_event_size(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
        max_sse_event_size: usize,
    ) -> Result<Events, Failure> {
        self.0
            .get_stream_with_max_sse_event_size(
                uri,
                session_id,
                last_event_id,
                auth_header,
                custom_headers,
                max_sse_event_size,
            )
            .await
            .map(check_events)
    }
}
