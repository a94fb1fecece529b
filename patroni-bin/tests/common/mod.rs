//! End-to-end fixture: the kit's [`LocalCluster`] with the `patroni` binary as every agent, on
//! loopback (see `patroni_bin::testkit`). Agents run as the non-root test user; everything started
//! here is stopped by PID on drop.
#![allow(dead_code, unused_imports)]

pub mod ctl;
pub mod pyvenv;

use std::ops::{Deref, DerefMut};

pub use patroni_bin::testkit::{
    encrypt_key, proxy, report, signal, writer, AgentCommand, Links, LocalCluster, Node, Options,
    Profile, Tls, TLS_KEY_PASSWORD, TTL_MS,
};

/// A [`LocalCluster`] whose agents are this crate's `patroni` binary.
pub struct TestCluster(LocalCluster);

impl Deref for TestCluster {
    type Target = LocalCluster;

    fn deref(&self) -> &LocalCluster {
        &self.0
    }
}

impl DerefMut for TestCluster {
    fn deref_mut(&mut self) -> &mut LocalCluster {
        &mut self.0
    }
}

impl TestCluster {
    /// Starts etcd and three agents (`node1`..`node3`) and waits for a leader and two streaming replicas.
    pub async fn start(tag: &str) -> TestCluster {
        Self::start_opts(tag, Options::default()).await
    }

    /// Like [`start`](Self::start) with extra `bootstrap.dcs` lines (indented four spaces).
    pub async fn start_with(tag: &str, extra_dcs: &str) -> TestCluster {
        let opts = Options {
            extra_dcs: extra_dcs.to_string(),
            ..Options::default()
        };
        Self::start_opts(tag, opts).await
    }

    /// Like [`start`](Self::start), built as `opts` says.
    pub async fn start_opts(tag: &str, mut opts: Options) -> TestCluster {
        opts.agent = Some(AgentCommand::binary(env!("CARGO_BIN_EXE_patroni")));
        TestCluster(LocalCluster::start(tag, opts).await)
    }
}
