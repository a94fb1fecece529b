//! Failsafe mode (`failsafe_mode: true` in `/config`): a primary that cannot reach the DCS keeps
//! running only while every member of the last `/failsafe` topology confirms over REST that it
//! sees no other leader and accepts this one.
//!
//! The pieces both agents share live here: what the primary posts (`POST /failsafe`), the rule a
//! member answers by, what it remembers of an accepted leader, and how a round of posts ended.
//! The state machine decides when to post ([`Action::ConfirmFailsafe`](crate::Action)) and what a
//! round's answers mean; the daemon's REST API and the simulator answer with [`answer`].

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The `/failsafe` key: member name to REST API URL, written by the leader while the DCS is up.
pub type FailsafeTopology = BTreeMap<String, String>;

/// The body of `POST /failsafe`, as Patroni's primary sends it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailsafePost {
    /// The primary's member name.
    pub name: String,
    /// Where its database listens.
    #[serde(default)]
    pub conn_url: String,
    /// Its REST API.
    #[serde(default)]
    pub api_url: String,
}

/// The leader this member last accepted a `POST /failsafe` from, kept by the REST side so the
/// state machine knows not to race while that leader may still run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailsafeLeader {
    /// The poster's member name.
    pub name: String,
    /// When the post was accepted (this agent's monotonic ms).
    pub accepted_at: u64,
}

impl FailsafeLeader {
    /// Whether the acceptance still binds at `now`: for `ttl` after it the poster may run
    /// as a primary on the strength of it, so this member neither races nor accepts another.
    pub fn is_fresh(&self, now: u64, ttl: Duration) -> bool {
        now < crate::instant::after(self.accepted_at, ttl)
    }
}

/// How one round of `POST /failsafe` to the other members ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailsafeRound {
    /// When the posts were sent (monotonic ms): every acceptance came after it.
    pub started_at: u64,
    /// The members that did not accept, each with why (no answer, or their refusal).
    pub refused: Vec<(String, String)>,
}

impl FailsafeRound {
    /// Whether every member accepted.
    pub fn confirmed(&self) -> bool {
        self.refused.is_empty()
    }
}

/// What the state machine hears about failsafe mode in one observation.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FailsafeInput {
    /// The answers to the previous step's [`Action::ConfirmFailsafe`](crate::Action), in the
    /// re-step of the same cycle; `None` otherwise.
    pub round: Option<FailsafeRound>,
    /// The last leader this member accepted a post from, if any.
    pub leader: Option<FailsafeLeader>,
}

/// How a member answers `POST /failsafe` from `poster`: `Ok` accepts ("Accepted"), `Err` says why not.
///
/// A running primary never accepts (Patroni's "Running as a leader"). Otherwise the member
/// accepts only the leader it knows: the lock holder of the last cluster view it read
/// (`view_leader`), or, when that view had no leader (the key ran out while the primary could
/// not renew it), the leader it accepted within the last `ttl`.
pub fn answer(
    poster: &str,
    running_primary: bool,
    view_leader: Option<&str>,
    accepted: Option<&FailsafeLeader>,
    now: u64,
    ttl: Duration,
) -> Result<(), String> {
    if running_primary {
        return Err("Running as a leader".into());
    }
    let known = view_leader.or_else(|| {
        accepted
            .filter(|a| a.is_fresh(now, ttl))
            .map(|a| a.name.as_str())
    });
    match known {
        Some(l) if l == poster => Ok(()),
        Some(l) => Err(format!("the leader is {l}, not {poster}")),
        None => Err(format!("no leader known to accept {poster} as")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_accept_only_the_leader_they_know() {
        let fresh = FailsafeLeader {
            name: "a".into(),
            accepted_at: 1_000,
        };
        let ttl = Duration::from_secs(30);
        assert!(answer("a", false, Some("a"), None, 0, ttl).is_ok());
        assert!(answer("a", true, Some("a"), None, 0, ttl).is_err());
        assert!(answer("a", false, Some("b"), Some(&fresh), 2_000, ttl).is_err());
        // The key ran out: the leader accepted within ttl still counts, an older one does not.
        assert!(answer("a", false, None, Some(&fresh), 2_000, ttl).is_ok());
        assert!(answer("a", false, None, Some(&fresh), 31_000, ttl).is_err());
        assert!(answer("a", false, None, None, 2_000, ttl).is_err());
    }
}
