//! Patroni's own candidate rules (its `_is_healthiest_node` and `is_failover_possible`).

use super::{Candidate, FailoverPolicy, Ineligible, RaceContext};

/// Patroni's failover rules: the lag limit, `check_timeline`, `nofailover`/`failover_priority`,
/// and only recorded synchronous standbys in synchronous mode; preference by WAL, then priority.
///
/// It is the default so a cluster behaves as operators of Python Patroni expect.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PatroniPolicy;

impl FailoverPolicy for PatroniPolicy {
    fn eligible(&self, candidate: &Candidate, ctx: &RaceContext<'_>) -> Result<(), Ineligible> {
        if !candidate.tags.allows_failover() {
            return Err(Ineligible::NoFailoverTag);
        }
        if !candidate.running {
            return Err(Ineligible::NotRunning);
        }
        if let Some(optime) = ctx.leader_optime {
            let lag = optime.saturating_sub(candidate.wal_position);
            let limit = ctx.config.maximum_lag_on_failover;
            if lag > limit {
                return Err(Ineligible::LagExceeded { lag, limit });
            }
        }
        if ctx.config.check_timeline
            && candidate
                .timeline
                .is_none_or(|tl| tl < ctx.cluster_timeline)
        {
            return Err(Ineligible::TimelineBehind {
                member: candidate.timeline,
                cluster: ctx.cluster_timeline,
            });
        }
        // In quorum mode anyone may race: the votes it must gather decide instead.
        if ctx.config.synchronous_mode == crate::SynchronousMode::On {
            if let Some(sync) = ctx.sync {
                let recorded_leader = sync
                    .leader
                    .as_deref()
                    .is_some_and(|l| l.eq_ignore_ascii_case(&candidate.name));
                if !sync.is_sync(&candidate.name) && !recorded_leader {
                    return Err(Ineligible::NotSyncStandby);
                }
            }
        }
        Ok(())
    }

    fn prefers(&self, peer: &Candidate, me: &Candidate, ctx: &RaceContext<'_>) -> bool {
        if !peer.running || !peer.tags.allows_failover() {
            return false;
        }
        if ctx.config.synchronous() {
            if let Some(sync) = ctx.sync {
                if !sync.is_sync(&peer.name) {
                    return false;
                }
            }
        }
        if peer.wal_position != me.wal_position {
            return peer.wal_position > me.wal_position;
        }
        let former = ctx.former_leader.is_some_and(|(n, _)| n == peer.name);
        !former && peer.tags.failover_priority > me.tags.failover_priority
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DynamicConfig, Lsn, SyncState, SynchronousMode, Tags};

    fn cand(name: &str, wal: u64, prio: i64) -> Candidate {
        Candidate {
            name: name.into(),
            tags: Tags {
                failover_priority: prio,
                ..Tags::default()
            },
            wal_position: Lsn(wal),
            timeline: Some(1),
            running: true,
        }
    }

    fn ctx<'a>(config: &'a DynamicConfig, sync: Option<&'a SyncState>) -> RaceContext<'a> {
        RaceContext {
            config,
            leader_optime: Some(Lsn(2_000_000)),
            cluster_timeline: 2,
            sync,
            former_leader: Some(("old", &DEFAULT_TAGS)),
        }
    }

    static DEFAULT_TAGS: std::sync::LazyLock<Tags> = std::sync::LazyLock::new(Tags::default);

    #[test]
    fn eligibility_reasons_carry_the_numbers() {
        let cfg = DynamicConfig {
            check_timeline: true,
            ..DynamicConfig::default()
        };
        let p = PatroniPolicy;
        assert_eq!(
            p.eligible(&cand("a", 1_000_000, 1), &ctx(&cfg, None)),
            Err(Ineligible::TimelineBehind {
                member: Some(1),
                cluster: 2
            })
        );
        let mut far = cand("a", 100, 1);
        far.timeline = Some(2);
        assert_eq!(
            p.eligible(&far, &ctx(&cfg, None)),
            Err(Ineligible::LagExceeded {
                lag: 1_999_900,
                limit: 1_048_576
            })
        );
        assert_eq!(
            p.eligible(&cand("a", 5, 0), &ctx(&cfg, None)),
            Err(Ineligible::NoFailoverTag)
        );
        let mut down = cand("a", 5, 1);
        down.running = false;
        assert_eq!(
            p.eligible(&down, &ctx(&cfg, None)),
            Err(Ineligible::NotRunning)
        );
    }

    #[test]
    fn sync_mode_admits_only_recorded_members() {
        let cfg = DynamicConfig {
            synchronous_mode: SynchronousMode::On,
            ..DynamicConfig::default()
        };
        let sync = SyncState {
            leader: Some("old".into()),
            sync_standbys: vec!["B".into()],
            quorum: None,
        };
        let p = PatroniPolicy;
        let c = ctx(&cfg, Some(&sync));
        assert_eq!(
            p.eligible(&cand("a", 2_000_000, 1), &c),
            Err(Ineligible::NotSyncStandby)
        );
        assert_eq!(p.eligible(&cand("b", 2_000_000, 1), &c), Ok(()));
        assert_eq!(p.eligible(&cand("old", 2_000_000, 1), &c), Ok(()));
        assert!(!p.prefers(&cand("a", 9_000_000, 1), &cand("b", 1, 1), &c));
    }

    #[test]
    fn prefers_wal_then_priority_but_not_the_former_leaders_priority() {
        let cfg = DynamicConfig::default();
        let p = PatroniPolicy;
        let c = ctx(&cfg, None);
        assert!(p.prefers(&cand("a", 11, 1), &cand("b", 10, 5), &c));
        assert!(!p.prefers(&cand("a", 9, 9), &cand("b", 10, 1), &c));
        assert!(p.prefers(&cand("a", 10, 2), &cand("b", 10, 1), &c));
        assert!(!p.prefers(&cand("a", 10, 1), &cand("b", 10, 1), &c));
        assert!(!p.prefers(&cand("old", 10, 9), &cand("b", 10, 1), &c));
        assert!(!p.prefers(&cand("a", 10, 0), &cand("b", 1, 1), &c));
    }
}
