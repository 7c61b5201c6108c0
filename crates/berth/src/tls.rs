//! TLS with rustls: a configured certificate and key, or a generated local CA and
//! server certificate (`--tls-self-signed`), kept in `<data_dir>/tls` and reused.

use std::io::BufReader;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use berth_config::Config;

fn load_certs(pem: &[u8]) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = rustls_pemfile::certs(&mut BufReader::new(pem)).collect::<Result<Vec<_>, _>>()?;
    anyhow::ensure!(!certs.is_empty(), "no certificate found in PEM");
    Ok(certs)
}

fn load_key(pem: &[u8]) -> anyhow::Result<PrivateKeyDer<'static>> {
    rustls_pemfile::private_key(&mut BufReader::new(pem))?.context("no private key found in PEM")
}

fn server_config(
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> anyhow::Result<TlsAcceptor> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("certificate and key do not match")?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(cfg)))
}

/// The TLS acceptor for the configuration, or `None` for plain HTTP.
pub fn acceptor(cfg: &Config) -> anyhow::Result<Option<TlsAcceptor>> {
    let tls = &cfg.tls;
    if tls.self_signed {
        let dir = cfg.storage.data_dir.join("tls");
        let (cert, key) = self_signed(&dir, cfg)?;
        return server_config(load_certs(&cert)?, load_key(&key)?).map(Some);
    }
    let Some(cert_path) = &tls.cert else {
        return Ok(None);
    };
    let cert =
        std::fs::read(cert_path).with_context(|| format!("reading {}", cert_path.display()))?;
    let key = match (&tls.key, &tls.key_pem) {
        (Some(p), _) => std::fs::read(p).with_context(|| format!("reading {}", p.display()))?,
        (None, Some(pem)) => pem.expose().as_bytes().to_vec(),
        (None, None) => anyhow::bail!("tls.cert needs tls.key"),
    };
    server_config(load_certs(&cert)?, load_key(&key)?).map(Some)
}

fn write_private(path: &Path, data: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(data)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// Returns (server certificate chain PEM, server key PEM), generating them on first use.
fn self_signed(dir: &Path, cfg: &Config) -> anyhow::Result<(Vec<u8>, Vec<u8>)> {
    let (ca_path, cert_path, key_path) = (
        dir.join("ca.pem"),
        dir.join("server.pem"),
        dir.join("server.key"),
    );
    if !(cert_path.exists() && key_path.exists() && ca_path.exists()) {
        std::fs::create_dir_all(dir)?;
        let mut hosts: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
        let ip = cfg.server.listen.ip();
        if !ip.is_unspecified() {
            hosts.push(ip.to_string());
        }
        hosts.extend(cfg.tls.self_signed_hosts.iter().cloned());
        hosts.dedup();

        let ca_key = rcgen::KeyPair::generate()?;
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Berth local CA");
        ca_params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let ca = ca_params.self_signed(&ca_key)?;

        let key = rcgen::KeyPair::generate()?;
        let mut params = rcgen::CertificateParams::new(hosts)?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "berth");
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params.signed_by(&key, &ca, &ca_key)?;

        std::fs::write(&ca_path, ca.pem())?;
        std::fs::write(&cert_path, format!("{}{}", cert.pem(), ca.pem()))?;
        write_private(&key_path, key.serialize_pem().as_bytes())?;
        let port = cfg.server.listen.port();
        eprintln!(
            "berth: generated a local CA for HTTPS at {ca}\n\
             berth: trust it for podman/skopeo/buildah with:\n\
             \x20   mkdir -p /etc/containers/certs.d/HOST:{port} && cp {ca} /etc/containers/certs.d/HOST:{port}/ca.crt\n\
             berth: for docker: /etc/docker/certs.d/HOST:{port}/ca.crt; system-wide (curl, aws): \n\
             \x20   cp {ca} /usr/local/share/ca-certificates/berth.crt && update-ca-certificates",
            ca = ca_path.display()
        );
    } else {
        eprintln!(
            "berth: using the local CA at {} for HTTPS",
            ca_path.display()
        );
    }
    Ok((std::fs::read(&cert_path)?, std::fs::read(&key_path)?))
}
