//! The [`Dcs`](patroni_core::Dcs) port over etcd v3, with Patroni's etcd3 key layout.
//!
//! Keys live under `/<namespace>/<scope>/` (`leader`, `members/<name>`, `config`, `initialize`,
//! `failover`, `sync`, `history`, `status`, `failsafe`) with Patroni's JSON values, so existing
//! Patroni tooling reads our clusters. Each agent holds one lease (TTL = `ttl`) shared by its member
//! key and, while it leads, the leader key; the leader key is taken with a create-only transaction,
//! renewed by a keep-alive and released only if it still holds our name; `config`, `failover` and
//! `sync` are written by compare-and-swap on the key's modification revision.
//!
//! Every call is bounded by `retry_timeout` and rotates over the configured endpoints. An etcd that
//! does not answer is [`DcsError::Unreachable`](patroni_core::DcsError::Unreachable); a lost
//! compare-and-swap is `Ok(false)`. Garbage under the prefix becomes warnings in the cluster view.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use patroni_core::Dcs;
//! use patroni_etcd::{Etcd3Config, EtcdDcs, EtcdIdentity};
//!
//! // The `etcd3:` section of a Patroni YAML file, here as JSON.
//! let config: Etcd3Config =
//!     serde_json::from_str(r#"{"hosts": "10.0.0.1:2379,10.0.0.2:2379", "username": "patroni", "password": "x"}"#)?;
//! let dcs = EtcdDcs::new(&config, EtcdIdentity::new("batman", "node1"))?;
//! let cluster = dcs.load().await?;
//! if cluster.is_unlocked() && dcs.acquire_leader().await? {
//!     println!("node1 holds the leader lock");
//! }
//! # Ok(())
//! # }
//! ```
#![warn(missing_docs)]

mod config;
mod connection;
mod dcs;
#[cfg(feature = "testkit")]
pub mod testkit;
mod tls;
mod watch;

pub use config::{Etcd3Config, EtcdError, EtcdIdentity};
pub use dcs::EtcdDcs;
