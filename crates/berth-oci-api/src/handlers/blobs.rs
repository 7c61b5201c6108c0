//! `GET`/`HEAD`/`DELETE /v2/<name>/blobs/<digest>`.

use axum::body::Body;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use http::{header, HeaderValue, StatusCode};

use berth_types::Digest;

use super::{set, Ctx};
use crate::error::OciError;
use crate::headers;
use crate::operation::Route;

pub(crate) fn digest(s: &str) -> Result<Digest, OciError> {
    s.parse().map_err(|e: berth_types::DigestError| {
        OciError::new(StatusCode::BAD_REQUEST, "DIGEST_INVALID", e.to_string())
    })
}

pub(crate) async fn get(
    ctx: &Ctx<'_>,
    route: &Route,
    req: Request,
    head: bool,
) -> Result<Response, OciError> {
    let repo = ctx.repository(&route.name)?;
    let digest = digest(&route.target)?;
    let etag = format!("\"{digest}\"");
    let registry = &ctx.app.registry;

    if head {
        let size = registry
            .blob_size(&repo, &digest)
            .await
            .map_err(|e| ctx.err(e))?;
        let mut resp = StatusCode::OK.into_response();
        let h = resp.headers_mut();
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        set(h, "docker-content-digest", &digest.to_string());
        set(h, "etag", &etag);
        return Ok(resp);
    }

    let if_none_match = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let range = headers::blob_range(req.headers()).map_err(|_| {
        OciError::new(
            StatusCode::RANGE_NOT_SATISFIABLE,
            "SIZE_INVALID",
            "malformed Range header",
        )
    })?;
    if if_none_match {
        registry
            .blob_size(&repo, &digest)
            .await
            .map_err(|e| ctx.err(e))?;
        let mut resp = StatusCode::NOT_MODIFIED.into_response();
        set(resp.headers_mut(), "etag", &etag);
        set(
            resp.headers_mut(),
            "docker-content-digest",
            &digest.to_string(),
        );
        return Ok(resp);
    }
    // With `[storage] redirect`, the bytes come from the object store: 307 to a presigned
    // URL (clients follow it, sending their Range again), as ECR answers.
    if let Some(url) = registry
        .blob_redirect(&repo, &digest)
        .await
        .map_err(|e| ctx.err(e))?
    {
        let mut resp = StatusCode::TEMPORARY_REDIRECT.into_response();
        set(resp.headers_mut(), "location", url.as_str());
        set(
            resp.headers_mut(),
            "docker-content-digest",
            &digest.to_string(),
        );
        return Ok(resp);
    }
    let blob = registry
        .open_blob(&repo, &digest, range)
        .await
        .map_err(|e| ctx.err(e))?;
    let (status, len) = match blob.range {
        Some(r) => (StatusCode::PARTIAL_CONTENT, r.len()),
        None => (StatusCode::OK, blob.size),
    };
    let mut resp = Response::new(Body::from_stream(blob.stream));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("max-age=31536000"),
    );
    set(h, "docker-content-digest", &digest.to_string());
    set(h, "etag", &etag);
    if let Some(r) = blob.range {
        set(
            h,
            "content-range",
            &format!("bytes {}-{}/{}", r.start, r.end, blob.size),
        );
    }
    Ok(resp)
}

pub(crate) async fn delete(ctx: &Ctx<'_>, route: &Route) -> Result<Response, OciError> {
    let repo = ctx.repository(&route.name)?;
    let digest = digest(&route.target)?;
    ctx.app
        .registry
        .delete_blob(&repo, &digest)
        .await
        .map_err(|e| ctx.err(e))?;
    let mut resp = StatusCode::ACCEPTED.into_response();
    set(
        resp.headers_mut(),
        "docker-content-digest",
        &digest.to_string(),
    );
    Ok(resp)
}
