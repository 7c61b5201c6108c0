//! Shared setup of the in-process ECR edge tests: an account with a root key and one IAM
//! user, the edge's configuration, and requests signed with berth-sigv4's client-side
//! signer sent through a router.
#![allow(dead_code)]

use axum::body::Body;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

use berth_ecr_api::{EcrConfig, TARGET_PREFIX};
use berth_meta::iam::{Account, KeyOwner, NewAccessKey, NewUser};
use berth_meta::IamStore;
use berth_sigv4::{sign_request, Credentials, PayloadHash};

pub const ACCOUNT: &str = "123456789012";
pub const REGION: &str = "eu-west-3";

/// Creates `ACCOUNT` with a root access key, and the IAM user `user` with an access key and
/// the inline policy `policy` (named `policy_name`). Returns (root key, user key).
pub async fn account_with_user(
    iam: &dyn IamStore,
    user: &str,
    policy_name: &str,
    policy: &str,
) -> (NewAccessKey, NewAccessKey) {
    let root = NewAccessKey::generate();
    iam.create_account(
        &Account {
            id: ACCOUNT.into(),
            alias: None,
            created_ms: 1,
        },
        Some(&root),
    )
    .await
    .unwrap();
    let key = add_user(iam, user, policy_name, policy).await;
    (root, key)
}

/// Adds the IAM user `user` of `ACCOUNT` with an access key and the inline policy `policy`
/// (named `policy_name`). Returns its key.
pub async fn add_user(
    iam: &dyn IamStore,
    user: &str,
    policy_name: &str,
    policy: &str,
) -> NewAccessKey {
    iam.create_user(&NewUser {
        account_id: ACCOUNT.into(),
        name: user.into(),
        path: "/".into(),
        arn: berth_iam::iam_user_arn(ACCOUNT, "/", user),
    })
    .await
    .unwrap();
    let key = NewAccessKey::generate();
    iam.create_access_key(ACCOUNT, &KeyOwner::User(user.into()), &key)
        .await
        .unwrap();
    iam.put_user_policy(ACCOUNT, user, policy_name, policy)
        .await
        .unwrap();
    key
}

/// The edge's configuration for `ACCOUNT` in `REGION`.
pub fn config(login_token_key: [u8; 32]) -> EcrConfig {
    EcrConfig {
        account_id: ACCOUNT.into(),
        hosts: berth_access::RegistryHosts::new(ACCOUNT.parse().unwrap(), None),
        region: REGION.into(),
        public_host: None,
        login_token_key,
        max_skew: EcrConfig::ECR_MAX_SKEW,
    }
}

/// `POST /` for `action` with `body`, signed for `region` with `key` and `secret`.
pub fn signed(
    key: &NewAccessKey,
    secret: &str,
    action: &str,
    body: &str,
    region: &str,
) -> Request<Body> {
    let target = format!("{TARGET_PREFIX}.{action}");
    let req = berth_sigv4::Request::new("POST", "/", "", PayloadHash::of_body(body.as_bytes()))
        .with_header("host", "registry.test:5000")
        .with_header("content-type", "application/x-amz-json-1.1")
        .with_header("x-amz-target", &target);
    let creds = Credentials {
        access_key_id: &key.access_key_id,
        secret_access_key: secret,
        session_token: None,
    };
    let sig = sign_request(&req, &creds, region, "ecr", time::OffsetDateTime::now_utc()).unwrap();
    let mut b = Request::post("/")
        .header("host", "registry.test:5000")
        .header("content-type", "application/x-amz-json-1.1")
        .header("x-amz-target", &target);
    for (n, v) in sig.headers() {
        b = b.header(n, v);
    }
    b.body(Body::from(body.to_string())).unwrap()
}

/// Sends `req` through `app`; the status and the JSON body.
pub async fn send_json(
    app: &axum::Router,
    req: Request<Body>,
) -> (StatusCode, Value, http::HeaderMap) {
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap(), headers)
}

/// The `__type` of an error body ("" for none).
pub fn err_type(v: &Value) -> &str {
    v["__type"].as_str().unwrap_or("")
}
