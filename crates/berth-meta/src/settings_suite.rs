//! The behaviour every [`EcrSettingsStore`] backend must show. `meta` and `settings` are
//! the same database seen through its two traits; each backend's tests call [`run`] on a
//! fresh, empty store.
// A suite is test code that backends run from their tests: a failed unwrap is a failed case.
#![allow(clippy::unwrap_used)]

use berth_types::Digest;

use crate::settings::{
    AppliedFor, CreationTemplate, EcrSettingsStore, NewRepository, Provisioned, ResourceTag,
    SettingsError, TemplateUpdate, MAX_TAGS_PER_RESOURCE,
};
use crate::{MetaStore, NewManifest, RepositorySettings};

const ACCOUNT: &str = "111122223333";
const OTHER: &str = "444455556666";

use crate::suite::repo;

fn tags(pairs: &[(&str, &str)]) -> Vec<ResourceTag> {
    pairs
        .iter()
        .map(|(k, v)| ResourceTag::new(*k, *v))
        .collect()
}

/// Runs the whole suite.
pub async fn run(meta: &dyn MetaStore, settings: &dyn EcrSettingsStore) {
    repository_policies(meta, settings).await;
    registry_policies(meta, settings).await;
    resource_tags(meta, settings).await;
    account_settings(meta, settings).await;
    templates(meta, settings).await;
    provisioning(meta, settings).await;
    deleting_a_repository_takes_its_settings(meta, settings).await;
}

pub async fn repository_policies(meta: &dyn MetaStore, s: &dyn EcrSettingsStore) {
    let r = repo("pol/a");
    assert!(s
        .repository_policy(ACCOUNT, "pol/a")
        .await
        .unwrap()
        .is_none());
    assert!(matches!(
        s.set_repository_policy(ACCOUNT, "pol/a", "{}", 1).await,
        Err(SettingsError::RepositoryNotFound(n)) if n == "pol/a"
    ));
    assert!(matches!(
        s.delete_repository_policy(ACCOUNT, "pol/a").await,
        Err(SettingsError::RepositoryNotFound(_))
    ));
    meta.create_repository(&r, &RepositorySettings::default(), 1)
        .await
        .unwrap();
    assert!(matches!(
        s.delete_repository_policy(ACCOUNT, "pol/a").await,
        Err(SettingsError::RepositoryPolicyNotFound(n)) if n == "pol/a"
    ));
    s.set_repository_policy(ACCOUNT, "pol/a", "first", 2)
        .await
        .unwrap();
    s.set_repository_policy(ACCOUNT, "pol/a", "second", 3)
        .await
        .unwrap();
    assert_eq!(
        s.repository_policy(ACCOUNT, "pol/a")
            .await
            .unwrap()
            .as_deref(),
        Some("second")
    );
    // Another account does not see it.
    assert!(s.repository_policy(OTHER, "pol/a").await.unwrap().is_none());
    assert_eq!(
        s.delete_repository_policy(ACCOUNT, "pol/a").await.unwrap(),
        "second"
    );
    assert!(s
        .repository_policy(ACCOUNT, "pol/a")
        .await
        .unwrap()
        .is_none());
    assert!(matches!(
        s.delete_repository_policy(ACCOUNT, "pol/a").await,
        Err(SettingsError::RepositoryPolicyNotFound(_))
    ));
}

pub async fn registry_policies(_meta: &dyn MetaStore, s: &dyn EcrSettingsStore) {
    assert!(s.registry_policy(ACCOUNT).await.unwrap().is_none());
    assert!(matches!(
        s.delete_registry_policy(ACCOUNT).await,
        Err(SettingsError::RegistryPolicyNotFound(a)) if a == ACCOUNT
    ));
    s.put_registry_policy(ACCOUNT, "one", 1).await.unwrap();
    s.put_registry_policy(ACCOUNT, "two", 2).await.unwrap();
    s.put_registry_policy(OTHER, "other", 2).await.unwrap();
    assert_eq!(
        s.registry_policy(ACCOUNT).await.unwrap().as_deref(),
        Some("two")
    );
    assert_eq!(s.delete_registry_policy(ACCOUNT).await.unwrap(), "two");
    assert!(s.registry_policy(ACCOUNT).await.unwrap().is_none());
    assert_eq!(
        s.registry_policy(OTHER).await.unwrap().as_deref(),
        Some("other")
    );
    s.delete_registry_policy(OTHER).await.unwrap();
}

pub async fn resource_tags(meta: &dyn MetaStore, s: &dyn EcrSettingsStore) {
    assert!(matches!(
        s.repository_tags(ACCOUNT, "tags/a").await,
        Err(SettingsError::RepositoryNotFound(_))
    ));
    assert!(matches!(
        s.tag_repository(ACCOUNT, "tags/a", &tags(&[("k", "v")]))
            .await,
        Err(SettingsError::RepositoryNotFound(_))
    ));
    assert!(matches!(
        s.untag_repository(ACCOUNT, "tags/a", &["k".into()]).await,
        Err(SettingsError::RepositoryNotFound(_))
    ));
    meta.create_repository(&repo("tags/a"), &RepositorySettings::default(), 1)
        .await
        .unwrap();
    assert!(s
        .repository_tags(ACCOUNT, "tags/a")
        .await
        .unwrap()
        .is_empty());
    s.tag_repository(ACCOUNT, "tags/a", &tags(&[("team", "x"), ("env", "dev")]))
        .await
        .unwrap();
    // Same key overwrites; listed in key order.
    s.tag_repository(ACCOUNT, "tags/a", &tags(&[("env", "prod")]))
        .await
        .unwrap();
    assert_eq!(
        s.repository_tags(ACCOUNT, "tags/a").await.unwrap(),
        tags(&[("env", "prod"), ("team", "x")])
    );
    s.untag_repository(ACCOUNT, "tags/a", &["team".into(), "absent".into()])
        .await
        .unwrap();
    assert_eq!(
        s.repository_tags(ACCOUNT, "tags/a").await.unwrap(),
        tags(&[("env", "prod")])
    );
    // The limit counts the tags the repository would end up with; nothing changes on refusal.
    let many: Vec<ResourceTag> = (0..MAX_TAGS_PER_RESOURCE)
        .map(|i| ResourceTag::new(format!("k{i:02}"), "v"))
        .collect();
    assert!(matches!(
        s.tag_repository(ACCOUNT, "tags/a", &many).await,
        Err(SettingsError::TooManyTags { count, .. }) if count == MAX_TAGS_PER_RESOURCE + 1
    ));
    assert_eq!(s.repository_tags(ACCOUNT, "tags/a").await.unwrap().len(), 1);
    s.untag_repository(ACCOUNT, "tags/a", &["env".into()])
        .await
        .unwrap();
    s.tag_repository(ACCOUNT, "tags/a", &many).await.unwrap();
    assert_eq!(
        s.repository_tags(ACCOUNT, "tags/a").await.unwrap().len(),
        MAX_TAGS_PER_RESOURCE
    );
    // Overwriting existing keys at the limit is allowed.
    s.tag_repository(ACCOUNT, "tags/a", &tags(&[("k00", "new")]))
        .await
        .unwrap();

    // Created with tags (and a policy) in one step; a second create changes nothing.
    let new = NewRepository {
        lifecycle_policy: None,
        settings: RepositorySettings {
            image_tag_mutability: "IMMUTABLE".into(),
            ..Default::default()
        },
        tags: tags(&[("a", "1")]),
        policy: Some("p".into()),
    };
    let rec = s
        .create_repository_with(ACCOUNT, &repo("tags/b"), &new, 7)
        .await
        .unwrap();
    assert_eq!(rec.image_tag_mutability, "IMMUTABLE");
    assert!(rec.created_by_api);
    assert_eq!(
        meta.get_repository(&repo("tags/b")).await.unwrap(),
        Some(rec)
    );
    assert_eq!(
        s.repository_tags(ACCOUNT, "tags/b").await.unwrap(),
        tags(&[("a", "1")])
    );
    assert_eq!(
        s.repository_policy(ACCOUNT, "tags/b")
            .await
            .unwrap()
            .as_deref(),
        Some("p")
    );
    assert!(matches!(
        s.create_repository_with(ACCOUNT, &repo("tags/b"), &NewRepository::default(), 8)
            .await,
        Err(SettingsError::RepositoryAlreadyExists(n)) if n == "tags/b"
    ));
    // Too many tags at creation: no repository.
    let too_many = NewRepository {
        lifecycle_policy: None,
        tags: (0..=MAX_TAGS_PER_RESOURCE)
            .map(|i| ResourceTag::new(format!("k{i}"), ""))
            .collect(),
        ..Default::default()
    };
    assert!(matches!(
        s.create_repository_with(ACCOUNT, &repo("tags/c"), &too_many, 8)
            .await,
        Err(SettingsError::TooManyTags { .. })
    ));
    assert!(meta
        .get_repository(&repo("tags/c"))
        .await
        .unwrap()
        .is_none());
}

pub async fn account_settings(_meta: &dyn MetaStore, s: &dyn EcrSettingsStore) {
    assert!(s
        .account_setting(ACCOUNT, "BASIC_SCAN_TYPE_VERSION")
        .await
        .unwrap()
        .is_none());
    s.put_account_setting(ACCOUNT, "BASIC_SCAN_TYPE_VERSION", "AWS_NATIVE", 1)
        .await
        .unwrap();
    s.put_account_setting(ACCOUNT, "BLOB_MOUNTING", "ENABLED", 1)
        .await
        .unwrap();
    s.put_account_setting(ACCOUNT, "BLOB_MOUNTING", "DISABLED", 2)
        .await
        .unwrap();
    assert_eq!(
        s.account_setting(ACCOUNT, "BLOB_MOUNTING")
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

fn template(prefix: &str, applied: &[AppliedFor]) -> CreationTemplate {
    CreationTemplate::new(prefix, applied.to_vec(), 10)
}

pub async fn templates(_meta: &dyn MetaStore, s: &dyn EcrSettingsStore) {
    use AppliedFor::*;
    let mut full = template("tpl/full", &[CreateOnPush, Replication]);
    full.description = Some("everything".into());
    full.image_tag_mutability = "IMMUTABLE_WITH_EXCLUSION".into();
    full.image_tag_mutability_exclusion_filters = vec!["latest".into(), "dev-*".into()];
    full.repository_policy = Some("{\"Version\":\"2012-10-17\"}".into());
    full.lifecycle_policy = Some("  {\"rules\": []}\n".into());
    full.resource_tags = tags(&[("k", "v"), ("e", "")]);
    full.encryption_type = Some("KMS".into());
    full.kms_key = Some("arn:aws:kms:us-east-1:111122223333:key/abc".into());
    full.custom_role_arn = Some("arn:aws:iam::111122223333:role/r".into());
    s.create_template(ACCOUNT, &full).await.unwrap();
    s.create_template(ACCOUNT, &template("ROOT", &[CreateOnPush]))
        .await
        .unwrap();
    s.create_template(ACCOUNT, &template("tpl/a", &[PullThroughCache]))
        .await
        .unwrap();
    s.create_template(OTHER, &template("tpl/a", &[CreateOnPush]))
        .await
        .unwrap();
    assert!(matches!(
        s.create_template(ACCOUNT, &template("tpl/a", &[CreateOnPush])).await,
        Err(SettingsError::TemplateAlreadyExists(p)) if p == "tpl/a"
    ));

    // Everything round-trips verbatim.
    let all = s
        .describe_templates(ACCOUNT, None, None, 100)
        .await
        .unwrap();
    let prefixes: Vec<&str> = all.iter().map(|t| t.prefix.as_str()).collect();
    assert_eq!(prefixes, ["ROOT", "tpl/a", "tpl/full"]);
    assert_eq!(all[2], full);
    assert_eq!(all[1].applied_for, vec![PullThroughCache]);

    // Pages and filters.
    let page = s.describe_templates(ACCOUNT, None, None, 2).await.unwrap();
    assert_eq!(page.len(), 2);
    let rest = s
        .describe_templates(ACCOUNT, None, Some(&page[1].prefix), 2)
        .await
        .unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].prefix, "tpl/full");
    let wanted = vec!["tpl/full".to_string(), "nope".to_string(), "ROOT".into()];
    let some = s
        .describe_templates(ACCOUNT, Some(&wanted), None, 100)
        .await
        .unwrap();
    assert_eq!(
        some.iter().map(|t| t.prefix.as_str()).collect::<Vec<_>>(),
        ["ROOT", "tpl/full"]
    );

    // Updates change only what they name.
    let updated = s
        .update_template(
            ACCOUNT,
            "tpl/a",
            &TemplateUpdate {
                description: Some("now described".into()),
                applied_for: Some(vec![CreateOnPush, PullThroughCache]),
                resource_tags: Some(tags(&[("x", "y")])),
                ..Default::default()
            },
            20,
        )
        .await
        .unwrap();
    assert_eq!(updated.description.as_deref(), Some("now described"));
    assert_eq!(updated.image_tag_mutability, "MUTABLE");
    assert_eq!(updated.created_ms, 10);
    assert_eq!(updated.updated_ms, 20);
    let again = s
        .describe_templates(ACCOUNT, Some(&["tpl/a".to_string()]), None, 10)
        .await
        .unwrap();
    assert_eq!(again, vec![updated]);
    assert!(matches!(
        s.update_template(ACCOUNT, "missing", &TemplateUpdate::default(), 1).await,
        Err(SettingsError::TemplateNotFound(p)) if p == "missing"
    ));

    // Deleting returns the template; the other account's is untouched.
    assert_eq!(s.delete_template(ACCOUNT, "tpl/full").await.unwrap(), full);
    assert!(matches!(
        s.delete_template(ACCOUNT, "tpl/full").await,
        Err(SettingsError::TemplateNotFound(_))
    ));
    for p in ["ROOT", "tpl/a"] {
        s.delete_template(ACCOUNT, p).await.unwrap();
    }
    assert!(s
        .describe_templates(ACCOUNT, None, None, 10)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        s.describe_templates(OTHER, None, None, 10)
            .await
            .unwrap()
            .len(),
        1
    );
    s.delete_template(OTHER, "tpl/a").await.unwrap();
}

pub async fn provisioning(meta: &dyn MetaStore, s: &dyn EcrSettingsStore) {
    use AppliedFor::*;
    let push = |name: &'static str| async move {
        s.provision_repository(ACCOUNT, &repo(name), CreateOnPush, 30)
            .await
            .unwrap()
    };
    // No template: nothing is created.
    assert_eq!(push("prov/app").await, Provisioned::NoTemplate);
    assert!(meta
        .get_repository(&repo("prov/app"))
        .await
        .unwrap()
        .is_none());

    let mut team = template("prov", &[CreateOnPush]);
    team.image_tag_mutability = "IMMUTABLE".into();
    team.repository_policy = Some("team policy".into());
    team.resource_tags = tags(&[("owner", "team")]);
    s.create_template(ACCOUNT, &team).await.unwrap();
    let mut special = template("prov/special", &[CreateOnPush]);
    special.resource_tags = tags(&[("owner", "special")]);
    special.image_tag_mutability = "MUTABLE_WITH_EXCLUSION".into();
    special.image_tag_mutability_exclusion_filters = vec!["release-*".into()];
    s.create_template(ACCOUNT, &special).await.unwrap();
    // Not for pushes: ignored by CREATE_ON_PUSH even though it is longer.
    s.create_template(
        ACCOUNT,
        &template("prov/special/cache", &[PullThroughCache]),
    )
    .await
    .unwrap();
    // Another account's template does not apply.
    s.create_template(OTHER, &template("ROOT", &[CreateOnPush]))
        .await
        .unwrap();

    match push("prov/app").await {
        Provisioned::Created {
            template,
            repository,
        } => {
            assert_eq!(template, "prov");
            assert_eq!(repository.name, "prov/app");
            assert_eq!(repository.image_tag_mutability, "IMMUTABLE");
            assert!(!repository.created_by_api);
            assert_eq!(
                meta.get_repository(&repo("prov/app")).await.unwrap(),
                Some(repository)
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        s.repository_tags(ACCOUNT, "prov/app").await.unwrap(),
        tags(&[("owner", "team")])
    );
    assert_eq!(
        s.repository_policy(ACCOUNT, "prov/app")
            .await
            .unwrap()
            .as_deref(),
        Some("team policy")
    );
    assert_eq!(push("prov/app").await, Provisioned::Existing);

    match push("prov/special/cache/x").await {
        Provisioned::Created {
            template,
            repository,
        } => {
            assert_eq!(template, "prov/special");
            assert_eq!(repository.image_tag_mutability, "MUTABLE_WITH_EXCLUSION");
            assert_eq!(
                repository.image_tag_mutability_exclusion_filters,
                vec!["release-*".to_string()]
            );
            assert_eq!(
                meta.get_repository(&repo("prov/special/cache/x"))
                    .await
                    .unwrap(),
                Some(repository)
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        s.repository_tags(ACCOUNT, "prov/special/cache/x")
            .await
            .unwrap(),
        tags(&[("owner", "special")])
    );
    assert!(s
        .repository_policy(ACCOUNT, "prov/special/cache/x")
        .await
        .unwrap()
        .is_none());
    // The prefix itself is not under the prefix.
    assert_eq!(push("prov").await, Provisioned::NoTemplate);

    // ROOT catches everything else.
    s.create_template(ACCOUNT, &template("ROOT", &[CreateOnPush]))
        .await
        .unwrap();
    assert!(matches!(
        push("elsewhere").await,
        Provisioned::Created { template, .. } if template == "ROOT"
    ));
    // A repository that exists (made by a push or the API) is left alone.
    meta.create_repository(&repo("prov/made"), &RepositorySettings::default(), 1)
        .await
        .unwrap();
    assert_eq!(push("prov/made").await, Provisioned::Existing);
    assert!(s
        .repository_tags(ACCOUNT, "prov/made")
        .await
        .unwrap()
        .is_empty());
    for p in ["ROOT", "prov", "prov/special", "prov/special/cache"] {
        s.delete_template(ACCOUNT, p).await.unwrap();
    }
    s.delete_template(OTHER, "ROOT").await.unwrap();
}

pub async fn deleting_a_repository_takes_its_settings(
    meta: &dyn MetaStore,
    s: &dyn EcrSettingsStore,
) {
    let name = "gone/app";
    let new = NewRepository {
        lifecycle_policy: None,
        tags: tags(&[("a", "b")]),
        policy: Some("policy".into()),
        ..Default::default()
    };
    s.create_repository_with(ACCOUNT, &repo(name), &new, 1)
        .await
        .unwrap();
    // Give it an image so that only a forced delete removes it.
    let layer = Digest::sha256_of(b"layer");
    meta.commit_blob(&repo(name), &layer, 5, None)
        .await
        .unwrap();
    let body = b"{\"m\":1}".to_vec();
    meta.put_manifest(
        &repo(name),
        &NewManifest {
            digest: Digest::sha256_of(&body),
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            body,
            artifact_type: None,
            subject: None,
            annotations_json: None,
            blobs: vec![layer.clone()],
            layers: vec![layer],
            children: vec![],
            tag: Some("v1".parse().unwrap()),
            now_ms: 2,
        },
    )
    .await
    .unwrap();
    meta.delete_repository(&repo(name), true).await.unwrap();
    assert!(s.repository_policy(ACCOUNT, name).await.unwrap().is_none());
    assert!(matches!(
        s.repository_tags(ACCOUNT, name).await,
        Err(SettingsError::RepositoryNotFound(_))
    ));
    // A new repository of the same name starts clean.
    meta.create_repository(&repo(name), &RepositorySettings::default(), 3)
        .await
        .unwrap();
    assert!(s.repository_policy(ACCOUNT, name).await.unwrap().is_none());
    assert!(s.repository_tags(ACCOUNT, name).await.unwrap().is_empty());
}
