//! The background scheduler: every `interval`, each repository with a lifecycle policy is
//! executed in turn ([`Lifecycle::execute`]). A failing repository is logged and does not
//! stop the others; a round that takes longer than the interval delays the next one
//! (rounds never overlap).

use std::time::Duration;

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

    /// Runs [`Lifecycle::execute_all`] every `interval`, the first time one interval after
    /// the call, until the runtime shuts down.
    pub fn spawn_scheduler(self, interval: Duration) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let start = tokio::time::Instant::now() + interval;
            let mut tick = tokio::time::interval_at(start, interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                self.execute_all().await;
            }
        })
    }
}
