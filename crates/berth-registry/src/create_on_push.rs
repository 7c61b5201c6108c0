//! What a push to a repository that does not exist does: the hook every push path calls
//! before it writes (upload start, monolithic blob push, mount, manifest PUT; the ECR
//! API's InitiateLayerUpload and PutImage go through the same methods).
//!
//! ECR creates a missing repository on push only from a repository creation template
//! applied for `CREATE_ON_PUSH` ([`TemplateProvisioner`]: the longest matching prefix,
//! `ROOT` as the catch-all), with the template's tag mutability, policy and tags, and
//! otherwise refuses the push (`RepositoryNotFound` → `/v2` 404 `NAME_UNKNOWN`). A plain
//! [`Registry::new`](crate::Registry::new) keeps the behaviour of an OCI registry, where
//! every push creates its repository ([`ImplicitRepositories`]); `berth serve` installs
//! the template provisioner, and first start creates a `ROOT` template so that pushes
//! work out of the box until an operator deletes it.
//!
//! The same hook answers whether cross-repository blob mounts are allowed (ECR's
//! `BLOB_MOUNTING` account setting); a refused mount falls back to an ordinary upload,
//! as the distribution spec allows.

use std::sync::Arc;

use futures::future::BoxFuture;
use parking_lot::Mutex;

use berth_meta::settings::{AppliedFor, EcrSettingsStore, Provisioned, SettingsError};
use berth_types::{AccountId, RepositoryName};

use crate::error::{RegistryError, Result};

/// Decides what happens when a push names a repository.
pub trait RepositoryProvisioner: Send + Sync + 'static {
    /// Makes sure `repo` exists before a push writes to it: `Ok` if it exists or was just
    /// created, `RepositoryNotFound` if the push must be refused.
    fn ensure_repository<'a>(&'a self, repo: &'a RepositoryName) -> BoxFuture<'a, Result<()>>;

    /// Whether a blob may be mounted from another repository of `account`'s registry.
    fn mounts_allowed(&self, account: AccountId) -> BoxFuture<'_, Result<bool>>;
}

/// Every push creates its repository with default settings (the store creates the row
/// in the push's own transaction); mounts are always allowed.
#[derive(Debug, Clone, Copy, Default)]
pub struct ImplicitRepositories;

impl RepositoryProvisioner for ImplicitRepositories {
    fn ensure_repository<'a>(&'a self, _repo: &'a RepositoryName) -> BoxFuture<'a, Result<()>> {
        Box::pin(async { Ok(()) })
    }

    fn mounts_allowed(&self, _account: AccountId) -> BoxFuture<'_, Result<bool>> {
        Box::pin(async { Ok(true) })
    }
}

/// The account setting that turns cross-repository mounts off (`DISABLED`).
pub const BLOB_MOUNTING: &str = "BLOB_MOUNTING";

/// ECR's behaviour: a missing repository is created from the account's best
/// `CREATE_ON_PUSH` template, in one transaction with its policy and tags, or the push is
/// refused. Repositories belong to the registry's single served account for now.
pub struct TemplateProvisioner {
    settings: Arc<dyn EcrSettingsStore>,
    /// Called after a repository was created, e.g. so that caches of "this repository
    /// has no policy" (authorization looked before the push created it) are dropped.
    listeners: Mutex<Vec<CreatedListener>>,
}

type CreatedListener = Box<dyn Fn(&RepositoryName) + Send + Sync>;

impl TemplateProvisioner {
    /// Creates repositories from the templates of the account each one belongs to.
    pub fn new(settings: Arc<dyn EcrSettingsStore>) -> Self {
        TemplateProvisioner {
            settings,
            listeners: Mutex::new(Vec::new()),
        }
    }

    /// Registers `f` to run (synchronously, keep it cheap) after each repository this
    /// provisioner creates.
    pub fn on_create(&self, f: impl Fn(&RepositoryName) + Send + Sync + 'static) {
        self.listeners.lock().push(Box::new(f));
    }
}

fn from_settings(e: SettingsError) -> RegistryError {
    match e {
        SettingsError::Meta(m) => m.into(),
        SettingsError::RepositoryNotFound(name) => RegistryError::RepositoryNotFound(name),
        other => RegistryError::Internal(Box::new(other)),
    }
}

impl RepositoryProvisioner for TemplateProvisioner {
    fn ensure_repository<'a>(&'a self, repo: &'a RepositoryName) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let now_ms = crate::now_ms();
            match self
                .settings
                .provision_repository(
                    repo.account().as_str(),
                    repo,
                    AppliedFor::CreateOnPush,
                    now_ms,
                )
                .await
                .map_err(from_settings)?
            {
                Provisioned::Existing => Ok(()),
                Provisioned::Created { template, .. } => {
                    tracing::info!(repository = %repo, template, "created repository on push");
                    for listener in self.listeners.lock().iter() {
                        listener(repo);
                    }
                    Ok(())
                }
                Provisioned::NoTemplate => Err(RegistryError::RepositoryNotFound(repo.to_string())),
            }
        })
    }

    fn mounts_allowed(&self, account: AccountId) -> BoxFuture<'_, Result<bool>> {
        Box::pin(async move {
            let value = self
                .settings
                .account_setting(account.as_str(), BLOB_MOUNTING)
                .await
                .map_err(from_settings)?;
            Ok(value.as_deref() != Some("DISABLED"))
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;
    use futures::stream;

    use berth_blobstore::DiskBlobStore;
    use berth_meta::settings::{CreationTemplate, ResourceTag};
    use berth_meta::sqlite::SqliteMetaStore;
    use berth_meta::RepositoryStore;
    use berth_types::{Digest, Reference, RepositoryName};

    use super::*;
    use crate::{Registry, RegistryOptions};

    const ACCOUNT: &str = "123456789012";

    fn name(s: &str) -> RepositoryName {
        RepositoryName::new(ACCOUNT.parse().unwrap(), s).unwrap()
    }

    fn body(b: &[u8]) -> impl futures::Stream<Item = std::io::Result<Bytes>> + Send {
        stream::iter(vec![Ok(Bytes::copy_from_slice(b))])
    }

    fn setup(dir: &std::path::Path) -> (Registry, SqliteMetaStore) {
        let meta = SqliteMetaStore::open(dir.join("meta.db")).unwrap();
        let blobs = DiskBlobStore::open(dir).unwrap();
        let registry = Registry::with_provisioner(
            Arc::new(meta.clone()),
            Arc::new(blobs),
            RegistryOptions::default(),
            Arc::new(TemplateProvisioner::new(Arc::new(meta.clone()))),
        );
        (registry, meta)
    }

    #[tokio::test]
    async fn every_push_path_needs_a_template_for_a_missing_repository() {
        let dir = tempfile::tempdir().unwrap();
        let (r, meta) = setup(dir.path());
        let data = b"layer bytes";
        let digest = Digest::sha256_of(data);
        let missing =
            |e: RegistryError| matches!(e, RegistryError::RepositoryNotFound(n) if n == "team/app");
        let app = name("team/app");
        assert!(missing(r.start_upload(&app).await.unwrap_err()));
        assert!(missing(
            r.push_blob(&app, &digest, body(data)).await.unwrap_err()
        ));
        assert!(missing(
            r.put_manifest(
                &app,
                &Reference::Tag("v1".parse().unwrap()),
                Some("application/vnd.oci.image.manifest.v1+json"),
                Bytes::from_static(br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}"#),
            )
            .await
            .unwrap_err()
        ));
        assert!(meta.get_repository(&app).await.unwrap().is_none());

        // A source repository to mount from, created by the API.
        meta.create_repository(&name("src/base"), &Default::default(), 1)
            .await
            .unwrap();
        r.push_blob(&name("src/base"), &digest, body(data))
            .await
            .unwrap();
        assert!(missing(
            r.mount_blob(&app, &name("src/base"), &digest)
                .await
                .unwrap_err()
        ));

        // With a template the first push creates the repository with its settings.
        let mut t = CreationTemplate::new("team", vec![AppliedFor::CreateOnPush], 2);
        t.image_tag_mutability = "IMMUTABLE".into();
        t.resource_tags = vec![ResourceTag::new("owner", "team")];
        t.repository_policy = Some("{}".into());
        meta.create_template(ACCOUNT, &t).await.unwrap();
        assert_eq!(
            r.mount_blob(&app, &name("src/base"), &digest)
                .await
                .unwrap(),
            Some(data.len() as u64)
        );
        let created = meta.get_repository(&app).await.unwrap().unwrap();
        assert_eq!(created.image_tag_mutability, "IMMUTABLE");
        assert_eq!(
            meta.repository_tags(ACCOUNT, "team/app").await.unwrap(),
            vec![ResourceTag::new("owner", "team")]
        );
        r.start_upload(&name("team/other")).await.unwrap();
        assert!(meta
            .get_repository(&name("team/other"))
            .await
            .unwrap()
            .is_some());
    }

    #[tokio::test]
    async fn listeners_hear_of_each_created_repository_once() {
        let dir = tempfile::tempdir().unwrap();
        let meta = SqliteMetaStore::open(dir.path().join("meta.db")).unwrap();
        let p = TemplateProvisioner::new(Arc::new(meta.clone()));
        let heard = Arc::new(Mutex::new(Vec::new()));
        let h = heard.clone();
        p.on_create(move |r| h.lock().push(r.to_string()));
        assert!(p.ensure_repository(&name("t/a")).await.is_err());
        meta.create_template(
            ACCOUNT,
            &CreationTemplate::new("t", vec![AppliedFor::CreateOnPush], 1),
        )
        .await
        .unwrap();
        p.ensure_repository(&name("t/a")).await.unwrap();
        p.ensure_repository(&name("t/a")).await.unwrap();
        assert_eq!(*heard.lock(), vec!["t/a".to_string()]);
    }

    #[tokio::test]
    async fn disabled_blob_mounting_falls_back_to_an_upload() {
        let dir = tempfile::tempdir().unwrap();
        let (r, meta) = setup(dir.path());
        meta.create_template(
            ACCOUNT,
            &CreationTemplate::new("ROOT", vec![AppliedFor::CreateOnPush], 1),
        )
        .await
        .unwrap();
        let data = b"shared";
        let digest = Digest::sha256_of(data);
        r.push_blob(&name("a/src"), &digest, body(data))
            .await
            .unwrap();
        assert!(r
            .mount_blob(&name("a/one"), &name("a/src"), &digest)
            .await
            .unwrap()
            .is_some());
        meta.put_account_setting(ACCOUNT, BLOB_MOUNTING, "DISABLED", 2)
            .await
            .unwrap();
        assert_eq!(
            r.mount_blob(&name("a/two"), &name("a/src"), &digest)
                .await
                .unwrap(),
            None
        );
        assert!(r.blob_size(&name("a/two"), &digest).await.is_err());
        meta.put_account_setting(ACCOUNT, BLOB_MOUNTING, "ENABLED", 3)
            .await
            .unwrap();
        assert!(r
            .mount_blob(&name("a/two"), &name("a/src"), &digest)
            .await
            .unwrap()
            .is_some());
    }

    #[tokio::test]
    async fn a_plain_registry_creates_repositories_implicitly() {
        let dir = tempfile::tempdir().unwrap();
        let meta = SqliteMetaStore::open(dir.path().join("meta.db")).unwrap();
        let blobs = DiskBlobStore::open(dir.path()).unwrap();
        let r = Registry::new(
            Arc::new(meta.clone()),
            Arc::new(blobs),
            RegistryOptions::default(),
        );
        let data = b"x";
        r.push_blob(&name("any/where"), &Digest::sha256_of(data), body(data))
            .await
            .unwrap();
        assert!(meta
            .get_repository(&name("any/where"))
            .await
            .unwrap()
            .is_some());
    }
}
