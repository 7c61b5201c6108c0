//! # berth-aws-service
//!
//! What every AWS-shaped edge on `POST /` does the same way, so that a new service is an
//! operation enum, its resource kinds ([`berth_access::AuthorizedOperation`]) and its
//! handlers:
//! * a request id per request, answered as `x-amzn-RequestId` ([`request_id`]);
//! * the body read whole up to the service's limit ([`read_body`]), after the SigV4
//!   precheck so that an unauthenticated client cannot make the server buffer it;
//! * SigV4 with every required header signed (`berth_access::Authenticator`, with
//!   `requiring_signed_headers(&["x-amz-target"])` on JSON 1.1 services);
//! * JSON 1.1 answers and errors ([`json11_response`], [`json11_error`]) and Query (XML)
//!   answers and errors ([`query_response`], [`query_error_document`], [`xml`]);
//! * `Retry-After` on throttling and retryable failures ([`set_retry_after`]);
//! * the cause chain of an internal error, for the log only ([`cause_chain`]);
//! * the connection facts policies see ([`conn_info`]).
//!
//! May depend on: `berth-access`, `berth-sigv4`. Knows no service's operations.
// Tests may unwrap and slice strings they built: a panic there is a failed test.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::string_slice))]

pub mod xml;

use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderValue, StatusCode};
use http_body_util::BodyExt;

use berth_access::ConnInfo;

/// The content type of AWS JSON 1.1 requests and answers.
pub const JSON11_CONTENT_TYPE: &str = "application/x-amz-json-1.1";

/// The content type of Query protocol answers.
pub const QUERY_CONTENT_TYPE: &str = "text/xml";

/// A new request id (a UUID, as AWS writes them).
pub fn request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// The facts about the connection a request came over (put in the request's extensions
/// by the server); none known when absent.
pub fn conn_info(req: &Request) -> ConnInfo {
    req.extensions()
        .get::<ConnInfo>()
        .copied()
        .unwrap_or(ConnInfo {
            peer_ip: None,
            secure: false,
        })
}

/// Why a request body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("the request body exceeds the limit of {limit} bytes")]
    TooLarge { limit: usize },
    #[error("could not read the request body")]
    Read(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Reads `body` whole, refusing more than `limit` bytes.
pub async fn read_body(body: axum::body::Body, limit: usize) -> Result<Bytes, BodyError> {
    match http_body_util::Limited::new(body, limit).collect().await {
        Ok(b) => Ok(b.to_bytes()),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(BodyError::TooLarge { limit })
        }
        Err(e) => Err(BodyError::Read(e)),
    }
}

fn respond(
    status: StatusCode,
    body: impl Into<axum::body::Body>,
    content_type: &'static str,
    id: &str,
) -> Response {
    let mut resp = (status, body.into()).into_response();
    let h = resp.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static(content_type),
    );
    if let Ok(v) = HeaderValue::from_str(id) {
        h.insert("x-amzn-RequestId", v);
    }
    resp
}

/// A JSON 1.1 answer carrying `x-amzn-RequestId`.
pub fn json11_response(status: StatusCode, body: &serde_json::Value, request_id: &str) -> Response {
    // Straight into bytes: `to_string` goes through `fmt::Display`, several times slower
    // for the same compact text. Serializing a `Value` into memory cannot fail (its keys
    // are strings); the fallback only keeps this function total.
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| body.to_string().into_bytes());
    respond(status, bytes, JSON11_CONTENT_TYPE, request_id)
}

/// The JSON 1.1 error body `{"__type": ..., "message": ...}`.
pub fn json11_error(aws_type: &str, message: &str) -> serde_json::Value {
    serde_json::json!({"__type": aws_type, "message": message})
}

/// A Query (XML) answer carrying `x-amzn-RequestId`.
pub fn query_response(status: StatusCode, document: String, request_id: &str) -> Response {
    respond(status, document, QUERY_CONTENT_TYPE, request_id)
}

/// The Query protocol's `<ErrorResponse>` document, in the namespace of the service that
/// was called. `fault` is `Sender` (the client's fault) or `Receiver` (the server's).
pub fn query_error_document(
    namespace: &str,
    fault: &str,
    code: &str,
    message: &str,
    request_id: &str,
) -> String {
    let mut x = xml::Xml::new();
    x.open_ns("ErrorResponse", namespace);
    x.open("Error");
    x.text("Type", fault);
    x.text("Code", code);
    x.text("Message", message);
    x.close("Error");
    x.text("RequestId", request_id);
    x.close("ErrorResponse");
    x.finish()
}

/// Adds `Retry-After: <secs>` (throttled requests).
pub fn set_retry_after(resp: &mut Response, secs: u64) {
    resp.headers_mut()
        .insert(http::header::RETRY_AFTER, HeaderValue::from(secs));
}

/// `e` and its sources, each by its `Display`, joined by `": "`: the text an internal
/// error leaves in the server log (never on the wire).
pub fn cause_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut chain = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        chain.push_str(": ");
        chain.push_str(&s.to_string());
        source = s.source();
    }
    chain
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bodies_over_the_limit_are_refused() {
        let ok = read_body(axum::body::Body::from("12345"), 5).await.unwrap();
        assert_eq!(&ok[..], b"12345");
        let err = read_body(axum::body::Body::from("123456"), 5)
            .await
            .unwrap_err();
        assert!(matches!(err, BodyError::TooLarge { limit: 5 }), "{err:?}");
    }

    #[test]
    fn responses_carry_the_request_id_and_content_type() {
        let mut r = json11_response(StatusCode::OK, &json11_error("T", "m"), "rid");
        set_retry_after(&mut r, 3);
        assert_eq!(r.headers()["x-amzn-requestid"], "rid");
        assert_eq!(r.headers()["content-type"], JSON11_CONTENT_TYPE);
        assert_eq!(r.headers()["retry-after"], "3");
        let r = query_response(StatusCode::OK, String::new(), "rid");
        assert_eq!(r.headers()["content-type"], QUERY_CONTENT_TYPE);
    }

    #[tokio::test]
    async fn json_answers_are_compact_json() {
        let body = serde_json::json!({"a": [1, "x\"y"], "b": {"c": null}});
        let r = json11_response(StatusCode::OK, &body, "rid");
        let bytes = r.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&bytes[..], body.to_string().as_bytes());
    }

    #[test]
    fn cause_chains_name_every_source() {
        #[derive(Debug, thiserror::Error)]
        #[error("outer")]
        struct Outer(#[source] std::io::Error);
        let e = Outer(std::io::Error::other("inner"));
        assert_eq!(cause_chain(&e), "outer: inner");
        assert_eq!(cause_chain(&std::io::Error::other("alone")), "alone");
    }

    #[test]
    fn query_errors_are_escaped_and_namespaced() {
        assert_eq!(
            query_error_document("urn:x", "Sender", "ValidationError", "a <b>", "r1"),
            "<ErrorResponse xmlns=\"urn:x\"><Error><Type>Sender</Type><Code>ValidationError</Code>\
             <Message>a &lt;b&gt;</Message></Error><RequestId>r1</RequestId></ErrorResponse>"
        );
    }
}
