//! In-process tests of the ECR edge: requests signed with berth-sigv4's client-side
//! signer, sent through the router, against the SQLite stores.
// Tests may unwrap and slice strings they built: a panic there is a failed test.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::string_slice))]

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use base64::Engine;
use http::{Request, StatusCode};
use serde_json::{json, Value};

use berth_access::key_cache::MAX_TTL;
use berth_access::{token, Authenticator};
use berth_blobstore::DiskBlobStore;
use berth_ecr_api::{EcrState, TARGET_PREFIX};
use berth_meta::iam::{KeyOwner, NewAccessKey};
use berth_meta::secrets::MasterKey;
use berth_meta::sqlite::{SqliteIamStore, SqliteMetaStore};
use berth_meta::IamStore;
use berth_registry::{Registry, RegistryOptions};
use support::{account_with_user, config, err_type, send_json, signed, ACCOUNT, REGION};

const TOKEN_KEY: [u8; 32] = [9; 32];

struct Env {
    _dir: tempfile::TempDir,
    app: axum::Router,
    iam: Arc<SqliteIamStore>,
    root: NewAccessKey,
    alice: NewAccessKey,
}

async fn env() -> Env {
    env_with(None).await.0
}

/// The environment with `[auth] credential_cache_secs` of `cache_ttl`, and the edge's
/// authenticator.
async fn env_with(cache_ttl: Option<Duration>) -> (Env, Arc<Authenticator>) {
    let dir = tempfile::tempdir().unwrap();
    let meta = SqliteMetaStore::open(dir.path().join("meta.db")).unwrap();
    let iam = Arc::new(SqliteIamStore::new(meta.clone(), MasterKey::generate()));
    // Alice may describe and create under team/, and get a token; nothing else.
    let (root, alice) = account_with_user(
        iam.as_ref(),
        "alice",
        "ecr-team",
        r#"{"Version":"2012-10-17","Statement":[
            {"Effect":"Allow","Action":["ecr:DescribeRepositories","ecr:CreateRepository"],"Resource":"arn:aws:ecr:*:*:repository/team/*"},
            {"Effect":"Allow","Action":"ecr:GetAuthorizationToken","Resource":"*"}]}"#,
    )
    .await;
    let blobs = DiskBlobStore::open(dir.path()).unwrap();
    let registry = Registry::new(
        Arc::new(meta.clone()),
        Arc::new(blobs),
        RegistryOptions::default(),
    );
    let mut state = EcrState::new(registry, iam.clone(), Arc::new(meta), config(TOKEN_KEY));
    if let Some(ttl) = cache_ttl {
        state = state.with_cache_ttl(ttl);
    }
    let auth = state.authenticator();
    let env = Env {
        _dir: dir,
        app: berth_ecr_api::router(state),
        iam,
        root,
        alice,
    };
    (env, auth)
}

async fn send(app: &axum::Router, req: Request<Body>) -> (StatusCode, Value) {
    let (status, v, headers) = send_json(app, req).await;
    assert_eq!(headers["content-type"], "application/x-amz-json-1.1");
    assert!(headers.contains_key("x-amzn-requestid"));
    (status, v)
}

async fn call(env: &Env, key: &NewAccessKey, action: &str, body: Value) -> (StatusCode, Value) {
    let req = signed(key, key.secret.expose(), action, &body.to_string(), REGION);
    send(&env.app, req).await
}

#[tokio::test]
async fn repositories_are_created_described_and_deleted() {
    let env = env().await;
    let root = &env.root;
    let (s, v) = call(
        &env,
        root,
        "CreateRepository",
        json!({"repositoryName": "team/app", "imageTagMutability": "IMMUTABLE"}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let r = &v["repository"];
    assert_eq!(r["repositoryName"], "team/app");
    assert_eq!(r["registryId"], ACCOUNT);
    assert_eq!(
        r["repositoryArn"],
        format!("arn:aws:ecr:{REGION}:{ACCOUNT}:repository/team/app")
    );
    assert_eq!(r["repositoryUri"], "registry.test:5000/team/app");
    assert_eq!(r["imageTagMutability"], "IMMUTABLE");
    assert_eq!(r["imageScanningConfiguration"]["scanOnPush"], false);
    assert_eq!(r["encryptionConfiguration"]["encryptionType"], "AES256");
    let created = r["createdAt"].as_f64().unwrap();
    let now = time::OffsetDateTime::now_utc().unix_timestamp() as f64;
    assert!((now - created).abs() < 60.0, "{created}");

    let (s, v) = call(
        &env,
        root,
        "CreateRepository",
        json!({"repositoryName": "team/app"}),
    )
    .await;
    assert_eq!(
        (s, err_type(&v)),
        (StatusCode::BAD_REQUEST, "RepositoryAlreadyExistsException"),
        "{v}"
    );
    for bad in ["A", "Team/app", "a//b", "-x"] {
        let (s, v) = call(
            &env,
            root,
            "CreateRepository",
            json!({"repositoryName": bad}),
        )
        .await;
        assert_eq!(
            (s, err_type(&v)),
            (StatusCode::BAD_REQUEST, "InvalidParameterException"),
            "{bad}: {v}"
        );
    }
    let (_, v) = call(&env, root, "CreateRepository", json!({})).await;
    assert_eq!(err_type(&v), "InvalidParameterException");
    let (_, v) = call(
        &env,
        root,
        "CreateRepository",
        json!({"repositoryName": "x1", "tags": [{"Key": "aws:a", "Value": "b"}]}),
    )
    .await;
    assert_eq!(err_type(&v), "InvalidTagParameterException");
    let (_, v) = call(
        &env,
        root,
        "CreateRepository",
        json!({"repositoryName": "x1", "imageTagMutability": "SOMETIMES"}),
    )
    .await;
    assert_eq!(err_type(&v), "InvalidParameterException");

    // Pagination over five repositories, two at a time.
    for n in ["b1", "b2", "b3", "b4"] {
        let (s, _) = call(&env, root, "CreateRepository", json!({"repositoryName": n})).await;
        assert_eq!(s, 200);
    }
    let mut names = vec![];
    let mut token: Option<String> = None;
    loop {
        let mut body = json!({"maxResults": 2});
        if let Some(t) = &token {
            body["nextToken"] = json!(t);
        }
        let (s, v) = call(&env, root, "DescribeRepositories", body).await;
        assert_eq!(s, 200, "{v}");
        let page = v["repositories"].as_array().unwrap();
        assert!(page.len() <= 2);
        names.extend(
            page.iter()
                .map(|r| r["repositoryName"].as_str().unwrap().to_string()),
        );
        match v["nextToken"].as_str() {
            Some(t) => token = Some(t.to_string()),
            None => break,
        }
    }
    assert_eq!(names, ["b1", "b2", "b3", "b4", "team/app"]);
    let (_, v) = call(&env, root, "DescribeRepositories", json!({"maxResults": 0})).await;
    assert_eq!(err_type(&v), "InvalidParameterException");
    let (_, v) = call(
        &env,
        root,
        "DescribeRepositories",
        json!({"nextToken": "garbage!"}),
    )
    .await;
    assert_eq!(err_type(&v), "InvalidParameterException");
    let (s, v) = call(
        &env,
        root,
        "DescribeRepositories",
        json!({"repositoryNames": ["b2", "team/app"]}),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(v["repositories"].as_array().unwrap().len(), 2);
    let (_, v) = call(
        &env,
        root,
        "DescribeRepositories",
        json!({"repositoryNames": ["b2", "nope"]}),
    )
    .await;
    assert_eq!(err_type(&v), "RepositoryNotFoundException");
    assert!(v["message"].as_str().unwrap().contains("'nope'"), "{v}");

    // Delete.
    let (s, v) = call(
        &env,
        root,
        "DeleteRepository",
        json!({"repositoryName": "b1"}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["repository"]["repositoryName"], "b1");
    let (_, v) = call(
        &env,
        root,
        "DeleteRepository",
        json!({"repositoryName": "b1"}),
    )
    .await;
    assert_eq!(err_type(&v), "RepositoryNotFoundException");
    let (_, v) = call(
        &env,
        root,
        "DeleteRepository",
        json!({"repositoryName": "b2", "force": true}),
    )
    .await;
    assert_eq!(v["repository"]["repositoryName"], "b2");
}

#[tokio::test]
async fn bad_input_gets_model_errors_never_a_500() {
    let env = env().await;
    let root = &env.root;
    let send_raw =
        |action: &str, body: &str| signed(root, root.secret.expose(), action, body, REGION);
    let (s, v) = send(&env.app, send_raw("CreateRepository", "{not json")).await;
    assert_eq!(
        (s, err_type(&v)),
        (StatusCode::BAD_REQUEST, "SerializationException")
    );
    let (_, v) = send(
        &env.app,
        send_raw("CreateRepository", r#"{"repositoryName": 5}"#),
    )
    .await;
    assert_eq!(err_type(&v), "SerializationException");
    let (_, v) = send(
        &env.app,
        send_raw("DescribeRepositories", r#"{"maxResults": "ten"}"#),
    )
    .await;
    assert_eq!(err_type(&v), "SerializationException");
    let (_, v) = send(&env.app, send_raw("DescribeRepositories", "[]")).await;
    assert_eq!(err_type(&v), "SerializationException");
    // An empty body is an empty input.
    let (s, _) = send(&env.app, send_raw("DescribeRepositories", "")).await;
    assert_eq!(s, 200);
    let (_, v) = send(&env.app, send_raw("NoSuchAction", "{}")).await;
    assert_eq!(err_type(&v), "UnknownOperationException");
    let (s, v) = call(&env, root, "StartImageScan", json!({})).await;
    assert_eq!(
        (s, err_type(&v)),
        (StatusCode::BAD_REQUEST, "UnsupportedOperationException")
    );
    assert_eq!(
        v["message"],
        "ecr:StartImageScan is not implemented by this Berth version"
    );
}

#[tokio::test]
async fn signatures_and_keys_are_checked() {
    let env = env().await;
    let root = &env.root;
    // Unsigned.
    let req = Request::post("/")
        .header(
            "x-amz-target",
            format!("{TARGET_PREFIX}.DescribeRepositories"),
        )
        .body(Body::from("{}"))
        .unwrap();
    let (_, v) = send(&env.app, req).await;
    assert_eq!(err_type(&v), "MissingAuthenticationTokenException");
    // Wrong secret.
    let (_, v) = send(
        &env.app,
        signed(root, "not-the-secret", "DescribeRepositories", "{}", REGION),
    )
    .await;
    assert_eq!(err_type(&v), "InvalidSignatureException");
    // Wrong region.
    let (_, v) = send(
        &env.app,
        signed(
            root,
            root.secret.expose(),
            "DescribeRepositories",
            "{}",
            "us-east-1",
        ),
    )
    .await;
    assert_eq!(err_type(&v), "InvalidSignatureException");
    // Unknown key.
    let ghost = NewAccessKey::generate();
    let (_, v) = call(&env, &ghost, "DescribeRepositories", json!({})).await;
    assert_eq!(err_type(&v), "UnrecognizedClientException");
    assert_eq!(
        v["message"],
        "The security token included in the request is invalid."
    );
    // A body changed after signing.
    let mut req = signed(
        root,
        root.secret.expose(),
        "DescribeRepositories",
        "{}",
        REGION,
    );
    *req.body_mut() = Body::from(r#"{"maxResults":1}"#);
    let (_, v) = send(&env.app, req).await;
    assert_eq!(err_type(&v), "InvalidSignatureException");
    // Deactivated key: as an unknown one.
    let (s, _) = call(&env, &env.alice, "GetAuthorizationToken", json!({})).await;
    assert_eq!(s, 200);
    env.iam
        .update_access_key_status(
            ACCOUNT,
            &KeyOwner::User("alice".into()),
            &env.alice.access_key_id,
            berth_meta::iam::KeyStatus::Inactive,
        )
        .await
        .unwrap();
    let (_, v) = call(&env, &env.alice, "GetAuthorizationToken", json!({})).await;
    assert_eq!(err_type(&v), "UnrecognizedClientException");
}

#[tokio::test]
async fn iam_policies_authorize_each_action_and_resource() {
    let env = env().await;
    let alice = &env.alice;
    let (s, v) = call(
        &env,
        alice,
        "CreateRepository",
        json!({"repositoryName": "team/a1"}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let (_, v) = call(
        &env,
        alice,
        "CreateRepository",
        json!({"repositoryName": "other/a1"}),
    )
    .await;
    assert_eq!(err_type(&v), "AccessDeniedException");
    let alice_arn = format!("arn:aws:iam::{ACCOUNT}:user/alice");
    assert_eq!(
        v["message"],
        format!("User: {alice_arn} is not authorized to perform: ecr:CreateRepository on resource: arn:aws:ecr:{REGION}:{ACCOUNT}:repository/other/a1 because no identity-based policy allows the ecr:CreateRepository action")
    );
    let (s, _) = call(
        &env,
        alice,
        "DescribeRepositories",
        json!({"repositoryNames": ["team/a1"]}),
    )
    .await;
    assert_eq!(s, 200);
    // Listing everything is on repository/*, which her policy does not cover.
    let (_, v) = call(&env, alice, "DescribeRepositories", json!({})).await;
    assert_eq!(err_type(&v), "AccessDeniedException");
    let (_, v) = call(
        &env,
        alice,
        "DeleteRepository",
        json!({"repositoryName": "team/a1"}),
    )
    .await;
    assert_eq!(err_type(&v), "AccessDeniedException");
    // Another account's registry is cross-account: denied without a repository policy.
    let (_, v) = call(
        &env,
        &env.root,
        "DescribeRepositories",
        json!({"registryId": "999999999999"}),
    )
    .await;
    assert_eq!(err_type(&v), "AccessDeniedException", "{v}");
    // A policy change takes effect on the next request.
    env.iam
        .put_user_policy(
            ACCOUNT,
            "alice",
            "deny-all",
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"ecr:*","Resource":"*"}]}"#,
        )
        .await
        .unwrap();
    let (_, v) = call(&env, alice, "GetAuthorizationToken", json!({})).await;
    assert_eq!(err_type(&v), "AccessDeniedException");
    assert!(
        v["message"].as_str().unwrap().contains("explicit deny"),
        "{v}"
    );
}

#[tokio::test]
async fn authorization_tokens_are_signed_for_the_caller_and_expire_in_12_hours() {
    let env = env().await;
    let (s, v) = call(&env, &env.alice, "GetAuthorizationToken", json!({})).await;
    assert_eq!(s, 200, "{v}");
    let data = &v["authorizationData"][0];
    assert_eq!(data["proxyEndpoint"], "http://registry.test:5000");
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(data["authorizationToken"].as_str().unwrap())
        .unwrap();
    let decoded = String::from_utf8(decoded).unwrap();
    let password = decoded.strip_prefix("AWS:").expect("AWS: prefix");
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let claims = token::verify(&TOKEN_KEY, password, now).unwrap();
    assert_eq!(claims.access_key_id, env.alice.access_key_id);
    assert_eq!(claims.account_id, ACCOUNT);
    assert_eq!(claims.user.as_deref(), Some("alice"));
    let expires = data["expiresAt"].as_i64().unwrap();
    assert_eq!(expires, claims.expires_at);
    assert!((expires - now - 12 * 3600).abs() < 60);
    assert!(token::verify(&[0; 32], password, now).is_err());
    let (_, v) = call(
        &env,
        &env.root,
        "GetAuthorizationToken",
        json!({"registryIds": ["12"]}),
    )
    .await;
    assert_eq!(err_type(&v), "InvalidParameterException");
}

/// An unauthenticated request is refused from its headers, before its body is read; an
/// authenticated one over the limit is 413.
#[tokio::test]
async fn oversize_bodies_are_refused_and_unsigned_bodies_are_never_read() {
    let env = env().await;
    let big = " ".repeat(berth_ecr_api::MAX_BODY + 1);
    // A body that fails when polled: reading it would turn the answer into an error about
    // the body, not about the missing signature.
    let poisoned = Body::from_stream(futures::stream::once(async {
        Err::<bytes::Bytes, std::io::Error>(std::io::Error::other("the body was read"))
    }));
    let req = Request::post("/")
        .header("x-amz-target", format!("{TARGET_PREFIX}.UploadLayerPart"))
        .body(poisoned)
        .unwrap();
    let (s, v) = send(&env.app, req).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(err_type(&v), "MissingAuthenticationTokenException");

    let (s, v) = send(
        &env.app,
        signed(
            &env.root,
            env.root.secret.expose(),
            "UploadLayerPart",
            &big,
            REGION,
        ),
    )
    .await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(err_type(&v), "SerializationException");
}

/// With the key cache on, a key deactivated in the store (as another node or `berth iam`
/// would) is refused within the cache's bound at most, and at once after a local change
/// forgets the cache; a reactivated key works at once (refusals are never cached).
#[tokio::test]
async fn cached_keys_stop_working_within_the_bound_or_when_forgotten() {
    use berth_meta::iam::KeyStatus;
    let (env, auth) = env_with(Some(Duration::from_secs(60))).await;
    let set_alice = |status: KeyStatus| {
        let (iam, key) = (env.iam.clone(), env.alice.access_key_id.clone());
        async move {
            iam.update_access_key_status(ACCOUNT, &KeyOwner::User("alice".into()), &key, status)
                .await
                .unwrap();
        }
    };
    let login = || call(&env, &env.alice, "GetAuthorizationToken", json!({}));

    // Without a local change: reused for less than MAX_TTL (the configured 60 s is capped).
    let first = Instant::now();
    assert_eq!(login().await.0, StatusCode::OK);
    set_alice(KeyStatus::Inactive).await;
    let (s, v) = login().await;
    if first.elapsed() < MAX_TTL {
        assert_eq!(s, StatusCode::OK, "reused from the cache: {v}");
    }
    tokio::time::sleep(MAX_TTL).await;
    let (_, v) = login().await;
    assert_eq!(err_type(&v), "UnrecognizedClientException");

    // Reactivated: works at once; then a local change forgets the cache.
    set_alice(KeyStatus::Active).await;
    assert_eq!(login().await.0, StatusCode::OK);
    set_alice(KeyStatus::Inactive).await;
    auth.forget_keys();
    let (_, v) = login().await;
    assert_eq!(err_type(&v), "UnrecognizedClientException");
}
