//! Request handlers, one module per resource. Each takes the parsed [`Route`] and the
//! request, and returns a response or an [`OciError`].

mod blobs;
mod listing;
mod manifests;
mod uploads;

use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::{Stream, TryStreamExt};
use http::{HeaderMap, HeaderValue, StatusCode};

use berth_types::{AccountId, RepositoryName};

use crate::error::{from_registry, OciError};
use crate::operation::{OciOperation, Route};
use crate::AppState;

/// Per-request context handed to every handler.
pub(crate) struct Ctx<'a> {
    pub app: &'a AppState,
    /// The registry the request addresses.
    pub account: AccountId,
    pub request_id: &'a str,
}

impl Ctx<'_> {
    pub fn err(&self, e: berth_registry::RegistryError) -> OciError {
        from_registry(e, self.request_id)
    }

    /// Repository `name` of the addressed registry.
    pub fn repository(&self, name: &str) -> Result<RepositoryName, OciError> {
        RepositoryName::new(self.account, name)
            .map_err(|e: berth_types::NameError| OciError::name_invalid(e.to_string()))
    }
}

/// The query string as key/value pairs.
pub(crate) fn query(req: &Request) -> Vec<(String, String)> {
    req.uri()
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

pub(crate) fn query_get<'a>(q: &'a [(String, String)], key: &str) -> Option<&'a str> {
    q.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// The request body as a stream of byte chunks.
pub(crate) fn body_stream(req: Request) -> impl Stream<Item = std::io::Result<Bytes>> + Send {
    req.into_body()
        .into_data_stream()
        .map_err(std::io::Error::other)
}

pub(crate) fn set(h: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        h.insert(name, v);
    }
}

pub(crate) async fn handle(
    app: &AppState,
    account: AccountId,
    route: &Route,
    req: Request,
    request_id: &str,
) -> Result<Response, OciError> {
    let ctx = Ctx {
        app,
        account,
        request_id,
    };
    match route.op {
        OciOperation::ApiVersion => {
            let mut r = (StatusCode::OK, "{}").into_response();
            r.headers_mut().insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            Ok(r)
        }
        OciOperation::Catalog => listing::catalog(&ctx, req).await,
        OciOperation::ListTags => listing::tags(&ctx, route, req).await,
        OciOperation::ListReferrers => listing::referrers(&ctx, route, req).await,
        OciOperation::GetManifest | OciOperation::HeadManifest => {
            manifests::get(&ctx, route, route.op == OciOperation::HeadManifest).await
        }
        OciOperation::PutManifest => manifests::put(&ctx, route, req).await,
        OciOperation::DeleteManifest => manifests::delete(&ctx, route).await,
        OciOperation::GetBlob | OciOperation::HeadBlob => {
            blobs::get(&ctx, route, req, route.op == OciOperation::HeadBlob).await
        }
        OciOperation::DeleteBlob => blobs::delete(&ctx, route).await,
        OciOperation::StartUpload => uploads::start(&ctx, route, req).await,
        OciOperation::GetUploadStatus => uploads::status(&ctx, route).await,
        OciOperation::PatchUpload => uploads::patch(&ctx, route, req).await,
        OciOperation::CompleteUpload => uploads::complete(&ctx, route, req).await,
        OciOperation::CancelUpload => uploads::cancel(&ctx, route).await,
    }
}
