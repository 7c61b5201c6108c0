//! The start-up check of the bucket: before a node serves anything it lists the bucket,
//! then puts and deletes a small object under its prefix, so a missing bucket, refused
//! credentials, missing permissions or an endpoint that does not answer stop the start with
//! a message saying which, instead of failing every push later.
//!
//! The check has a client of its own that retries once at most: the serving client retries
//! connection errors for minutes (right for a store that blips, wrong for a typo in the
//! endpoint). Messages name the bucket, endpoint, prefix and S3's error code and message;
//! never a secret (S3 error bodies carry none, and the request URLs carry no signature
//! since requests are signed in headers).

use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

use object_store::aws::AmazonS3;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, RetryConfig};

use super::{Inner, S3Options};

/// Why the bucket cannot be used, as found by the start-up check.
#[derive(Debug)]
pub enum S3StartupProblem {
    /// `NoSuchBucket`.
    NoSuchBucket { bucket: String, endpoint: String },
    /// The store does not accept the credentials themselves (an unknown key id, a wrong
    /// secret, an expired session token).
    CredentialsRefused { code: String, message: String },
    /// `AccessDenied` (or another 403): unknown credentials on stores that do not say so
    /// (Garage), or valid ones without the permissions Berth needs.
    AccessDenied {
        bucket: String,
        prefix: String,
        code: String,
        message: String,
    },
    /// The bucket lives in another region than the configured one.
    WrongRegion {
        bucket: String,
        region: String,
        code: String,
        message: String,
    },
    /// No HTTP answer at all: refused connection, unknown host, TLS failure, timeout.
    Unreachable { endpoint: String, cause: String },
    /// Any other refusal, with what the store said.
    Other { step: &'static str, detail: String },
}

impl fmt::Display for S3StartupProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            S3StartupProblem::NoSuchBucket { bucket, endpoint } => write!(
                f,
                "bucket {bucket:?} does not exist at {endpoint}: create it, or correct \
                 storage.s3.bucket"
            ),
            S3StartupProblem::CredentialsRefused { code, message } => write!(
                f,
                "S3 refused the credentials ({code}: {message}): check storage.s3.access_key_id \
                 and storage.s3.secret_access_key (or the AWS credentials of the environment)"
            ),
            S3StartupProblem::AccessDenied {
                bucket,
                prefix,
                code,
                message,
            } => write!(
                f,
                "S3 refused access to bucket {bucket:?} ({code}: {message}): the access key \
                 may be unknown or its secret wrong (check storage.s3.access_key_id and \
                 storage.s3.secret_access_key), or it may not be allowed to list, put and \
                 delete objects under the prefix {prefix:?}"
            ),
            S3StartupProblem::WrongRegion {
                bucket,
                region,
                code,
                message,
            } => write!(
                f,
                "bucket {bucket:?} is not in region {region} ({code}: {message}): correct \
                 storage.s3.region"
            ),
            S3StartupProblem::Unreachable { endpoint, cause } => {
                write!(f, "cannot reach the S3 endpoint {endpoint}: {cause}")
            }
            S3StartupProblem::Other { step, detail } => {
                write!(
                    f,
                    "the S3 store refused the start-up check ({step}): {detail}"
                )
            }
        }
    }
}

impl StdError for S3StartupProblem {}

/// The probe client's retries: one, quickly, so a wrong endpoint fails in seconds.
pub(super) fn probe_retry() -> RetryConfig {
    RetryConfig {
        max_retries: 1,
        retry_timeout: Duration::from_secs(10),
        ..RetryConfig::default()
    }
}

/// Lists the bucket, puts a probe object under the prefix and deletes it.
pub(super) async fn check(
    probe: &AmazonS3,
    inner: &Inner,
    options: &S3Options,
) -> Result<(), S3StartupProblem> {
    let refused = |step, e| classify(step, &e, options);
    probe
        .list_with_delimiter(Some(&inner.key("uploads/")))
        .await
        .map_err(|e| refused("list the bucket", e))?;
    // Outside blobs/ and uploads/: neither GC nor the upload sweeper looks here, and a
    // unique name per start keeps nodes starting together out of each other's way.
    let key = inner.key(&format!("startup-probe/{}", uuid::Uuid::new_v4()));
    probe
        .put(&key, PutPayload::from_static(b"berth start-up probe\n"))
        .await
        .map_err(|e| refused("put a probe object", e))?;
    probe
        .delete(&key)
        .await
        .map_err(|e| refused("delete the probe object", e))?;
    Ok(())
}

fn endpoint_of(options: &S3Options) -> String {
    options
        .endpoint
        .clone()
        .unwrap_or_else(|| format!("https://s3.{}.amazonaws.com", options.region))
}

/// Maps what the object store client reports to a problem the operator can act on: the
/// S3 error code of the answer's body when there is one, else the transport failure.
fn classify(step: &'static str, e: &object_store::Error, options: &S3Options) -> S3StartupProblem {
    let chain = chain_text(e);
    let code = xml_element(&chain, "Code");
    let message = xml_element(&chain, "Message").unwrap_or_default();
    let bucket = options.bucket.clone();
    match code.as_deref() {
        Some("NoSuchBucket") => {
            return S3StartupProblem::NoSuchBucket {
                bucket,
                endpoint: endpoint_of(options),
            }
        }
        Some(
            c @ ("InvalidAccessKeyId"
            | "SignatureDoesNotMatch"
            | "InvalidToken"
            | "ExpiredToken"
            | "TokenRefreshRequired"
            | "InvalidClientTokenId"),
        ) => {
            return S3StartupProblem::CredentialsRefused {
                code: c.to_string(),
                message,
            }
        }
        Some(
            c @ ("PermanentRedirect"
            | "AuthorizationHeaderMalformed"
            | "IllegalLocationConstraintException"),
        ) => {
            return S3StartupProblem::WrongRegion {
                bucket,
                region: options.region.clone(),
                code: c.to_string(),
                message,
            }
        }
        _ => {}
    }
    // A listing's failure arrives as `Generic` whatever the status, so the status is also
    // read from the text (`... status code: 403 Forbidden: ...`).
    let refused = matches!(
        e,
        object_store::Error::PermissionDenied { .. } | object_store::Error::Unauthenticated { .. }
    ) || code.as_deref() == Some("AccessDenied")
        || chain.contains("status code: 403")
        || chain.contains("status code: 401");
    match e {
        _ if refused => S3StartupProblem::AccessDenied {
            bucket,
            prefix: options.prefix.clone(),
            code: code.unwrap_or_else(|| "AccessDenied".into()),
            message,
        },
        _ if code.is_none() && transport_failure(e) => S3StartupProblem::Unreachable {
            endpoint: endpoint_of(options),
            cause: innermost(e),
        },
        _ => S3StartupProblem::Other {
            step,
            detail: match code {
                Some(c) => format!("{c}: {message}"),
                None => chain,
            },
        },
    }
}

/// Whether the request got no HTTP answer (the client's transport error is in the chain).
fn transport_failure(e: &object_store::Error) -> bool {
    let mut source: Option<&(dyn StdError + 'static)> = Some(e);
    while let Some(s) = source {
        if s.downcast_ref::<object_store::client::HttpError>()
            .is_some()
        {
            return true;
        }
        source = s.source();
    }
    false
}

/// The innermost cause's text ("Connection refused (os error 111)", "dns error: ...").
fn innermost(e: &object_store::Error) -> String {
    let mut last: &(dyn StdError + 'static) = e;
    while let Some(s) = last.source() {
        last = s;
    }
    last.to_string()
}

fn chain_text(e: &object_store::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// The text of the first `<name>...</name>` in `text` (S3's XML error body).
fn xml_element(text: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let (_, rest) = text.split_once(open.as_str())?;
    let (value, _) = rest.split_once(close.as_str())?;
    Some(value.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_error_bodies_are_read_for_code_and_message() {
        let body = "Error performing GET http://x/b in 2ms - Server returned non-2xx status \
                    code: 403 Forbidden: <?xml version=\"1.0\"?><Error><Code>InvalidAccessKeyId</Code>\
                    <Message>The key does not exist</Message></Error>";
        assert_eq!(
            xml_element(body, "Code").as_deref(),
            Some("InvalidAccessKeyId")
        );
        assert_eq!(
            xml_element(body, "Message").as_deref(),
            Some("The key does not exist")
        );
        assert_eq!(xml_element("no xml here", "Code"), None);
        assert_eq!(xml_element("<Code>unclosed", "Code"), None);
    }
}
