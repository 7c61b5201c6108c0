//! [`PgMetaStore`]'s [`EcrSettingsStore`] against a real server (the throwaway cluster of
//! `berth-testkit`, a fresh database per test), calling the trait methods directly, and the
//! harness `lifecycle_tests` shares. Rows of the other traits (repositories, manifests,
//! tags, references) are inserted with SQL, as those traits' writes leave them. Several
//! pools on one database stand for several nodes racing for one invariant. (The shared
//! suites, `settings_suite` and `lifecycle_suite`, need the whole `MetaStore` as well.)

use std::sync::Arc;
use std::time::Duration;

use berth_testkit::postgres::{shared, PgDatabase};
use berth_types::{Digest, RepositoryName};
use tokio::sync::Barrier;

use super::{PgDb, PgMetaStore, PgOptions};
use crate::lifecycle::*;
use crate::settings::*;

pub(super) const ACC: &str = "111122223333";
const OTHER: &str = "444455556666";

pub(super) fn database() -> PgDatabase<'static> {
    shared().create_database().unwrap()
}

/// One node: its own pool on `db`.
pub(super) async fn node(db: &PgDatabase<'_>) -> PgMetaStore {
    PgMetaStore::new(PgDb::connect(&PgOptions::new(db.url())).await.unwrap())
}

pub(super) fn repo(name: &str) -> RepositoryName {
    RepositoryName::from_qualified(&format!("{ACC}/{name}")).unwrap()
}

pub(super) fn rtags(pairs: &[(&str, &str)]) -> Vec<ResourceTag> {
    pairs
        .iter()
        .map(|(k, v)| ResourceTag::new(*k, *v))
        .collect()
}

/// Runs one statement (a test shortcut for rows other traits write).
pub(super) async fn sql(
    s: &PgMetaStore,
    statement: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) {
    let c = s.db.client().await.unwrap();
    c.execute(statement, params).await.unwrap();
}

pub(super) async fn count(s: &PgMetaStore, query: &str) -> i64 {
    let c = s.db.client().await.unwrap();
    c.query_one(query, &[]).await.unwrap().get(0)
}

/// Creates repository `name` of [`ACC`] as `create_repository` leaves it; returns its id.
pub(super) async fn create_repo(s: &PgMetaStore, name: &str) -> i64 {
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
pub(super) async fn image(
    s: &PgMetaStore,
    id: i64,
    seed: &str,
    pushed: i64,
    tags: &[&str],
) -> Digest {
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

pub(super) async fn child_of(s: &PgMetaStore, id: i64, index: &Digest, child: &Digest) {
    sql(
        s,
        "INSERT INTO manifest_refs (repo_id, manifest, kind, target) VALUES ($1, $2, 1, $3)",
        &[&id, &index.to_string(), &child.to_string()],
    )
    .await;
}

pub(super) fn expiry(d: &Digest, tags: &[&str]) -> Expiry {
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
pub(super) async fn on_every_node<T, F, Fut>(nodes: &[Arc<PgMetaStore>], op: F) -> Vec<T>
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

pub(super) async fn nodes(db: &PgDatabase<'_>, n: usize) -> Vec<Arc<PgMetaStore>> {
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

pub(super) const NODES: usize = 4;

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
