//! patroni-rs: high availability for openGauss and PostgreSQL clusters.
//!
//! This facade re-exports the workspace crates so an embedder needs one dependency;
//! the decisions live in [`core`], the adapters in their own crates.

pub use patroni_core as core;
