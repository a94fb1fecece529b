//! A custom failover policy shared by the examples: Patroni's rules, and among the eligible
//! candidates the old primary's site (tag `site`) first, so a failover stays in the data centre
//! the clients are in when it can.

use patroni_core::{Candidate, FailoverPolicy, Ineligible, PatroniPolicy, RaceContext};

/// Patroni's rules, plus: among eligible candidates, the old primary's site wins.
#[derive(Debug, Default)]
pub struct SameSiteFirst;

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
