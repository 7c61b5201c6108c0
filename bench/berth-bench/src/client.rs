//! A thin OCI Distribution API client over plain HTTP/1.1 with a shared, keep-alive connection pool.
//! Push helpers (monolithic, chunked, mount), pull helpers that hash while reading, and listing with `Link`.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::{TokioExecutor, TokioIo};
use sha2::{Digest, Sha256};

/// `Content-Type` and `Content-Length` of a request carrying the whole blob.
fn octet_stream_headers(blob: &Blob) -> [(header::HeaderName, String); 2] {
    [
        (header::CONTENT_TYPE, "application/octet-stream".to_string()),
        (header::CONTENT_LENGTH, blob.data.len().to_string()),
    ]
}

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const ACCEPT_MANIFESTS: &str = "application/vnd.oci.image.manifest.v1+json, \
application/vnd.oci.image.index.v1+json, \
application/vnd.docker.distribution.manifest.v2+json, \
application/vnd.docker.distribution.manifest.list.v2+json";

/// Errors the scenarios count by kind (see `stats::Errors::count`).
#[derive(Debug)]
pub enum BenchError {
    Status {
        status: u16,
        what: String,
        body: String,
    },
    Verify(String),
}

impl std::fmt::Display for BenchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BenchError::Status { status, what, body } => write!(f, "{what}: HTTP {status}: {body}"),
            BenchError::Verify(m) => write!(f, "verification failed: {m}"),
        }
    }
}

impl std::error::Error for BenchError {}

/// Content and its `sha256:` digest.
#[derive(Clone)]
pub struct Blob {
    pub data: Bytes,
    pub digest: String,
}

impl Blob {
    pub fn new(data: impl Into<Bytes>) -> Self {
        let data = data.into();
        let digest = sha256_digest(&data);
        Blob { data, digest }
    }

    /// `len` bytes of fresh pseudo-random data (fast, non-cryptographic, never deduplicates).
    pub fn random(len: usize) -> Self {
        use rand::{RngCore, SeedableRng};
        let mut rng = rand::rngs::SmallRng::from_entropy();
        let mut v = vec![0u8; len];
        rng.fill_bytes(&mut v);
        Blob::new(v)
    }
}

pub fn sha256_digest(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// A response whose body was read completely (so the connection goes back to the pool).
pub struct Collected {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

/// How requests reach the server: a shared keep-alive pool, or one connection owned by one worker.
#[derive(Clone)]
enum Transport {
    Pool(Arc<Client<HttpConnector, Full<Bytes>>>),
    Dedicated(Arc<tokio::sync::Mutex<Option<Sender>>>),
}

#[derive(Clone)]
pub struct Registry {
    base: String,
    authority: String,
    transport: Transport,
    timeout: Duration,
    /// `Authorization` sent with every request that does not set its own.
    auth: Option<HeaderValue>,
}

impl Registry {
    pub fn new(base: &str, timeout: Duration) -> Result<Self> {
        let base = base.trim_end_matches('/').to_string();
        if !base.starts_with("http://") {
            return Err(anyhow!("--registry must be an http:// URL, got {base}"));
        }
        let mut conn = HttpConnector::new();
        conn.set_nodelay(true);
        conn.set_keepalive(Some(Duration::from_secs(60)));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(usize::MAX)
            .build(conn);
        let authority = base
            .trim_start_matches("http://")
            .split('/')
            .next()
            .unwrap_or_default()
            .to_string();
        Ok(Registry {
            base,
            authority,
            transport: Transport::Pool(Arc::new(client)),
            timeout,
            auth: None,
        })
    }

    /// A copy that sends `authorization` (a header value such as `Basic ...`) with every
    /// request, or nothing when `None`. Shares the connection pool.
    pub fn with_auth(&self, authorization: Option<&str>) -> Result<Registry> {
        Ok(Registry {
            auth: authorization.map(HeaderValue::from_str).transpose()?,
            ..self.clone()
        })
    }

    pub fn authority(&self) -> &str {
        &self.authority
    }

    /// A copy that sends everything over one connection of its own (opened lazily, reopened if
    /// closed): cheaper per request than the pool, and an exact connection count for hot loops.
    pub fn dedicated(&self) -> Registry {
        Registry {
            transport: Transport::Dedicated(Arc::new(tokio::sync::Mutex::new(None))),
            ..self.clone()
        }
    }

    async fn connect(&self) -> Result<Sender> {
        let tcp = tokio::net::TcpStream::connect(&self.authority).await?;
        tcp.set_nodelay(true)?;
        let (tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(tx)
    }

    async fn send_dedicated(
        &self,
        slot: &tokio::sync::Mutex<Option<Sender>>,
        mut req: Request<Full<Bytes>>,
    ) -> Result<Response<Incoming>> {
        let path = req
            .uri()
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .parse()?;
        *req.uri_mut() = path;
        req.headers_mut()
            .insert(header::HOST, HeaderValue::from_str(&self.authority)?);
        let mut guard = slot.lock().await;
        if guard.as_ref().is_none_or(|s| s.is_closed()) {
            *guard = Some(self.connect().await?);
        }
        let tx = guard.as_mut().expect("connected above");
        tx.ready().await?;
        Ok(tx.send_request(req).await?)
    }

    /// Absolute URL for a path (`/v2/...`) or a `Location`/`Link` value (absolute or relative).
    pub fn url(&self, loc: &str) -> String {
        if loc.starts_with("http://") || loc.starts_with("https://") {
            loc.to_string()
        } else if loc.starts_with('/') {
            format!("{}{}", self.base, loc)
        } else {
            format!("{}/{}", self.base, loc)
        }
    }

    async fn send(&self, req: Request<Full<Bytes>>) -> Result<Response<Incoming>> {
        self.send_to(req, true).await
    }

    /// Sends `req` to the registry (`own_origin`: with its credentials) or, following a
    /// redirect, elsewhere (an object store's presigned URL): then without them, as Docker
    /// and containerd do (S3 refuses a request with two authentications).
    async fn send_to(
        &self,
        mut req: Request<Full<Bytes>>,
        own_origin: bool,
    ) -> Result<Response<Incoming>> {
        if let (true, Some(a)) = (own_origin, &self.auth) {
            req.headers_mut()
                .entry(header::AUTHORIZATION)
                .or_insert_with(|| a.clone());
        }
        let what = format!("{} {}", req.method(), req.uri().path());
        let fut = async {
            match &self.transport {
                Transport::Pool(c) => Ok(c.request(req).await?),
                Transport::Dedicated(slot) if own_origin => self.send_dedicated(slot, req).await,
                Transport::Dedicated(_) => Err(anyhow!(
                    "{what}: a redirect to another host on a dedicated connection"
                )),
            }
        };
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(r) => r.with_context(|| what.clone()),
            Err(_) => Err(anyhow!("{what}: timed out after {:?}", self.timeout)),
        }
    }

    /// Sends a request and reads the whole response body.
    pub async fn call(
        &self,
        method: Method,
        url: &str,
        headers: &[(header::HeaderName, String)],
        body: Bytes,
    ) -> Result<Collected> {
        let mut b = Request::builder().method(method).uri(self.url(url));
        for (k, v) in headers {
            b = b.header(k, HeaderValue::from_str(v)?);
        }
        let resp = self.send(b.body(Full::new(body))?).await?;
        let (parts, body) = resp.into_parts();
        let body = tokio::time::timeout(self.timeout, body.collect())
            .await
            .map_err(|_| anyhow!("reading body of {url}: timed out"))??
            .to_bytes();
        Ok(Collected {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }

    /// `call` that turns any status other than `want` into a `BenchError::Status`.
    async fn expect(
        &self,
        what: &str,
        method: Method,
        url: &str,
        headers: &[(header::HeaderName, String)],
        body: Bytes,
        want: &[u16],
    ) -> Result<Collected> {
        let r = self.call(method, url, headers, body).await?;
        if !want.contains(&r.status.as_u16()) {
            return Err(status_error(what, &r).into());
        }
        Ok(r)
    }

    async fn start_upload(&self, repo: &str, query: &str) -> Result<Collected> {
        let url = format!("/v2/{repo}/blobs/uploads/{query}");
        self.expect(
            "start upload",
            Method::POST,
            &url,
            &[],
            Bytes::new(),
            &[201, 202],
        )
        .await
    }

    /// POST, then one PUT carrying the whole body and `?digest=`.
    pub async fn push_blob_monolithic(&self, repo: &str, blob: &Blob) -> Result<()> {
        let r = self.start_upload(repo, "").await?;
        self.put_whole_blob(&location(&r)?, blob).await
    }

    /// The closing `PUT <upload location>?digest=` that carries the whole body.
    async fn put_whole_blob(&self, loc: &str, blob: &Blob) -> Result<()> {
        let url = with_query(loc, "digest", &blob.digest);
        self.expect(
            "put blob",
            Method::PUT,
            &url,
            &octet_stream_headers(blob),
            blob.data.clone(),
            &[201],
        )
        .await?;
        Ok(())
    }

    /// POST, PATCH each chunk with `Content-Range`, then an empty PUT with `?digest=`.
    pub async fn push_blob_chunked(&self, repo: &str, blob: &Blob, chunk: usize) -> Result<()> {
        let r = self.start_upload(repo, "").await?;
        let mut loc = location(&r)?;
        let mut off = 0usize;
        while off < blob.data.len() {
            let end = (off + chunk.max(1)).min(blob.data.len());
            let hdrs = [
                (header::CONTENT_TYPE, "application/octet-stream".to_string()),
                (header::CONTENT_LENGTH, (end - off).to_string()),
                (header::CONTENT_RANGE, format!("{}-{}", off, end - 1)),
            ];
            let r = self
                .expect(
                    "patch chunk",
                    Method::PATCH,
                    &loc,
                    &hdrs,
                    blob.data.slice(off..end),
                    &[202],
                )
                .await?;
            loc = location(&r)?;
            off = end;
        }
        let url = with_query(&loc, "digest", &blob.digest);
        let hdrs = [(header::CONTENT_LENGTH, "0".to_string())];
        self.expect(
            "finish chunked upload",
            Method::PUT,
            &url,
            &hdrs,
            Bytes::new(),
            &[201],
        )
        .await?;
        Ok(())
    }

    /// The one-request monolithic upload: `POST ?digest=` carrying the body (201). A registry
    /// that answers 202 instead (it started an ordinary upload and ignored the body, as
    /// distribution 2.8 does) gets the body in a `PUT ?digest=`. Returns the requests sent.
    pub async fn push_blob_post(&self, repo: &str, blob: &Blob) -> Result<u32> {
        let url = format!("/v2/{repo}/blobs/uploads/?digest={}", blob.digest);
        let r = self
            .expect(
                "post blob",
                Method::POST,
                &url,
                &octet_stream_headers(blob),
                blob.data.clone(),
                &[201, 202],
            )
            .await?;
        if r.status == StatusCode::CREATED {
            return Ok(1);
        }
        self.put_whole_blob(&location(&r)?, blob).await?;
        Ok(2)
    }

    pub async fn blob_exists(&self, repo: &str, digest: &str) -> Result<bool> {
        let r = self
            .call(
                Method::HEAD,
                &format!("/v2/{repo}/blobs/{digest}"),
                &[],
                Bytes::new(),
            )
            .await?;
        match r.status.as_u16() {
            200 => Ok(true),
            404 => Ok(false),
            _ => Err(status_error("head blob", &r).into()),
        }
    }

    /// What a real client does: HEAD, then upload only if missing.
    pub async fn ensure_blob(&self, repo: &str, blob: &Blob) -> Result<()> {
        if !self.blob_exists(repo, &blob.digest).await? {
            self.push_blob_monolithic(repo, blob).await?;
        }
        Ok(())
    }

    /// Cross-repository mount; falls back to a monolithic upload if the registry answers 202.
    pub async fn mount_or_push(&self, repo: &str, from: &str, blob: &Blob) -> Result<()> {
        let q = format!("?mount={}&from={}", blob.digest, from);
        let r = self.start_upload(repo, &q).await?;
        if r.status == StatusCode::CREATED {
            return Ok(());
        }
        self.put_whole_blob(&location(&r)?, blob).await
    }

    /// PUT a manifest; returns its digest.
    pub async fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        body: Bytes,
    ) -> Result<String> {
        let digest = sha256_digest(&body);
        let hdrs = [(header::CONTENT_TYPE, media_type.to_string())];
        let url = format!("/v2/{repo}/manifests/{reference}");
        self.expect("put manifest", Method::PUT, &url, &hdrs, body, &[201])
            .await?;
        Ok(digest)
    }

    /// GET a manifest; checks `Docker-Content-Digest` against the body when present.
    pub async fn get_manifest(&self, repo: &str, reference: &str) -> Result<(Bytes, String)> {
        let url = format!("/v2/{repo}/manifests/{reference}");
        let hdrs = [(header::ACCEPT, ACCEPT_MANIFESTS.to_string())];
        let r = self
            .expect(
                "get manifest",
                Method::GET,
                &url,
                &hdrs,
                Bytes::new(),
                &[200],
            )
            .await?;
        let digest = sha256_digest(&r.body);
        if let Some(h) = r
            .headers
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
        {
            if h != digest {
                return Err(BenchError::Verify(format!(
                    "manifest {repo}:{reference}: header {h} but body {digest}"
                ))
                .into());
            }
        }
        if reference.starts_with("sha256:") && reference != digest {
            return Err(BenchError::Verify(format!(
                "manifest {reference}: body hashes to {digest}"
            ))
            .into());
        }
        Ok((r.body, digest))
    }

    pub async fn head_manifest(&self, repo: &str, reference: &str) -> Result<()> {
        let url = format!("/v2/{repo}/manifests/{reference}");
        let hdrs = [(header::ACCEPT, ACCEPT_MANIFESTS.to_string())];
        let r = self
            .expect(
                "head manifest",
                Method::HEAD,
                &url,
                &hdrs,
                Bytes::new(),
                &[200],
            )
            .await?;
        if r.headers.get("docker-content-digest").is_none() {
            return Err(
                BenchError::Verify("HEAD manifest without Docker-Content-Digest".into()).into(),
            );
        }
        Ok(())
    }

    /// GET a blob, hashing while streaming; returns the byte count. Follows redirects (a
    /// presigned object store URL: without the registry's credentials).
    pub async fn get_blob_verified(&self, repo: &str, digest: &str) -> Result<u64> {
        let mut url = self.url(&format!("/v2/{repo}/blobs/{digest}"));
        for _ in 0..3 {
            let req = Request::get(&url).body(Full::new(Bytes::new()))?;
            let own_origin = url.starts_with(&format!("{}/", self.base));
            let resp = self.send_to(req, own_origin).await?;
            let status = resp.status();
            if status.is_redirection() {
                let loc = resp
                    .headers()
                    .get(header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                drain(resp.into_body()).await;
                url = self.url(&loc.ok_or_else(|| anyhow!("redirect without Location"))?);
                continue;
            }
            if status != StatusCode::OK {
                let (parts, body) = resp.into_parts();
                let body = body
                    .collect()
                    .await
                    .map(|b| b.to_bytes())
                    .unwrap_or_default();
                let c = Collected {
                    status: parts.status,
                    headers: parts.headers,
                    body,
                };
                return Err(status_error("get blob", &c).into());
            }
            let mut body = resp.into_body();
            let mut hasher = Sha256::new();
            let mut n = 0u64;
            let read = async {
                while let Some(frame) = body.frame().await {
                    if let Ok(data) = frame?.into_data() {
                        n += data.len() as u64;
                        hasher.update(&data);
                    }
                }
                Ok::<_, anyhow::Error>(())
            };
            tokio::time::timeout(self.timeout, read)
                .await
                .map_err(|_| anyhow!("reading blob {digest}: timed out"))??;
            let got = format!("sha256:{}", hex::encode(hasher.finalize()));
            if got != digest {
                return Err(BenchError::Verify(format!(
                    "blob {digest}: body hashes to {got} ({n} bytes)"
                ))
                .into());
            }
            return Ok(n);
        }
        Err(anyhow!("too many redirects for {digest}"))
    }

    /// GET one JSON listing page; returns the body and the next page's URL from `Link`.
    pub async fn get_page(&self, url: &str) -> Result<(serde_json::Value, Option<String>)> {
        let r = self
            .expect("list", Method::GET, url, &[], Bytes::new(), &[200])
            .await?;
        let v: serde_json::Value = serde_json::from_slice(&r.body)
            .map_err(|e| BenchError::Verify(format!("listing {url} is not JSON: {e}")))?;
        let next = r
            .headers
            .get(header::LINK)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_next_link);
        Ok((v, next))
    }

    pub async fn ping(&self) -> Result<()> {
        self.expect("ping", Method::GET, "/v2/", &[], Bytes::new(), &[200, 401])
            .await?;
        Ok(())
    }

    /// `GET /v2/` must answer 200: the credentials (if any) are accepted.
    pub async fn check_login(&self) -> Result<()> {
        self.expect(
            "GET /v2/ with credentials",
            Method::GET,
            "/v2/",
            &[],
            Bytes::new(),
            &[200],
        )
        .await?;
        Ok(())
    }
}

async fn drain(mut body: Incoming) {
    while let Some(Ok(_)) = body.frame().await {}
}

pub fn status_error(what: &str, r: &Collected) -> BenchError {
    let mut body = String::from_utf8_lossy(&r.body).into_owned();
    body.truncate(300);
    BenchError::Status {
        status: r.status.as_u16(),
        what: what.to_string(),
        body,
    }
}

fn location(r: &Collected) -> Result<String> {
    r.headers
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .ok_or_else(|| anyhow!("response {} without Location", r.status))
}

/// Appends `key=value` to a URL that may already carry a query.
pub fn with_query(url: &str, key: &str, value: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{key}={value}")
}

/// `<url>; rel="next"` → url (RFC 8288, only what registries send).
pub fn parse_next_link(h: &str) -> Option<String> {
    h.split(',').find_map(|part| {
        let part = part.trim();
        let (url, rest) = part.strip_prefix('<')?.split_once('>')?;
        rest.split(';')
            .any(|p| {
                let p = p.trim().replace(' ', "");
                p == "rel=\"next\"" || p == "rel=next"
            })
            .then(|| url.to_string())
    })
}

/// A minimal OCI image manifest referencing `config` and `layers`; `annotation` makes it unique.
pub fn image_manifest(config: &Blob, layers: &[&Blob], annotation: &str) -> Bytes {
    let layers: Vec<serde_json::Value> = layers
        .iter()
        .map(|l| serde_json::json!({"mediaType": OCI_LAYER, "digest": l.digest, "size": l.data.len()}))
        .collect();
    let m = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config.digest, "size": config.data.len()},
        "layers": layers,
        "annotations": {"org.berth.bench": annotation},
    });
    Bytes::from(serde_json::to_vec(&m).expect("manifest serializes"))
}

/// A small image config blob; `salt` makes it unique.
pub fn config_blob(salt: &str) -> Blob {
    let c = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Labels": {"org.berth.bench": salt}},
        "rootfs": {"type": "layers", "diff_ids": []},
    });
    Blob::new(serde_json::to_vec(&c).expect("config serializes"))
}

/// Digests of the config and layers referenced by a manifest body.
pub fn manifest_blobs(body: &[u8]) -> Result<Vec<String>> {
    let v: serde_json::Value = serde_json::from_slice(body).context("manifest is not JSON")?;
    let mut out = Vec::new();
    if let Some(d) = v.pointer("/config/digest").and_then(|d| d.as_str()) {
        out.push(d.to_string());
    }
    for l in v
        .get("layers")
        .and_then(|l| l.as_array())
        .into_iter()
        .flatten()
    {
        if let Some(d) = l.get("digest").and_then(|d| d.as_str()) {
            out.push(d.to_string());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_parsing() {
        assert_eq!(
            parse_next_link(r#"</v2/_catalog?last=b&n=50>; rel="next""#).as_deref(),
            Some("/v2/_catalog?last=b&n=50")
        );
        assert_eq!(
            parse_next_link(r#"<http://x/v2/a/tags/list?n=2&last=t>; rel=next"#).as_deref(),
            Some("http://x/v2/a/tags/list?n=2&last=t")
        );
        assert_eq!(parse_next_link(r#"</v2/x>; rel="prev""#), None);
    }

    #[test]
    fn query_append() {
        assert_eq!(
            with_query("http://h/u", "digest", "sha256:a"),
            "http://h/u?digest=sha256:a"
        );
        assert_eq!(
            with_query("http://h/u?_state=x", "digest", "d"),
            "http://h/u?_state=x&digest=d"
        );
    }

    #[test]
    fn manifest_roundtrip() {
        let c = config_blob("x");
        let l = Blob::random(10);
        let m = image_manifest(&c, &[&l], "a");
        assert_eq!(
            manifest_blobs(&m).unwrap(),
            vec![c.digest.clone(), l.digest.clone()]
        );
    }
}
