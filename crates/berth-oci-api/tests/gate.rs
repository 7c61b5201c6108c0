//! The `/v2` gate, generated from [`OciOperation::ALL`]: for every operation, a caller
//! without the action is denied; a caller allowed `ecr:*` by identity is denied by a
//! repository policy and by a registry policy, and is not denied elsewhere. A new
//! operation without a row does not compile (`row` has no wildcard).
// Tests may unwrap and slice strings they built: a panic there is a failed test.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::string_slice))]

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::Router;
use base64::Engine;
use http::{Method, Request, StatusCode};
use tower::ServiceExt;

use berth_access::{Authenticator, RegistryHosts, ResourcePolicies};
use berth_blobstore::DiskBlobStore;
use berth_meta::iam::{Account, KeyOwner, NewAccessKey, NewUser};
use berth_meta::secrets::MasterKey;
use berth_meta::settings::NewRepository;
use berth_meta::sqlite::{SqliteIamStore, SqliteMetaStore};
use berth_meta::{EcrSettingsStore, IamStore};
use berth_oci_api::gate::{Anonymous, ChallengeKind, GateConfig, GateOptions, V2Gate};
use berth_oci_api::OciOperation;
use berth_registry::{Registry, RegistryOptions};
use berth_sigv4::{Verifier, VerifierConfig};
use berth_types::RepositoryName;

const ACCOUNT: &str = "000000000000";
const REGION: &str = "us-east-1";
const DIGEST: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000000";

fn arn(name: &str) -> String {
    format!("arn:aws:ecr:{REGION}:{ACCOUNT}:repository/{name}")
}

/// What an operation acts on.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Scope {
    /// `GET /v2/`: any authenticated caller (how `docker login` checks a password).
    AnyCaller,
    /// The catalog: `repository/*`, identity and registry policies.
    Registry,
    /// One repository: its policy and the registry policy apply.
    Repository,
}

/// The row of `op`: what it acts on and its request (method, path) on `repo`.
fn row(op: OciOperation, repo: &str) -> (Scope, Method, String) {
    let r = Scope::Repository;
    match op {
        OciOperation::ApiVersion => (Scope::AnyCaller, Method::GET, "/v2/".into()),
        OciOperation::Catalog => (Scope::Registry, Method::GET, "/v2/_catalog".into()),
        OciOperation::ListTags => (r, Method::GET, format!("/v2/{repo}/tags/list")),
        OciOperation::GetManifest => (r, Method::GET, format!("/v2/{repo}/manifests/v1")),
        OciOperation::HeadManifest => (r, Method::HEAD, format!("/v2/{repo}/manifests/v1")),
        OciOperation::PutManifest => (r, Method::PUT, format!("/v2/{repo}/manifests/v1")),
        OciOperation::DeleteManifest => {
            (r, Method::DELETE, format!("/v2/{repo}/manifests/{DIGEST}"))
        }
        OciOperation::GetBlob => (r, Method::GET, format!("/v2/{repo}/blobs/{DIGEST}")),
        OciOperation::HeadBlob => (r, Method::HEAD, format!("/v2/{repo}/blobs/{DIGEST}")),
        OciOperation::DeleteBlob => (r, Method::DELETE, format!("/v2/{repo}/blobs/{DIGEST}")),
        OciOperation::StartUpload => (r, Method::POST, format!("/v2/{repo}/blobs/uploads/")),
        OciOperation::GetUploadStatus => (r, Method::GET, format!("/v2/{repo}/blobs/uploads/u1")),
        OciOperation::PatchUpload => (r, Method::PATCH, format!("/v2/{repo}/blobs/uploads/u1")),
        OciOperation::CompleteUpload => (
            r,
            Method::PUT,
            format!("/v2/{repo}/blobs/uploads/u1?digest={DIGEST}"),
        ),
        OciOperation::CancelUpload => (r, Method::DELETE, format!("/v2/{repo}/blobs/uploads/u1")),
        OciOperation::ListReferrers => (r, Method::GET, format!("/v2/{repo}/referrers/{DIGEST}")),
    }
}

struct Env {
    _dir: tempfile::TempDir,
    app: Router,
    iam: Arc<SqliteIamStore>,
}

async fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let meta = SqliteMetaStore::open(dir.path().join("meta.db")).unwrap();
    let iam = Arc::new(SqliteIamStore::new(meta.clone(), MasterKey::generate()));
    iam.create_account(
        &Account {
            id: ACCOUNT.into(),
            alias: None,
            created_ms: 1,
        },
        None,
    )
    .await
    .unwrap();
    let blobs = DiskBlobStore::open(dir.path()).unwrap();
    let registry = Registry::new(
        Arc::new(meta.clone()),
        Arc::new(blobs),
        RegistryOptions::default(),
    );
    let auth = Authenticator::new(Verifier::new(VerifierConfig::new(["ecr"])), iam.clone());
    let gate = V2Gate::new(
        Arc::new(auth),
        GateConfig {
            hosts: RegistryHosts::new(ACCOUNT.parse().unwrap(), None),
            region: REGION.into(),
            public_host: None,
            login_token_key: [5; 32],
        },
        GateOptions {
            anonymous: Anonymous::None,
            challenge: ChallengeKind::Basic,
            credential_cache: Duration::ZERO,
            bearer_token_secs: 3600,
        },
        None,
        Arc::new(ResourcePolicies::new(
            Arc::new(meta.clone()),
            Duration::ZERO,
        )),
        registry.clone(),
    );
    let app = berth_oci_api::router(registry, ACCOUNT.parse().unwrap()).layer(
        axum::middleware::from_fn_with_state(gate, berth_oci_api::gate::middleware),
    );
    let erin = berth_iam::iam_user_arn(ACCOUNT, "/", "erin");
    let deny = |resource: &str| {
        format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Deny","Principal":{{"AWS":"{erin}"}},"Action":"ecr:*"{resource}}}]}}"#
        )
    };
    for (name, policy) in [
        ("locked", Some(deny(""))),
        ("reg-locked", None),
        ("free", None),
    ] {
        let repo = RepositoryName::new(ACCOUNT.parse().unwrap(), name).unwrap();
        let new = NewRepository {
            settings: Default::default(),
            tags: vec![],
            policy,
            lifecycle_policy: None,
        };
        meta.create_repository_with(ACCOUNT, &repo, &new, 1)
            .await
            .unwrap();
    }
    // The registry policy denies Erin one repository, and the catalog.
    let registry_policy = format!(
        r#"{{"Version":"2012-10-17","Statement":[
            {{"Effect":"Deny","Principal":{{"AWS":"{erin}"}},"Action":"ecr:*","Resource":"{}"}},
            {{"Effect":"Deny","Principal":{{"AWS":"{erin}"}},"Action":"ecr:DescribeRepositories","Resource":"{}"}}]}}"#,
        arn("reg-locked"),
        arn("*")
    );
    meta.put_registry_policy(ACCOUNT, &registry_policy, 1)
        .await
        .unwrap();
    Env {
        _dir: dir,
        app,
        iam,
    }
}

/// The IAM user `name` with the inline policy `statements`; its Basic credentials.
async fn user(env: &Env, name: &str, statements: &str) -> String {
    env.iam
        .create_user(&NewUser {
            account_id: ACCOUNT.into(),
            name: name.into(),
            path: "/".into(),
            arn: berth_iam::iam_user_arn(ACCOUNT, "/", name),
        })
        .await
        .unwrap();
    let key = NewAccessKey::generate();
    env.iam
        .create_access_key(ACCOUNT, &KeyOwner::User(name.into()), &key)
        .await
        .unwrap();
    env.iam
        .put_user_policy(
            ACCOUNT,
            name,
            "p",
            &format!(r#"{{"Version":"2012-10-17","Statement":{statements}}}"#),
        )
        .await
        .unwrap();
    let pair = format!("{}:{}", key.access_key_id, key.secret.expose());
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}

async fn status(env: &Env, op: OciOperation, repo: &str, auth: &str) -> StatusCode {
    let (_, method, path) = row(op, repo);
    let routed = berth_oci_api::operation::route(&method, path.split('?').next().unwrap());
    assert_eq!(
        routed.ok().map(|r| r.op),
        Some(op),
        "the row of {op:?} routes to it"
    );
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "registry.test")
        .header("authorization", auth)
        .body(Body::empty())
        .unwrap();
    env.app.clone().oneshot(req).await.unwrap().status()
}

#[tokio::test]
async fn every_v2_operation_is_denied_without_permission_and_by_resource_policies() {
    let env = env().await;
    let nobody = user(
        &env,
        "nobody",
        r#"[{"Effect":"Allow","Action":"iam:GetUser","Resource":"*"}]"#,
    )
    .await;
    let erin = user(
        &env,
        "erin",
        r#"[{"Effect":"Allow","Action":"ecr:*","Resource":"*"}]"#,
    )
    .await;
    for &op in OciOperation::ALL {
        let (scope, _, _) = row(op, "free");
        let s = status(&env, op, "free", &nobody).await;
        match scope {
            Scope::AnyCaller => assert_eq!(s, StatusCode::OK, "{op:?}"),
            _ => assert_eq!(s, StatusCode::FORBIDDEN, "{op:?} without the action"),
        }
        match scope {
            Scope::AnyCaller => {}
            Scope::Registry => {
                let s = status(&env, op, "free", &erin).await;
                assert_eq!(
                    s,
                    StatusCode::FORBIDDEN,
                    "{op:?}: the registry policy denies"
                );
            }
            Scope::Repository => {
                for locked in ["locked", "reg-locked"] {
                    let s = status(&env, op, locked, &erin).await;
                    assert_eq!(s, StatusCode::FORBIDDEN, "{op:?} on {locked}");
                }
                let s = status(&env, op, "free", &erin).await;
                assert!(
                    s != StatusCode::FORBIDDEN && s != StatusCode::UNAUTHORIZED,
                    "{op:?} allowed on free: {s}"
                );
            }
        }
    }
}
