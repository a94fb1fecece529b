//! etcd over `https` with client certificates: `cacert`, `cert` and `key` from the `etcd3:` section.
#![cfg(feature = "tls")]

mod common;

use std::path::Path;

use common::{identity, unique_scope};
use patroni_core::{Dcs, DcsError, MemberData};
use patroni_etcd::testkit::{EtcdProcess, TlsFiles};
use patroni_etcd::{Etcd3Config, EtcdDcs};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, SanType,
};

/// A throwaway CA with one server certificate for 127.0.0.1 and one client certificate.
fn make_certs(dir: &Path) -> TlsFiles {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "patroni-rs test CA");
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();

    let leaf = |name: &str, usage: ExtendedKeyUsagePurpose| {
        let mut p = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        p.subject_alt_names
            .push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
        p.distinguished_name.push(DnType::CommonName, name);
        p.extended_key_usages = vec![usage];
        let key = KeyPair::generate().unwrap();
        let cert = p.signed_by(&key, &ca).unwrap();
        (cert.pem(), key.serialize_pem())
    };
    let (server_cert, server_key) = leaf("etcd", ExtendedKeyUsagePurpose::ServerAuth);
    let (client_cert, client_key) = leaf("patroni", ExtendedKeyUsagePurpose::ClientAuth);
    let files = TlsFiles {
        ca: dir.join("ca.pem"),
        server_cert: dir.join("server.pem"),
        server_key: dir.join("server-key.pem"),
        client_cert: dir.join("client.pem"),
        client_key: dir.join("client-key.pem"),
    };
    for (path, pem) in [
        (&files.ca, ca.pem()),
        (&files.server_cert, server_cert),
        (&files.server_key, server_key),
        (&files.client_cert, client_cert),
        (&files.client_key, client_key),
    ] {
        std::fs::write(path, pem).unwrap();
    }
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_client_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let etcd = EtcdProcess::start_tls(make_certs(dir.path()))
        .await
        .expect("etcd over https");
    let scope = unique_scope();
    let config = etcd.config();
    assert!(config.endpoints().unwrap()[0].starts_with("https://"));

    let a = EtcdDcs::new(&config, identity(&scope, "a")).unwrap();
    a.publish_member(&MemberData::default()).await.unwrap();
    assert!(a.acquire_leader().await.unwrap());
    assert!(a.renew_leader().await.unwrap());
    assert!(a.load().await.unwrap().is_leader("a"));

    // Without the client certificate the server refuses the TLS handshake: no answer to the agent.
    let no_cert = Etcd3Config {
        cert: None,
        key: None,
        ..config.clone()
    };
    let b = EtcdDcs::new(&no_cert, identity(&scope, "b")).unwrap();
    let r = b.load().await;
    assert!(matches!(r, Err(DcsError::Unreachable(_))), "{r:?}");

    let missing = Etcd3Config {
        cacert: Some(dir.path().join("absent.pem")),
        ..config
    };
    let e = EtcdDcs::new(&missing, identity(&scope, "c")).err().unwrap();
    assert!(e.to_string().contains("absent.pem"), "{e}");
}
