//! The [`Database`](patroni_core::Database) port over PostgreSQL.
//!
//! Also home of the plumbing openGauss shares with its ancestor: [`command`] (every external
//! program runs with a deadline).
#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod command;
