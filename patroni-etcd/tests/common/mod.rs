//! Shared by the integration tests: a conformance harness over a real etcd started for the test.

#![allow(dead_code)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use patroni_core::conformance::DcsHarness;
use patroni_core::Dcs;
use patroni_etcd::testkit::{raw_client, EtcdProcess};
use patroni_etcd::{Etcd3Config, EtcdDcs, EtcdIdentity};

/// etcd's shortest lease is about two seconds; three keeps expiry tests short and unambiguous.
pub const TTL: Duration = Duration::from_secs(3);
pub const LOOP_WAIT: Duration = Duration::from_secs(1);
pub const RETRY_TIMEOUT: Duration = Duration::from_secs(1);

static SCOPE: AtomicU64 = AtomicU64::new(0);

/// A fresh scope name, so several clusters can share one etcd.
pub fn unique_scope() -> String {
    format!(
        "t{}-{}",
        std::process::id(),
        SCOPE.fetch_add(1, Ordering::Relaxed)
    )
}

pub fn identity(scope: &str, name: &str) -> EtcdIdentity {
    EtcdIdentity {
        ttl: TTL,
        loop_wait: LOOP_WAIT,
        retry_timeout: RETRY_TIMEOUT,
        ..EtcdIdentity::new(scope, name)
    }
}

pub async fn start_etcd() -> EtcdProcess {
    EtcdProcess::start().await.expect("etcd test server")
}

/// One cluster scope on a real etcd.
pub struct EtcdHarness {
    pub etcd: EtcdProcess,
    pub config: Etcd3Config,
    pub scope: String,
}

impl EtcdHarness {
    pub async fn start() -> Self {
        let etcd = start_etcd().await;
        EtcdHarness {
            config: etcd.config(),
            etcd,
            scope: unique_scope(),
        }
    }

    pub fn dcs(&self, name: &str) -> EtcdDcs {
        EtcdDcs::new(&self.config, identity(&self.scope, name)).expect("valid settings")
    }
}

#[async_trait]
impl DcsHarness for EtcdHarness {
    async fn member(&self, name: &str) -> Box<dyn Dcs> {
        Box::new(self.dcs(name))
    }

    async fn expire_leases(&self) {
        // etcd checks for expired leases every 500 ms and deletes their keys through raft.
        tokio::time::sleep(TTL + Duration::from_millis(2_500)).await;
    }

    async fn pause(&self, length: Duration) {
        tokio::time::sleep(length).await;
    }

    async fn write_raw(&self, key: &str, value: &[u8]) {
        let mut c = raw_client(&[self.etcd.endpoint()], None)
            .await
            .expect("raw etcd client");
        c.put(format!("/service/{}/{key}", self.scope), value, None)
            .await
            .expect("raw put");
    }
}
