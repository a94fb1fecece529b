//! The patroni-rs agent: YAML configuration, the HA loop that drives the core's state machine
//! through the `Dcs` and `Database` ports, the REST API, and `patronictl`.
//!
//! The binaries are thin: `patroni` parses arguments and calls [`run`]; `patronictl` parses
//! arguments and calls into [`ctl`]. Everything testable lives here, and this is its public
//! surface:
//!
//! - the daemon: [`run`] (config in, agent until shutdown), on the [`daemon_runtime`], with
//!   [`run_fence_if_invoked`] first in `main` (the agent re-executes itself as its fence);
//! - configuration: [`Config`] and its [`Loaded`] form, [`ConfigError`], the REST API's
//!   [`RestApiConfig`] and [`Credentials`];
//! - embedding: [`AgentBuilder`] turns a DCS, a database and a
//!   [`FailoverPolicy`](patroni_core::FailoverPolicy) into an [`EmbeddedAgent`]; its
//!   [`AgentHandle`] sends requests, reads the [`Snapshot`] and streams [`AgentEvent`]s.
//!   [`connect_dcs`] and [`build_database`] make the stock adapters from a [`Config`];
//!   [`start_fencing`] and [`build_callbacks`] give it the daemon's [`Fencing`] and user scripts;
//!   a [`Reloader`] re-reads the node and its scripts on `POST /reload` (a [`Reloaded`]);
//! - the parts underneath, for a loop of one's own: [`Agent`], [`Shared`], [`Clock`],
//!   [`RestServer`] with its [`RestLimits`] and [`VerifyClient`] setting;
//! - [`init_logging`], the agent's logger, and [`QuietStderr`], its writer that survives a closed
//!   stderr.
//!
//! # Embedding the agent
//!
//! Build the stock adapters from a YAML configuration and run one agent until Ctrl-C, with a
//! failover policy of one's own (here Patroni's):
//!
//! ```no_run
//! use patroni_bin::{build_database, connect_dcs, AgentBuilder, AgentEvent, Config};
//! use patroni_core::PatroniPolicy;
//!
//! # async fn embed() -> Result<(), Box<dyn std::error::Error>> {
//! let config = Config::load(std::path::Path::new("/etc/patroni.yml"))?.config;
//! let node = config.node(); // this member, as the state machine knows it
//! let dcs = connect_dcs(&config, &config.name, &node.bootstrap_config)?;
//! let (db, config_hook) = build_database(&config)?;
//! let agent = AgentBuilder::new(config.scope.clone(), node, dcs, db)
//!     .config_hook(config_hook) // applies a change of `/config` the port does not carry
//!     .policy(Box::new(PatroniPolicy))
//!     .rest_api("127.0.0.1:8008")
//!     .build()
//!     .await?;
//! let mut events = agent.handle().events();
//! tokio::spawn(async move {
//!     while let Ok(event) = events.recv().await {
//!         if let AgentEvent::RoleChanged { to, .. } = event {
//!             println!("now {to:?}"); // e.g. update service discovery
//!         }
//!     }
//! });
//! agent
//!     .run(async {
//!         let _ = tokio::signal::ctrl_c().await;
//!     })
//!     .await?;
//! # Ok(())
//! # }
//! ```
#![warn(missing_docs)]
// One audited exception: registering the postmaster's pidfd with the runtime (`exit_watch`).
#![deny(unsafe_code)]

mod agent;
mod builder;
mod callbacks;
mod config;
pub mod ctl;
mod events;
mod execute;
mod exit_watch;
mod failsafe;
mod fence;
mod logging;
mod members;
mod requests;
mod rest;
mod runtime;
mod scheduled;
mod state;
mod status;
#[cfg(feature = "testkit")]
pub mod testkit;
mod watchdog;

pub use agent::{Agent, AgentError, ConfigHook, Fencing, Reloaded, ReloadedScripts, Reloader};
pub use builder::{AgentBuilder, AgentHandle, EmbeddedAgent, Refused};
pub use config::{Config, ConfigError, Credentials, Loaded, RestApiConfig};
pub use events::AgentEvent;
pub use fence::{run_if_invoked as run_fence_if_invoked, PROGRAM_ENV as FENCE_PROGRAM_ENV};
pub use logging::{init as init_logging, QuietStderr};
pub use rest::{tls::VerifyClient, RestLimits, RestServer};
pub use runtime::{
    build_callbacks, build_database, connect_dcs, daemon_runtime, run, start_fencing,
};
pub use state::{Clock, Shared, Snapshot};
