//! patroni-rs: high availability for openGauss and PostgreSQL clusters.
//!
//! This facade re-exports the workspace crates so an embedder needs one dependency: the pure
//! decisions in [`core`], the DCS adapter in [`etcd`], the database adapters in [`postgres`] and
//! [`opengauss`], and the agent runtime (REST API, config, HA loop) in [`agent`].
//!
//! Each crate has one path here; its items are documented (and reached) under it.
#![warn(missing_docs)]

pub use patroni_bin as agent;
pub use patroni_core as core;
pub use patroni_etcd as etcd;
pub use patroni_opengauss as opengauss;
pub use patroni_postgres as postgres;
