//! [`PgMetaStore`]'s [`EcrSettingsStore`] and [`LifecycleStore`] against a real server (the
//! throwaway cluster of `berth-testkit`, a fresh database per test), calling the trait
//! methods directly. Rows of the other traits (repositories, manifests, tags, references)
//! are inserted with SQL, as those traits' writes leave them. Several pools on one
//! database stand for several nodes racing for one invariant. (The shared suites,
//! `settings_suite` and `lifecycle_suite`, need the whole `MetaStore` as well.)

use std::sync::Arc;
use std::time::Duration;

use berth_testkit::postgres::{shared, PgDatabase};
use berth_types::{Digest, RepositoryName};
use tokio::sync::Barrier;

use super::{PgDb, PgMetaStore, PgOptions};
use crate::lifecycle::*;
use crate::settings::*;
use crate::MetaError;

const ACC: &str = "111122223333";
const OTHER: &str = "444455556666";

fn database() -> PgDatabase<'static> {
    shared().create_database().unwrap()
}

/// One node: its own pool on `db`.
async fn node(db: &PgDatabase<'_>) -> PgMetaStore {
    PgMetaStore::new(PgDb::connect(&PgOptions::new(db.url())).await.unwrap())
}

fn repo(name: &str) -> RepositoryName {
    RepositoryName::from_qualified(&format!("{ACC}/{name}")).unwrap()
}

fn rtags(pairs: &[(&str, &str)]) -> Vec<ResourceTag> {
    pairs
        .iter()
        .map(|(k, v)| ResourceTag::new(*k, *v))
        .collect()
}

/// Runs one statement (a test shortcut for rows other traits write).
async fn sql(
    s: &PgMetaStore,
    statement: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) {
    let c = s.db.client().await.unwrap();
    c.execute(statement, params).await.unwrap();
}

async fn count(s: &PgMetaStore, query: &str) -> i64 {
    let c = s.db.client().await.unwrap();
    c.query_one(query, &[]).await.unwrap().get(0)
}

/// Creates repository `name` of [`ACC`] as `create_repository` leaves it; returns its id.
async fn create_repo(s: &PgMetaStore, name: &str) -> i64 {
    let c = s.db.client().await.unwrap();
    c.query_one(
        "INSERT INTO repositories (name, created_ms) VALUES ($1, 1) RETURNING id",
        &[&format!("{ACC}/{name}")],
    )
    .await
    .unwrap()
    .get(0)
}

/// Stores an image manifest (`seed` makes its digest) pushed at `pushed`, `tags` on it.
async fn image(s: &PgMetaStore, id: i64, seed: &str, pushed: i64, tags: &[&str]) -> Digest {
    let d = Digest::sha256_of(seed.as_bytes());
    sql(
        s,
        "INSERT INTO manifests (repo_id, digest, media_type, size, body, pushed_ms, image_size)
         VALUES ($1, $2, 'application/vnd.oci.image.manifest.v1+json', 2, '\\x7b7d', $3, 100)",
        &[&id, &d.to_string(), &pushed],
    )
    .await;
    for t in tags {
        sql(
            s,
            "INSERT INTO tags (repo_id, name, digest, updated_ms) VALUES ($1, $2, $3, 1)",
            &[&id, t, &d.to_string()],
        )
        .await;
    }
    d
}

async fn child_of(s: &PgMetaStore, id: i64, index: &Digest, child: &Digest) {
    sql(
        s,
        "INSERT INTO manifest_refs (repo_id, manifest, kind, target) VALUES ($1, $2, 1, $3)",
        &[&id, &index.to_string(), &child.to_string()],
    )
    .await;
}

fn expiry(d: &Digest, tags: &[&str]) -> Expiry {
    Expiry {
        digest: d.clone(),
        expected_tags: tags.iter().map(|t| t.to_string()).collect(),
        rule_priority: 2,
        expected_status: "ACTIVE".into(),
        size: 100,
        pushed_ms: 10,
        at_ms: 1_000,
    }
}

/// Runs `op(node index, node)` on every node at once and returns the results in order.
async fn on_every_node<T, F, Fut>(nodes: &[Arc<PgMetaStore>], op: F) -> Vec<T>
where
    T: Send + 'static,
    F: Fn(usize, Arc<PgMetaStore>) -> Fut,
    Fut: std::future::Future<Output = T> + Send + 'static,
{
    let start = Arc::new(Barrier::new(nodes.len()));
    let tasks: Vec<_> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let (start, fut) = (start.clone(), op(i, n.clone()));
            tokio::spawn(async move {
                start.wait().await;
                fut.await
            })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

async fn nodes(db: &PgDatabase<'_>, n: usize) -> Vec<Arc<PgMetaStore>> {
    let mut v = Vec::new();
    for _ in 0..n {
        v.push(Arc::new(node(db).await));
    }
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_and_resource_tags_of_repositories_and_registries() {
    let db = database();
    let s = node(&db).await;
    assert!(matches!(
        s.set_repository_policy(ACC, "p/a", "{}", 1).await,
        Err(SettingsError::RepositoryNotFound(n)) if n == "p/a"
    ));
    create_repo(&s, "p/a").await;
    assert!(matches!(
        s.delete_repository_policy(ACC, "p/a").await,
        Err(SettingsError::RepositoryPolicyNotFound(n)) if n == "p/a"
    ));
    s.set_repository_policy(ACC, "p/a", "one", 2).await.unwrap();
    s.set_repository_policy(ACC, "p/a", "two", 3).await.unwrap();
    assert_eq!(
        s.repository_policy(ACC, "p/a").await.unwrap().as_deref(),
        Some("two")
    );
    assert!(s.repository_policy(OTHER, "p/a").await.unwrap().is_none());
    assert_eq!(s.delete_repository_policy(ACC, "p/a").await.unwrap(), "two");
    assert!(s.repository_policy(ACC, "p/a").await.unwrap().is_none());

    assert!(matches!(
        s.delete_registry_policy(ACC).await,
        Err(SettingsError::RegistryPolicyNotFound(a)) if a == ACC
    ));
    s.put_registry_policy(ACC, "r1", 1).await.unwrap();
    s.put_registry_policy(ACC, "r2", 2).await.unwrap();
    assert_eq!(s.registry_policy(ACC).await.unwrap().as_deref(), Some("r2"));
    assert_eq!(s.delete_registry_policy(ACC).await.unwrap(), "r2");

    assert!(matches!(
        s.repository_tags(ACC, "missing").await,
        Err(SettingsError::RepositoryNotFound(_))
    ));
    assert!(s.repository_tags(ACC, "p/a").await.unwrap().is_empty());
    // Within one call the last value of a key wins; keys are listed in order.
    s.tag_repository(
        ACC,
        "p/a",
        &rtags(&[("team", "x"), ("env", "dev"), ("env", "qa")]),
    )
    .await
    .unwrap();
    s.tag_repository(ACC, "p/a", &rtags(&[("env", "prod")]))
        .await
        .unwrap();
    assert_eq!(
        s.repository_tags(ACC, "p/a").await.unwrap(),
        rtags(&[("env", "prod"), ("team", "x")])
    );
    let many: Vec<ResourceTag> = (0..MAX_TAGS_PER_RESOURCE)
        .map(|i| ResourceTag::new(format!("k{i:02}"), "v"))
        .collect();
    assert!(matches!(
        s.tag_repository(ACC, "p/a", &many).await,
        Err(SettingsError::TooManyTags { count, .. }) if count == MAX_TAGS_PER_RESOURCE + 2
    ));
    assert_eq!(s.repository_tags(ACC, "p/a").await.unwrap().len(), 2);
    s.untag_repository(ACC, "p/a", &["team".into(), "env".into(), "absent".into()])
        .await
        .unwrap();
    s.tag_repository(ACC, "p/a", &many).await.unwrap();
    assert_eq!(
        s.repository_tags(ACC, "p/a").await.unwrap().len(),
        MAX_TAGS_PER_RESOURCE
    );
    s.account_setting(ACC, "BLOB_MOUNTING").await.unwrap();
    s.put_account_setting(ACC, "BLOB_MOUNTING", "ENABLED", 1)
        .await
        .unwrap();
    s.put_account_setting(ACC, "BLOB_MOUNTING", "DISABLED", 2)
        .await
        .unwrap();
    assert_eq!(
        s.account_setting(ACC, "BLOB_MOUNTING")
            .await
            .unwrap()
            .as_deref(),
        Some("DISABLED")
    );
    assert!(s
        .account_setting(OTHER, "BLOB_MOUNTING")
        .await
        .unwrap()
        .is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repositories_are_created_with_their_settings_or_not_at_all() {
    let db = database();
    let s = node(&db).await;
    let new = NewRepository {
        settings: crate::RepositorySettings {
            image_tag_mutability: "IMMUTABLE_WITH_EXCLUSION".into(),
            image_tag_mutability_exclusion_filters: vec!["dev-*".into()],
        },
        tags: rtags(&[("a", "1")]),
        policy: Some("p".into()),
        lifecycle_policy: Some("{\"rules\":[]}".into()),
    };
    let rec = s
        .create_repository_with(ACC, &repo("c/a"), &new, 7)
        .await
        .unwrap();
    assert_eq!(rec.name, "c/a");
    assert!(rec.created_by_api);
    assert_eq!(
        rec.image_tag_mutability_exclusion_filters,
        vec!["dev-*".to_string()]
    );
    assert_eq!(
        s.repository_tags(ACC, "c/a").await.unwrap(),
        rtags(&[("a", "1")])
    );
    assert_eq!(
        s.repository_policy(ACC, "c/a").await.unwrap().as_deref(),
        Some("p")
    );
    let lp = s.lifecycle_policy(&repo("c/a")).await.unwrap().unwrap();
    assert_eq!(
        (lp.text.as_str(), lp.updated_ms, lp.last_evaluated_ms),
        ("{\"rules\":[]}", 7, None)
    );
    assert!(matches!(
        s.create_repository_with(ACC, &repo("c/a"), &NewRepository::default(), 8).await,
        Err(SettingsError::RepositoryAlreadyExists(n)) if n == "c/a"
    ));
    let too_many = NewRepository {
        tags: (0..=MAX_TAGS_PER_RESOURCE)
            .map(|i| ResourceTag::new(format!("k{i}"), ""))
            .collect(),
        ..Default::default()
    };
    assert!(matches!(
        s.create_repository_with(ACC, &repo("c/b"), &too_many, 8)
            .await,
        Err(SettingsError::TooManyTags { .. })
    ));
    assert_eq!(
        count(
            &s,
            &format!("SELECT COUNT(*) FROM repositories WHERE name = '{ACC}/c/b'")
        )
        .await,
        0
    );

    // Provisioning on push: the longest matching prefix for the scenario.
    use AppliedFor::*;
    assert_eq!(
        s.provision_repository(ACC, &repo("team/app"), CreateOnPush, 30)
            .await
            .unwrap(),
        Provisioned::NoTemplate
    );
    let mut team = CreationTemplate::new("team", vec![CreateOnPush], 10);
    team.image_tag_mutability = "IMMUTABLE".into();
    team.repository_policy = Some("team policy".into());
    team.resource_tags = rtags(&[("owner", "team")]);
    team.lifecycle_policy = Some("lc".into());
    s.create_template(ACC, &team).await.unwrap();
    s.create_template(
        ACC,
        &CreationTemplate::new("team/app", vec![Replication], 10),
    )
    .await
    .unwrap();
    s.create_template(
        OTHER,
        &CreationTemplate::new("ROOT", vec![CreateOnPush], 10),
    )
    .await
    .unwrap();
    match s
        .provision_repository(ACC, &repo("team/app"), CreateOnPush, 30)
        .await
        .unwrap()
    {
        Provisioned::Created {
            template,
            repository,
        } => {
            assert_eq!(template, "team");
            assert_eq!(repository.image_tag_mutability, "IMMUTABLE");
            assert!(!repository.created_by_api);
            assert_eq!(repository.created_ms, 30);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        s.repository_tags(ACC, "team/app").await.unwrap(),
        rtags(&[("owner", "team")])
    );
    assert_eq!(
        s.repository_policy(ACC, "team/app")
            .await
            .unwrap()
            .as_deref(),
        Some("team policy")
    );
    assert_eq!(
        s.lifecycle_policy(&repo("team/app"))
            .await
            .unwrap()
            .unwrap()
            .text,
        "lc"
    );
    assert_eq!(
        s.provision_repository(ACC, &repo("team/app"), CreateOnPush, 31)
            .await
            .unwrap(),
        Provisioned::Existing
    );
    assert_eq!(
        s.provision_repository(ACC, &repo("other"), CreateOnPush, 31)
            .await
            .unwrap(),
        Provisioned::NoTemplate
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn templates_round_trip_page_update_and_delete() {
    let db = database();
    let s = node(&db).await;
    use AppliedFor::*;
    let mut full = CreationTemplate::new("tpl/full", vec![CreateOnPush, Replication], 10);
    full.description = Some("everything".into());
    full.image_tag_mutability = "IMMUTABLE_WITH_EXCLUSION".into();
    full.image_tag_mutability_exclusion_filters = vec!["latest".into(), "dev-*".into()];
    full.repository_policy = Some("{\"Version\":\"2012-10-17\"}".into());
    full.lifecycle_policy = Some("  {\"rules\": []}\n".into());
    full.resource_tags = rtags(&[("k", "v"), ("e", "")]);
    full.encryption_type = Some("KMS".into());
    full.kms_key = Some("arn:aws:kms:us-east-1:111122223333:key/abc".into());
    full.custom_role_arn = Some("arn:aws:iam::111122223333:role/r".into());
    s.create_template(ACC, &full).await.unwrap();
    s.create_template(ACC, &CreationTemplate::new("ROOT", vec![CreateOnPush], 10))
        .await
        .unwrap();
    s.create_template(
        ACC,
        &CreationTemplate::new("tpl/a", vec![PullThroughCache], 10),
    )
    .await
    .unwrap();
    assert!(matches!(
        s.create_template(ACC, &CreationTemplate::new("tpl/a", vec![CreateOnPush], 11)).await,
        Err(SettingsError::TemplateAlreadyExists(p)) if p == "tpl/a"
    ));
    let all = s.describe_templates(ACC, None, None, 100).await.unwrap();
    let prefixes: Vec<&str> = all.iter().map(|t| t.prefix.as_str()).collect();
    assert_eq!(prefixes, ["ROOT", "tpl/a", "tpl/full"]);
    assert_eq!(all[2], full);
    let page = s
        .describe_templates(ACC, None, Some("ROOT"), 1)
        .await
        .unwrap();
    assert_eq!(page[0].prefix, "tpl/a");
    let wanted = vec!["tpl/full".to_string(), "nope".into(), "ROOT".into()];
    let some = s
        .describe_templates(ACC, Some(&wanted), None, 1)
        .await
        .unwrap();
    assert_eq!(
        some.iter().map(|t| t.prefix.as_str()).collect::<Vec<_>>(),
        ["ROOT"]
    );
    let updated = s
        .update_template(
            ACC,
            "tpl/a",
            &TemplateUpdate {
                description: Some("now".into()),
                encryption: Some(("AES256".into(), None)),
                ..Default::default()
            },
            20,
        )
        .await
        .unwrap();
    assert_eq!((updated.created_ms, updated.updated_ms), (10, 20));
    assert_eq!(updated.applied_for, vec![PullThroughCache]);
    assert_eq!(
        s.describe_templates(ACC, Some(&["tpl/a".to_string()]), None, 5)
            .await
            .unwrap(),
        vec![updated]
    );
    assert!(matches!(
        s.update_template(ACC, "missing", &TemplateUpdate::default(), 1).await,
        Err(SettingsError::TemplateNotFound(p)) if p == "missing"
    ));
    assert_eq!(s.delete_template(ACC, "tpl/full").await.unwrap(), full);
    assert!(matches!(
        s.delete_template(ACC, "tpl/full").await,
        Err(SettingsError::TemplateNotFound(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_policies_keep_their_evaluation_for_the_same_text() {
    let db = database();
    let s = node(&db).await;
    let r = repo("lc/p");
    assert!(matches!(
        s.put_lifecycle_policy(ACC, &r, "a", 1).await,
        Err(MetaError::RepositoryNotFound(n)) if n == "lc/p"
    ));
    create_repo(&s, "lc/p").await;
    s.put_lifecycle_policy(ACC, &r, "a", 1).await.unwrap();
    assert!(s.mark_lifecycle_evaluated(&r, "a", 5).await.unwrap());
    assert!(!s.mark_lifecycle_evaluated(&r, "other", 6).await.unwrap());
    s.put_lifecycle_policy(ACC, &r, "a", 7).await.unwrap();
    let p = s.lifecycle_policy(&r).await.unwrap().unwrap();
    assert_eq!((p.updated_ms, p.last_evaluated_ms), (7, Some(5)));
    s.put_lifecycle_policy(ACC, &r, "b", 8).await.unwrap();
    assert_eq!(
        s.lifecycle_policy(&r)
            .await
            .unwrap()
            .unwrap()
            .last_evaluated_ms,
        None
    );
    assert_eq!(
        s.repositories_with_lifecycle_policies().await.unwrap(),
        vec![r.clone()]
    );
    assert_eq!(
        s.delete_lifecycle_policy(&r).await.unwrap().unwrap().text,
        "b"
    );
    assert!(s.delete_lifecycle_policy(&r).await.unwrap().is_none());
    assert!(s
        .repositories_with_lifecycle_policies()
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn facts_come_in_one_query_with_tags_parents_pulls_and_status() {
    let db = database();
    let s = node(&db).await;
    assert!(s.image_facts(&repo("f/none")).await.unwrap().is_none());
    let id = create_repo(&s, "f/a").await;
    assert_eq!(s.image_facts(&repo("f/a")).await.unwrap(), Some(vec![]));
    let a = image(&s, id, "a", 10, &["v2", "latest", "v1"]).await;
    let idx = image(&s, id, "index", 20, &["idx"]).await;
    child_of(&s, id, &idx, &a).await;
    sql(
        &s,
        "INSERT INTO image_pulls (repo_id, digest, last_pull_ms) VALUES ($1, $2, 77)",
        &[&id, &a.to_string()],
    )
    .await;
    sql(
        &s,
        "INSERT INTO image_storage (repo_id, digest, status, archived_ms) VALUES ($1, $2, 'ARCHIVED', 88)",
        &[&id, &idx.to_string()],
    )
    .await;
    let facts = s.image_facts(&repo("f/a")).await.unwrap().unwrap();
    let mut digests = vec![a.to_string(), idx.to_string()];
    digests.sort();
    assert_eq!(
        facts.iter().map(|f| f.digest.clone()).collect::<Vec<_>>(),
        digests
    );
    let fa = facts.iter().find(|f| f.digest == a.to_string()).unwrap();
    assert_eq!(fa.tags, vec!["latest", "v1", "v2"]);
    assert_eq!(fa.parents, vec![idx.to_string()]);
    assert_eq!(
        (fa.last_pull_ms, fa.size, fa.pushed_ms),
        (Some(77), 100, 10)
    );
    assert_eq!((fa.status.as_str(), fa.archived_ms), ("ACTIVE", None));
    let fi = facts.iter().find(|f| f.digest == idx.to_string()).unwrap();
    assert_eq!((fi.status.as_str(), fi.archived_ms), ("ARCHIVED", Some(88)));
    assert!(fi.parents.is_empty());
}

fn result(position: i64, digest: &str, tags: &[&str], action: &str) -> PreviewResultRecord {
    PreviewResultRecord {
        position,
        digest: digest.into(),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        pushed_ms: position * 10,
        action: action.into(),
        target_storage_class: (action == "TRANSITION").then(|| "ARCHIVE".to_string()),
        rule_priority: 1,
        storage_class: "STANDARD".into(),
        size: 5,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn previews_replace_each_other_by_generation() {
    let db = database();
    let s = node(&db).await;
    let r = repo("pv/a");
    assert!(matches!(
        s.start_preview(ACC, &r, "p", 1).await,
        Err(MetaError::RepositoryNotFound(_))
    ));
    create_repo(&s, "pv/a").await;
    let StartPreview::Started { generation: g1 } =
        s.start_preview(ACC, &r, "p", 100).await.unwrap()
    else {
        panic!("not started")
    };
    assert_eq!(
        s.start_preview(ACC, &r, "q", 200).await.unwrap(),
        StartPreview::InProgress
    );
    let rows = vec![
        result(1, "sha256:a", &["v1"], "EXPIRE"),
        result(2, "sha256:b", &[], "EXPIRE"),
        result(3, "sha256:c", &["x"], "TRANSITION"),
    ];
    assert!(s
        .finish_preview(&r, g1, &PreviewOutcome::Complete(rows.clone()), 300)
        .await
        .unwrap());
    assert!(!s
        .finish_preview(&r, g1, &PreviewOutcome::Failed("late".into()), 301)
        .await
        .unwrap());
    let p = s.preview(&r).await.unwrap().unwrap();
    assert_eq!(p.status, PreviewStatus::Complete);
    assert_eq!(
        (p.expiring_count, p.transitioning_count, p.finished_ms),
        (2, 1, Some(300))
    );
    assert_eq!(
        s.preview_results(&r, PreviewTagFilter::Any, None, 10)
            .await
            .unwrap(),
        rows
    );
    let tagged = s
        .preview_results(&r, PreviewTagFilter::Tagged, Some(1), 10)
        .await
        .unwrap();
    assert_eq!(tagged, vec![rows[2].clone()]);
    let untagged = s
        .preview_results(&r, PreviewTagFilter::Untagged, None, 1)
        .await
        .unwrap();
    assert_eq!(untagged, vec![rows[1].clone()]);
    let StartPreview::Started { generation: g2 } =
        s.start_preview(ACC, &r, "q", 400).await.unwrap()
    else {
        panic!("not started")
    };
    assert!(g2 > g1);
    assert!(s
        .preview_results(&r, PreviewTagFilter::Any, None, 10)
        .await
        .unwrap()
        .is_empty());
    let StartPreview::Started { generation: g3 } = s
        .start_preview(ACC, &r, "z", 400 + PREVIEW_STALE_MS)
        .await
        .unwrap()
    else {
        panic!("a stale run blocked a new one")
    };
    assert!(!s
        .finish_preview(&r, g2, &PreviewOutcome::Complete(rows), 500)
        .await
        .unwrap());
    assert!(s
        .finish_preview(&r, g3, &PreviewOutcome::Failed("boom".into()), 600)
        .await
        .unwrap());
    let p = s.preview(&r).await.unwrap().unwrap();
    assert_eq!(
        (p.status, p.failure.as_deref(), p.policy_text.as_str()),
        (PreviewStatus::Failed, Some("boom"), "z")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_deletes_only_what_still_matches_and_logs_it() {
    let db = database();
    let s = node(&db).await;
    let r = repo("ex/a");
    let id = create_repo(&s, "ex/a").await;
    let a = image(&s, id, "a", 10, &["old"]).await;
    let child = image(&s, id, "child", 10, &[]).await;
    let idx = image(&s, id, "idx", 10, &["idx"]).await;
    child_of(&s, id, &idx, &child).await;
    assert_eq!(
        s.expire_image(&r, &expiry(&a, &[])).await.unwrap(),
        ExpireOutcome::Changed
    );
    assert_eq!(
        s.expire_image(
            &r,
            &Expiry {
                expected_status: "ARCHIVED".into(),
                ..expiry(&a, &["old"])
            }
        )
        .await
        .unwrap(),
        ExpireOutcome::Changed
    );
    assert_eq!(
        s.expire_image(&r, &expiry(&child, &[])).await.unwrap(),
        ExpireOutcome::ReferencedByIndex(idx.to_string())
    );
    let events_before = count(&s, "SELECT COUNT(*) FROM events").await;
    let ExpireOutcome::Expired { event_id } =
        s.expire_image(&r, &expiry(&a, &["old"])).await.unwrap()
    else {
        panic!("not expired")
    };
    let c = s.db.client().await.unwrap();
    let kinds: Vec<String> = c
        .query("SELECT kind FROM events ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .skip(events_before as usize)
        .map(|r| r.get(0))
        .collect();
    assert_eq!(kinds, ["tag.deleted", "manifest.deleted"]);
    assert_eq!(
        s.expire_image(&r, &expiry(&a, &["old"])).await.unwrap(),
        ExpireOutcome::Gone
    );
    assert_eq!(
        s.expire_image(&repo("ex/none"), &expiry(&a, &[]))
            .await
            .unwrap(),
        ExpireOutcome::Gone
    );
    // A batch in order: the child is still held, then its index goes, then it is free.
    let out = s
        .expire_images(
            &r,
            &[
                expiry(&child, &[]),
                expiry(&idx, &["idx"]),
                expiry(&child, &[]),
            ],
        )
        .await
        .unwrap();
    assert!(matches!(out[0], ExpireOutcome::ReferencedByIndex(_)));
    assert!(matches!(out[1], ExpireOutcome::Expired { .. }));
    assert!(matches!(out[2], ExpireOutcome::Expired { .. }));
    let t = s.log_transition(&r, &expiry(&a, &["t"])).await.unwrap();
    let events = s.lifecycle_events(Some(&r), 0, 10).await.unwrap();
    assert_eq!(events.len(), 4);
    assert_eq!(events[0].id, event_id);
    assert_eq!(
        (
            events[0].tags.clone(),
            events[0].rule_priority,
            events[0].action.as_str()
        ),
        (vec!["old".to_string()], 2, "EXPIRE")
    );
    assert_eq!((events[3].id, events[3].action.as_str()), (t, "TRANSITION"));
    assert_eq!(
        s.lifecycle_events(None, event_id, 2).await.unwrap().len(),
        2
    );
    assert!(s
        .lifecycle_events(Some(&repo("ex/none")), 0, 10)
        .await
        .unwrap()
        .is_empty());
    let recent = s.recent_lifecycle_events(None, 2).await.unwrap();
    assert_eq!(
        recent.iter().map(|e| e.id).collect::<Vec<_>>(),
        vec![t, events[2].id]
    );
    assert_eq!(count(&s, "SELECT COUNT(*) FROM manifests").await, 0);
}

const NODES: usize = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nodes_racing_keep_the_tag_limit_template_prefixes_and_one_creation() {
    let db = database();
    let nodes = nodes(&db, NODES).await;
    let s = nodes[0].clone();
    create_repo(&s, "race/tags").await;
    // Each node adds 20 new keys: at most two of four fit under the limit of 50.
    let tagged = on_every_node(&nodes, |i, n| async move {
        let tags: Vec<ResourceTag> = (0..20)
            .map(|k| ResourceTag::new(format!("n{i}-{k:02}"), "v"))
            .collect();
        n.tag_repository(ACC, "race/tags", &tags).await
    })
    .await;
    let ok = tagged.iter().filter(|r| r.is_ok()).count();
    assert_eq!(ok, 2, "{tagged:?}");
    assert!(tagged
        .iter()
        .all(|r| matches!(r, Ok(()) | Err(SettingsError::TooManyTags { .. }))));
    assert_eq!(
        s.repository_tags(ACC, "race/tags").await.unwrap().len(),
        20 * ok
    );

    let created = on_every_node(&nodes, |_, n| async move {
        n.create_template(
            ACC,
            &CreationTemplate::new("race", vec![AppliedFor::CreateOnPush], 1),
        )
        .await
    })
    .await;
    assert_eq!(
        created.iter().filter(|r| r.is_ok()).count(),
        1,
        "{created:?}"
    );
    assert!(created
        .iter()
        .all(|r| matches!(r, Ok(()) | Err(SettingsError::TemplateAlreadyExists(_)))));

    let mut tpl = CreationTemplate::new("prov", vec![AppliedFor::CreateOnPush], 1);
    tpl.resource_tags = rtags(&[("owner", "team")]);
    tpl.repository_policy = Some("p".into());
    s.create_template(ACC, &tpl).await.unwrap();
    let provisioned = on_every_node(&nodes, |_, n| async move {
        n.provision_repository(ACC, &repo("prov/app"), AppliedFor::CreateOnPush, 5)
            .await
            .unwrap()
    })
    .await;
    let made = provisioned
        .iter()
        .filter(|p| matches!(p, Provisioned::Created { .. }))
        .count();
    assert_eq!(made, 1, "{provisioned:?}");
    assert!(provisioned
        .iter()
        .all(|p| matches!(p, Provisioned::Created { .. } | Provisioned::Existing)));
    assert_eq!(
        s.repository_tags(ACC, "prov/app").await.unwrap(),
        rtags(&[("owner", "team")])
    );
    let with = on_every_node(&nodes, |_, n| async move {
        n.create_repository_with(ACC, &repo("made/once"), &NewRepository::default(), 5)
            .await
    })
    .await;
    assert_eq!(with.iter().filter(|r| r.is_ok()).count(), 1, "{with:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nodes_racing_start_one_preview_and_expire_an_image_once() {
    let db = database();
    let nodes = nodes(&db, NODES).await;
    let s = nodes[0].clone();
    let id = create_repo(&s, "race/lc").await;
    let started = on_every_node(&nodes, |_, n| async move {
        n.start_preview(ACC, &repo("race/lc"), "p", 100)
            .await
            .unwrap()
    })
    .await;
    let generations: Vec<i64> = started
        .iter()
        .filter_map(|s| match s {
            StartPreview::Started { generation } => Some(*generation),
            StartPreview::InProgress => None,
        })
        .collect();
    assert_eq!(generations, vec![1], "{started:?}");
    // Every node finishing the one run at once: it is written once.
    let finished = on_every_node(&nodes, |i, n| async move {
        let rows = vec![result(1, &format!("sha256:{i}"), &[], "EXPIRE")];
        n.finish_preview(&repo("race/lc"), 1, &PreviewOutcome::Complete(rows), 200)
            .await
            .unwrap()
    })
    .await;
    assert_eq!(finished.iter().filter(|f| **f).count(), 1, "{finished:?}");
    assert_eq!(
        s.preview_results(&repo("race/lc"), PreviewTagFilter::Any, None, 10)
            .await
            .unwrap()
            .len(),
        1
    );

    let d = image(&s, id, "once", 10, &["t"]).await;
    let expired = on_every_node(&nodes, |_, n| {
        let d = d.clone();
        async move {
            n.expire_image(&repo("race/lc"), &expiry(&d, &["t"]))
                .await
                .unwrap()
        }
    })
    .await;
    assert_eq!(
        expired
            .iter()
            .filter(|e| matches!(e, ExpireOutcome::Expired { .. }))
            .count(),
        1,
        "{expired:?}"
    );
    assert!(expired
        .iter()
        .all(|e| matches!(e, ExpireOutcome::Expired { .. } | ExpireOutcome::Gone)));
    assert_eq!(count(&s, "SELECT COUNT(*) FROM lifecycle_events").await, 1);
    assert_eq!(
        count(
            &s,
            "SELECT COUNT(*) FROM events WHERE kind = 'manifest.deleted'"
        )
        .await,
        1
    );
}

/// Another node's uncommitted write to the image being expired: the expiry waits for it and
/// then sees it, so an image retagged (or untagged) meanwhile is left alone and the tag
/// survives where it now points.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_expiry_sees_a_tag_moved_or_added_by_another_node_and_leaves_the_image() {
    let db = database();
    let (a, b) = (Arc::new(node(&db).await), node(&db).await);
    let id = create_repo(&a, "mv/a").await;
    let x = image(&a, id, "x", 10, &["t"]).await;
    let y = image(&a, id, "y", 10, &[]).await;
    let (x_text, y_text) = (x.to_string(), y.to_string());

    for (what, statement) in [
        (
            "move",
            "UPDATE tags SET digest = $3 WHERE repo_id = $1 AND name = 't' AND digest = $2",
        ),
        (
            "add",
            "INSERT INTO tags (repo_id, name, digest, updated_ms) VALUES ($1, 'u', $2, 2)",
        ),
    ] {
        let mut other = b.db.client().await.unwrap();
        let tx = other.transaction().await.unwrap();
        let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = match what {
            "move" => vec![&id, &x_text, &y_text],
            _ => vec![&id, &x_text],
        };
        assert_eq!(tx.execute(statement, &params).await.unwrap(), 1);
        let expecting: Vec<&str> = if what == "move" { vec!["t"] } else { vec![] };
        let expire = {
            let (a, e) = (a.clone(), expiry(&x, &expecting));
            tokio::spawn(async move { a.expire_image(&repo("mv/a"), &e).await.unwrap() })
        };
        // Gives the expiry time to reach the row lock; the outcome does not depend on it.
        tokio::time::sleep(Duration::from_millis(200)).await;
        tx.commit().await.unwrap();
        assert_eq!(expire.await.unwrap(), ExpireOutcome::Changed, "{what}");
        assert_eq!(
            count(
                &a,
                &format!("SELECT COUNT(*) FROM manifests WHERE digest = '{x}'")
            )
            .await,
            1,
            "{what}"
        );
    }
    assert_eq!(
        count(
            &a,
            &format!("SELECT COUNT(*) FROM tags WHERE name = 't' AND digest = '{y}'")
        )
        .await,
        1
    );
}

/// Another node in the middle of tagging (its repository row locked, 40 tags written, not
/// committed): a tag write waits for it and counts its tags, so the limit holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_tag_write_counts_the_tags_another_node_is_committing() {
    let db = database();
    let (a, b) = (Arc::new(node(&db).await), node(&db).await);
    let id = create_repo(&a, "lim/a").await;
    let mut other = b.db.client().await.unwrap();
    let tx = other.transaction().await.unwrap();
    // What tag_repository on node B has done before its commit.
    tx.query_one(
        "SELECT id FROM repositories WHERE name = $1 FOR NO KEY UPDATE",
        &[&format!("{ACC}/lim/a")],
    )
    .await
    .unwrap();
    for k in 0..40 {
        tx.execute(
            "INSERT INTO repository_tags (repo_id, account_id, key, value) VALUES ($1, $2, $3, 'v')",
            &[&id, &ACC, &format!("b{k:02}")],
        )
        .await
        .unwrap();
    }
    let tagging = {
        let a = a.clone();
        tokio::spawn(async move {
            let tags: Vec<ResourceTag> = (0..20)
                .map(|k| ResourceTag::new(format!("a{k:02}"), "v"))
                .collect();
            a.tag_repository(ACC, "lim/a", &tags).await
        })
    };
    // Gives node A time to reach the lock; the outcome does not depend on it.
    tokio::time::sleep(Duration::from_millis(200)).await;
    tx.commit().await.unwrap();
    assert!(matches!(
        tagging.await.unwrap(),
        Err(SettingsError::TooManyTags { count: 60, .. })
    ));
    assert_eq!(a.repository_tags(ACC, "lim/a").await.unwrap().len(), 40);
}

/// The facts of a repository of 50,000 images (half tagged, every tenth in an index,
/// every hundredth pulled) are one statement whose plan reaches tags and parents by their
/// indexes (no sequential scan of either table) beside other repositories' rows. The time
/// is printed, not asserted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn facts_of_fifty_thousand_images_are_one_indexed_statement() {
    const N: i64 = 50_000;
    let db = database();
    let s = node(&db).await;
    let id = create_repo(&s, "big/app").await;
    let other = create_repo(&s, "big/other").await;
    let idx = image(&s, id, "the index", 0, &[]).await.to_string();
    // A test shortcut: the rows are what put_manifest and the pull-time recorder write.
    for (repo, n) in [(id, N), (other, N)] {
        sql(
            &s,
            "INSERT INTO manifests (repo_id, digest, media_type, size, body, pushed_ms, image_size)
             SELECT $1, 'sha256:' || lpad(to_hex(i), 64, '0'),
                    'application/vnd.oci.image.manifest.v1+json', 2, '\\x7b7d', i, 1000
             FROM generate_series(1, $2::bigint) AS i",
            &[&repo, &n],
        )
        .await;
        sql(
            &s,
            "INSERT INTO tags (repo_id, name, digest, updated_ms)
             SELECT $1, 't' || i, 'sha256:' || lpad(to_hex(i), 64, '0'), 1
             FROM generate_series(2, $2::bigint, 2) AS i",
            &[&repo, &n],
        )
        .await;
    }
    sql(
        &s,
        "INSERT INTO manifest_refs (repo_id, manifest, kind, target)
         SELECT $1, $2, 1, 'sha256:' || lpad(to_hex(i), 64, '0') FROM generate_series(10, $3::bigint, 10) AS i",
        &[&id, &idx, &N],
    )
    .await;
    sql(
        &s,
        "INSERT INTO image_pulls (repo_id, digest, last_pull_ms)
         SELECT $1, 'sha256:' || lpad(to_hex(i), 64, '0'), 5 FROM generate_series(100, $2::bigint, 100) AS i",
        &[&id, &N],
    )
    .await;
    sql(&s, "ANALYZE", &[]).await;

    let c = s.db.client().await.unwrap();
    let name = format!("{ACC}/big/app");
    let plan: Vec<String> = c
        .query(
            &format!("EXPLAIN {}", super::lifecycle::FACTS_SELECT),
            &[&name, &super::lifecycle::REF_MANIFEST],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let plan = plan.join("\n");
    assert!(!plan.contains("Seq Scan on tags"), "{plan}");
    assert!(!plan.contains("Seq Scan on manifest_refs"), "{plan}");
    assert!(plan.contains("tags_digest"), "{plan}");
    assert!(plan.contains("manifest_refs_target"), "{plan}");

    let start = std::time::Instant::now();
    let facts = s.image_facts(&repo("big/app")).await.unwrap().unwrap();
    eprintln!(
        "image_facts: {} images in {:?}",
        facts.len(),
        start.elapsed()
    );
    assert_eq!(facts.len() as i64, N + 1);
    assert_eq!(
        facts.iter().filter(|f| !f.tags.is_empty()).count() as i64,
        N / 2
    );
    assert_eq!(
        facts
            .iter()
            .filter(|f| f.parents == vec![idx.clone()])
            .count() as i64,
        N / 10
    );
    assert_eq!(
        facts.iter().filter(|f| f.last_pull_ms == Some(5)).count() as i64,
        N / 100
    );
}
