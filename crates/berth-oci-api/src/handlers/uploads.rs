//! Blob uploads: `POST` (start, monolithic, mount), `PATCH`, `PUT`, `GET`, `DELETE`
//! on `/v2/<name>/blobs/uploads/[<id>]`.

use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use http::{header, HeaderValue, StatusCode};

use berth_registry::UploadStatus;
use berth_types::RepositoryName;

use super::blobs::digest;
use super::{body_stream, query, query_get, set, Ctx};
use crate::error::OciError;
use crate::headers;
use crate::operation::Route;

fn upload_location(repo: &RepositoryName, id: &str) -> String {
    format!("/v2/{repo}/blobs/uploads/{id}")
}

fn accepted(repo: &RepositoryName, st: &UploadStatus, status: StatusCode) -> Response {
    let mut resp = status.into_response();
    let h = resp.headers_mut();
    set(h, "location", &upload_location(repo, &st.id));
    set(h, "range", &headers::upload_range(st.offset));
    set(h, "docker-upload-uuid", &st.id);
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(0));
    resp
}

fn created(repo: &RepositoryName, d: &berth_types::Digest) -> Response {
    let mut resp = StatusCode::CREATED.into_response();
    let h = resp.headers_mut();
    set(h, "location", &format!("/v2/{repo}/blobs/{d}"));
    set(h, "docker-content-digest", &d.to_string());
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(0));
    resp
}

/// Adds `Location` of the upload to a 416 so clients can resume.
fn with_location(e: OciError, repo: &RepositoryName, id: &str) -> OciError {
    if e.status == StatusCode::RANGE_NOT_SATISFIABLE {
        e.with_header("location", &upload_location(repo, id))
    } else {
        e
    }
}

/// The chunk's start offset from `Content-Range`, checked against `Content-Length`.
fn chunk_start(req: &Request) -> Result<Option<u64>, OciError> {
    let range = headers::upload_content_range(req.headers()).map_err(|_| {
        OciError::new(
            StatusCode::RANGE_NOT_SATISFIABLE,
            "BLOB_UPLOAD_INVALID",
            "malformed Content-Range (expected <start>-<end>)",
        )
    })?;
    if let (Some((start, end)), Some(len)) = (range, headers::content_length(req.headers())) {
        if headers::range_length(start, end) != Some(len) {
            return Err(OciError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "BLOB_UPLOAD_INVALID",
                format!("Content-Range {start}-{end} does not match Content-Length {len}"),
            ));
        }
    }
    Ok(range.map(|(s, _)| s))
}

pub(crate) async fn start(
    ctx: &Ctx<'_>,
    route: &Route,
    req: Request,
) -> Result<Response, OciError> {
    let repo = ctx.repository(&route.name)?;
    let q = query(&req);
    let registry = &ctx.app.registry;

    if let Some(mount) = query_get(&q, "mount") {
        let d = digest(mount)?;
        if let Some(from) = query_get(&q, "from") {
            if let Ok(from) = ctx.repository(from) {
                if registry
                    .mount_blob(&repo, &from, &d)
                    .await
                    .map_err(|e| ctx.err(e))?
                    .is_some()
                {
                    return Ok(created(&repo, &d));
                }
            }
        }
        // Source absent or not given: fall back to an ordinary upload session.
    } else if let Some(dg) = query_get(&q, "digest") {
        let d = digest(dg)?;
        registry
            .push_blob(&repo, &d, body_stream(req))
            .await
            .map_err(|e| ctx.err(e))?;
        return Ok(created(&repo, &d));
    }
    let st = registry.start_upload(&repo).await.map_err(|e| ctx.err(e))?;
    Ok(accepted(&repo, &st, StatusCode::ACCEPTED))
}

pub(crate) async fn status(ctx: &Ctx<'_>, route: &Route) -> Result<Response, OciError> {
    let repo = ctx.repository(&route.name)?;
    let st = ctx
        .app
        .registry
        .upload_status(&repo, &route.target)
        .await
        .map_err(|e| ctx.err(e))?;
    Ok(accepted(&repo, &st, StatusCode::NO_CONTENT))
}

pub(crate) async fn patch(
    ctx: &Ctx<'_>,
    route: &Route,
    req: Request,
) -> Result<Response, OciError> {
    let repo = ctx.repository(&route.name)?;
    let id = route.target.as_str();
    let start = match chunk_start(&req) {
        Ok(s) => s,
        Err(e) => {
            // Report where the upload stands so the client can resume.
            let st = ctx
                .app
                .registry
                .upload_status(&repo, id)
                .await
                .map_err(|e| ctx.err(e))?;
            return Err(
                with_location(e, &repo, id).with_header("range", &headers::upload_range(st.offset))
            );
        }
    };
    let st = ctx
        .app
        .registry
        .append_upload(&repo, id, start, body_stream(req))
        .await
        .map_err(|e| with_location(ctx.err(e), &repo, id))?;
    Ok(accepted(&repo, &st, StatusCode::ACCEPTED))
}

pub(crate) async fn complete(
    ctx: &Ctx<'_>,
    route: &Route,
    req: Request,
) -> Result<Response, OciError> {
    let repo = ctx.repository(&route.name)?;
    let id = route.target.as_str();
    let q = query(&req);
    let d = match query_get(&q, "digest") {
        Some(d) => digest(d)?,
        None => {
            return Err(OciError::new(
                StatusCode::BAD_REQUEST,
                "DIGEST_INVALID",
                "the digest query parameter is required to complete an upload",
            ))
        }
    };
    let start = chunk_start(&req).map_err(|e| with_location(e, &repo, id))?;
    ctx.app
        .registry
        .complete_upload(&repo, id, &d, start, body_stream(req))
        .await
        .map_err(|e| with_location(ctx.err(e), &repo, id))?;
    Ok(created(&repo, &d))
}

pub(crate) async fn cancel(ctx: &Ctx<'_>, route: &Route) -> Result<Response, OciError> {
    let repo = ctx.repository(&route.name)?;
    ctx.app
        .registry
        .cancel_upload(&repo, &route.target)
        .await
        .map_err(|e| ctx.err(e))?;
    let mut resp = StatusCode::NO_CONTENT.into_response();
    resp.headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(0));
    Ok(resp)
}
