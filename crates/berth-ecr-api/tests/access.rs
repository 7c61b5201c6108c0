//! Authorization of the ECR edge through berth-access: tag conditions (resource tags,
//! request tags, tag keys) modelled on the AWS documentation's examples, resource and
//! registry policies on every resource an operation touches, and the signed target.
// Tests may unwrap and slice strings they built: a panic there is a failed test.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::string_slice))]

mod support;

use std::sync::Arc;

use axum::body::Body;
use http::Request;
use serde_json::{json, Value};

use berth_blobstore::DiskBlobStore;
use berth_ecr_api::{EcrState, TARGET_PREFIX};
use berth_meta::iam::NewAccessKey;
use berth_meta::secrets::MasterKey;
use berth_meta::sqlite::{SqliteIamStore, SqliteMetaStore};
use berth_registry::{Registry, RegistryOptions};
use berth_sigv4::{sign_request, Credentials, PayloadHash};
use support::{account_with_user, add_user, config, err_type, send_json, signed, ACCOUNT, REGION};

struct Env {
    _dir: tempfile::TempDir,
    app: axum::Router,
    iam: Arc<SqliteIamStore>,
    root: NewAccessKey,
}

async fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let meta = SqliteMetaStore::open(dir.path().join("meta.db")).unwrap();
    let iam = Arc::new(SqliteIamStore::new(meta.clone(), MasterKey::generate()));
    let (root, _) = account_with_user(
        iam.as_ref(),
        "nobody",
        "none",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ecr:GetAuthorizationToken","Resource":"*"}]}"#,
    )
    .await;
    let blobs = DiskBlobStore::open(dir.path()).unwrap();
    let registry = Registry::new(
        Arc::new(meta.clone()),
        Arc::new(blobs),
        RegistryOptions::default(),
    );
    let state = EcrState::new(registry, iam.clone(), Arc::new(meta), config([3; 32]));
    Env {
        _dir: dir,
        app: berth_ecr_api::router(state),
        iam,
        root,
    }
}

/// Adds the IAM user `name` with the inline policy `statements` (a JSON array).
async fn user(env: &Env, name: &str, statements: &str) -> NewAccessKey {
    let policy = format!(r#"{{"Version":"2012-10-17","Statement":{statements}}}"#);
    add_user(env.iam.as_ref(), name, "p", &policy).await
}

async fn call(env: &Env, key: &NewAccessKey, action: &str, body: Value) -> Value {
    let req = signed(key, key.secret.expose(), action, &body.to_string(), REGION);
    let (status, v, _) = send_json(&env.app, req).await;
    if err_type(&v).is_empty() {
        assert_eq!(status, 200, "{action}: {v}");
    }
    v
}

fn arn(name: &str) -> String {
    berth_iam::ecr_repository_arn(REGION, ACCOUNT, name)
}

fn denied(v: &Value) -> bool {
    err_type(v) == "AccessDeniedException"
}

#[tokio::test]
async fn a_resource_tag_deny_protects_a_repository_from_deletes() {
    let env = env().await;
    // AWS's example: everything, except deleting images of repositories tagged
    // protected=true.
    let bob = user(
        &env,
        "bob",
        r#"[{"Effect":"Allow","Action":"ecr:*","Resource":"*"},
            {"Effect":"Deny","Action":["ecr:BatchDeleteImage","ecr:DeleteRepository"],"Resource":"*",
             "Condition":{"StringEquals":{"ecr:ResourceTag/protected":"true"}}}]"#,
    )
    .await;
    for (name, tags) in [
        ("prot", json!([{"Key": "protected", "Value": "true"}])),
        ("open", json!([])),
    ] {
        call(
            &env,
            &env.root,
            "CreateRepository",
            json!({"repositoryName": name, "tags": tags}),
        )
        .await;
    }
    let delete = |name: &str| json!({"repositoryName": name, "imageIds": [{"imageTag": "latest"}]});
    let v = call(&env, &bob, "BatchDeleteImage", delete("prot")).await;
    assert!(denied(&v), "{v}");
    assert!(
        v["message"].as_str().unwrap().contains("explicit deny"),
        "{v}"
    );
    let v = call(&env, &bob, "BatchDeleteImage", delete("open")).await;
    assert_eq!(v["failures"][0]["failureCode"], "ImageNotFound", "{v}");
    let v = call(
        &env,
        &bob,
        "DeleteRepository",
        json!({"repositoryName": "prot"}),
    )
    .await;
    assert!(denied(&v), "{v}");
    // The aws: spelling of the key works the same; untagging lifts the protection.
    call(
        &env,
        &env.root,
        "UntagResource",
        json!({"resourceArn": arn("prot"), "tagKeys": ["protected"]}),
    )
    .await;
    let v = call(&env, &bob, "BatchDeleteImage", delete("prot")).await;
    assert!(!denied(&v), "{v}");
    // Tagging (through the API) protects at once: the cache is dropped.
    call(
        &env,
        &env.root,
        "TagResource",
        json!({"resourceArn": arn("open"), "tags": [{"Key": "protected", "Value": "true"}]}),
    )
    .await;
    let v = call(&env, &bob, "BatchDeleteImage", delete("open")).await;
    assert!(denied(&v), "{v}");
}

#[tokio::test]
async fn an_allow_that_requires_a_resource_tag_works_when_the_tag_matches() {
    let env = env().await;
    let carol = user(
        &env,
        "carol",
        r#"[{"Effect":"Allow","Action":["ecr:ListImages","ecr:DescribeImages"],"Resource":"*",
             "Condition":{"StringEquals":{"aws:ResourceTag/team":"blue"}}}]"#,
    )
    .await;
    call(
        &env,
        &env.root,
        "CreateRepository",
        json!({"repositoryName": "blue", "tags": [{"Key": "team", "Value": "blue"}]}),
    )
    .await;
    call(
        &env,
        &env.root,
        "CreateRepository",
        json!({"repositoryName": "red", "tags": [{"Key": "team", "Value": "red"}]}),
    )
    .await;
    let v = call(
        &env,
        &carol,
        "ListImages",
        json!({"repositoryName": "blue"}),
    )
    .await;
    assert_eq!(v["imageIds"], json!([]), "{v}");
    let v = call(&env, &carol, "ListImages", json!({"repositoryName": "red"})).await;
    assert!(denied(&v), "{v}");
}

#[tokio::test]
async fn request_tags_and_tag_keys_condition_tagging_and_creation() {
    let env = env().await;
    // AWS's examples: create and tag only with env=dev and no other key; never remove
    // the `protected` key.
    let dave = user(
        &env,
        "dave",
        r#"[{"Effect":"Allow","Action":["ecr:CreateRepository","ecr:TagResource"],"Resource":"*",
             "Condition":{"StringEquals":{"aws:RequestTag/env":"dev"},
                          "ForAllValues:StringEquals":{"aws:TagKeys":["env"]}}},
            {"Effect":"Allow","Action":"ecr:UntagResource","Resource":"*"},
            {"Effect":"Deny","Action":"ecr:UntagResource","Resource":"*",
             "Condition":{"ForAnyValue:StringEquals":{"aws:TagKeys":["protected"]}}}]"#,
    )
    .await;
    let create = |name: &str, tags: Value| json!({"repositoryName": name, "tags": tags});
    let v = call(
        &env,
        &dave,
        "CreateRepository",
        create("d1", json!([{"Key": "env", "Value": "dev"}])),
    )
    .await;
    assert_eq!(v["repository"]["repositoryName"], "d1", "{v}");
    for tags in [
        json!([{"Key": "env", "Value": "prod"}]),
        json!([{"Key": "env", "Value": "dev"}, {"Key": "owner", "Value": "me"}]),
        json!([]),
    ] {
        let v = call(&env, &dave, "CreateRepository", create("d2", tags.clone())).await;
        assert!(denied(&v), "{tags}: {v}");
    }
    let tag = |tags: Value| json!({"resourceArn": arn("d1"), "tags": tags});
    let v = call(
        &env,
        &dave,
        "TagResource",
        tag(json!([{"Key": "env", "Value": "dev"}])),
    )
    .await;
    assert!(!denied(&v), "{v}");
    let v = call(
        &env,
        &dave,
        "TagResource",
        tag(json!([{"Key": "env", "Value": "x"}])),
    )
    .await;
    assert!(denied(&v), "{v}");
    call(
        &env,
        &env.root,
        "TagResource",
        tag(json!([{"Key": "protected", "Value": "yes"}, {"Key": "team", "Value": "a"}])),
    )
    .await;
    let untag = |keys: Value| json!({"resourceArn": arn("d1"), "tagKeys": keys});
    let v = call(
        &env,
        &dave,
        "UntagResource",
        untag(json!(["team", "protected"])),
    )
    .await;
    assert!(denied(&v), "{v}");
    let v = call(&env, &dave, "UntagResource", untag(json!(["team"]))).await;
    assert!(!denied(&v), "{v}");
}

#[tokio::test]
async fn repository_and_registry_policy_denies_apply_to_every_resource_an_action_names() {
    let env = env().await;
    let erin = user(
        &env,
        "erin",
        r#"[{"Effect":"Allow","Action":"ecr:*","Resource":"*"}]"#,
    )
    .await;
    let erin_arn = berth_iam::iam_user_arn(ACCOUNT, "/", "erin");
    for name in ["locked", "free", "reg"] {
        call(
            &env,
            &env.root,
            "CreateRepository",
            json!({"repositoryName": name}),
        )
        .await;
    }
    let deny = |actions: &str, resource: &str| {
        format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Deny","Principal":{{"AWS":"{erin_arn}"}},"Action":{actions}{resource}}}]}}"#
        )
    };
    let actions = r#"["ecr:TagResource","ecr:UntagResource","ecr:ListTagsForResource","ecr:DescribeRepositories"]"#;
    call(
        &env,
        &env.root,
        "SetRepositoryPolicy",
        json!({"repositoryName": "locked", "policyText": deny(actions, "")}),
    )
    .await;
    call(
        &env,
        &env.root,
        "PutRegistryPolicy",
        json!({"policyText": deny(actions, &format!(r#","Resource":"{}""#, arn("reg")))}),
    )
    .await;
    for name in ["locked", "reg"] {
        let requests = [
            ("ListTagsForResource", json!({"resourceArn": arn(name)})),
            (
                "TagResource",
                json!({"resourceArn": arn(name), "tags": [{"Key": "k", "Value": "v"}]}),
            ),
            (
                "UntagResource",
                json!({"resourceArn": arn(name), "tagKeys": ["k"]}),
            ),
            (
                "DescribeRepositories",
                json!({"repositoryNames": ["free", name]}),
            ),
        ];
        for (action, body) in requests {
            let v = call(&env, &erin, action, body).await;
            assert!(denied(&v), "{name} {action}: {v}");
        }
    }
    let v = call(
        &env,
        &erin,
        "ListTagsForResource",
        json!({"resourceArn": arn("free")}),
    )
    .await;
    assert_eq!(v["tags"], json!([]), "{v}");
}

#[tokio::test]
async fn the_target_must_be_signed() {
    let env = env().await;
    let key = &env.root;
    let body = "{}";
    let target = format!("{TARGET_PREFIX}.DescribeRepositories");
    // Signed without X-Amz-Target, which is then added: the action was not signed.
    let unsigned =
        berth_sigv4::Request::new("POST", "/", "", PayloadHash::of_body(body.as_bytes()))
            .with_header("host", "registry.test:5000")
            .with_header("content-type", "application/x-amz-json-1.1");
    let creds = Credentials {
        access_key_id: &key.access_key_id,
        secret_access_key: key.secret.expose(),
        session_token: None,
    };
    let sig = sign_request(
        &unsigned,
        &creds,
        REGION,
        "ecr",
        time::OffsetDateTime::now_utc(),
    )
    .unwrap();
    let mut b = Request::post("/")
        .header("host", "registry.test:5000")
        .header("content-type", "application/x-amz-json-1.1")
        .header("x-amz-target", &target);
    for (n, v) in sig.headers() {
        b = b.header(n, v);
    }
    let (status, v, _) = send_json(&env.app, b.body(Body::from(body)).unwrap()).await;
    assert_eq!(err_type(&v), "IncompleteSignatureException", "{v}");
    assert!(
        v["message"].as_str().unwrap().contains("x-amz-target"),
        "{v}"
    );
    assert_eq!(status, 400);
    // Signed with it: served.
    let v = call(&env, key, "DescribeRepositories", json!({})).await;
    assert_eq!(v["repositories"], json!([]), "{v}");
}

/// What an action acts on, for the generated test.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Scope {
    /// A repository: its policy and the registry policy apply.
    Repository,
    /// `*` of the caller's account: identity policies only.
    Account,
}

/// The row of `op` in the generated test: what it acts on and a request naming
/// `repo` (authorization comes before validation, so the rest of the body may be
/// incomplete). `None`: not implemented by this version. No wildcard: a new action
/// does not compile without a row.
fn row(op: berth_ecr_api::EcrOperation, repo: &str) -> Option<(Scope, Value)> {
    use berth_ecr_api::EcrOperation as E;
    let named = || Some((Scope::Repository, json!({"repositoryName": repo})));
    let by_arn = || Some((Scope::Repository, json!({"resourceArn": arn(repo)})));
    let account = || Some((Scope::Account, json!({})));
    match op {
        E::BatchCheckLayerAvailability
        | E::BatchDeleteImage
        | E::BatchGetImage
        | E::CompleteLayerUpload
        | E::CreateRepository
        | E::DeleteLifecyclePolicy
        | E::DeleteRepository
        | E::DeleteRepositoryPolicy
        | E::DescribeImages
        | E::GetDownloadUrlForLayer
        | E::GetLifecyclePolicy
        | E::GetLifecyclePolicyPreview
        | E::GetRepositoryPolicy
        | E::InitiateLayerUpload
        | E::ListImageReferrers
        | E::ListImages
        | E::PutImage
        | E::PutImageTagMutability
        | E::PutLifecyclePolicy
        | E::SetRepositoryPolicy
        | E::StartLifecyclePolicyPreview
        | E::UpdateImageStorageClass
        | E::UploadLayerPart => named(),
        E::TagResource | E::UntagResource | E::ListTagsForResource => by_arn(),
        E::DescribeRepositories => Some((Scope::Repository, json!({"repositoryNames": [repo]}))),
        E::GetAuthorizationToken
        | E::GetAccountSetting
        | E::PutAccountSetting
        | E::PutRegistryPolicy
        | E::GetRegistryPolicy
        | E::DeleteRegistryPolicy
        | E::RegisterPullTimeUpdateExclusion
        | E::DeregisterPullTimeUpdateExclusion
        | E::ListPullTimeUpdateExclusions
        | E::CreateRepositoryCreationTemplate
        | E::UpdateRepositoryCreationTemplate
        | E::DeleteRepositoryCreationTemplate
        | E::DescribeRepositoryCreationTemplates => account(),
        E::BatchGetRepositoryScanningConfiguration
        | E::CreatePullThroughCacheRule
        | E::DeletePullThroughCacheRule
        | E::DeleteSigningConfiguration
        | E::DescribeImageReplicationStatus
        | E::DescribeImageScanFindings
        | E::DescribeImageSigningStatus
        | E::DescribePullThroughCacheRules
        | E::DescribeRegistry
        | E::GetRegistryScanningConfiguration
        | E::GetSigningConfiguration
        | E::PutImageScanningConfiguration
        | E::PutRegistryScanningConfiguration
        | E::PutReplicationConfiguration
        | E::PutSigningConfiguration
        | E::StartImageScan
        | E::UpdatePullThroughCacheRule
        | E::ValidatePullThroughCacheRule => None,
    }
}

/// For every implemented ECR action: a caller without the action is denied; a caller
/// allowed `ecr:*` by identity is denied on a repository whose policy denies it, and on
/// a repository the registry policy denies it, and is not denied elsewhere.
#[tokio::test]
async fn every_ecr_action_is_denied_without_permission_and_by_resource_policies() {
    let env = env().await;
    let nobody = user(
        &env,
        "nobody2",
        r#"[{"Effect":"Allow","Action":"iam:GetUser","Resource":"*"}]"#,
    )
    .await;
    let erin = user(
        &env,
        "erin",
        r#"[{"Effect":"Allow","Action":"ecr:*","Resource":"*"}]"#,
    )
    .await;
    let erin_arn = berth_iam::iam_user_arn(ACCOUNT, "/", "erin");
    for name in ["locked", "reg-locked", "free"] {
        call(
            &env,
            &env.root,
            "CreateRepository",
            json!({"repositoryName": name}),
        )
        .await;
    }
    let deny = |resource: &str| {
        format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Deny","Principal":{{"AWS":"{erin_arn}"}},"Action":"ecr:*"{resource}}}]}}"#
        )
    };
    call(
        &env,
        &env.root,
        "SetRepositoryPolicy",
        json!({"repositoryName": "locked", "policyText": deny("")}),
    )
    .await;
    call(
        &env,
        &env.root,
        "PutRegistryPolicy",
        json!({"policyText": deny(&format!(r#","Resource":"{}""#, arn("reg-locked")))}),
    )
    .await;

    let mut rows = 0;
    for &op in berth_ecr_api::EcrOperation::ALL {
        let Some((scope, body)) = row(op, "free") else {
            assert!(!op.is_implemented(), "{op:?} is implemented but has no row");
            let v = call(&env, &env.root, op.name(), json!({})).await;
            assert_eq!(err_type(&v), "UnsupportedOperationException", "{op:?}: {v}");
            continue;
        };
        assert!(
            op.is_implemented(),
            "{op:?} has a row but is not implemented"
        );
        rows += 1;
        let v = call(&env, &nobody, op.name(), body).await;
        assert!(denied(&v), "{op:?} without the action: {v}");
        assert!(
            v["message"].as_str().unwrap().contains(op.iam_action()),
            "{op:?}: {v}"
        );
        if scope == Scope::Repository {
            for locked in ["locked", "reg-locked"] {
                let (_, body) = row(op, locked).unwrap();
                let v = call(&env, &erin, op.name(), body).await;
                assert!(denied(&v), "{op:?} on {locked}: {v}");
                assert!(
                    v["message"].as_str().unwrap().contains("explicit deny"),
                    "{op:?}: {v}"
                );
            }
        }
    }
    assert_eq!(rows, 40, "implemented actions");
    // Allowed by identity and by no resource policy: not denied (so the denials above are
    // the policies' doing, not malformed rows). Deletions run last.
    let mut ops: Vec<_> = berth_ecr_api::EcrOperation::ALL.to_vec();
    ops.sort_by_key(|op| op.name().starts_with("Delete"));
    for op in ops {
        if let Some((_, body)) = row(op, "free") {
            let v = call(&env, &erin, op.name(), body).await;
            assert!(!denied(&v), "{op:?} allowed: {v}");
        }
    }
}
