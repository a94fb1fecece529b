//! TLS settings for `https` endpoints (`cacert`, `cert`, `key`), when built with the `tls` feature.

use etcd_client::ConnectOptions;

use crate::config::{Etcd3Config, EtcdError};

/// Adds TLS to `options` when the endpoints use `https`; a build without TLS refuses them clearly.
pub(crate) fn apply(
    config: &Etcd3Config,
    options: ConnectOptions,
    endpoints: &[String],
) -> Result<ConnectOptions, EtcdError> {
    let https = endpoints
        .iter()
        .filter(|e| e.starts_with("https://"))
        .count();
    if https == 0 {
        return Ok(options);
    }
    if https != endpoints.len() {
        return Err(EtcdError::Config(
            "endpoints mix http and https; use one protocol".into(),
        ));
    }
    build(config, options)
}

#[cfg(feature = "tls")]
fn build(config: &Etcd3Config, options: ConnectOptions) -> Result<ConnectOptions, EtcdError> {
    use etcd_client::{Certificate, Identity, TlsOptions};
    let read = |what: &str, p: &std::path::Path| {
        std::fs::read(p)
            .map_err(|e| EtcdError::Tls(format!("cannot read {what} {}: {e}", p.display())))
    };
    let mut tls = TlsOptions::new();
    if let Some(ca) = &config.cacert {
        tls = tls.ca_certificate(Certificate::from_pem(read("cacert", ca)?));
    }
    match (&config.cert, &config.key) {
        (Some(c), Some(k)) => {
            tls = tls.identity(Identity::from_pem(read("cert", c)?, read("key", k)?));
        }
        (None, None) => {}
        _ => return Err(EtcdError::Tls("cert and key must be given together".into())),
    }
    Ok(options.with_tls(tls))
}

#[cfg(not(feature = "tls"))]
fn build(_config: &Etcd3Config, _options: ConnectOptions) -> Result<ConnectOptions, EtcdError> {
    Err(EtcdError::Tls(
        "https endpoints need patroni-etcd built with the `tls` feature".into(),
    ))
}
