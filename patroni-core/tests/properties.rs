//! Properties of `Ha::step` over arbitrary observations: absurd timings, garbage names and LSNs,
//! random outcomes, peers and tasks. Safety rules that must hold whatever the input.

use patroni_core::{
    Action, ActionKind, Candidate, CannotFollow, CannotFollowReason, Cluster, ClusterStatus,
    DataDirState, DbRole, DcsView, Decision, DynamicConfig, FailoverPolicy, FailoverRequest, Ha,
    HistoryEntry, Ineligible, Leader, LocalDb, LocalRequest, Lsn, Member, MemberData, MemberRole,
    MemberState, Node, Observation, Outcome, OutcomeResult, PatroniPolicy, PeerStatus,
    ProcessState, RaceContext, ReceiverStatus, ReplicationRow, RunningTask, SyncState,
    SynchronousMode, Tags, Timestamp, Versioned,
};
use proptest::prelude::*;

fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vec!["n1", "n2", "n3", "n4"]).prop_map(String::from),
        1 => "[a-zA-Z0-9_ ./-]{0,8}",
    ]
}

fn lsn() -> impl Strategy<Value = Lsn> {
    prop_oneof![
        3 => (0u64..0x500_0000).prop_map(Lsn),
        1 => any::<u64>().prop_map(Lsn),
        1 => Just(Lsn::ZERO),
    ]
}

fn timeline() -> impl Strategy<Value = Option<u64>> {
    prop_oneof![4 => (1u64..5).prop_map(Some), 1 => Just(None), 1 => any::<u64>().prop_map(Some)]
}

fn tags() -> impl Strategy<Value = Tags> {
    (
        prop::bool::weighted(0.15),
        prop_oneof![4 => 1i64..3, 1 => -1i64..1],
        prop::bool::weighted(0.2),
        prop::bool::weighted(0.2),
        prop::option::weighted(0.2, name()),
    )
        .prop_map(
            |(nofailover, failover_priority, nosync, clonefrom, replicatefrom)| Tags {
                nofailover,
                failover_priority,
                nosync,
                clonefrom,
                replicatefrom,
                ..Tags::default()
            },
        )
}

fn config() -> impl Strategy<Value = DynamicConfig> {
    (
        (
            prop_oneof![Just(30u64), 0u64..100, any::<u64>()],
            prop_oneof![Just(10u64), 0u64..40, any::<u64>()],
            prop_oneof![Just(10u64), 0u64..40, any::<u64>()],
            prop_oneof![Just(1_048_576u64), any::<u64>()],
            prop_oneof![Just(300u64), Just(0u64), any::<u64>()],
        ),
        (
            prop::sample::select(vec![
                SynchronousMode::Off,
                SynchronousMode::On,
                SynchronousMode::Quorum,
            ]),
            any::<bool>(),
            0u32..4,
            any::<bool>(),
            0u64..4,
            prop::bool::weighted(0.25),
        ),
    )
        .prop_map(
            |(
                (ttl, loop_wait, retry_timeout, lag, start),
                (sync, strict, count, tl, hist, pause),
            )| {
                DynamicConfig {
                    ttl,
                    loop_wait,
                    retry_timeout,
                    maximum_lag_on_failover: lag,
                    primary_start_timeout: start,
                    synchronous_mode: sync,
                    synchronous_mode_strict: strict,
                    synchronous_node_count: count,
                    check_timeline: tl,
                    max_timelines_history: hist,
                    pause,
                    ..DynamicConfig::default()
                }
            },
        )
}

fn member_state() -> impl Strategy<Value = MemberState> {
    prop::sample::select(vec![
        MemberState::Running,
        MemberState::Running,
        MemberState::Starting,
        MemberState::Stopped,
        MemberState::Crashed,
        MemberState::Unknown,
    ])
}

fn member_role() -> impl Strategy<Value = MemberRole> {
    prop::sample::select(vec![
        MemberRole::Primary,
        MemberRole::Replica,
        MemberRole::Replica,
        MemberRole::Demoted,
        MemberRole::Unknown,
    ])
}

fn member() -> impl Strategy<Value = Member> {
    (
        name(),
        member_role(),
        member_state(),
        prop::option::of(lsn()),
        timeline(),
        tags(),
        any::<bool>(),
        prop::bool::weighted(0.1),
    )
        .prop_map(
            |(name, role, state, xlog, tl, tags, api, unreadable)| Member {
                version: 2,
                data: MemberData {
                    conn_url: format!("postgres://{name}:5432/postgres"),
                    api_url: if api {
                        format!("http://{name}:8008/patroni")
                    } else {
                        String::new()
                    },
                    state,
                    role,
                    xlog_location: xlog,
                    timeline: tl,
                    tags,
                    ..MemberData::default()
                },
                unreadable: unreadable.then(|| "garbage".to_string()),
                name,
            },
        )
}

fn cluster() -> BoxedStrategy<Cluster> {
    (
        (
            prop_oneof![6 => Just(Some("7000")), 1 => Just(None), 1 => prop::sample::select(vec!["", "9999", "x"]).prop_map(Some)],
            prop::option::of(config()),
            prop::option::of(name()),
            prop::collection::vec(member(), 0..5),
        ),
        (
            prop::option::of((
                prop::option::of(name()),
                prop::option::of(name()),
                prop::option::of(any::<i64>()),
                any::<u64>(),
            )),
            prop::option::of((prop::option::of(name()), prop::collection::vec(name(), 0..3))),
            prop::collection::vec(any::<u64>(), 0..3),
            prop::option::of(lsn()),
        ),
    )
        .prop_map(|((init, cfg, leader, members), (failover, sync, history, optime))| Cluster {
            initialize: init.map(String::from),
            config: cfg.map(|value| Versioned { version: 1, value }),
            leader: leader.map(|name| Leader { name, version: 3 }),
            members,
            failover: failover.map(|(leader, candidate, at, version)| Versioned {
                version,
                value: FailoverRequest {
                    leader,
                    candidate,
                    scheduled_at: at.map(Timestamp),
                },
            }),
            sync: sync.map(|(leader, sync_standbys)| Versioned {
                version: 5,
                value: SyncState {
                    leader,
                    sync_standbys,
                    quorum: None,
                },
            }),
            history: history
                .into_iter()
                .map(|timeline| HistoryEntry {
                    timeline: timeline % 8,
                    lsn: Lsn(1),
                    reason: String::new(),
                    timestamp: None,
                    new_leader: None,
                })
                .collect(),
            status: optime.map(|o| ClusterStatus {
                optime: Some(o),
                ..ClusterStatus::default()
            }),
            ..Cluster::default()
        })
    .boxed()
}

fn local() -> BoxedStrategy<LocalDb> {
    (
        (
            prop::sample::select(vec![
                ProcessState::Running,
                ProcessState::Running,
                ProcessState::Starting,
                ProcessState::Stopped,
                ProcessState::Crashed,
            ]),
            prop_oneof![
                12 => Just(DataDirState::Initialized),
                1 => Just(DataDirState::Empty),
                1 => Just(DataDirState::Unreadable("eacces".into())),
            ],
            prop::sample::select(vec![
                DbRole::Primary,
                DbRole::Standby,
                DbRole::Standby,
                DbRole::Unknown,
            ]),
            prop_oneof![8 => Just(Some("7000")), 1 => Just(None), 1 => Just(Some("9999"))],
            timeline(),
        ),
        (
            prop::option::of(lsn()),
            prop::option::of(lsn()),
            prop::option::of(lsn()),
            prop::collection::vec(
                (
                    name(),
                    prop::sample::select(vec!["streaming", "catchup"]),
                    prop::sample::select(vec!["sync", "async", "potential", "quorum"]),
                    lsn(),
                ),
                0..3,
            ),
            prop::option::of(prop::option::of(name())),
            prop::option::of(prop::sample::select(vec![
                CannotFollowReason::Diverged,
                CannotFollowReason::SystemIdMismatch,
                CannotFollowReason::WalRemoved,
            ])),
        ),
    )
        .prop_map(
            |((process, data_dir, role, sysid, tl), (write, recv, replay, rows, rx, cannot))| {
                LocalDb {
                    process,
                    data_dir,
                    role,
                    system_id: sysid.map(String::from),
                    timeline: tl,
                    write_lsn: write,
                    receive_lsn: recv,
                    replay_lsn: replay,
                    replication: rows
                        .into_iter()
                        .map(|(n, st, ss, l)| ReplicationRow {
                            application_name: n,
                            state: st.into(),
                            sync_state: ss.into(),
                            flush_lsn: Some(l),
                            replay_lsn: None,
                        })
                        .collect(),
                    receiver: rx.map(|host| ReceiverStatus {
                        streaming: true,
                        upstream_host: host,
                        upstream_port: None,
                    }),
                    cannot_follow: cannot.map(|reason| CannotFollow {
                        reason,
                        detail: "x".into(),
                    }),
                    ..LocalDb::default()
                }
            },
        )
        .boxed()
}

fn kind() -> impl Strategy<Value = ActionKind> {
    use ActionKind::*;
    prop::sample::select(vec![
        TakeInitialize,
        AcquireLeader,
        RenewLeader,
        ReleaseLeader,
        PublishMember,
        Follow,
        Bootstrap,
        CloneFrom,
        Start,
        Restart,
        Promote,
        Demote,
        Rebuild,
        SetSyncStandbys,
        WriteSyncState,
    ])
}

fn outcome() -> impl Strategy<Value = Outcome> {
    (
        kind(),
        prop::sample::select(vec![
            OutcomeResult::Done,
            OutcomeResult::Lost,
            OutcomeResult::DcsUnreachable("t".into()),
            OutcomeResult::Failed("f".into()),
            OutcomeResult::Skipped,
        ]),
        any::<u64>(),
    )
        .prop_map(|(kind, result, started_at)| Outcome {
            kind,
            result,
            started_at,
        })
}

fn peer() -> impl Strategy<Value = PeerStatus> {
    (
        name(),
        any::<bool>(),
        member_role(),
        member_state(),
        lsn(),
        any::<bool>(),
        -1i64..4,
        any::<u64>(),
    )
        .prop_map(
            |(name, reachable, role, state, wal, nofailover, prio, at)| PeerStatus {
                reachable,
                role,
                state,
                wal_position: wal,
                timeline: Some(1),
                tags: patroni_core::Tags {
                    nofailover,
                    failover_priority: prio,
                    ..patroni_core::Tags::default()
                },
                watchdog_failed: false,
                fetched_at: at,
                name,
            },
        )
}

fn observation() -> BoxedStrategy<Observation> {
    (
        (
            prop_oneof![0u64..1_000_000, any::<u64>()],
            any::<i64>(),
            prop_oneof![6 => cluster().prop_map(DcsView::Ok), 1 => Just(DcsView::Unreachable("down".into()))],
            local(),
        ),
        (
            prop::option::of(prop::collection::vec(peer(), 0..4)),
            prop::collection::vec(outcome(), 0..4),
            prop::option::weighted(0.1, (kind(), any::<u64>())),
            prop::option::weighted(
                0.1,
                prop_oneof![
                    prop::option::of(1u64..600).prop_map(|t| LocalRequest::Restart {
                        timeout: t.map(std::time::Duration::from_secs)
                    }),
                    any::<bool>().prop_map(|force| LocalRequest::Reinitialize { force })
                ],
            )
            .prop_map(|r| r.into_iter().collect::<Vec<_>>()),
        ),
    )
        .prop_map(
            |((now, wall, dcs, local), (peers, outcomes, task, requests))| Observation {
                peers,
                outcomes,
                task: task.map(|(kind, since)| RunningTask { kind, since }),
                requests,
                ..Observation::quiet(now, Timestamp(wall), dcs, local)
            },
        )
    .boxed()
}

/// Observations focused on the leader race: unlocked view, running standby, no task or request.
fn race_observation() -> BoxedStrategy<Observation> {
    (observation(), cluster())
        .prop_map(|(mut o, mut c)| {
            c.leader = None;
            o.dcs = DcsView::Ok(c);
            o.local.process = ProcessState::Running;
            o.local.role = DbRole::Standby;
            o.local.data_dir = DataDirState::Initialized;
            o.local.system_id = Some("7000".into());
            o.task = None;
            o.requests.clear();
            o
        })
        .boxed()
}

fn node() -> impl Strategy<Value = Node> {
    (
        prop::sample::select(vec!["n1", "n2"]),
        tags(),
        any::<bool>(),
    )
        .prop_map(|(n, tags, boot)| {
            let mut node = Node::new(n);
            node.tags = tags;
            node.can_bootstrap = boot;
            node
        })
}

/// A policy that refuses everyone: no node using it may ever race.
#[derive(Debug)]
struct Nobody;

impl FailoverPolicy for Nobody {
    fn eligible(&self, _: &Candidate, _: &RaceContext<'_>) -> Result<(), Ineligible> {
        Err(Ineligible::Policy("nobody may be promoted".into()))
    }
    fn prefers(&self, _: &Candidate, _: &Candidate, _: &RaceContext<'_>) -> bool {
        false
    }
}

fn position(d: &Decision, kind: ActionKind) -> Option<usize> {
    d.actions.iter().position(|a| a.kind() == kind)
}

/// Promote only after a guard that makes the lock ours in the same list: acquiring it, or renewing
/// a lock the view says is ours.
fn check_promote_under_lock(node: &Node, obs: &Observation, d: &Decision) -> Result<(), String> {
    let Some(p) = position(d, ActionKind::Promote) else {
        return Ok(());
    };
    let acquired = position(d, ActionKind::AcquireLeader).is_some_and(|a| a < p);
    let renewed = position(d, ActionKind::RenewLeader).is_some_and(|r| r < p)
        && obs.cluster().is_some_and(|c| c.is_leader(&node.name));
    if acquired || renewed {
        Ok(())
    } else {
        Err(format!("Promote without the lock: {:?}", d.actions))
    }
}

fn db_changing(a: &Action) -> bool {
    matches!(
        a,
        Action::Start(_)
            | Action::Stop(_)
            | Action::Restart
            | Action::Promote { .. }
            | Action::Demote(_)
            | Action::Rebuild { .. }
            | Action::CloneFrom { .. }
            | Action::Bootstrap
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn same_input_same_decision_and_no_panic(node in node(), obs in observation()) {
        let a = Ha::new(node.clone()).step(&obs);
        let b = Ha::new(node).step(&obs);
        prop_assert_eq!(a, b);
    }

    #[test]
    fn sequences_are_deterministic(node in node(), seq in prop::collection::vec(observation(), 1..6)) {
        let mut a = Ha::new(node.clone());
        let mut b = Ha::new(node);
        for o in &seq {
            prop_assert_eq!(a.step(o), b.step(o));
            prop_assert_eq!(a.leader_expiry(), b.leader_expiry());
        }
    }

    #[test]
    fn never_promote_without_the_lock(
        node in node(),
        seq in prop::collection::vec(prop_oneof![observation(), race_observation()], 1..4),
    ) {
        let mut ha = Ha::new(node.clone());
        for o in &seq {
            let d = ha.step(o);
            check_promote_under_lock(&node, o, &d).map_err(TestCaseError::fail)?;
        }
    }

    #[test]
    fn never_acquire_when_the_policy_says_ineligible(
        node in node(),
        obs in prop_oneof![observation(), race_observation()],
    ) {
        let d = Ha::new(node.clone()).step(&obs);
        if !d.has(ActionKind::AcquireLeader) || obs.local.is_running_primary() {
            return Ok(());
        }
        let c = obs.cluster().expect("AcquireLeader only with a DCS view");
        let fallback = node.bootstrap_config.clone();
        let config = c.config_or(&fallback);
        let ctx = RaceContext {
            config,
            leader_optime: if c.failover_request().is_some() { None } else { c.leader_optime() },
            cluster_timeline: c.timeline(),
            sync: c.sync_state(),
            former_leader: None,
        };
        let me = Candidate {
            name: node.name.clone(),
            tags: node.tags.clone(),
            wal_position: obs.local.wal_position(),
            timeline: obs.local.timeline,
            running: obs.local.process == ProcessState::Running,
        };
        prop_assert_eq!(PatroniPolicy.eligible(&me, &ctx), Ok(()), "{:?}", d);
    }

    #[test]
    fn a_policy_that_refuses_everyone_never_races(
        node in node(),
        obs in prop_oneof![observation(), race_observation()],
    ) {
        let d = Ha::with_policy(node, Box::new(Nobody)).step(&obs);
        if !obs.local.is_running_primary() {
            prop_assert!(!d.has(ActionKind::AcquireLeader), "{:?}", d);
            prop_assert!(!d.has(ActionKind::Promote) || d.has(ActionKind::RenewLeader), "{:?}", d);
        }
        if d.has(ActionKind::AcquireLeader) && !d.has(ActionKind::Promote) {
            prop_assert!(obs.local.is_running_primary());
        }
    }

    #[test]
    fn paused_means_hands_off_the_database(node in node(), obs in observation()) {
        let paused = obs
            .cluster()
            .is_some_and(|c| c.config.as_ref().is_some_and(|v| v.value.pause));
        if !paused {
            return Ok(());
        }
        let me = node.name.clone();
        let d = Ha::new(node).step(&obs);
        let restart_requested = obs
            .requests
            .iter()
            .any(|r| matches!(r, LocalRequest::Restart { .. }));
        // An operator's switchover or manual failover is still carried out while paused, as
        // Patroni does: the named candidate promotes, the named leader demotes.
        let request = obs.cluster().and_then(|c| c.failover.as_ref()).map(|f| &f.value);
        let for_me = request.is_some_and(|r| r.candidate.as_deref() == Some(me.as_str()));
        let from_me = request.is_some_and(|r| r.leader.as_deref() == Some(me.as_str()));
        for a in &d.actions {
            let allowed = (matches!(a, Action::Restart) && restart_requested)
                || (for_me && matches!(a, Action::Promote { .. }))
                || (from_me && matches!(a, Action::Demote(_)));
            prop_assert!(!db_changing(a) || allowed, "paused but {:?}", d);
        }
        prop_assert!(d.reason.to_string().starts_with("PAUSE: "), "{}", d.reason);
    }

    #[test]
    fn dcs_outage_only_ever_demotes(node in node(), obs in observation()) {
        if obs.cluster().is_some() {
            return Ok(());
        }
        let d = Ha::new(node).step(&obs);
        for a in &d.actions {
            prop_assert!(matches!(a, Action::Demote(_)), "{:?}", d);
        }
    }

    #[test]
    fn outage_primary_keeps_running_only_inside_its_lease(
        node in node(),
        seq in prop::collection::vec(observation(), 1..5),
    ) {
        let mut ha = Ha::new(node.clone());
        let mut config = node.bootstrap_config.clone();
        for o in &seq {
            let d = ha.step(o);
            if let Some(c) = o.cluster() {
                config = c.config_or(&node.bootstrap_config).clone();
                continue;
            }
            if !o.local.is_running_primary() || config.pause {
                continue;
            }
            if !d.has(ActionKind::Demote) {
                // Kept running: the lease must outlast the next cycle plus two DCS deadlines.
                let margin = config
                    .loop_wait_duration()
                    .saturating_add(config.retry_timeout_duration().saturating_mul(2));
                let expiry = ha.leader_expiry();
                prop_assert!(
                    expiry.is_some_and(|e| patroni_core::instant::after(o.now, margin) <= e),
                    "kept a primary at {} with lease {:?}: {:?}",
                    o.now,
                    expiry,
                    d
                );
            } else {
                prop_assert!(!ha.is_leader(o.now), "demoted but still claims the lock");
            }
        }
    }

    #[test]
    fn member_key_goes_first_and_once(node in node(), obs in observation()) {
        let d = Ha::new(node).step(&obs);
        let n = d.actions.iter().filter(|a| a.kind() == ActionKind::PublishMember).count();
        prop_assert!(n <= 1);
        if n == 1 {
            prop_assert_eq!(d.actions[0].kind(), ActionKind::PublishMember);
        }
    }
}
