//! Image-level operations of the ECR API that need the core (cache invalidation, pull
//! times): deleting one image as BatchDeleteImage does, and recording pulls.

use berth_meta::DeleteImageOutcome;
use berth_types::{Digest, RepositoryName, Tag};

use crate::error::Result;
use crate::Registry;

impl Registry {
    /// Deletes one image by tag, by digest, or both (see
    /// [`MetaStore::delete_image`](berth_meta::MetaStore::delete_image)) and drops what
    /// the manifest cache held of it.
    pub async fn delete_image(
        &self,
        repo: &RepositoryName,
        digest: Option<&Digest>,
        tag: Option<&Tag>,
    ) -> Result<DeleteImageOutcome> {
        let outcome = self.inner.meta.delete_image(repo, digest, tag).await?;
        if let DeleteImageOutcome::Deleted {
            digest,
            tags,
            manifest_deleted,
        } = &outcome
        {
            for t in tags {
                self.inner.cache.invalidate(repo, Some(t), None);
            }
            if *manifest_deleted {
                self.inner.cache.invalidate(repo, None, Some(digest));
            }
        }
        Ok(outcome)
    }

    /// Notes that `principal_arn` pulled the manifest `digest` of `repo` (after a
    /// successful manifest GET or BatchGetImage). Memory only: the pull time reaches the
    /// meta store in the next batch (see `pull_times.rs`), so this is safe on the hot path.
    pub fn record_pull(&self, repo: &RepositoryName, digest: &Digest, principal_arn: &str) {
        self.inner.pull_times.record(repo, digest, principal_arn);
    }

    /// Writes pending pull times now (call at shutdown; DescribeImages calls it so the API
    /// reads its own pulls). Returns how many images were updated.
    pub async fn flush_pull_times(&self) -> Result<usize> {
        self.inner.pull_times.flush().await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use bytes::Bytes;
    use futures::stream;

    use berth_blobstore::DiskBlobStore;
    use berth_meta::sqlite::SqliteMetaStore;
    use berth_meta::{DeleteImageOutcome, RepositorySettings, TagStatus};
    use berth_types::{Digest, Reference, RepositoryName};

    use crate::{Registry, RegistryError, RegistryOptions};

    fn registry(dir: &std::path::Path, flush: Duration) -> Registry {
        let meta = SqliteMetaStore::open(dir.join("meta.db")).unwrap();
        let blobs = DiskBlobStore::open(dir).unwrap();
        Registry::new(
            Arc::new(meta),
            Arc::new(blobs),
            RegistryOptions {
                pull_time_flush_interval: flush,
                ..RegistryOptions::default()
            },
        )
    }

    /// Pushes a config and one layer, then an image manifest naming them; returns its bytes.
    async fn push_image(r: &Registry, repo: &RepositoryName, seed: &str, tag: &str) -> Bytes {
        let cfg = format!("{{\"seed\":\"{seed}\"}}").into_bytes();
        let layer = format!("layer of {seed}").into_bytes();
        for b in [&cfg, &layer] {
            let d = Digest::sha256_of(b);
            let body = stream::iter(vec![Ok::<_, std::io::Error>(Bytes::from(b.clone()))]);
            r.push_blob(repo, &d, body).await.unwrap();
        }
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": Digest::sha256_of(&cfg).to_string(), "size": cfg.len()},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                        "digest": Digest::sha256_of(&layer).to_string(), "size": layer.len()}],
        });
        let body = Bytes::from(serde_json::to_vec(&manifest).unwrap());
        let pushed = r
            .put_manifest(
                repo,
                &Reference::Tag(tag.parse().unwrap()),
                None,
                body.clone(),
            )
            .await
            .unwrap();
        assert!(pushed.changed);
        body
    }

    #[tokio::test]
    async fn an_immutable_tag_refuses_another_image_but_not_the_same_one() {
        let dir = tempfile::tempdir().unwrap();
        let r = registry(dir.path(), Duration::from_secs(60));
        let repo = crate::test_repo("fixed/app");
        let settings = RepositorySettings {
            image_tag_mutability: "IMMUTABLE_WITH_EXCLUSION".into(),
            image_tag_mutability_exclusion_filters: vec!["latest".into()],
        };
        r.repository_store()
            .create_repository(&repo, &settings, 1)
            .await
            .unwrap();
        let first = push_image(&r, &repo, "one", "v1").await;
        // Warm the cache, then try to move the tag.
        let before = r
            .get_manifest(&repo, &Reference::Tag("v1".parse().unwrap()))
            .await
            .unwrap();
        let again = r
            .put_manifest(
                &repo,
                &Reference::Tag("v1".parse().unwrap()),
                None,
                first.clone(),
            )
            .await
            .unwrap();
        assert!(!again.changed, "the same image to the same tag is a no-op");
        let err = async {
            let cfg = b"{}".to_vec();
            let d = Digest::sha256_of(&cfg);
            r.push_blob(
                &repo,
                &d,
                stream::iter(vec![Ok::<_, std::io::Error>(Bytes::from(cfg.clone()))]),
            )
            .await
            .unwrap();
            let other = serde_json::json!({
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                           "digest": d.to_string(), "size": 2},
                "layers": [],
            });
            let body = Bytes::from(serde_json::to_vec(&other).unwrap());
            // The excluded tag moves freely...
            r.put_manifest(
                &repo,
                &Reference::Tag("latest".parse().unwrap()),
                None,
                first.clone(),
            )
            .await
            .unwrap();
            r.put_manifest(
                &repo,
                &Reference::Tag("latest".parse().unwrap()),
                None,
                body.clone(),
            )
            .await
            .unwrap();
            // ...the others do not.
            r.put_manifest(&repo, &Reference::Tag("v1".parse().unwrap()), None, body)
                .await
                .unwrap_err()
        }
        .await;
        assert!(
            matches!(&err, RegistryError::TagImmutable { repository, tag } if repository == "fixed/app" && tag == "v1"),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "The image tag 'v1' already exists in the 'fixed/app' repository and cannot be overwritten because the repository is immutable."
        );
        let after = r
            .get_manifest(&repo, &Reference::Tag("v1".parse().unwrap()))
            .await
            .unwrap();
        assert_eq!(after.digest, before.digest);
    }

    #[tokio::test]
    async fn deleting_an_image_drops_it_from_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let r = registry(dir.path(), Duration::from_secs(60));
        let repo = crate::test_repo("del/app");
        push_image(&r, &repo, "one", "v1").await;
        let tag = Reference::Tag("v1".parse().unwrap());
        let m = r.get_manifest(&repo, &tag).await.unwrap();
        let by_digest = Reference::Digest(m.digest.clone());
        r.get_manifest(&repo, &by_digest).await.unwrap();
        let out = r
            .delete_image(&repo, None, Some(&"v1".parse().unwrap()))
            .await
            .unwrap();
        assert_eq!(
            out,
            DeleteImageOutcome::Deleted {
                digest: m.digest.clone(),
                tags: vec!["v1".into()],
                manifest_deleted: true
            }
        );
        assert!(matches!(
            r.get_manifest(&repo, &tag).await,
            Err(RegistryError::ManifestNotFound(_))
        ));
        assert!(matches!(
            r.get_manifest(&repo, &by_digest).await,
            Err(RegistryError::ManifestNotFound(_))
        ));
    }

    #[tokio::test]
    async fn pulls_reach_the_store_in_the_background_minus_excluded_principals() {
        let dir = tempfile::tempdir().unwrap();
        let r = registry(dir.path(), Duration::from_millis(50));
        let repo = crate::test_repo("pull/app");
        push_image(&r, &repo, "one", "v1").await;
        push_image(&r, &repo, "two", "v2").await;
        let d1 = r
            .resolve(&repo, &Reference::Tag("v1".parse().unwrap()))
            .await
            .unwrap();
        let d2 = r
            .resolve(&repo, &Reference::Tag("v2".parse().unwrap()))
            .await
            .unwrap();
        let robot = "arn:aws:iam::000000000000:user/robot";
        r.pull_time_store()
            .add_pull_time_exclusion("000000000000", robot, 1, 100)
            .await
            .unwrap();
        let before = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        r.record_pull(&repo, &d1, "arn:aws:iam::000000000000:root");
        r.record_pull(&repo, &d2, robot);
        assert_eq!(r.inner.pull_times.pending_images(), 2);
        // Nothing is written by the pull itself; the background task writes it soon.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let images = loop {
            let images = r
                .image_store()
                .describe_images(&repo, TagStatus::Any, None, 10)
                .await
                .unwrap()
                .unwrap();
            if images.iter().any(|i| i.last_pull_ms.is_some()) {
                break images;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "pull time never written"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let pulled = |d: &Digest| images.iter().find(|i| &i.digest == d).unwrap().last_pull_ms;
        let at = pulled(&d1).unwrap();
        assert!(at >= before * 1000 && at % 1000 == 0, "{at}");
        assert_eq!(
            pulled(&d2),
            None,
            "the excluded principal's pull is not recorded"
        );
        assert_eq!(r.inner.pull_times.pending_images(), 0);
        // An explicit flush with nothing pending is a no-op.
        assert_eq!(r.flush_pull_times().await.unwrap(), 0);
    }

    #[tokio::test]
    async fn the_stoppable_pull_time_writer_writes_the_last_batch_as_it_stops() {
        let dir = tempfile::tempdir().unwrap();
        // An interval no test waits for: only the stop writes.
        let r = registry(dir.path(), Duration::from_secs(3600));
        let repo = crate::test_repo("pull/stop");
        push_image(&r, &repo, "one", "v1").await;
        let d = r
            .resolve(&repo, &Reference::Tag("v1".parse().unwrap()))
            .await
            .unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let writer = tokio::spawn(r.flush_pull_times_until(async move {
            let _ = stopped.await;
        }));
        r.record_pull(&repo, &d, "arn:aws:iam::000000000000:root");
        assert_eq!(r.inner.pull_times.pending_images(), 1);
        stop.send(()).unwrap();
        writer.await.unwrap();
        assert_eq!(r.inner.pull_times.pending_images(), 0);
        let images = r
            .meta()
            .describe_images(&repo, TagStatus::Any, None, 10)
            .await
            .unwrap()
            .unwrap();
        assert!(images[0].last_pull_ms.is_some(), "{images:?}");
    }
}
