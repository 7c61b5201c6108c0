//! What the protocol edges tell the server's request layer about a request they served,
//! as `http` extensions: which operation it was, which error code answered it, and the
//! request id to put in the response and the log. Pure values, so that every edge can
//! set them without depending on the binary.

/// Set by an edge on its response: the edge (`oci`, `ecr`, `iam`, `sts`, ...) and the
/// operation enum's name (`OciOperation::name`, `EcrOperation::name`, ...). Metrics label
/// requests with it, so it must come from a bounded set: never a repository or a digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OperationName {
    pub edge: &'static str,
    pub name: &'static str,
}

/// Set by an edge on an error response: the error code on the wire (`UNAUTHORIZED`,
/// `UnrecognizedClientException`, `SignatureDoesNotMatch`, ...). The server derives
/// authentication-failure reasons from it in one place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ErrorCode(pub &'static str);

/// Set by the server's request layer on each request before any edge sees it: the id
/// that the response's `X-Request-Id` carries. Edges use it in their own request-id
/// headers, bodies and log spans so that one request has one id everywhere.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RequestId(pub String);
