//! Repository and registry policies for authorization, parsed once and cached briefly.
//!
//! Every authorized request needs its repository's policy and its account's registry
//! policy. Reading and parsing them per request would put two queries on the `/v2` hot
//! path, so parsed policies are kept for `ttl` (the `[auth] credential_cache_secs`) and the
//! whole cache is dropped when this server changes a policy or deletes a repository
//! ([`ResourcePolicies::forget`]); changes made by another node take effect within `ttl`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_iam::{Policy, PolicyKind, SizeLimit};
use berth_meta::{EcrSettingsStore, SettingsError};
use parking_lot::Mutex;

use crate::auth::{authorize_with, Caller};
use crate::error::AccessError;
use crate::resource::{RequestEnv, RequestTags, Requirement, Resource};

/// Cached entries at most; the cache is cleared when it would grow past this.
const LIMIT: usize = 10_000;

type Entry = (Instant, Option<Arc<Policy>>);

/// A repository's resource tags (key, value), in key order.
pub type Tags = Arc<[(String, String)]>;

type TagEntry = (Instant, Tags);

/// The policies that apply to one repository, and its tags (`ecr:ResourceTag/<key>`).
#[derive(Debug, Clone)]
pub struct ApplicablePolicies {
    pub repository: Option<Arc<Policy>>,
    pub registry: Option<Arc<Policy>>,
    pub repository_tags: Tags,
}

impl Default for ApplicablePolicies {
    fn default() -> Self {
        ApplicablePolicies {
            repository: None,
            registry: None,
            repository_tags: Arc::new([]),
        }
    }
}

pub struct ResourcePolicies {
    store: Arc<dyn EcrSettingsStore>,
    ttl: Duration,
    /// account → repository → policy. Nested so that a lookup by `&str` allocates nothing.
    repositories: Mutex<HashMap<String, HashMap<String, Entry>>>,
    /// account → registry policy.
    registries: Mutex<HashMap<String, Entry>>,
    /// account → repository → resource tags.
    tags: Mutex<HashMap<String, HashMap<String, TagEntry>>>,
}

fn parse(what: &str, text: Option<String>) -> Result<Option<Arc<Policy>>, AccessError> {
    let Some(text) = text else {
        return Ok(None);
    };
    // Stored policies were validated when they were set; one that no longer parses is a
    // server-side problem, not the caller's.
    Policy::parse(&text, PolicyKind::Resource, SizeLimit::Unlimited)
        .map(|p| Some(Arc::new(p.with_name(what))))
        .map_err(|source| AccessError::StoredPolicy {
            name: what.to_string(),
            source,
        })
}

fn fresh(entry: Option<&Entry>) -> Option<Option<Arc<Policy>>> {
    let (until, p) = entry?;
    (*until > Instant::now()).then(|| p.clone())
}

impl ResourcePolicies {
    pub fn new(store: Arc<dyn EcrSettingsStore>, ttl: Duration) -> Self {
        ResourcePolicies {
            store,
            ttl,
            repositories: Mutex::new(HashMap::new()),
            registries: Mutex::new(HashMap::new()),
            tags: Mutex::new(HashMap::new()),
        }
    }

    /// Drops every cached policy (after a change made through this server).
    pub fn forget(&self) {
        self.repositories.lock().clear();
        self.registries.lock().clear();
        self.tags.lock().clear();
    }

    /// The repository policy of `repository` and the registry policy of `account`.
    pub async fn for_repository(
        &self,
        account: &str,
        repository: Option<&str>,
    ) -> Result<ApplicablePolicies, AccessError> {
        let cached = fresh(self.registries.lock().get(account));
        let registry = match cached {
            Some(p) => p,
            None => {
                let text = self
                    .store
                    .registry_policy(account)
                    .await
                    .map_err(|e| AccessError::store("reading the registry policy", e))?;
                let p = parse("registry policy", text)?;
                let mut map = self.registries.lock();
                if map.len() >= LIMIT {
                    map.clear();
                }
                map.insert(account.to_string(), (Instant::now() + self.ttl, p.clone()));
                p
            }
        };
        let Some(repository) = repository else {
            return Ok(ApplicablePolicies {
                registry,
                ..ApplicablePolicies::default()
            });
        };
        let cached = fresh(
            self.repositories
                .lock()
                .get(account)
                .and_then(|m| m.get(repository)),
        );
        let policy = match cached {
            Some(p) => p,
            None => {
                let text = self
                    .store
                    .repository_policy(account, repository)
                    .await
                    .map_err(|e| AccessError::store("reading the repository policy", e))?;
                let p = parse("repository policy", text)?;
                let mut map = self.repositories.lock();
                let per_account = map.entry(account.to_string()).or_default();
                if per_account.len() >= LIMIT {
                    per_account.clear();
                }
                per_account.insert(
                    repository.to_string(),
                    (Instant::now() + self.ttl, p.clone()),
                );
                p
            }
        };
        Ok(ApplicablePolicies {
            repository: policy,
            registry,
            repository_tags: self.repository_tags(account, repository).await?,
        })
    }

    /// The tags of `repository` (none when it does not exist), cached like its policy.
    async fn repository_tags(&self, account: &str, repository: &str) -> Result<Tags, AccessError> {
        let cached = self
            .tags
            .lock()
            .get(account)
            .and_then(|m| m.get(repository))
            .filter(|(until, _)| *until > Instant::now())
            .map(|(_, t)| t.clone());
        if let Some(t) = cached {
            return Ok(t);
        }
        let tags: Tags = match self.store.repository_tags(account, repository).await {
            Ok(tags) => tags.into_iter().map(|t| (t.key, t.value)).collect(),
            Err(SettingsError::RepositoryNotFound(_)) => Arc::new([]),
            Err(e) => return Err(AccessError::store("reading the repository's tags", e)),
        };
        let mut map = self.tags.lock();
        let per_account = map.entry(account.to_string()).or_default();
        if per_account.len() >= LIMIT {
            per_account.clear();
        }
        per_account.insert(
            repository.to_string(),
            (Instant::now() + self.ttl, tags.clone()),
        );
        Ok(tags)
    }

    /// Authorizes every requirement of one request for `caller`, each with the policies
    /// its resource kind brings (see [`Resource`]); the first denial is the answer.
    pub async fn authorize(
        &self,
        caller: &Caller,
        requirements: &[Requirement],
        request_tags: &RequestTags,
        env: &RequestEnv<'_>,
    ) -> Result<(), AccessError> {
        for r in requirements {
            let policies = match &r.resource {
                Resource::Repository { account, name } => {
                    self.for_repository(account, Some(name)).await?
                }
                Resource::AllRepositories { account } => self.for_repository(account, None).await?,
                Resource::Account { .. } | Resource::Arn { .. } => ApplicablePolicies::default(),
            };
            authorize_with(
                caller,
                r.action,
                &r.resource.arn(env.region),
                r.resource.account(),
                env,
                &policies,
                request_tags,
            )?;
        }
        Ok(())
    }
}
