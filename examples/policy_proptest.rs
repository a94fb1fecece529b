//! Property-testing a custom failover policy with the simulator.
//!
//! The policy below prefers candidates in the old primary's `site` (tag `site: dc1`), so a
//! failover stays in the data centre the clients are in when it can, and otherwise falls back
//! to Patroni's rules. `check_policy` runs it in a simulated 3-node cluster (two nodes in `dc1`,
//! one in `dc2`) under random crashes, partitions, stalls, switchovers and pauses, checking the
//! safety and liveness invariants after every event; a failure prints the shrunk schedule, its
//! seed and a readable timeline.
//!
//! Run: `cargo run --example policy_proptest` (`PATRONI_SIM_CASES=5000` for more).

use std::sync::Arc;

use patroni_core::sim::{cases, check_policy, SimConfig};

#[path = "support/same_site.rs"]
mod same_site;
use same_site::SameSiteFirst;

fn main() {
    let n = cases(200);
    let started = std::time::Instant::now();
    let result = check_policy(
        Arc::new(|| Box::new(SameSiteFirst) as _),
        n,
        |cfg: &mut SimConfig| {
            for (node, dc) in cfg.nodes.iter_mut().zip(["dc1", "dc1", "dc2"]) {
                node.tags.custom.insert("site".into(), dc.into());
            }
        },
    );
    match result {
        Ok(stats) => println!(
            "SameSiteFirst held every invariant over {} fault schedules ({:.0} simulated seconds, {} promotions) in {:.1}s",
            stats.cases,
            stats.simulated.as_secs_f64(),
            stats.promotions,
            started.elapsed().as_secs_f64()
        ),
        Err(failure) => {
            eprintln!("SameSiteFirst broke an invariant:\n{failure}");
            std::process::exit(1);
        }
    }
}
