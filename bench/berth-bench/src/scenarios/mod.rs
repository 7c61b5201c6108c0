//! The benchmark scenarios. Each prepares its data (untimed), measures one phase while sampling the
//! server process, and returns a `Report`.

pub mod auth;
pub mod blob;
pub mod describe;
pub mod gc;
pub mod hot;
pub mod image;
pub mod lifecycle;
pub mod listing;
pub mod mixed;
pub mod storm;

use std::time::Duration;

use anyhow::{anyhow, Context, Result};

use crate::aws::AwsClient;
use crate::client::{config_blob, image_manifest, Blob, Registry, OCI_MANIFEST};
use crate::procstat::Sampler;

pub struct Ctx {
    /// The `/v2` client, carrying the login when an access key was given.
    pub reg: Registry,
    /// The signed ECR/IAM client of that access key.
    pub aws: Option<AwsClient>,
    pub prefix: String,
    pub server_pid: Option<u32>,
    pub region: String,
    pub timeout: Duration,
    /// How `/v2` logins are made (for the users a scenario creates).
    pub v2_login: crate::auth::V2Login,
}

impl Ctx {
    /// The ECR API client, which the Berth-only scenarios need.
    pub fn aws(&self) -> Result<&AwsClient> {
        self.aws.as_ref().ok_or_else(|| {
            anyhow!("this scenario uses the ECR API: give --access-key-id and --secret-access-key")
        })
    }

    pub fn repo(&self, name: &str) -> String {
        format!("{}/{}", self.prefix, name)
    }

    /// Starts sampling the server; call right before the measured phase.
    pub fn sampler(&self) -> Sampler {
        Sampler::start(self.server_pid)
    }
}

/// What every scenario's client needs besides the registry's address and credentials.
pub struct Connect {
    pub prefix: String,
    pub region: String,
    pub timeout: Duration,
    pub v2_login: crate::auth::V2Login,
}

impl Connect {
    /// The scenario context for `reg`: with an access key, the signed ECR/IAM client and the
    /// `/v2` client carrying the `Authorization` chosen by `--v2-login`, checked once with
    /// `GET /v2/`.
    pub async fn login(
        &self,
        reg: Registry,
        server_pid: Option<u32>,
        key: Option<crate::auth::AccessKey>,
    ) -> Result<Ctx> {
        let (reg, aws) = match key {
            None => (reg, None),
            Some(key) => {
                let aws = AwsClient::new(reg.clone(), key.clone(), &self.region)?;
                let header = match self.v2_login {
                    crate::auth::V2Login::Token => Some(
                        aws.login_header()
                            .await
                            .context("GetAuthorizationToken for the /v2 login")?,
                    ),
                    crate::auth::V2Login::Key => {
                        Some(crate::auth::basic_header(&key.id, &key.secret))
                    }
                    crate::auth::V2Login::None => None,
                };
                let reg = reg.with_auth(header.as_deref())?;
                if header.is_some() {
                    reg.check_login().await?;
                }
                (reg, Some(aws))
            }
        };
        Ok(Ctx {
            reg,
            aws,
            prefix: self.prefix.clone(),
            server_pid,
            region: self.region.clone(),
            timeout: self.timeout,
            v2_login: self.v2_login,
        })
    }

    /// The context for a server the bench started (`key`: its administrator key, `None` for
    /// a registry without access control).
    pub async fn ctx_for(
        &self,
        server: &crate::server::Server,
        key: Option<&crate::auth::AccessKey>,
    ) -> Result<Ctx> {
        let reg = Registry::new(&server.url, self.timeout)?;
        self.login(reg, Some(server.pid), key.cloned()).await
    }
}

/// `n` random blobs of `size` bytes, generated and hashed off the async threads.
pub async fn random_blobs(n: usize, size: usize) -> Result<Vec<Blob>> {
    let workers = 2usize.min(n.max(1));
    let mut handles = Vec::new();
    for w in 0..workers {
        let count = n / workers + usize::from(w < n % workers);
        handles.push(tokio::task::spawn_blocking(move || {
            (0..count).map(|_| Blob::random(size)).collect::<Vec<_>>()
        }));
    }
    let mut out = Vec::with_capacity(n);
    for h in handles {
        out.extend(h.await.context("blob generator panicked")?);
    }
    Ok(out)
}

/// Pushes a tiny image (config + one small layer) to `repo:tag`; returns (config, layer, manifest bytes).
pub async fn push_tiny_image(
    reg: &Registry,
    repo: &str,
    tag: &str,
) -> Result<(Blob, Blob, bytes::Bytes)> {
    let config = config_blob(repo);
    let layer = Blob::random(256);
    reg.ensure_blob(repo, &layer).await?;
    reg.ensure_blob(repo, &config).await?;
    let m = image_manifest(&config, &[&layer], tag);
    reg.put_manifest(repo, tag, OCI_MANIFEST, m.clone()).await?;
    Ok((config, layer, m))
}
