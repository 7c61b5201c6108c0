//! ECR registry configuration: repository and registry policies, resource tags, account
//! settings and repository creation templates.
//!
//! [`EcrSettingsStore`] is a trait of its own (like [`crate::IamStore`]) so a backend can
//! implement it beside the [`crate::MetaStore`] on the same database and pass
//! `settings_suite` (`crate::settings_store_suite!`). Policy documents and lifecycle policies are stored as
//! the text the client sent: parsing and evaluating them is `berth-iam`'s (and the lead's
//! authorization) job, validation the edge's.
//!
//! Every fact carries the account it belongs to. Repositories are not yet scoped by
//! account (one namespace, the served account's), so a repository's policy and tags are
//! keyed by the repository row and the account that set them; they are deleted with the
//! repository, in the same transaction (no orphans after a forced DeleteRepository).
//!
//! Creating a repository from a template ([`EcrSettingsStore::provision_repository`]) is
//! one method and one transaction: the repository row, its policy and its tags appear
//! together or not at all.

use crate::{MetaError, RepositoryRecord, RepositorySettings};
use berth_types::RepositoryName;

/// ECR's limit on tags per repository.
pub const MAX_TAGS_PER_RESOURCE: usize = 50;

/// The prefix of the template that matches every repository.
pub const ROOT_PREFIX: &str = "ROOT";

/// Errors of the settings store, in domain words (the ECR edge maps them).
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("repository {0} not found")]
    RepositoryNotFound(String),
    #[error("repository {0} already exists")]
    RepositoryAlreadyExists(String),
    #[error("repository {0} has no repository policy")]
    RepositoryPolicyNotFound(String),
    #[error("account {0} has no registry policy")]
    RegistryPolicyNotFound(String),
    #[error("repository {repository} would have {count} tags; at most {MAX_TAGS_PER_RESOURCE} are allowed")]
    TooManyTags { repository: String, count: usize },
    #[error("a repository creation template with prefix {0} already exists")]
    TemplateAlreadyExists(String),
    #[error("no repository creation template with prefix {0}")]
    TemplateNotFound(String),
    #[error(transparent)]
    Meta(#[from] MetaError),
}

pub type SettingsResult<T> = std::result::Result<T, SettingsError>;

/// One resource tag (ECR's `Tag` shape: `Key`, `Value`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceTag {
    pub key: String,
    pub value: String,
}

impl ResourceTag {
    pub fn new(key: impl Into<String>, value: impl Into<String>) -> Self {
        ResourceTag {
            key: key.into(),
            value: value.into(),
        }
    }
}

/// The scenarios a repository creation template applies to (the model's `RCTAppliedFor`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AppliedFor {
    CreateOnPush,
    PullThroughCache,
    Replication,
}

impl AppliedFor {
    pub const ALL: [AppliedFor; 3] = [
        AppliedFor::CreateOnPush,
        AppliedFor::PullThroughCache,
        AppliedFor::Replication,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AppliedFor::CreateOnPush => "CREATE_ON_PUSH",
            AppliedFor::PullThroughCache => "PULL_THROUGH_CACHE",
            AppliedFor::Replication => "REPLICATION",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        AppliedFor::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

/// A repository creation template, as stored. The edge validated every member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreationTemplate {
    /// `ROOT`, or a repository-name prefix without a trailing `/` (the `/` is implied).
    pub prefix: String,
    pub description: Option<String>,
    /// Distinct, in [`AppliedFor`] order.
    pub applied_for: Vec<AppliedFor>,
    pub image_tag_mutability: String,
    /// The wildcard filters of the `*_WITH_EXCLUSION` modes (every filter of the model is
    /// of type `WILDCARD`).
    pub image_tag_mutability_exclusion_filters: Vec<String>,
    pub repository_policy: Option<String>,
    /// Validated by the edge; a repository created from the template gets it as its
    /// lifecycle policy.
    pub lifecycle_policy: Option<String>,
    pub resource_tags: Vec<ResourceTag>,
    /// `AES256`, `KMS` or `KMS_DSSE`, with the KMS key if any.
    pub encryption_type: Option<String>,
    pub kms_key: Option<String>,
    pub custom_role_arn: Option<String>,
    pub created_ms: i64,
    pub updated_ms: i64,
}

impl CreationTemplate {
    /// A template with only the required members and ECR's defaults.
    pub fn new(prefix: impl Into<String>, applied_for: Vec<AppliedFor>, now_ms: i64) -> Self {
        CreationTemplate {
            prefix: prefix.into(),
            description: None,
            applied_for,
            image_tag_mutability: "MUTABLE".into(),
            image_tag_mutability_exclusion_filters: Vec::new(),
            repository_policy: None,
            lifecycle_policy: None,
            resource_tags: Vec::new(),
            encryption_type: None,
            kms_key: None,
            custom_role_arn: None,
            created_ms: now_ms,
            updated_ms: now_ms,
        }
    }

    /// Whether this template applies to a repository named `repository`: `ROOT` to every
    /// one, `p` to names starting with `p/`.
    pub fn matches(&self, repository: &str) -> bool {
        prefix_matches(&self.prefix, repository)
    }
}

/// `ROOT` matches every repository; any other prefix `p` matches names beginning `p/`.
pub fn prefix_matches(prefix: &str, repository: &str) -> bool {
    prefix == ROOT_PREFIX
        || repository
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// Among `templates`, the one applying to `repository` for `scenario` with the longest
/// prefix; `ROOT` only when no named prefix matches.
pub fn best_template<'a>(
    templates: &'a [CreationTemplate],
    repository: &str,
    scenario: AppliedFor,
) -> Option<&'a CreationTemplate> {
    templates
        .iter()
        .filter(|t| t.applied_for.contains(&scenario) && t.matches(repository))
        .max_by_key(|t| {
            if t.prefix == ROOT_PREFIX {
                0
            } else {
                t.prefix.len() + 1
            }
        })
}

/// A partial update of a template: `None` keeps the stored member.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TemplateUpdate {
    pub description: Option<String>,
    pub applied_for: Option<Vec<AppliedFor>>,
    pub image_tag_mutability: Option<String>,
    pub image_tag_mutability_exclusion_filters: Option<Vec<String>>,
    pub repository_policy: Option<String>,
    pub lifecycle_policy: Option<String>,
    pub resource_tags: Option<Vec<ResourceTag>>,
    /// `Some((type, kms key))` replaces the encryption configuration.
    pub encryption: Option<(String, Option<String>)>,
    pub custom_role_arn: Option<String>,
}

impl TemplateUpdate {
    /// Applies the update to `t` (shared by every backend).
    pub fn apply(&self, t: &mut CreationTemplate, now_ms: i64) {
        let set = |dst: &mut Option<String>, src: &Option<String>| {
            if let Some(v) = src {
                *dst = Some(v.clone());
            }
        };
        set(&mut t.description, &self.description);
        if let Some(a) = &self.applied_for {
            t.applied_for = a.clone();
        }
        if let Some(m) = &self.image_tag_mutability {
            t.image_tag_mutability = m.clone();
        }
        if let Some(f) = &self.image_tag_mutability_exclusion_filters {
            t.image_tag_mutability_exclusion_filters = f.clone();
        }
        set(&mut t.repository_policy, &self.repository_policy);
        set(&mut t.lifecycle_policy, &self.lifecycle_policy);
        if let Some(tags) = &self.resource_tags {
            t.resource_tags = tags.clone();
        }
        if let Some((ty, key)) = &self.encryption {
            t.encryption_type = Some(ty.clone());
            t.kms_key = key.clone();
        }
        set(&mut t.custom_role_arn, &self.custom_role_arn);
        t.updated_ms = now_ms;
    }
}

/// A repository to create with everything that must appear with it, atomically.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewRepository {
    pub settings: RepositorySettings,
    pub tags: Vec<ResourceTag>,
    pub policy: Option<String>,
    /// A lifecycle policy (already validated), stored as if by PutLifecyclePolicy.
    pub lifecycle_policy: Option<String>,
}

impl NewRepository {
    /// What a template gives a repository it creates.
    pub fn from_template(t: &CreationTemplate) -> Self {
        NewRepository {
            settings: RepositorySettings {
                image_tag_mutability: t.image_tag_mutability.clone(),
                image_tag_mutability_exclusion_filters: t
                    .image_tag_mutability_exclusion_filters
                    .clone(),
            },
            tags: t.resource_tags.clone(),
            policy: t.repository_policy.clone(),
            lifecycle_policy: t.lifecycle_policy.clone(),
        }
    }
}

/// The result of [`EcrSettingsStore::provision_repository`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Provisioned {
    /// The repository already existed; nothing changed.
    Existing,
    /// Created from the template with this prefix.
    Created {
        template: String,
        repository: RepositoryRecord,
    },
    /// It does not exist and no template applies.
    NoTemplate,
}

#[async_trait::async_trait]
pub trait EcrSettingsStore: Send + Sync + 'static {
    // ---- read API for authorization (hot path: one indexed lookup each) ----

    /// The repository's policy text, `None` when it has none or does not exist.
    async fn repository_policy(
        &self,
        account: &str,
        repository: &str,
    ) -> SettingsResult<Option<String>>;
    /// The account's registry policy text, if any.
    async fn registry_policy(&self, account: &str) -> SettingsResult<Option<String>>;

    // ---- repository policies ----

    /// Sets (replaces) the repository's policy; `RepositoryNotFound` if it does not exist.
    async fn set_repository_policy(
        &self,
        account: &str,
        repository: &str,
        policy: &str,
        now_ms: i64,
    ) -> SettingsResult<()>;
    /// Deletes the repository's policy and returns it; `RepositoryNotFound`,
    /// `RepositoryPolicyNotFound`.
    async fn delete_repository_policy(
        &self,
        account: &str,
        repository: &str,
    ) -> SettingsResult<String>;

    // ---- registry policies ----

    async fn put_registry_policy(
        &self,
        account: &str,
        policy: &str,
        now_ms: i64,
    ) -> SettingsResult<()>;
    /// Deletes and returns the registry policy; `RegistryPolicyNotFound`.
    async fn delete_registry_policy(&self, account: &str) -> SettingsResult<String>;

    // ---- resource tags of repositories ----

    /// Tags in key order; `RepositoryNotFound` if the repository does not exist.
    async fn repository_tags(
        &self,
        account: &str,
        repository: &str,
    ) -> SettingsResult<Vec<ResourceTag>>;
    /// Adds or overwrites tags (by key). `TooManyTags` if the repository would end up
    /// with more than [`MAX_TAGS_PER_RESOURCE`] (then nothing changes).
    async fn tag_repository(
        &self,
        account: &str,
        repository: &str,
        tags: &[ResourceTag],
    ) -> SettingsResult<()>;
    /// Removes the tags with these keys (absent keys are ignored).
    async fn untag_repository(
        &self,
        account: &str,
        repository: &str,
        keys: &[String],
    ) -> SettingsResult<()>;

    // ---- creating repositories with their settings ----

    /// Creates a repository (as CreateRepository does) with its tags and policy in one
    /// transaction; `RepositoryAlreadyExists`, `TooManyTags`.
    async fn create_repository_with(
        &self,
        account: &str,
        repository: &RepositoryName,
        new: &NewRepository,
        now_ms: i64,
    ) -> SettingsResult<RepositoryRecord>;
    /// If `repository` does not exist, creates it from the account's best template for
    /// `scenario` ([`best_template`]), with the template's tag mutability, policy and
    /// tags, all in one transaction.
    async fn provision_repository(
        &self,
        account: &str,
        repository: &RepositoryName,
        scenario: AppliedFor,
        now_ms: i64,
    ) -> SettingsResult<Provisioned>;

    // ---- account settings ----

    /// The stored value of an account setting (`None`: the default applies).
    async fn account_setting(&self, account: &str, name: &str) -> SettingsResult<Option<String>>;
    async fn put_account_setting(
        &self,
        account: &str,
        name: &str,
        value: &str,
        now_ms: i64,
    ) -> SettingsResult<()>;

    // ---- repository creation templates ----

    /// `TemplateAlreadyExists` if the account has one with this prefix.
    async fn create_template(&self, account: &str, t: &CreationTemplate) -> SettingsResult<()>;
    /// Applies `update` and returns the result; `TemplateNotFound`.
    async fn update_template(
        &self,
        account: &str,
        prefix: &str,
        update: &TemplateUpdate,
        now_ms: i64,
    ) -> SettingsResult<CreationTemplate>;
    /// Deletes and returns the template; `TemplateNotFound`.
    async fn delete_template(
        &self,
        account: &str,
        prefix: &str,
    ) -> SettingsResult<CreationTemplate>;
    /// Templates in prefix order strictly after `after`, at most `limit`; only those
    /// whose prefix is in `prefixes` when given (missing prefixes are skipped).
    async fn describe_templates(
        &self,
        account: &str,
        prefixes: Option<&[String]>,
        after: Option<&str>,
        limit: usize,
    ) -> SettingsResult<Vec<CreationTemplate>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(prefix: &str, applied: &[AppliedFor]) -> CreationTemplate {
        CreationTemplate::new(prefix, applied.to_vec(), 0)
    }

    #[test]
    fn prefixes_match_whole_components_and_root_matches_all() {
        assert!(prefix_matches("ROOT", "anything"));
        assert!(prefix_matches("team", "team/app"));
        assert!(prefix_matches("team", "team/a/b"));
        assert!(prefix_matches("team/a", "team/a/b"));
        assert!(!prefix_matches("team", "team"));
        assert!(!prefix_matches("team", "teams/app"));
        assert!(!prefix_matches("team/a", "team/ab"));
        assert!(!prefix_matches("team", "other/team/app"));
    }

    #[test]
    fn the_longest_matching_prefix_for_the_scenario_wins() {
        use AppliedFor::*;
        let all = vec![
            t("ROOT", &[CreateOnPush]),
            t("team", &[CreateOnPush]),
            t("team/special", &[CreateOnPush]),
            t("team/special/x", &[Replication]),
        ];
        let best = |r: &str, s| best_template(&all, r, s).map(|t| t.prefix.as_str());
        assert_eq!(best("team/app", CreateOnPush), Some("team"));
        assert_eq!(best("team/special/app", CreateOnPush), Some("team/special"));
        assert_eq!(best("team/special/x/y", CreateOnPush), Some("team/special"));
        assert_eq!(
            best("team/special/x/y", Replication),
            Some("team/special/x")
        );
        assert_eq!(best("other", CreateOnPush), Some("ROOT"));
        assert_eq!(best("other", PullThroughCache), None);
        assert_eq!(best_template(&all[1..], "other", CreateOnPush), None);
    }

    #[test]
    fn applied_for_round_trips() {
        for a in AppliedFor::ALL {
            assert_eq!(AppliedFor::parse(a.as_str()), Some(a));
        }
        assert_eq!(AppliedFor::parse("create_on_push"), None);
    }

    #[test]
    fn updates_keep_unnamed_members() {
        let mut tpl = t("team", &[AppliedFor::CreateOnPush]);
        tpl.description = Some("d".into());
        TemplateUpdate {
            image_tag_mutability: Some("IMMUTABLE".into()),
            ..Default::default()
        }
        .apply(&mut tpl, 5);
        assert_eq!(tpl.description.as_deref(), Some("d"));
        assert_eq!(tpl.image_tag_mutability, "IMMUTABLE");
        assert_eq!(tpl.updated_ms, 5);
        assert_eq!(tpl.created_ms, 0);
    }
}
