//! `GET`/`HEAD`/`PUT`/`DELETE /v2/<name>/manifests/<reference>`.

use axum::body::Body;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use http::{header, HeaderValue, StatusCode};
use http_body_util::BodyExt;

use berth_registry::RegistryError;
use berth_types::manifest::MAX_MANIFEST_BYTES;
use berth_types::Reference;

use super::{set, Ctx};
use crate::error::OciError;
use crate::operation::Route;

fn reference(ctx: &Ctx<'_>, s: &str) -> Result<Reference, OciError> {
    s.parse::<Reference>()
        .map_err(|e| ctx.err(RegistryError::from(e)))
}

/// For reads and deletes a reference that cannot be a tag names nothing that exists:
/// 404 `MANIFEST_UNKNOWN`, as the conformance suite expects. Malformed digests stay 400.
fn existing_reference(ctx: &Ctx<'_>, s: &str) -> Result<Reference, OciError> {
    match s.parse::<Reference>() {
        Err(berth_types::NameError::InvalidTag(t)) => {
            Err(ctx.err(RegistryError::ManifestNotFound(t)))
        }
        other => other.map_err(|e| ctx.err(RegistryError::from(e))),
    }
}

pub(crate) async fn get(ctx: &Ctx<'_>, route: &Route, head: bool) -> Result<Response, OciError> {
    let repo = ctx.repository(&route.name)?;
    let reference = existing_reference(ctx, &route.target)?;
    let m = ctx
        .app
        .registry
        .get_manifest(&repo, &reference)
        .await
        .map_err(|e| ctx.err(e))?;
    let mut resp = if head {
        Response::new(Body::empty())
    } else {
        Response::new(Body::from(m.body.clone()))
    };
    let h = resp.headers_mut();
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(m.body.len()));
    set(h, "content-type", &m.media_type);
    set(h, "docker-content-digest", &m.digest.to_string());
    set(h, "etag", &format!("\"{}\"", m.digest));
    Ok(resp)
}

pub(crate) async fn put(ctx: &Ctx<'_>, route: &Route, req: Request) -> Result<Response, OciError> {
    let repo = ctx.repository(&route.name)?;
    let reference = reference(ctx, &route.target)?;
    let too_large = || {
        OciError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "SIZE_INVALID",
            format!("manifests are limited to {MAX_MANIFEST_BYTES} bytes"),
        )
    };
    if super::super::headers::content_length(req.headers())
        .is_some_and(|l| l > MAX_MANIFEST_BYTES as u64)
    {
        return Err(too_large());
    }
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let limited = http_body_util::Limited::new(req.into_body(), MAX_MANIFEST_BYTES);
    let body = match limited.collect().await {
        Ok(c) => c.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => return Err(too_large()),
        Err(e) => {
            return Err(OciError::new(
                StatusCode::BAD_REQUEST,
                "MANIFEST_INVALID",
                format!("could not read the manifest body: {e}"),
            ))
        }
    };
    let pushed = ctx
        .app
        .registry
        .put_manifest(&repo, &reference, content_type.as_deref(), body)
        .await
        .map_err(|e| ctx.err(e))?;
    let mut resp = StatusCode::CREATED.into_response();
    let h = resp.headers_mut();
    set(
        h,
        "location",
        &format!("/v2/{repo}/manifests/{}", pushed.digest),
    );
    set(h, "docker-content-digest", &pushed.digest.to_string());
    if let Some(subject) = &pushed.subject {
        set(h, "oci-subject", &subject.to_string());
    }
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(0));
    Ok(resp)
}

pub(crate) async fn delete(ctx: &Ctx<'_>, route: &Route) -> Result<Response, OciError> {
    let repo = ctx.repository(&route.name)?;
    let reference = existing_reference(ctx, &route.target)?;
    ctx.app
        .registry
        .delete_manifest(&repo, &reference)
        .await
        .map_err(|e| ctx.err(e))?;
    let mut resp = StatusCode::ACCEPTED.into_response();
    resp.headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(0));
    Ok(resp)
}
