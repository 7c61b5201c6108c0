//! The scheduled round: each repository with a lifecycle policy is executed in turn
//! ([`Lifecycle::execute`]). A failing repository is logged and does not stop the others.
//! `berth serve` runs a round every `[lifecycle] interval_secs` as a periodic pass of the
//! jobs layer (`berth-jobs`): one node of the cluster per round, rounds never overlap, and
//! a round that takes longer than the interval delays the next one.

use berth_types::RepositoryName;

use super::{ExecutionError, ExecutionReport, Lifecycle};

impl Lifecycle {
    /// Executes every repository that has a policy now; returns each one's result.
    pub async fn execute_all(
        &self,
    ) -> Vec<(
        RepositoryName,
        std::result::Result<ExecutionReport, ExecutionError>,
    )> {
        let names = match self.store.repositories_with_lifecycle_policies().await {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e, "could not list repositories with lifecycle policies");
                return Vec::new();
            }
        };
        let mut out = Vec::with_capacity(names.len());
        for repo in names {
            let name = &repo;
            let result = self.execute(&repo).await;
            match &result {
                Ok(r) if !r.expired.is_empty() || r.skipped > 0 => tracing::info!(
                    repository = %name,
                    expired = r.expired.len(),
                    bytes = r.expired_bytes,
                    skipped = r.skipped,
                    "lifecycle policy executed"
                ),
                Ok(_) => {
                    tracing::debug!(repository = %name, "lifecycle policy executed; nothing to expire")
                }
                // Deleted between the listing and the run.
                Err(ExecutionError::NoPolicy(_)) => {}
                Err(e) => {
                    tracing::warn!(repository = %name, error = %e, "lifecycle policy execution failed")
                }
            }
            out.push((repo, result));
        }
        out
    }
}
