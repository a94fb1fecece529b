//! etcd over `https` with client certificates: `cacert`, `cert` and `key` from the `etcd3:` section.
#![cfg(feature = "tls")]

mod common;

use common::{identity, unique_scope};
use patroni_core::{Dcs, DcsError, MemberData};
use patroni_etcd::testkit::{EtcdProcess, TlsFiles};
use patroni_etcd::{Etcd3Config, EtcdDcs};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_client_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let etcd = EtcdProcess::start_tls(TlsFiles::generate(dir.path()).unwrap())
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
