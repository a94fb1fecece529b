//! A deterministic cluster simulator: N agents running the real [`Ha`](crate::Ha) on virtual time.
//!
//! Why: failover logic is only as good as the schedules of crashes, partitions and stalls it has
//! survived, and real clusters cannot replay one. Here everything — loop timers, DCS leases, WAL
//! positions, replication, watchdogs, a client writing — runs on one virtual clock from one
//! seed, so a failing schedule replays exactly and proptest can shrink it to the few faults
//! that matter.
//!
//! * [`World`] — the simulated cluster; [`MemoryStore`](crate::MemoryStore) is its DCS.
//! * [`db`] — the simulated database (WAL lineage, divergence, timings).
//! * [`oracle`] — the client's record of acknowledged writes.
//! * [`invariants`] — one module per property, checked after every event.
//! * [`strategy`] — proptest strategies for fault schedules.
//! * [`simulate`], [`check`], [`campaign`], [`check_policy`] — the entry points.

mod config;
pub mod db;
mod exec;
mod fault;
mod harness;
mod inject;
pub mod invariants;
mod observe;
pub mod oracle;
pub mod rng;
mod standby;
pub mod strategy;
pub mod trace;
mod world;

pub use config::{NodeSpec, PolicyFactory, SimConfig};
pub use db::DbTimings;
pub use fault::{Fault, FaultSchedule, Scheduled};
pub use harness::{
    campaign, cases, check, check_policy, liveness_for, simulate, topology_campaign, CampaignStats,
    SimFailure, CASES_ENV,
};
pub use invariants::Violation;
pub use strategy::FaultMix;
pub use trace::Trace;
pub use world::{RunReport, World};
