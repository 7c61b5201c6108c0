//! Listings: `GET /v2/_catalog`, `GET /v2/<name>/tags/list`, `GET /v2/<name>/referrers/<digest>`.

use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use http::{header, HeaderValue, StatusCode};

use berth_registry::ListPage;
use berth_types::media;

use super::blobs::digest;
use super::{query, query_get, set, Ctx};
use crate::error::OciError;
use crate::operation::Route;

/// `n` and `last` pagination parameters.
fn pagination(q: &[(String, String)]) -> Result<(Option<usize>, Option<String>), OciError> {
    let n = match query_get(q, "n") {
        None | Some("") => None,
        Some(v) => Some(v.parse::<usize>().map_err(|_| {
            OciError::new(
                StatusCode::BAD_REQUEST,
                "UNSUPPORTED",
                format!("pagination parameter n={v:?} is not a non-negative integer"),
            )
        })?),
    };
    let last = query_get(q, "last")
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    Ok((n, last))
}

fn json_page(body: serde_json::Value, page: &ListPage, path: &str, n: Option<usize>) -> Response {
    let mut resp = (StatusCode::OK, body.to_string()).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let (Some(next), Some(n)) = (&page.next, n.or(Some(page.items.len()))) {
        let last: String = form_urlencoded::byte_serialize(next.as_bytes()).collect();
        set(
            h,
            "link",
            &format!("<{path}?n={n}&last={last}>; rel=\"next\""),
        );
    }
    resp
}

pub(crate) async fn catalog(ctx: &Ctx<'_>, req: Request) -> Result<Response, OciError> {
    let q = query(&req);
    let (n, last) = pagination(&q)?;
    let page = ctx
        .app
        .registry
        .catalog(ctx.account, n, last.as_deref())
        .await
        .map_err(|e| ctx.err(e))?;
    let body = serde_json::json!({ "repositories": page.items });
    Ok(json_page(body, &page, "/v2/_catalog", n))
}

pub(crate) async fn tags(ctx: &Ctx<'_>, route: &Route, req: Request) -> Result<Response, OciError> {
    let repo = ctx.repository(&route.name)?;
    let q = query(&req);
    let (n, last) = pagination(&q)?;
    let page = ctx
        .app
        .registry
        .list_tags(&repo, n, last.as_deref())
        .await
        .map_err(|e| ctx.err(e))?;
    let body = serde_json::json!({ "name": repo.as_str(), "tags": page.items });
    Ok(json_page(body, &page, &format!("/v2/{repo}/tags/list"), n))
}

pub(crate) async fn referrers(
    ctx: &Ctx<'_>,
    route: &Route,
    req: Request,
) -> Result<Response, OciError> {
    let repo = ctx.repository(&route.name)?;
    let subject = digest(&route.target)?;
    let q = query(&req);
    let artifact_type = query_get(&q, "artifactType").filter(|s| !s.is_empty());
    let body = ctx
        .app
        .registry
        .referrers(&repo, &subject, artifact_type)
        .await
        .map_err(|e| ctx.err(e))?;
    let mut resp = (StatusCode::OK, body).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(media::OCI_INDEX),
    );
    if artifact_type.is_some() {
        h.insert(
            "oci-filters-applied",
            HeaderValue::from_static("artifactType"),
        );
    }
    Ok(resp)
}
