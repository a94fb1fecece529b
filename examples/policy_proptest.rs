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
use patroni_core::{Candidate, FailoverPolicy, Ineligible, PatroniPolicy, RaceContext};

/// Patroni's rules, plus: among eligible candidates, the old primary's site wins.
#[derive(Debug, Default)]
struct SameSiteFirst;

fn site(tags: &patroni_core::Tags) -> Option<String> {
    tags.custom_str("site")
}

impl FailoverPolicy for SameSiteFirst {
    fn eligible(&self, candidate: &Candidate, ctx: &RaceContext<'_>) -> Result<(), Ineligible> {
        // Never looser than Patroni: the safety invariants are checked against its rules.
        PatroniPolicy.eligible(candidate, ctx)
    }

    fn prefers(&self, peer: &Candidate, me: &Candidate, ctx: &RaceContext<'_>) -> bool {
        if PatroniPolicy.eligible(peer, ctx).is_err() {
            return false;
        }
        if let Some(home) = ctx.former_leader.and_then(|(_, tags)| site(tags)) {
            let peer_home = site(&peer.tags).as_deref() == Some(home.as_str());
            let me_home = site(&me.tags).as_deref() == Some(home.as_str());
            if peer_home != me_home {
                return peer_home;
            }
        }
        PatroniPolicy.prefers(peer, me, ctx)
    }
}

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
            stats.simulated_ms as f64 / 1000.0,
            stats.promotions,
            started.elapsed().as_secs_f64()
        ),
        Err(failure) => {
            eprintln!("SameSiteFirst broke an invariant:\n{failure}");
            std::process::exit(1);
        }
    }
}
