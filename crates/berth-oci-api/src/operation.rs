//! Every `/v2` request becomes one named [`OciOperation`] before any work is done. The
//! operation names the tracing span and metrics, and maps to the ECR IAM action that
//! authorizes it.
//!
//! Paths are parsed by hand: repository names have any number of `/` components, so
//! the path is split on the *last* `/manifests/`, `/blobs/`, `/tags/list` or `/referrers/`.

use http::Method;
use percent_encoding::percent_decode_str;

/// The operations of the OCI Distribution API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OciOperation {
    ApiVersion,
    Catalog,
    ListTags,
    GetManifest,
    HeadManifest,
    PutManifest,
    DeleteManifest,
    GetBlob,
    HeadBlob,
    DeleteBlob,
    StartUpload,
    GetUploadStatus,
    PatchUpload,
    CompleteUpload,
    CancelUpload,
    ListReferrers,
}

impl OciOperation {
    /// Every operation (the generated authorization test iterates over it).
    pub const ALL: &'static [OciOperation] = &[
        OciOperation::ApiVersion,
        OciOperation::Catalog,
        OciOperation::ListTags,
        OciOperation::GetManifest,
        OciOperation::HeadManifest,
        OciOperation::PutManifest,
        OciOperation::DeleteManifest,
        OciOperation::GetBlob,
        OciOperation::HeadBlob,
        OciOperation::DeleteBlob,
        OciOperation::StartUpload,
        OciOperation::GetUploadStatus,
        OciOperation::PatchUpload,
        OciOperation::CompleteUpload,
        OciOperation::CancelUpload,
        OciOperation::ListReferrers,
    ];

    pub fn name(self) -> &'static str {
        match self {
            OciOperation::ApiVersion => "ApiVersion",
            OciOperation::Catalog => "Catalog",
            OciOperation::ListTags => "ListTags",
            OciOperation::GetManifest => "GetManifest",
            OciOperation::HeadManifest => "HeadManifest",
            OciOperation::PutManifest => "PutManifest",
            OciOperation::DeleteManifest => "DeleteManifest",
            OciOperation::GetBlob => "GetBlob",
            OciOperation::HeadBlob => "HeadBlob",
            OciOperation::DeleteBlob => "DeleteBlob",
            OciOperation::StartUpload => "StartUpload",
            OciOperation::GetUploadStatus => "GetUploadStatus",
            OciOperation::PatchUpload => "PatchUpload",
            OciOperation::CompleteUpload => "CompleteUpload",
            OciOperation::CancelUpload => "CancelUpload",
            OciOperation::ListReferrers => "ListReferrers",
        }
    }

    /// The ECR IAM action that authorizes this operation.
    pub fn ecr_action(self) -> &'static str {
        match self {
            OciOperation::ApiVersion => "ecr:GetAuthorizationToken",
            OciOperation::Catalog => "ecr:DescribeRepositories",
            OciOperation::ListTags => "ecr:ListImages",
            OciOperation::GetManifest | OciOperation::HeadManifest => "ecr:BatchGetImage",
            OciOperation::PutManifest => "ecr:PutImage",
            OciOperation::DeleteManifest => "ecr:BatchDeleteImage",
            OciOperation::GetBlob => "ecr:GetDownloadUrlForLayer",
            OciOperation::HeadBlob => "ecr:BatchCheckLayerAvailability",
            OciOperation::DeleteBlob => "ecr:BatchDeleteImage",
            OciOperation::StartUpload => "ecr:InitiateLayerUpload",
            OciOperation::GetUploadStatus | OciOperation::PatchUpload => "ecr:UploadLayerPart",
            OciOperation::CompleteUpload => "ecr:CompleteLayerUpload",
            OciOperation::CancelUpload => "ecr:UploadLayerPart",
            OciOperation::ListReferrers => "ecr:ListImageReferrers",
        }
    }
}

/// A parsed request target: the operation and its path parameters (still unvalidated text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub op: OciOperation,
    pub name: String,
    /// Tag or digest (manifests), digest (blobs, referrers) or upload id (uploads).
    pub target: String,
}

/// Why a path did not route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteError {
    /// No such endpoint.
    NotFound,
    /// The endpoint exists but not with this method.
    MethodNotAllowed,
}

fn decode(s: &str) -> String {
    percent_decode_str(s).decode_utf8_lossy().into_owned()
}

/// Routes a request path (without query) and method to an operation.
pub fn route(method: &Method, path: &str) -> Result<Route, RouteError> {
    let rest = path.strip_prefix("/v2").ok_or(RouteError::NotFound)?;
    let mk = |op, name: &str, target: &str| {
        Ok(Route {
            op,
            name: decode(name),
            target: decode(target),
        })
    };
    if rest.is_empty() || rest == "/" {
        return match *method {
            Method::GET | Method::HEAD => mk(OciOperation::ApiVersion, "", ""),
            _ => Err(RouteError::MethodNotAllowed),
        };
    }
    let Some(rest) = rest.strip_prefix('/') else {
        return Err(RouteError::NotFound);
    };
    if rest == "_catalog" {
        return match *method {
            Method::GET => mk(OciOperation::Catalog, "", ""),
            _ => Err(RouteError::MethodNotAllowed),
        };
    }
    if let Some(name) = rest.strip_suffix("/tags/list") {
        return match *method {
            Method::GET => mk(OciOperation::ListTags, name, ""),
            _ => Err(RouteError::MethodNotAllowed),
        };
    }
    if let Some((name, tail)) = rest.rsplit_once("/blobs/uploads") {
        let id = match tail {
            "" | "/" => "",
            t => match t.strip_prefix('/') {
                Some(id) if !id.contains('/') => id,
                _ => return Err(RouteError::NotFound),
            },
        };
        if id.is_empty() {
            return match *method {
                Method::POST => mk(OciOperation::StartUpload, name, ""),
                _ => Err(RouteError::MethodNotAllowed),
            };
        }
        let op = match *method {
            Method::GET => OciOperation::GetUploadStatus,
            Method::PATCH => OciOperation::PatchUpload,
            Method::PUT => OciOperation::CompleteUpload,
            Method::DELETE => OciOperation::CancelUpload,
            _ => return Err(RouteError::MethodNotAllowed),
        };
        return mk(op, name, id);
    }
    for (marker, kind) in [("/manifests/", 0), ("/blobs/", 1), ("/referrers/", 2)] {
        if let Some((name, target)) = rest.rsplit_once(marker) {
            if target.is_empty() || target.contains('/') {
                return Err(RouteError::NotFound);
            }
            let op = match (kind, method.clone()) {
                (0, Method::GET) => OciOperation::GetManifest,
                (0, Method::HEAD) => OciOperation::HeadManifest,
                (0, Method::PUT) => OciOperation::PutManifest,
                (0, Method::DELETE) => OciOperation::DeleteManifest,
                (1, Method::GET) => OciOperation::GetBlob,
                (1, Method::HEAD) => OciOperation::HeadBlob,
                (1, Method::DELETE) => OciOperation::DeleteBlob,
                (2, Method::GET) => OciOperation::ListReferrers,
                _ => return Err(RouteError::MethodNotAllowed),
            };
            return mk(op, name, target);
        }
    }
    Err(RouteError::NotFound)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(m: Method, p: &str) -> Result<(OciOperation, String, String), RouteError> {
        route(&m, p).map(|r| (r.op, r.name, r.target))
    }

    #[test]
    fn routes() {
        use OciOperation::*;
        assert_eq!(r(Method::GET, "/v2/").unwrap().0, ApiVersion);
        assert_eq!(r(Method::GET, "/v2").unwrap().0, ApiVersion);
        assert_eq!(r(Method::GET, "/v2/_catalog").unwrap().0, Catalog);
        assert_eq!(
            r(Method::GET, "/v2/a/b/c/tags/list").unwrap(),
            (ListTags, "a/b/c".into(), "".into())
        );
        assert_eq!(
            r(Method::HEAD, "/v2/a/manifests/b/manifests/latest").unwrap(),
            (HeadManifest, "a/manifests/b".into(), "latest".into())
        );
        assert_eq!(
            r(Method::GET, "/v2/x/blobs/sha256%3Aabc").unwrap(),
            (GetBlob, "x".into(), "sha256:abc".into())
        );
        assert_eq!(
            r(Method::POST, "/v2/x/y/blobs/uploads/").unwrap().0,
            StartUpload
        );
        assert_eq!(
            r(Method::POST, "/v2/x/y/blobs/uploads").unwrap().0,
            StartUpload
        );
        assert_eq!(
            r(Method::PATCH, "/v2/x/blobs/uploads/abc-123").unwrap(),
            (PatchUpload, "x".into(), "abc-123".into())
        );
        assert_eq!(
            r(Method::PUT, "/v2/x/blobs/uploads/u").unwrap().0,
            CompleteUpload
        );
        assert_eq!(
            r(Method::GET, "/v2/x/referrers/sha256:1").unwrap().0,
            ListReferrers
        );
    }

    #[test]
    fn rejects() {
        assert_eq!(r(Method::GET, "/v3/"), Err(RouteError::NotFound));
        assert_eq!(r(Method::GET, "/v2/x/unknown/y"), Err(RouteError::NotFound));
        assert_eq!(
            r(Method::POST, "/v2/x/manifests/y"),
            Err(RouteError::MethodNotAllowed)
        );
        assert_eq!(
            r(Method::PUT, "/v2/x/blobs/sha256:1"),
            Err(RouteError::MethodNotAllowed)
        );
        assert_eq!(
            r(Method::GET, "/v2/x/manifests/"),
            Err(RouteError::NotFound)
        );
        assert_eq!(
            r(Method::GET, "/v2/x/blobs/uploads/a/b"),
            Err(RouteError::NotFound)
        );
    }
}
