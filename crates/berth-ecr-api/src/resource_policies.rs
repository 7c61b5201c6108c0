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
use berth_meta::EcrSettingsStore;
use parking_lot::Mutex;

use crate::error::EcrError;

/// Cached entries at most; the cache is cleared when it would grow past this.
const LIMIT: usize = 10_000;

type Entry = (Instant, Option<Arc<Policy>>);

/// The policies that apply to one repository.
#[derive(Debug, Clone, Default)]
pub struct ApplicablePolicies {
    pub repository: Option<Arc<Policy>>,
    pub registry: Option<Arc<Policy>>,
}

pub struct ResourcePolicies {
    store: Arc<dyn EcrSettingsStore>,
    ttl: Duration,
    repositories: Mutex<HashMap<(String, String), Entry>>,
    registries: Mutex<HashMap<String, Entry>>,
}

fn parse(what: &str, text: Option<String>) -> Result<Option<Arc<Policy>>, EcrError> {
    let Some(text) = text else {
        return Ok(None);
    };
    // Stored policies were validated when they were set; one that no longer parses is a
    // server-side problem, not the caller's.
    Policy::parse(&text, PolicyKind::Resource, SizeLimit::Unlimited)
        .map(|p| Some(Arc::new(p.with_name(what))))
        .map_err(|e| EcrError::Internal(format!("stored {what} does not parse: {e}")))
}

fn cached<K: std::hash::Hash + Eq>(
    map: &Mutex<HashMap<K, Entry>>,
    key: &K,
) -> Option<Option<Arc<Policy>>> {
    let map = map.lock();
    let (at, p) = map.get(key)?;
    (*at > Instant::now()).then(|| p.clone())
}

fn remember<K: std::hash::Hash + Eq>(
    map: &Mutex<HashMap<K, Entry>>,
    key: K,
    ttl: Duration,
    p: Option<Arc<Policy>>,
) {
    let mut map = map.lock();
    if map.len() >= LIMIT {
        map.clear();
    }
    map.insert(key, (Instant::now() + ttl, p));
}

impl ResourcePolicies {
    pub fn new(store: Arc<dyn EcrSettingsStore>, ttl: Duration) -> Self {
        ResourcePolicies {
            store,
            ttl,
            repositories: Mutex::new(HashMap::new()),
            registries: Mutex::new(HashMap::new()),
        }
    }

    /// Drops every cached policy (after a change made through this server).
    pub fn forget(&self) {
        self.repositories.lock().clear();
        self.registries.lock().clear();
    }

    /// The repository policy of `repository` and the registry policy of `account`.
    pub async fn for_repository(
        &self,
        account: &str,
        repository: Option<&str>,
    ) -> Result<ApplicablePolicies, EcrError> {
        let registry = match cached(&self.registries, &account.to_string()) {
            Some(p) => p,
            None => {
                let text =
                    self.store.registry_policy(account).await.map_err(|e| {
                        EcrError::Internal(format!("reading the registry policy: {e}"))
                    })?;
                let p = parse("registry policy", text)?;
                remember(&self.registries, account.to_string(), self.ttl, p.clone());
                p
            }
        };
        let Some(repository) = repository else {
            return Ok(ApplicablePolicies {
                repository: None,
                registry,
            });
        };
        let key = (account.to_string(), repository.to_string());
        let repository = match cached(&self.repositories, &key) {
            Some(p) => p,
            None => {
                let text = self
                    .store
                    .repository_policy(account, repository)
                    .await
                    .map_err(|e| {
                        EcrError::Internal(format!("reading the repository policy: {e}"))
                    })?;
                let p = parse("repository policy", text)?;
                remember(&self.repositories, key, self.ttl, p.clone());
                p
            }
        };
        Ok(ApplicablePolicies {
            repository,
            registry,
        })
    }
}
