//! HTTPS for the REST API as Patroni configures it: the server's certificate and key (an
//! encrypted PKCS#8 key too), client certificates checked against `cafile`, and the HTTP client
//! that `patronictl` and the agent's peer probes use (the `ctl` settings).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use super::limits::{ConnHandle, LimitedListener, LimitedStream};
use crate::config::{CtlSection, RestApiConfig};

/// `restapi.verify_client`: whether HTTPS clients must show a certificate signed by `cafile`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum VerifyClient {
    /// No certificate is asked for.
    None,
    /// A certificate is asked for and checked when given; the unsafe verbs need one.
    Optional,
    /// No connection without a valid certificate.
    Required,
}

impl TryFrom<String> for VerifyClient {
    type Error = String;

    /// Any case, as Patroni lowercases the value.
    fn try_from(v: String) -> Result<Self, String> {
        match v.to_ascii_lowercase().as_str() {
            "none" => Ok(VerifyClient::None),
            "optional" => Ok(VerifyClient::Optional),
            "required" => Ok(VerifyClient::Required),
            _ => Err(format!(
                "verify_client must be none, optional or required, not {v:?}"
            )),
        }
    }
}

impl From<VerifyClient> for String {
    fn from(v: VerifyClient) -> String {
        match v {
            VerifyClient::None => "none",
            VerifyClient::Optional => "optional",
            VerifyClient::Required => "required",
        }
        .to_string()
    }
}

/// Why certificates or keys could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or holds nothing usable.
    #[error("{what} {path}: {message}")]
    File {
        /// Which setting names the file.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The settings do not fit together.
    #[error("{0}")]
    Config(String),
}

fn file_error(what: &'static str, path: &Path, message: impl ToString) -> TlsError {
    TlsError::File {
        what,
        path: path.to_path_buf(),
        message: message.to_string(),
    }
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| file_error(what, path, e))
}

/// Every certificate in a PEM file, in order (leaf first for a chain).
fn load_certs(what: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(what, path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(what, path, e))?;
    if certs.is_empty() {
        return Err(file_error(what, path, "no PEM certificate in it"));
    }
    Ok(certs)
}

/// The private key in a PEM file, decrypted with `password` when it is an encrypted PKCS#8 key.
fn load_key(
    what: &'static str,
    path: &Path,
    password: Option<&str>,
) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read(what, path)?;
    let text = String::from_utf8_lossy(&pem);
    const BEGIN: &str = "-----BEGIN ENCRYPTED PRIVATE KEY-----";
    const END: &str = "-----END ENCRYPTED PRIVATE KEY-----";
    if let (Some(b), Some(e)) = (text.find(BEGIN), text.find(END)) {
        let Some(password) = password else {
            return Err(file_error(
                what,
                path,
                "the key is encrypted; set keyfile_password",
            ));
        };
        let block = &text[b..e + END.len()];
        let (_, doc) = pkcs8::Document::from_pem(block).map_err(|e| file_error(what, path, e))?;
        let info = pkcs8::EncryptedPrivateKeyInfo::try_from(doc.as_bytes())
            .map_err(|e| file_error(what, path, e))?;
        let plain = info.decrypt(password).map_err(|_| {
            file_error(
                what,
                path,
                "cannot decrypt the key: wrong keyfile_password?",
            )
        })?;
        return Ok(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
            plain.as_bytes().to_vec(),
        )));
    }
    if text.contains("Proc-Type: 4,ENCRYPTED") {
        return Err(file_error(
            what,
            path,
            "legacy encrypted PEM keys are not supported; convert with `openssl pkcs8 -topk8`",
        ));
    }
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| file_error(what, path, e))
}

fn crypto() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn roots(what: &'static str, path: &Path) -> Result<RootCertStore, TlsError> {
    let mut store = RootCertStore::empty();
    for c in load_certs(what, path)? {
        store.add(c).map_err(|e| file_error(what, path, e))?;
    }
    Ok(store)
}

/// The server side of `restapi`'s TLS settings; `None` when no `certfile` is set (plain HTTP).
pub fn server_config(restapi: &RestApiConfig) -> Result<Option<Arc<ServerConfig>>, TlsError> {
    let Some(certfile) = &restapi.certfile else {
        return Ok(None);
    };
    let certs = load_certs("restapi.certfile", certfile)?;
    let key = load_key(
        "restapi.keyfile",
        restapi.keyfile.as_deref().unwrap_or(certfile),
        restapi.keyfile_password.as_deref(),
    )?;
    let builder = ServerConfig::builder_with_provider(crypto())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let mode = restapi.verify_client.unwrap_or(VerifyClient::None);
    let builder = if mode == VerifyClient::None {
        builder.with_no_client_auth()
    } else {
        let cafile = restapi
            .cafile
            .as_deref()
            .ok_or_else(|| TlsError::Config("restapi.verify_client needs restapi.cafile".into()))?;
        let verifier = WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots("restapi.cafile", cafile)?),
            crypto(),
        );
        let verifier = if mode == VerifyClient::Optional {
            verifier.allow_unauthenticated()
        } else {
            verifier
        };
        builder.with_client_cert_verifier(
            verifier
                .build()
                .map_err(|e| TlsError::Config(format!("restapi.cafile: {e}")))?,
        )
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| TlsError::Config(format!("restapi.certfile and keyfile: {e}")))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Some(Arc::new(config)))
}

/// The HTTP client for the members' REST APIs, as Patroni's `PatroniRequest` sets it up: the
/// servers' certificates are checked against `ctl.cacert` (else `restapi.cafile`); the client
/// certificate, key and password are `ctl.certfile`, `ctl.keyfile`, `ctl.keyfile_password`.
/// `insecure` (`ctl.insecure` for patronictl, always for the agent's peer probes, as in Patroni)
/// skips the check of the servers' certificates, or only of their host names when a client
/// certificate is configured.
pub fn client(
    restapi: &RestApiConfig,
    ctl: &CtlSection,
    insecure: bool,
) -> Result<reqwest::Client, TlsError> {
    let mut b = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .connect_timeout(Duration::from_secs(5));
    if let Some(ca) = ctl.cacert.as_ref().or(restapi.cafile.as_ref()) {
        let what = if ctl.cacert.is_some() {
            "ctl.cacert"
        } else {
            "restapi.cafile"
        };
        for c in load_certs(what, ca)? {
            let c = reqwest::Certificate::from_der(&c).map_err(|e| file_error(what, ca, e))?;
            b = b.add_root_certificate(c);
        }
    }
    match &ctl.certfile {
        Some(cert) => {
            let key = ctl.keyfile.as_ref().unwrap_or(cert);
            let mut pem = String::new();
            for c in load_certs("ctl.certfile", cert)? {
                pem.push_str(&pem_block("CERTIFICATE", &c)?);
            }
            let key_pem = match load_key("ctl.keyfile", key, ctl.keyfile_password.as_deref())? {
                PrivateKeyDer::Pkcs1(k) => pem_block("RSA PRIVATE KEY", k.secret_pkcs1_der())?,
                PrivateKeyDer::Sec1(k) => pem_block("EC PRIVATE KEY", k.secret_sec1_der())?,
                PrivateKeyDer::Pkcs8(k) => pem_block("PRIVATE KEY", k.secret_pkcs8_der())?,
                _ => return Err(file_error("ctl.keyfile", key, "unsupported key type")),
            };
            pem.push_str(&key_pem);
            let id = reqwest::Identity::from_pem(pem.as_bytes())
                .map_err(|e| file_error("ctl.certfile", cert, e))?;
            b = b.identity(id).danger_accept_invalid_hostnames(insecure);
        }
        None => b = b.danger_accept_invalid_certs(insecure),
    }
    b.build().map_err(|e| TlsError::Config(e.to_string()))
}

fn pem_block(label: &str, der: &[u8]) -> Result<String, TlsError> {
    pkcs8::der::pem::encode_string(label, pkcs8::LineEnding::LF, der)
        .map_err(|e| TlsError::Config(format!("PEM encoding: {e}")))
}

/// A listener that hands out connections once their TLS handshake is done. Handshakes run in
/// their own tasks, so a client that stalls one never delays the others; the connection limits
/// apply from the first byte, and a handshake longer than the header timeout is dropped.
pub struct TlsListener {
    inner: LimitedListener,
    acceptor: TlsAcceptor,
    handshake_timeout: Duration,
    pending: JoinSet<Option<(TlsStream<LimitedStream>, ConnHandle)>>,
}

impl TlsListener {
    /// Wraps `inner` with `config`; `handshake_timeout` is `restapi.header_timeout`.
    pub fn new(
        inner: LimitedListener,
        config: Arc<ServerConfig>,
        handshake_timeout: Duration,
    ) -> Self {
        TlsListener {
            inner,
            acceptor: TlsAcceptor::from(config),
            handshake_timeout,
            pending: JoinSet::new(),
        }
    }
}

impl Listener for TlsListener {
    type Io = TlsStream<LimitedStream>;
    type Addr = ConnHandle;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            tokio::select! {
                (io, mut handle) = self.inner.accept() => {
                    let acceptor = self.acceptor.clone();
                    let timeout = self.handshake_timeout;
                    self.pending.spawn(async move {
                        match tokio::time::timeout(timeout, acceptor.accept(io)).await {
                            Ok(Ok(tls)) => {
                                handle.client_cert = tls
                                    .get_ref()
                                    .1
                                    .peer_certificates()
                                    .is_some_and(|c| !c.is_empty());
                                Some((tls, handle))
                            }
                            Ok(Err(e)) => {
                                tracing::debug!("REST: TLS handshake with {} failed: {e}", handle.remote);
                                None
                            }
                            Err(_) => {
                                tracing::debug!("REST: TLS handshake with {} timed out", handle.remote);
                                None
                            }
                        }
                    });
                }
                Some(done) = self.pending.join_next(), if !self.pending.is_empty() => {
                    if let Ok(Some(ready)) = done {
                        return ready;
                    }
                }
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

impl Connected<IncomingStream<'_, TlsListener>> for ConnHandle {
    fn connect_info(stream: IncomingStream<'_, TlsListener>) -> Self {
        stream.remote_addr().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::VerifyClient;
    use crate::config::RestApiConfig;

    #[test]
    fn verify_client_in_any_case() {
        let c: RestApiConfig = yaml_serde::from_str("verify_client: REQUIRED").unwrap();
        assert_eq!(c.verify_client, Some(VerifyClient::Required));
        let e = yaml_serde::from_str::<RestApiConfig>("verify_client: sometimes").unwrap_err();
        assert!(e.to_string().contains("none, optional or required"), "{e}");
    }

    #[test]
    fn keys_from_yaml_and_environment() {
        let yaml = r#"scope: s
name: n
etcd3: {hosts: 127.0.0.1:2379}
postgresql: {data_dir: /d}
restapi:
  listen: 127.0.0.1:8008
  certfile: /c.pem
  allowlist: [10.0.0.0/8, db1]
  https_extra_headers: {Strict-Transport-Security: max-age=1}
ctl: {cacert: /ca.pem, insecure: true}
"#;
        let env = [
            ("PATRONI_RESTAPI_KEYFILE", "/k.pem"),
            ("PATRONI_RESTAPI_VERIFY_CLIENT", "optional"),
            ("PATRONI_RESTAPI_ALLOWLIST_INCLUDE_MEMBERS", "on"),
            ("PATRONI_CTL_CERTFILE", "/client.pem"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()));
        let loaded = crate::config::Config::parse(yaml, "t.yml", env).unwrap();
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        let c = loaded.config;
        assert_eq!(c.restapi.scheme(), "https");
        assert!(c.node().api_url.starts_with("https://127.0.0.1:8008/"));
        assert_eq!(c.restapi.keyfile, Some("/k.pem".into()));
        assert_eq!(c.restapi.verify_client, Some(VerifyClient::Optional));
        assert!(c.restapi.allowlist_include_members);
        assert_eq!(c.restapi.allowlist, ["10.0.0.0/8", "db1"]);
        assert_eq!(
            c.restapi.https_extra_headers["Strict-Transport-Security"],
            "max-age=1"
        );
        assert_eq!(c.ctl.cacert, Some("/ca.pem".into()));
        assert_eq!(c.ctl.certfile, Some("/client.pem".into()));
        assert!(c.ctl.insecure);
    }
}
