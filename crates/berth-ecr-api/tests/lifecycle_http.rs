//! In-process tests of the lifecycle actions of the ECR edge: requests signed with
//! berth-sigv4's signer, sent through the router, against the SQLite stores with the
//! registry's lifecycle engine.
// Tests may unwrap and slice strings they built: a panic there is a failed test.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::string_slice))]

mod support;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
use serde_json::{json, Value};

use berth_blobstore::DiskBlobStore;
use berth_ecr_api::EcrState;
use berth_meta::iam::NewAccessKey;
use berth_meta::secrets::MasterKey;
use berth_meta::sqlite::{SqliteIamStore, SqliteMetaStore};
use berth_registry::lifecycle::Lifecycle;
use berth_registry::{Registry, RegistryOptions};
use berth_types::{Digest, Reference, RepositoryName};
use support::{account_with_user, config, send_json, signed, ACCOUNT, REGION};

struct Env {
    _dir: tempfile::TempDir,
    app: axum::Router,
    registry: Registry,
    lifecycle: Lifecycle,
    root: NewAccessKey,
    alice: NewAccessKey,
}

async fn env(with_lifecycle: bool) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let meta = SqliteMetaStore::open(dir.path().join("meta.db")).unwrap();
    let iam = Arc::new(SqliteIamStore::new(meta.clone(), MasterKey::generate()));
    // Alice may read lifecycle policies and previews of team/*; nothing else.
    let (root, alice) = account_with_user(
        iam.as_ref(),
        "alice",
        "lifecycle-read",
        r#"{"Version":"2012-10-17","Statement":[
            {"Effect":"Allow","Action":["ecr:GetLifecyclePolicy","ecr:GetLifecyclePolicyPreview"],"Resource":"arn:aws:ecr:*:*:repository/team/*"}]}"#,
    )
    .await;
    let blobs = DiskBlobStore::open(dir.path()).unwrap();
    let registry = Registry::new(
        Arc::new(meta.clone()),
        Arc::new(blobs),
        RegistryOptions::default(),
    );
    let lifecycle = Lifecycle::new(registry.clone(), Arc::new(meta.clone()));
    let state = EcrState::new(registry.clone(), iam, Arc::new(meta), config([9; 32]));
    let state = if with_lifecycle {
        state.with_lifecycle(lifecycle.clone())
    } else {
        state
    };
    Env {
        _dir: dir,
        app: berth_ecr_api::router(state),
        registry,
        lifecycle,
        root,
        alice,
    }
}

async fn call(env: &Env, key: &NewAccessKey, action: &str, body: Value) -> (StatusCode, Value) {
    let req = signed(key, key.secret.expose(), action, &body.to_string(), REGION);
    let (status, v, _) = send_json(&env.app, req).await;
    (status, v)
}

fn err(v: &Value) -> &str {
    v["__type"].as_str().unwrap_or("")
}

/// Pushes an image with one layer (tagged or by digest); returns its digest.
async fn push(r: &Registry, repo: &RepositoryName, seed: &str, tag: Option<&str>) -> Digest {
    let layer = format!("layer {seed}").into_bytes();
    let d = Digest::sha256_of(&layer);
    r.push_blob(
        repo,
        &d,
        futures::stream::iter(vec![Ok::<_, std::io::Error>(Bytes::from(layer.clone()))]),
    )
    .await
    .unwrap();
    let m = json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": d.to_string(), "size": layer.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d.to_string(), "size": layer.len()}],
    });
    let body = Bytes::from(serde_json::to_vec(&m).unwrap());
    let digest = Digest::sha256_of(&body);
    let reference = match tag {
        Some(t) => Reference::Tag(t.parse().unwrap()),
        None => Reference::Digest(digest.clone()),
    };
    r.put_manifest(repo, &reference, None, body).await.unwrap();
    tokio::time::sleep(Duration::from_millis(3)).await;
    digest
}

/// Keep one untagged image; expire the rest of the untagged ones.
const POLICY: &str = r#"{"rules":[{"rulePriority":1,"description":"one untagged","selection":{"tagStatus":"untagged","countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}}]}"#;

async fn wait_complete(env: &Env, repo: &str) -> Value {
    for _ in 0..500 {
        let (s, v) = call(
            env,
            &env.root,
            "GetLifecyclePolicyPreview",
            json!({"repositoryName": repo}),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        if v["status"] != "IN_PROGRESS" {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the preview never completed");
}

#[tokio::test]
async fn policies_and_previews_have_the_model_shapes_and_errors() {
    let env = env(true).await;
    let repo = RepositoryName::new(ACCOUNT.parse().unwrap(), "team/app").unwrap();
    let (s, v) = call(
        &env,
        &env.root,
        "PutLifecyclePolicy",
        json!({"repositoryName": "team/app", "lifecyclePolicyText": POLICY}),
    )
    .await;
    assert_eq!(
        (s, err(&v)),
        (StatusCode::BAD_REQUEST, "RepositoryNotFoundException")
    );
    let mut untagged = Vec::new();
    for i in 0..4 {
        untagged.push(push(&env.registry, &repo, &format!("u{i}"), None).await);
    }
    push(&env.registry, &repo, "tagged", Some("v1")).await;

    // Put, Get (no lastEvaluatedAt yet), model constraints.
    let (s, v) = call(
        &env,
        &env.root,
        "PutLifecyclePolicy",
        json!({"repositoryName": "team/app", "lifecyclePolicyText": POLICY}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        v,
        json!({"registryId": ACCOUNT, "repositoryName": "team/app", "lifecyclePolicyText": POLICY})
    );
    let (_, v) = call(
        &env,
        &env.alice,
        "GetLifecyclePolicy",
        json!({"repositoryName": "team/app"}),
    )
    .await;
    assert_eq!(v["lifecyclePolicyText"], POLICY);
    assert!(v.get("lastEvaluatedAt").is_none(), "{v}");
    for (body, needle) in [
        (
            json!({"repositoryName": "team/app", "lifecyclePolicyText": "{\"rules\":[]}"}),
            "greater than or equal to 100",
        ),
        (
            json!({"repositoryName": "team/app", "lifecyclePolicyText": POLICY.replace("untagged", "tagged")}),
            "Lifecycle policy validation failure",
        ),
        (json!({"repositoryName": "team/app"}), "lifecyclePolicyText"),
        (
            json!({"repositoryName": "Team", "lifecyclePolicyText": POLICY}),
            "repositoryName",
        ),
    ] {
        let (s, v) = call(&env, &env.root, "PutLifecyclePolicy", body).await;
        assert_eq!(
            (s, err(&v)),
            (StatusCode::BAD_REQUEST, "InvalidParameterException"),
            "{v}"
        );
        assert!(v["message"].as_str().unwrap().contains(needle), "{v}");
    }
    // Alice may read but not write.
    let (_, v) = call(
        &env,
        &env.alice,
        "PutLifecyclePolicy",
        json!({"repositoryName": "team/app", "lifecyclePolicyText": POLICY}),
    )
    .await;
    assert_eq!(err(&v), "AccessDeniedException");
    let (_, v) = call(
        &env,
        &env.alice,
        "StartLifecyclePolicyPreview",
        json!({"repositoryName": "team/app"}),
    )
    .await;
    assert_eq!(err(&v), "AccessDeniedException");

    // No preview yet.
    let (_, v) = call(
        &env,
        &env.root,
        "GetLifecyclePolicyPreview",
        json!({"repositoryName": "team/app"}),
    )
    .await;
    assert_eq!(err(&v), "LifecyclePolicyPreviewNotFoundException");

    // A run in progress refuses another and shows no results yet.
    let started = env
        .lifecycle
        .store()
        .start_preview(ACCOUNT, &repo, POLICY, env.lifecycle.now_ms())
        .await
        .unwrap();
    let (_, v) = call(
        &env,
        &env.root,
        "StartLifecyclePolicyPreview",
        json!({"repositoryName": "team/app"}),
    )
    .await;
    assert_eq!(err(&v), "LifecyclePolicyPreviewInProgressException", "{v}");
    let (_, v) = call(
        &env,
        &env.root,
        "GetLifecyclePolicyPreview",
        json!({"repositoryName": "team/app"}),
    )
    .await;
    assert_eq!(v["status"], "IN_PROGRESS");
    assert_eq!(v["previewResults"], json!([]));
    assert!(v.get("summary").is_none());
    let berth_meta::lifecycle::StartPreview::Started { generation } = started else {
        panic!()
    };
    env.lifecycle
        .compute_preview(&repo, generation, POLICY)
        .await;

    // A complete preview: three of the four untagged images, oldest first, in pages.
    let v = wait_complete(&env, "team/app").await;
    assert_eq!(v["status"], "COMPLETE");
    assert_eq!(
        v["summary"],
        json!({"expiringImageTotalCount": 3, "transitioningImageTotalCounts": []})
    );
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut body = json!({"repositoryName": "team/app", "maxResults": 2});
        if let Some(t) = &token {
            body["nextToken"] = json!(t);
        }
        let (s, v) = call(&env, &env.alice, "GetLifecyclePolicyPreview", body).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        for r in v["previewResults"].as_array().unwrap() {
            assert_eq!(r["action"], json!({"type": "EXPIRE"}));
            assert_eq!(r["appliedRulePriority"], 1);
            assert_eq!(r["storageClass"], "STANDARD");
            assert_eq!(r["imageTags"], json!([]));
            assert!(r["imagePushedAt"].as_f64().unwrap() > 1.6e9);
            seen.push(r["imageDigest"].as_str().unwrap().to_string());
        }
        match v.get("nextToken").and_then(|t| t.as_str()) {
            Some(t) => token = Some(t.to_string()),
            None => break,
        }
    }
    let expected: Vec<String> = untagged[..3].iter().map(|d| d.to_string()).collect();
    assert_eq!(seen, expected);
    let (_, v) = call(
        &env,
        &env.root,
        "GetLifecyclePolicyPreview",
        json!({"repositoryName": "team/app", "filter": {"tagStatus": "TAGGED"}}),
    )
    .await;
    assert_eq!(v["previewResults"], json!([]));
    let (_, v) = call(
        &env,
        &env.root,
        "GetLifecyclePolicyPreview",
        json!({"repositoryName": "team/app", "imageIds": [{"imageDigest": expected[1]}]}),
    )
    .await;
    assert_eq!(v["previewResults"].as_array().unwrap().len(), 1);
    for body in [
        json!({"repositoryName": "team/app", "maxResults": 0}),
        json!({"repositoryName": "team/app", "maxResults": 101}),
        json!({"repositoryName": "team/app", "filter": {"tagStatus": "SOME"}}),
        json!({"repositoryName": "team/app", "nextToken": "junk"}),
        json!({"repositoryName": "team/app", "imageIds": []}),
        json!({"repositoryName": "team/app", "imageIds": [{"imageTag": "v1"}], "maxResults": 5}),
    ] {
        let (s, v) = call(&env, &env.root, "GetLifecyclePolicyPreview", body).await;
        assert_eq!(
            (s, err(&v)),
            (StatusCode::BAD_REQUEST, "InvalidParameterException"),
            "{v}"
        );
    }
    // A token of a replaced preview is refused. The new preview evaluates the request's
    // text, not the stored policy.
    let first_page = call(
        &env,
        &env.root,
        "GetLifecyclePolicyPreview",
        json!({"repositoryName": "team/app", "maxResults": 1}),
    )
    .await
    .1;
    let old_token = first_page["nextToken"].as_str().unwrap().to_string();
    let keep_two = POLICY.replace("\"countNumber\":1", "\"countNumber\":2");
    let (s, v) = call(
        &env,
        &env.root,
        "StartLifecyclePolicyPreview",
        json!({"repositoryName": "team/app", "lifecyclePolicyText": keep_two}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        v,
        json!({"registryId": ACCOUNT, "repositoryName": "team/app", "lifecyclePolicyText": keep_two, "status": "IN_PROGRESS"})
    );
    let v = wait_complete(&env, "team/app").await;
    assert_eq!(v["summary"]["expiringImageTotalCount"], 2);
    assert_eq!(v["lifecyclePolicyText"], keep_two);
    let (_, v) = call(
        &env,
        &env.root,
        "GetLifecyclePolicyPreview",
        json!({"repositoryName": "team/app", "nextToken": old_token}),
    )
    .await;
    assert_eq!(err(&v), "InvalidParameterException");

    // Execution records lastEvaluatedAt; Delete returns the policy with it.
    let report = env.lifecycle.execute(&repo).await.unwrap();
    assert_eq!(report.expired.len(), 3);
    let (_, v) = call(
        &env,
        &env.root,
        "GetLifecyclePolicy",
        json!({"repositoryName": "team/app"}),
    )
    .await;
    let at = v["lastEvaluatedAt"].as_f64().unwrap();
    assert!(
        (at * 1000.0 - report.evaluated_at_ms as f64).abs() < 1.0,
        "{v}"
    );
    let (_, v) = call(
        &env,
        &env.root,
        "DeleteLifecyclePolicy",
        json!({"repositoryName": "team/app"}),
    )
    .await;
    assert_eq!(v["lifecyclePolicyText"], POLICY);
    assert_eq!(v["lastEvaluatedAt"].as_f64(), Some(at));
    for action in [
        "GetLifecyclePolicy",
        "DeleteLifecyclePolicy",
        "StartLifecyclePolicyPreview",
    ] {
        let (_, v) = call(
            &env,
            &env.root,
            action,
            json!({"repositoryName": "team/app"}),
        )
        .await;
        assert_eq!(err(&v), "LifecyclePolicyNotFoundException", "{action}: {v}");
        assert_eq!(
            v["message"],
            format!("Lifecycle policy does not exist for the repository with name 'team/app' in the registry with id '{ACCOUNT}'")
        );
    }
}

#[tokio::test]
async fn without_a_lifecycle_engine_the_actions_are_unsupported() {
    let env = env(false).await;
    let (s, v) = call(
        &env,
        &env.root,
        "GetLifecyclePolicy",
        json!({"repositoryName": "team/app"}),
    )
    .await;
    assert_eq!(
        (s, err(&v)),
        (StatusCode::BAD_REQUEST, "UnsupportedOperationException")
    );
}

/// A preview whose run was lost (the server stopped during it) reads as FAILED once it is
/// older than the staleness limit, so waiters stop, and a new preview may start.
#[tokio::test]
async fn a_lost_preview_run_reads_as_failed_and_can_be_replaced() {
    let env = env(true).await;
    let repo = RepositoryName::new(ACCOUNT.parse().unwrap(), "team/lost").unwrap();
    push(&env.registry, &repo, "one", None).await;
    let long_ago = env.lifecycle.now_ms() - berth_meta::lifecycle::PREVIEW_STALE_MS - 1;
    env.lifecycle
        .store()
        .start_preview(ACCOUNT, &repo, POLICY, long_ago)
        .await
        .unwrap();
    let (_, v) = call(
        &env,
        &env.root,
        "GetLifecyclePolicyPreview",
        json!({"repositoryName": "team/lost"}),
    )
    .await;
    assert_eq!(v["status"], "FAILED", "{v}");
    let (s, v) = call(
        &env,
        &env.root,
        "StartLifecyclePolicyPreview",
        json!({"repositoryName": "team/lost", "lifecyclePolicyText": POLICY}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let v = wait_complete(&env, "team/lost").await;
    assert_eq!(v["status"], "COMPLETE");
    assert_eq!(v["summary"]["expiringImageTotalCount"], 0);
}

/// A complete preview older than a day reads as EXPIRED, without its stale results.
#[tokio::test]
async fn a_day_old_preview_reads_as_expired() {
    let env = env(true).await;
    let repo = RepositoryName::new(ACCOUNT.parse().unwrap(), "team/old").unwrap();
    push(&env.registry, &repo, "one", None).await;
    let store = env.lifecycle.store();
    let day_ago = env.lifecycle.now_ms() - berth_meta::lifecycle::PREVIEW_RESULTS_TTL_MS;
    let berth_meta::lifecycle::StartPreview::Started { generation } = store
        .start_preview(ACCOUNT, &repo, POLICY, day_ago - 1000)
        .await
        .unwrap()
    else {
        panic!("not started");
    };
    assert!(store
        .finish_preview(
            &repo,
            generation,
            &berth_meta::lifecycle::PreviewOutcome::Complete(Vec::new()),
            day_ago,
        )
        .await
        .unwrap());
    let (s, v) = call(
        &env,
        &env.root,
        "GetLifecyclePolicyPreview",
        json!({"repositoryName": "team/old"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "EXPIRED", "{v}");
    assert!(v.get("summary").is_none(), "{v}");
    assert_eq!(v["previewResults"], json!([]));
    // A new preview shows the repository as it is now.
    let (s, v) = call(
        &env,
        &env.root,
        "StartLifecyclePolicyPreview",
        json!({"repositoryName": "team/old", "lifecyclePolicyText": POLICY}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(wait_complete(&env, "team/old").await["status"], "COMPLETE");
}
