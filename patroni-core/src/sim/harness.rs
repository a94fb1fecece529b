//! The entry points: run one schedule under the invariant suite, or property-test a policy.

use std::fmt;
use std::time::Duration;

use proptest::strategy::Strategy;
use proptest::test_runner::{Config, TestCaseError, TestError, TestRunner};

use crate::instant;
use crate::sim::config::{NodeSpec, PolicyFactory, SimConfig};
use crate::sim::fault::{Fault, FaultSchedule};
use crate::sim::invariants::{self, liveness::Liveness, Violation};
use crate::sim::strategy::{self, FaultMix};
use crate::sim::world::{RunReport, World};
use crate::Tags;

/// The environment variable that raises the number of proptest cases for long runs.
pub const CASES_ENV: &str = "PATRONI_SIM_CASES";

/// `default`, or the number in `PATRONI_SIM_CASES` when it is set and larger.
pub fn cases(default: u32) -> u32 {
    std::env::var(CASES_ENV)
        .ok()
        .and_then(|v| v.trim().parse::<u32>().ok())
        .map_or(default, |v| v.max(default))
}

/// A run that broke an invariant: the seed, the schedule and the timeline that explain it.
#[derive(Debug, Clone)]
pub struct SimFailure {
    /// The seed to replay with.
    pub seed: u64,
    /// The (shrunk, when found by proptest) schedule.
    pub schedule: FaultSchedule,
    /// The nodes and their tags (drawn by the campaign when it varies the topology).
    pub nodes: Box<[NodeSpec]>,
    /// What broke.
    pub violation: Violation,
    /// The last lines of the timeline.
    pub timeline: String,
}

impl fmt::Display for SimFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.violation)?;
        writeln!(f, "seed: {}", self.seed)?;
        for n in self.nodes.iter().filter(|n| n.tags != Tags::default()) {
            let tags = serde_json::to_string(&n.tags).unwrap_or_default();
            writeln!(f, "tags of {}: {tags}", n.name)?;
        }
        writeln!(f, "fault schedule (ms after warm-up):")?;
        if self.schedule.faults.is_empty() {
            writeln!(f, "  (none)")?;
        }
        write!(f, "{}", self.schedule)?;
        writeln!(f, "timeline:")?;
        write!(f, "{}", self.timeline)
    }
}

impl std::error::Error for SimFailure {}

/// The liveness deadlines for `cfg` after `schedule` (see [`invariants::liveness`]).
pub fn liveness_for(cfg: &SimConfig, schedule: &FaultSchedule) -> Liveness {
    let d = &cfg.dynamic;
    let t = &cfg.timings;
    let crashes = schedule
        .faults
        .iter()
        .any(|s| matches!(s.fault, Fault::CrashDb { .. } | Fault::Stall { .. }));
    let restart = if crashes {
        d.primary_start_timeout_duration() + t.start
    } else {
        Duration::ZERO
    };
    // ttl for the old lease, 2 loops to notice and race, the DCS read that may be in flight at
    // heal time, a demotion and a promotion, and a restart attempt when a crash may be pending.
    let primary_within = d.ttl_duration().max(restart)
        + 2 * d.loop_wait_duration()
        + d.retry_timeout_duration()
        + t.demote
        + t.promote
        + t.start;
    let standbys_within = 3 * d.loop_wait_duration() + t.rebuild + t.start + t.clone;
    Liveness {
        expect_primary: expect_primary(cfg, schedule),
        primary_within,
        standbys_within,
    }
}

/// Whether the faults leave an electable member for sure; otherwise liveness is not demanded.
fn expect_primary(cfg: &SimConfig, schedule: &FaultSchedule) -> bool {
    let n = cfg.nodes.len();
    let mut broken = vec![false; n];
    let mut lagging = vec![false; n];
    for s in &schedule.faults {
        if let Some(b) = s.fault.broken_node().filter(|&b| b < n) {
            broken[b] = true;
        }
        if let Fault::Lag { node, bytes } = s.fault {
            if node < n && bytes > cfg.dynamic.maximum_lag_on_failover {
                broken[node] = true;
                lagging[node] = true;
            }
        }
    }
    // A standby cascading (directly or down a chain) from a lagging member lags as much.
    let index = |name: &str| {
        cfg.nodes
            .iter()
            .position(|x| x.name.eq_ignore_ascii_case(name))
    };
    for (i, b) in broken.iter_mut().enumerate() {
        let mut hop = cfg.nodes[i].tags.replicatefrom.as_deref().and_then(index);
        for _ in 0..n {
            let Some(k) = hop else { break };
            if lagging[k] {
                *b = true;
                break;
            }
            hop = cfg.nodes[k].tags.replicatefrom.as_deref().and_then(index);
        }
    }
    if !broken.iter().any(|&b| b) {
        return true;
    }
    // A leader lost for good after a resume it never confirmed (a `resume` fault, or the one
    // the world makes when it heals) holds the race: it may still run as primary in pause, cut
    // off from the DCS. Only an operator's manual failover ends that.
    if schedule
        .faults
        .iter()
        .any(|s| matches!(s.fault, Fault::Pause | Fault::Resume))
    {
        return false;
    }
    // With a member gone for good, the old primary may be the lost one: some other member must
    // then be electable, which synchronous mode cannot promise (the lost one may be the only sync).
    if cfg.dynamic.synchronous() {
        return false;
    }
    let electable = (0..n)
        .filter(|&i| {
            let tags = &cfg.nodes[i].tags;
            // A `nostream` member gets no WAL here (no archive): it falls behind for good.
            !broken[i] && tags.allows_failover() && !tags.nostream
        })
        .count();
    electable >= 2
}

/// Runs `schedule` on a fresh world with the full invariant suite; the same inputs give the same report.
pub fn simulate(cfg: &SimConfig, schedule: &FaultSchedule) -> RunReport {
    let liveness = liveness_for(cfg, schedule);
    let mut world = World::new(cfg.clone(), schedule, invariants::suite(liveness));
    let end = instant::after(
        world.heal_time(),
        liveness.primary_within + liveness.standbys_within + cfg.dynamic.loop_wait_duration(),
    );
    world.run_until(end);
    world.into_report()
}

/// Like [`simulate`], but an invariant violation becomes a [`SimFailure`] with the timeline.
pub fn check(cfg: &SimConfig, schedule: &FaultSchedule) -> Result<RunReport, SimFailure> {
    let report = simulate(cfg, schedule);
    match &report.violation {
        None => Ok(report),
        Some(v) => Err(SimFailure {
            seed: cfg.seed,
            schedule: schedule.clone(),
            nodes: cfg.nodes.clone().into_boxed_slice(),
            violation: v.clone(),
            timeline: report.trace.tail(80),
        }),
    }
}

/// What a property-test campaign did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CampaignStats {
    /// Fault schedules run.
    pub cases: u32,
    /// Virtual time simulated, all cases together.
    pub simulated: Duration,
    /// Promotions seen in total.
    pub promotions: usize,
}

/// Property-tests the cluster described by `base` against `cases` random fault schedules of `mix`.
///
/// Each case draws a seed and a schedule; the first violation is shrunk to a minimal schedule
/// and returned with its seed and timeline. Deterministic: the campaign itself is seeded by
/// `base.seed`, so a failure reproduces on every run.
pub fn campaign(
    base: &SimConfig,
    cases: u32,
    max_faults: usize,
    mix: FaultMix,
) -> Result<CampaignStats, Box<SimFailure>> {
    let nodes = proptest::strategy::Just(base.nodes.clone()).boxed();
    run_campaign(base, cases, max_faults, mix, nodes)
}

/// Like [`campaign`], but each case also draws the replication topology: `replicatefrom`
/// cascades (chains, loops, self-references), `nosync` and `nostream` tags on `base`'s nodes.
pub fn topology_campaign(
    base: &SimConfig,
    cases: u32,
    max_faults: usize,
    mix: FaultMix,
) -> Result<CampaignStats, Box<SimFailure>> {
    let nodes = strategy::topology(base.nodes.clone());
    run_campaign(base, cases, max_faults, mix, nodes)
}

fn run_campaign(
    base: &SimConfig,
    cases: u32,
    max_faults: usize,
    mix: FaultMix,
    nodes: proptest::strategy::BoxedStrategy<Vec<NodeSpec>>,
) -> Result<CampaignStats, Box<SimFailure>> {
    let config = Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 512,
        rng_algorithm: proptest::test_runner::RngAlgorithm::ChaCha,
        ..Config::default()
    };
    let mut seed_bytes = [0u8; 32];
    seed_bytes[..8].copy_from_slice(&base.seed.to_le_bytes());
    let mut runner = TestRunner::new_with_rng(
        config,
        proptest::test_runner::TestRng::from_seed(
            proptest::test_runner::RngAlgorithm::ChaCha,
            &seed_bytes,
        ),
    );
    let n = base.nodes.len();
    let strategy = (
        proptest::prelude::any::<u64>(),
        nodes,
        strategy::schedule(n, max_faults, Duration::from_secs(120), mix),
    );
    let stats = std::cell::Cell::new(CampaignStats::default());
    let result = runner.run(&strategy, |(seed, nodes, schedule)| {
        let cfg = SimConfig {
            seed,
            nodes,
            trace: false,
            ..base.clone()
        };
        let report = simulate(&cfg, &schedule);
        let mut s = stats.get();
        s.cases += 1;
        s.simulated += report.simulated;
        s.promotions += report.promotions;
        stats.set(s);
        match report.violation {
            None => Ok(()),
            Some(v) => Err(TestCaseError::fail(v.to_string())),
        }
    });
    match result {
        Ok(()) => Ok(stats.get()),
        Err(TestError::Fail(_, (seed, nodes, schedule))) => {
            // Replay the minimal case with the timeline on, for the report.
            let cfg = SimConfig {
                seed,
                nodes,
                trace: true,
                ..base.clone()
            };
            match check(&cfg, &schedule) {
                Err(f) => Err(Box::new(f)),
                Ok(_) => unreachable!(
                    "a failing case passed on replay: the simulation is not deterministic"
                ),
            }
        }
        Err(TestError::Abort(why)) => panic!("property test aborted: {why}"),
    }
}

/// The harness for users: checks a custom [`FailoverPolicy`](crate::FailoverPolicy) against the
/// full invariant suite on a 3-node cluster under `cases` random fault schedules.
///
/// `configure` adjusts the cluster before the run (tags such as `site`, synchronous mode...).
/// Returns the campaign's figures, or the shrunk failing schedule with its seed and timeline.
///
/// ```no_run
/// use patroni_core::sim::{check_policy, SimConfig};
/// use patroni_core::PatroniPolicy;
/// let stats = check_policy(std::sync::Arc::new(|| Box::new(PatroniPolicy) as _), 50, |_cfg: &mut SimConfig| {})
///     .unwrap_or_else(|failure| panic!("{failure}"));
/// assert_eq!(stats.cases, 50);
/// ```
pub fn check_policy(
    policy: PolicyFactory,
    cases: u32,
    configure: impl FnOnce(&mut SimConfig),
) -> Result<CampaignStats, Box<SimFailure>> {
    let mut cfg = SimConfig::three_nodes(0x5EED);
    cfg.policy = Some(policy);
    configure(&mut cfg);
    campaign(&cfg, cases, 6, FaultMix::ALL)
}
