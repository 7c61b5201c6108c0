//! What the configuration handlers (policies, tags, account settings, creation
//! templates) need from a request beyond the shared [`Ctx`] helpers.

use berth_meta::{EcrSettingsStore, RepositoryRecord};
use berth_types::RepositoryName;

use super::Ctx;
use crate::error::EcrError;

impl Ctx<'_> {
    pub(super) fn settings(&self) -> &dyn EcrSettingsStore {
        self.state.inner.settings.as_ref()
    }

    pub(super) fn now_ms(&self) -> i64 {
        (self.now.unix_timestamp_nanos() / 1_000_000) as i64
    }

    /// The request context policies see (the same facts `authorize` gives them).
    pub(super) fn iam_context(&self) -> berth_iam::Context<'_> {
        berth_iam::Context {
            source_ip: self.conn.peer_ip,
            secure_transport: Some(self.conn.secure),
            current_time: Some(self.now),
            requested_region: Some(self.region()),
            ..berth_iam::Context::default()
        }
    }

    /// The repository, or `RepositoryNotFoundException`.
    pub(super) async fn existing_repository(
        &self,
        registry: &str,
        repo: &RepositoryName,
    ) -> Result<RepositoryRecord, EcrError> {
        self.state
            .inner
            .registry
            .repository_store()
            .get_repository(repo)
            .await
            .map_err(|e| EcrError::from_meta(e, registry))?
            .ok_or_else(|| EcrError::RepositoryNotFound {
                registry: registry.to_string(),
                name: repo.to_string(),
            })
    }
}
