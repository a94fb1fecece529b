//! The patroni-rs agent: YAML configuration, the HA loop that drives the core's state machine
//! through the `Dcs` and `Database` ports, the REST API, and `patronictl`.
//!
//! The binaries are thin: `patroni` parses arguments and calls [`run`]; everything testable lives here.
// One audited exception: registering the postmaster's pidfd with the runtime (`exit_watch`).
#![deny(unsafe_code)]

pub mod agent;
pub mod builder;
pub mod callbacks;
pub mod config;
pub mod ctl;
pub mod events;
pub mod execute;
pub mod exit_watch;
pub mod failsafe;
pub mod fence;
pub mod logging;
pub mod members;
pub mod requests;
pub mod rest;
pub mod runtime;
pub mod scheduled;
pub mod state;
pub mod status;
pub mod watchdog;

pub use config::{Config, ConfigError, Loaded};
pub use state::{Clock, Shared, Snapshot};
