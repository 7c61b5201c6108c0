//! Catalog pages (`GET /v2/_catalog`) from an in-memory snapshot of each registry's
//! repository names, so a page costs a binary search and a copy of `n` names whatever the
//! repository count.
//!
//! A snapshot is tagged with the manifest cache's generation read *before* the names were
//! read from the meta store, and is used only while the generation has not moved. Every
//! change that can add or remove a listed repository (a manifest pushed or deleted, a
//! repository deleted, lifecycle expiry, and other processes' changes through the cache
//! follower) commits first and bumps the generation after, so a snapshot that missed a
//! change is never used. While writes keep moving the generation, pages come from the
//! meta store as before and a snapshot is rebuilt at most every [`REBUILD_EVERY`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_types::AccountId;

use crate::error::Result;
use crate::manifests::{page, ListPage, DEFAULT_PAGE_LIMIT};
use crate::Registry;

/// Registries with more repositories than this are paged from the meta store only (a
/// rebuild reads every name).
const MAX_SNAPSHOT: usize = 20_000;
/// The least time between two rebuilds of one registry's snapshot.
const REBUILD_EVERY: Duration = Duration::from_millis(200);

#[derive(Default)]
pub(crate) struct CatalogSnapshots {
    by_account: parking_lot::Mutex<HashMap<AccountId, Snapshot>>,
}

struct Snapshot {
    generation: u64,
    /// Sorted, as the store lists them; `None`: too many to keep.
    names: Option<Arc<Vec<String>>>,
    built: Instant,
}

impl Registry {
    /// Names of the repositories of `account`'s registry that hold at least one manifest,
    /// in lexical order, `n` at most, after `last`.
    pub async fn catalog(
        &self,
        account: AccountId,
        n: Option<usize>,
        last: Option<&str>,
    ) -> Result<ListPage> {
        let n = n.unwrap_or(DEFAULT_PAGE_LIMIT);
        let generation = self.inner.cache.generation();
        let (current, rebuild) = {
            let snapshots = self.inner.catalogs.by_account.lock();
            match snapshots.get(&account) {
                Some(s) if s.generation == generation => (s.names.clone(), false),
                Some(s) => (None, s.built.elapsed() >= REBUILD_EVERY),
                None => (None, true),
            }
        };
        if let Some(names) = current {
            return Ok(page_of(&names, n, last));
        }
        if rebuild {
            let mut names = self
                .inner
                .meta
                .list_repositories(account, None, MAX_SNAPSHOT + 1)
                .await?;
            let names = (names.len() <= MAX_SNAPSHOT).then(|| {
                names.shrink_to_fit();
                Arc::new(names)
            });
            self.inner.catalogs.by_account.lock().insert(
                account,
                Snapshot {
                    generation,
                    names: names.clone(),
                    built: Instant::now(),
                },
            );
            if let Some(names) = names {
                return Ok(page_of(&names, n, last));
            }
        }
        let items = self
            .inner
            .meta
            .list_repositories(account, last, n.saturating_add(1))
            .await?;
        Ok(page(items, n))
    }
}

/// The page after `last` of a sorted name list.
fn page_of(names: &[String], n: usize, last: Option<&str>) -> ListPage {
    let start = match last {
        Some(l) => names.partition_point(|x| x.as_str() <= l),
        None => 0,
    };
    let end = names.len().min(start.saturating_add(n).saturating_add(1));
    page(names[start..end].to_vec(), n)
}

#[cfg(test)]
mod tests {
    use super::page_of;

    #[test]
    fn pages_of_a_snapshot_match_store_paging() {
        let names: Vec<String> = ["a", "b", "b/c", "d", "e"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let p = page_of(&names, 2, None);
        assert_eq!(
            (p.items, p.next.as_deref()),
            (vec!["a".into(), "b".into()], Some("b"))
        );
        let p = page_of(&names, 2, Some("b"));
        assert_eq!(p.items, vec!["b/c".to_string(), "d".into()]);
        let p = page_of(&names, 10, Some("c"));
        assert_eq!((p.items, p.next), (vec!["d".to_string(), "e".into()], None));
        assert!(page_of(&names, 3, Some("z")).items.is_empty());
        assert!(page_of(&names, 0, None).items.is_empty());
    }
}
