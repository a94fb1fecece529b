//! Who may become primary, and who is the better choice: the failover policy.

use std::fmt;

use crate::{DynamicConfig, Lsn, SyncState, Tags};

/// Why a member may not be promoted, with the numbers that decided it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Ineligible {
    /// Tagged `nofailover` or `failover_priority` <= 0.
    NoFailoverTag,
    /// Further behind the last known primary position than `maximum_lag_on_failover` allows.
    LagExceeded {
        /// Bytes behind.
        lag: u64,
        /// The configured limit.
        limit: u64,
    },
    /// On an older timeline (or term) than the cluster.
    TimelineBehind {
        /// The member's timeline, if known.
        member: Option<u64>,
        /// The cluster's.
        cluster: u64,
    },
    /// Synchronous mode: not recorded in `/sync`, so it may lack acknowledged commits.
    NotSyncStandby,
    /// Its database is not running (or still starting).
    NotRunning,
    /// Its member key could not be read.
    Unreadable(String),
    /// A manual failover or switchover names someone else.
    NotTheCandidate {
        /// The named candidate.
        candidate: String,
    },
    /// The cluster is paused; nothing is promoted automatically.
    Paused,
    /// Another member is further ahead or preferred, named.
    NotHealthiest {
        /// The better member.
        better: String,
    },
    /// A policy-specific reason.
    Policy(String),
}

impl fmt::Display for Ineligible {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ineligible::NoFailoverTag => write!(f, "tagged nofailover"),
            Ineligible::LagExceeded { lag, limit } => {
                write!(
                    f,
                    "lagging by {lag} bytes, over maximum_lag_on_failover ({limit})"
                )
            }
            Ineligible::TimelineBehind {
                member: Some(m),
                cluster,
            } => {
                write!(f, "on timeline {m}, behind the cluster's {cluster}")
            }
            Ineligible::TimelineBehind {
                member: None,
                cluster,
            } => {
                write!(f, "timeline unknown, cluster is on {cluster}")
            }
            Ineligible::NotSyncStandby => write!(f, "not a synchronous standby"),
            Ineligible::NotRunning => write!(f, "database not running"),
            Ineligible::Unreadable(why) => write!(f, "member key unreadable: {why}"),
            Ineligible::NotTheCandidate { candidate } => {
                write!(f, "failover requested to {candidate}")
            }
            Ineligible::Paused => write!(f, "cluster is paused"),
            Ineligible::NotHealthiest { better } => write!(f, "{better} is a better candidate"),
            Ineligible::Policy(why) => f.write_str(why),
        }
    }
}

/// A member considered for promotion, as the policy sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// Member name.
    pub name: String,
    /// Its tags.
    pub tags: Tags,
    /// Its furthest WAL position.
    pub wal_position: Lsn,
    /// Its timeline or term.
    pub timeline: Option<u64>,
    /// Whether its database runs.
    pub running: bool,
}

/// What a policy may consult besides the candidates.
#[derive(Debug, Clone, PartialEq)]
pub struct RaceContext<'a> {
    /// The dynamic configuration in force.
    pub config: &'a DynamicConfig,
    /// The last WAL position the primary published, if any.
    pub leader_optime: Option<Lsn>,
    /// The cluster's generation.
    pub cluster_timeline: u64,
    /// The recorded synchronous state, if any.
    pub sync: Option<&'a SyncState>,
    /// The last known leader's name and tags (e.g. for site-aware preference).
    pub former_leader: Option<(&'a str, &'a Tags)>,
}

/// Decides eligibility and preference among candidates; Patroni's rules are [`PatroniPolicy`].
///
/// The state machine asks each node "may I race?" ([`eligible`](Self::eligible)) and then "does
/// this peer beat me?" ([`prefers`](Self::prefers)); the create-only leader write breaks remaining ties.
/// A custom policy must keep `eligible` at least as strict as the safety rules it is checked against.
///
/// # Example
///
/// Patroni's rules, except that a member of the disaster-recovery site (custom tag `site: dr`)
/// never takes over by itself; an operator moves the cluster there with a switchover instead.
/// Give it to an agent with `patroni_bin::AgentBuilder::policy`, after proving it in the
/// simulator (the `sim` feature's `check_policy`).
///
/// ```
/// use patroni_core::{
///     Candidate, DynamicConfig, FailoverPolicy, Ineligible, Lsn, PatroniPolicy, RaceContext, Tags,
/// };
///
/// #[derive(Debug)]
/// struct StayHome;
///
/// impl FailoverPolicy for StayHome {
///     fn eligible(&self, candidate: &Candidate, ctx: &RaceContext<'_>) -> Result<(), Ineligible> {
///         if candidate.tags.custom_str("site").as_deref() == Some("dr") {
///             return Err(Ineligible::Policy("in the disaster-recovery site".into()));
///         }
///         PatroniPolicy.eligible(candidate, ctx)
///     }
///
///     fn prefers(&self, peer: &Candidate, me: &Candidate, ctx: &RaceContext<'_>) -> bool {
///         PatroniPolicy.prefers(peer, me, ctx)
///     }
/// }
///
/// let member = |name: &str, site: &str, wal: u64| {
///     let mut tags = Tags::default();
///     tags.custom.insert("site".into(), site.into());
///     Candidate {
///         name: name.into(),
///         tags,
///         wal_position: Lsn::from(wal),
///         timeline: Some(1),
///         running: true,
///     }
/// };
/// let config = DynamicConfig::default();
/// let ctx = RaceContext {
///     config: &config,
///     leader_optime: Some(Lsn::from(1000)),
///     cluster_timeline: 1,
///     sync: None,
///     former_leader: None,
/// };
/// let (home, dr) = (member("a", "home", 900), member("b", "dr", 1000));
/// assert_eq!(StayHome.eligible(&home, &ctx), Ok(()));
/// assert_eq!(
///     StayHome.eligible(&dr, &ctx).unwrap_err().to_string(),
///     "in the disaster-recovery site"
/// );
/// // Preference is Patroni's: the member further ahead wins.
/// assert!(StayHome.prefers(&dr, &home, &ctx));
/// ```
pub trait FailoverPolicy: fmt::Debug + Send + Sync {
    /// Whether `candidate` may become primary at all, and if not, why.
    fn eligible(&self, candidate: &Candidate, ctx: &RaceContext<'_>) -> Result<(), Ineligible>;

    /// Whether `peer` is a better choice than `me`, so `me` should not race.
    fn prefers(&self, peer: &Candidate, me: &Candidate, ctx: &RaceContext<'_>) -> bool;
}

mod patroni;

pub use patroni::PatroniPolicy;
