//! (c) No promotion of a member tagged `nofailover`, of one lagging past
//! `maximum_lag_on_failover` (asynchronous mode), or of one not recorded in `/sync` as a
//! synchronous standby or as the primary that wrote it (synchronous mode `on`; in mode `quorum`
//! any member may win with enough votes, and [`super::no_lost_writes`] checks the outcome).

use super::{Invariant, Snapshot};

/// Checks each `Promote` against the tags, `/status` and `/sync` at the instant it ran.
#[derive(Debug, Clone, Copy, Default)]
pub struct EligiblePromotion;

impl Invariant for EligiblePromotion {
    fn name(&self) -> &'static str {
        "eligible_promotion"
    }

    fn check(&mut self, s: &Snapshot<'_>) -> Result<(), String> {
        for p in s.promotions.iter().filter(|p| p.promote) {
            let who = &s.names[p.node];
            if p.nofailover {
                return Err(format!("{who} is tagged nofailover but was promoted"));
            }
            if s.config.synchronous() {
                if !p.in_sync && s.config.synchronous_mode == crate::SynchronousMode::On {
                    return Err(format!(
                        "{who} was promoted in synchronous mode but is neither a synchronous standby nor the leader recorded in /sync"
                    ));
                }
            } else if let Some(lag) = p.lag {
                if !p.planned && lag > s.config.maximum_lag_on_failover {
                    return Err(format!(
                        "{who} was promoted {lag} bytes behind /status, over maximum_lag_on_failover ({})",
                        s.config.maximum_lag_on_failover
                    ));
                }
            }
        }
        Ok(())
    }
}
