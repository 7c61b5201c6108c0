//! The Docker token endpoint, `/v2/token`: credentials in, a bearer token out. A token
//! presented here (a login password or a refresh token) is renewed only within its
//! original login's lifetime.

use std::collections::HashMap;

use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use http::{Method, StatusCode};
use time::OffsetDateTime;

use berth_access::token::{self, TokenClaims};
use berth_access::v2_credentials::{self, Credentials, ANONYMOUS_TOKEN};

use super::{Anonymous, Refusal, V2Gate};
use crate::OciError;

/// `GET /v2/token?service=..&scope=..` (Docker token flow) and the OAuth2 password and
/// refresh-token grants on `POST` (form body).
pub(super) async fn token_endpoint(gate: &V2Gate, req: Request) -> Response {
    let now = OffsetDateTime::now_utc();
    let (creds, header) = match *req.method() {
        Method::GET | Method::HEAD => {
            let header = req
                .headers()
                .get(http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            match v2_credentials::from_headers(req.headers()) {
                Ok(c) => (c, Some(header)),
                Err(m) => return gate.unauthorized(&req, None, m),
            }
        }
        Method::POST => {
            let body = match http_body_util::BodyExt::collect(http_body_util::Limited::new(
                req.into_body(),
                64 * 1024,
            ))
            .await
            {
                Ok(b) => b.to_bytes(),
                Err(_) => return oauth_error("invalid_request", "the form body is too large"),
            };
            let form: HashMap<String, String> = form_urlencoded::parse(&body)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
            let creds = match form.get("grant_type").map(String::as_str) {
                Some("password") => v2_credentials::user_password(
                    form.get("username").map(String::as_str).unwrap_or(""),
                    form.get("password").map(String::as_str).unwrap_or(""),
                ),
                Some("refresh_token") => match form.get("refresh_token") {
                    Some(t) if !t.is_empty() => Ok(Credentials::Token(t.clone())),
                    _ => Err("refresh_token is missing"),
                },
                _ => Err("grant_type must be password or refresh_token"),
            };
            match creds {
                Ok(c) => (c, None),
                Err(m) => return oauth_error("invalid_request", m),
            }
        }
        _ => return OciError::method_not_allowed().into_response(),
    };
    // A token presented here (a login password or a refresh token) can be renewed only
    // within its original login's lifetime.
    let login_ends = match &creds {
        Credentials::Token(t) => {
            token::verify(&gate.inner.config.login_token_key, t, now.unix_timestamp())
                .ok()
                .map(|c| c.login_expires_at)
        }
        _ => None,
    };
    let caller = match gate.resolve(header.as_deref(), creds, now).await {
        Ok(c) => c,
        Err(Refusal(m)) => {
            return OciError::new(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", m).into_response()
        }
    };
    let mut lifetime = gate.inner.options.bearer_token_secs;
    let token = match caller {
        None if gate.inner.options.anonymous != Anonymous::None => ANONYMOUS_TOKEN.to_string(),
        None => {
            return gate.unauthorized_token_request();
        }
        Some(c) => {
            let fresh = TokenClaims {
                access_key_id: c.access_key_id.clone(),
                account_id: c.account_id.clone(),
                user: c.user.as_ref().map(|(name, _)| name.clone()),
                expires_at: now.unix_timestamp() + lifetime,
                login_expires_at: now.unix_timestamp() + lifetime,
            };
            let claims = match login_ends {
                Some(end) => TokenClaims {
                    login_expires_at: end,
                    ..fresh
                }
                .renewed(now.unix_timestamp(), lifetime),
                None => fresh,
            };
            lifetime = claims.expires_at - now.unix_timestamp();
            token::sign(&gate.inner.config.login_token_key, &claims)
        }
    };
    let issued_at = now
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let body = serde_json::json!({
        "token": token,
        "access_token": token,
        "expires_in": lifetime,
        "issued_at": issued_at,
    });
    let mut resp = (StatusCode::OK, body.to_string()).into_response();
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    resp
}

impl V2Gate {
    fn unauthorized_token_request(&self) -> Response {
        OciError::new(
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
            "credentials are required: log in as AWS with a password from `aws ecr get-login-password`, or with an access key",
        )
        .with_header("www-authenticate", "Basic realm=\"berth token service\"")
        .into_response()
    }
}

fn oauth_error(code: &str, description: &str) -> Response {
    let body = serde_json::json!({"error": code, "error_description": description});
    let mut resp = (StatusCode::BAD_REQUEST, body.to_string()).into_response();
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    resp
}
