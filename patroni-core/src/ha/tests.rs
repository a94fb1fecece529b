//! Exact-command unit tests for the memory the state machine keeps between cycles (openraft style).

use super::Ha;
use crate::{
    Action, ActionKind, Cluster, DataDirState, DbRole, DcsView, Leader, LocalDb, Lsn, Member,
    MemberData, MemberRole, MemberState, Node, Observation, Outcome, OutcomeResult, PeerStatus,
    ProcessState, Versioned,
};

fn member(name: &str, role: MemberRole, lsn: u64) -> Member {
    Member::new(
        name,
        MemberData {
            conn_url: format!("postgres://{name}:5432/postgres"),
            api_url: format!("http://{name}:8008/patroni"),
            state: MemberState::Running,
            role,
            xlog_location: Some(Lsn(lsn)),
            ..MemberData::default()
        },
    )
}

fn primary_local() -> LocalDb {
    LocalDb {
        process: ProcessState::Running,
        data_dir: DataDirState::Initialized,
        role: DbRole::Primary,
        system_id: Some("7000".into()),
        timeline: Some(1),
        write_lsn: Some(Lsn(0x300_0000)),
        ..LocalDb::default()
    }
}

/// Changes `/config` of `c` (which [`cluster`] always gives one).
fn configure(c: &mut Cluster, change: impl FnOnce(&mut crate::DynamicConfig)) {
    change(&mut c.config.as_mut().expect("cluster() sets /config").value);
}

/// A standby `name` streaming from us, flushed and replayed up to `flush`, in `sync_state`.
fn streaming_row(name: &str, flush: u64, sync_state: &str) -> crate::ReplicationRow {
    crate::ReplicationRow {
        application_name: name.into(),
        state: "streaming".into(),
        sync_state: sync_state.into(),
        flush_lsn: Some(Lsn(flush)),
        replay_lsn: Some(Lsn(flush)),
    }
}

fn standby_local() -> LocalDb {
    LocalDb {
        role: DbRole::Standby,
        write_lsn: None,
        receive_lsn: Some(Lsn(0x300_0000)),
        ..primary_local()
    }
}

fn cluster(leader: Option<&str>, members: Vec<Member>) -> Cluster {
    Cluster {
        initialize: Some("7000".into()),
        config: Some(Versioned {
            version: 1,
            value: Default::default(),
        }),
        leader: leader.map(|n| Leader {
            name: n.into(),
            version: 1,
        }),
        members,
        ..Cluster::default()
    }
}

/// An observation with a readable DCS and nothing else going on, shared by the decision tests.
pub(super) fn obs(now: u64, c: Cluster, local: LocalDb) -> Observation {
    Observation::quiet(
        now,
        crate::Timestamp(1_795_000_000_000),
        DcsView::Ok(c),
        local,
    )
}

fn done(kind: ActionKind, at: u64) -> Outcome {
    Outcome {
        kind,
        result: OutcomeResult::Done,
        started_at: at,
    }
}

#[test]
fn lease_counts_from_when_the_renewal_was_sent() {
    let mut ha = Ha::new(Node::new("n1"));
    assert_eq!(ha.leader_expiry(), None);
    let mut o = obs(
        10_000,
        cluster(
            Some("n1"),
            vec![member("n1", MemberRole::Primary, 0x300_0000)],
        ),
        primary_local(),
    );
    o.outcomes = vec![done(ActionKind::RenewLeader, 9_000)];
    ha.step(&o);
    assert_eq!(ha.leader_expiry(), Some(39_000));
    assert!(ha.is_leader(38_999));
    assert!(!ha.is_leader(39_000));
    // An unreachable renewal does not extend it.
    o.now = 20_000;
    o.outcomes = vec![Outcome {
        kind: ActionKind::RenewLeader,
        result: OutcomeResult::DcsUnreachable("timeout".into()),
        started_at: 19_000,
    }];
    ha.step(&o);
    assert_eq!(ha.leader_expiry(), Some(39_000));
    // A view naming someone else ends it.
    let mut other = o.clone();
    other.dcs = DcsView::Ok(cluster(
        Some("n2"),
        vec![member("n2", MemberRole::Primary, 1)],
    ));
    other.outcomes.clear();
    ha.step(&other);
    assert_eq!(ha.leader_expiry(), None);
}

#[test]
fn idle_leader_writes_only_the_renewal() {
    let mut ha = Ha::new(Node::new("n1"));
    let mut c = cluster(Some("n1"), vec![]);
    c.status = Some(crate::ClusterStatus {
        optime: Some(Lsn(0x300_0000)),
        ..Default::default()
    });
    let first = ha.step(&obs(0, c.clone(), primary_local()));
    let Action::PublishMember(data) = &first.actions[0] else {
        panic!("first cycle publishes: {:?}", first.actions)
    };
    assert_eq!(data.role, MemberRole::Primary);
    assert_eq!(data.xlog_location, Some(Lsn(0x300_0000)));
    c.members.push(Member::new("n1", data.clone()));
    let mut o = obs(10_000, c, primary_local());
    o.outcomes = vec![
        done(ActionKind::PublishMember, 0),
        done(ActionKind::RenewLeader, 0),
    ];
    assert_eq!(ha.step(&o).actions, vec![Action::RenewLeader]);
    // A failed publish is retried.
    o.outcomes = vec![Outcome {
        kind: ActionKind::PublishMember,
        result: OutcomeResult::DcsUnreachable("x".into()),
        started_at: 10_000,
    }];
    let again = ha.step(&o);
    assert_eq!(again.actions[0].kind(), ActionKind::PublishMember);
    assert_eq!(again.actions[1], Action::RenewLeader);
}

#[test]
fn tag_reload_republishes() {
    let mut ha = Ha::new(Node::new("n1"));
    let c = cluster(Some("n1"), vec![]);
    let d = ha.step(&obs(0, c.clone(), primary_local()));
    let Action::PublishMember(data) = &d.actions[0] else {
        panic!()
    };
    let mut c2 = c;
    c2.members.push(Member::new("n1", data.clone()));
    let mut o = obs(1, c2, primary_local());
    o.outcomes = vec![done(ActionKind::PublishMember, 0)];
    assert!(!ha.step(&o).has(ActionKind::PublishMember));
    let mut node = Node::new("n1");
    node.tags.nofailover = true;
    ha.set_node(node);
    o.now = 2;
    o.outcomes.clear();
    let d = ha.step(&o);
    let Action::PublishMember(data) = &d.actions[0] else {
        panic!("{:?}", d.actions)
    };
    assert!(data.tags.nofailover);
}

#[test]
fn member_extra_is_published_and_republished_when_it_changes() {
    let mut ha = Ha::new(Node::new("n1"));
    let c = cluster(Some("n1"), vec![]);
    let d = ha.step(&obs(0, c.clone(), primary_local()));
    let Action::PublishMember(data) = &d.actions[0] else {
        panic!()
    };
    let mut c2 = c;
    c2.members.push(Member::new("n1", data.clone()));
    let mut o = obs(1, c2, primary_local());
    o.outcomes = vec![done(ActionKind::PublishMember, 0)];
    assert!(!ha.step(&o).has(ActionKind::PublishMember));
    // A scheduled restart appears: the key is written again, with it.
    let restart = serde_json::json!({"schedule": "2026-12-02T03:00:00+00:00"});
    o.member_extra
        .insert("scheduled_restart".into(), restart.clone());
    o.now = 2;
    o.outcomes.clear();
    let d = ha.step(&o);
    let Action::PublishMember(data) = &d.actions[0] else {
        panic!("{:?}", d.actions)
    };
    assert_eq!(data.extra.get("scheduled_restart"), Some(&restart));
    o.now = 3;
    o.outcomes = vec![done(ActionKind::PublishMember, 2)];
    assert!(!ha.step(&o).has(ActionKind::PublishMember));
    // And once it is gone, without it.
    o.member_extra.clear();
    o.now = 4;
    o.outcomes.clear();
    let d = ha.step(&o);
    let Action::PublishMember(data) = &d.actions[0] else {
        panic!("{:?}", d.actions)
    };
    assert!(data.extra.is_empty());
}

#[test]
fn two_steps_per_cycle_race_then_acquire() {
    let mut ha = Ha::new(Node::new("n1"));
    let c = cluster(None, vec![member("n2", MemberRole::Replica, 0x200_0000)]);
    let mut o = obs(50_000, c, standby_local());
    let first = ha.step(&o);
    assert!(first.has(ActionKind::FetchPeerStatus), "{first:?}");
    let mut peer = PeerStatus::unreachable("n2", 50_000);
    peer.reachable = true;
    peer.role = MemberRole::Replica;
    peer.state = MemberState::Running;
    peer.wal_position = Lsn(0x200_0000);
    o.peers = Some(vec![peer]);
    let second = ha.step(&o);
    assert_eq!(
        second.actions.iter().map(Action::kind).collect::<Vec<_>>(),
        vec![
            ActionKind::PublishMember,
            ActionKind::AcquireLeader,
            ActionKind::Promote
        ],
        "the agent runs only the second decision, so it carries the member key too"
    );
    assert_eq!(ha.step(&o), second, "a repeated step decides the same");
}

#[test]
fn a_live_primary_claim_blocks_the_race_for_as_long_as_it_lasts() {
    let mut ha = Ha::new(Node::new("n1"));
    let n2 = member("n2", MemberRole::Primary, 0x300_0000);
    ha.step(&obs(
        0,
        cluster(Some("n2"), vec![n2.clone()]),
        standby_local(),
    ));
    let mut peer = PeerStatus::unreachable("n2", 25_000);
    peer.reachable = true;
    peer.role = MemberRole::Primary;
    peer.state = MemberState::Running;
    peer.wal_position = Lsn(0x300_0000);
    // Long after n2's lease must have run out, its agent still says it runs as primary (it is
    // paused and cut off from the DCS, or its demotion hangs): promoting now is two primaries.
    let mut o = obs(120_000, cluster(None, vec![n2]), standby_local());
    peer.fetched_at = 120_000;
    o.peers = Some(vec![peer.clone()]);
    let blocked = ha.step(&o);
    assert_eq!(blocked.reason.to_string(), "Primary (n2) is still alive");
    assert!(!blocked.has(ActionKind::AcquireLeader));
    // Once it runs as a replica (or does not answer), the race goes on.
    peer.role = MemberRole::Replica;
    o.peers = Some(vec![peer]);
    let d = ha.step(&o);
    assert!(d.has(ActionKind::AcquireLeader), "{d:?}");
    assert!(d.has(ActionKind::Promote));
}

#[test]
fn follow_once_then_again_after_a_leader_change() {
    let mut ha = Ha::new(Node::new("n1"));
    let a = cluster(Some("n2"), vec![member("n2", MemberRole::Primary, 1)]);
    let b = cluster(Some("n3"), vec![member("n3", MemberRole::Primary, 1)]);
    let kinds = |d: &crate::Decision| -> Vec<ActionKind> {
        d.actions
            .iter()
            .map(Action::kind)
            .filter(|k| *k != ActionKind::PublishMember)
            .collect()
    };
    assert_eq!(
        kinds(&ha.step(&obs(0, a.clone(), standby_local()))),
        vec![ActionKind::Follow]
    );
    assert_eq!(kinds(&ha.step(&obs(1, a, standby_local()))), vec![]);
    assert_eq!(
        kinds(&ha.step(&obs(2, b, standby_local()))),
        vec![ActionKind::Follow]
    );
}

#[test]
fn race_backoff_waits_while_wal_still_arrives() {
    let mut ha = Ha::new(Node::new("n1"));
    let mut c = cluster(None, vec![]);
    configure(&mut c, |cfg| cfg.primary_race_backoff = 30);
    let at = |now: u64, lsn: u64| {
        let mut l = standby_local();
        l.receive_lsn = Some(Lsn(lsn));
        obs(now, c.clone(), l)
    };
    let waits = |d: &crate::Decision| d.reason.to_string().contains("seconds until leader race");
    assert!(waits(&ha.step(&at(0, 100))), "first loop of the window");
    assert!(
        waits(&ha.step(&at(15_000, 200))),
        "WAL moved since the last cycle"
    );
    let d = ha.step(&at(20_000, 200));
    assert!(!waits(&d) && d.has(ActionKind::AcquireLeader), "{d:?}");
    let mut late = Ha::new(Node::new("n1"));
    late.step(&at(0, 100));
    assert!(
        late.step(&at(30_000, 300)).has(ActionKind::AcquireLeader),
        "window over"
    );
}

#[test]
fn a_lowered_ttl_shortens_the_lease_and_an_outage_demote_ends_it() {
    let mut ha = Ha::new(Node::new("n1"));
    let mut c = cluster(Some("n1"), vec![]);
    let mut o = obs(10_000, c.clone(), primary_local());
    o.outcomes = vec![done(ActionKind::RenewLeader, 10_000)];
    ha.step(&o);
    assert_eq!(ha.leader_expiry(), Some(40_000));
    configure(&mut c, |cfg| cfg.ttl = 20);
    let mut o = obs(11_000, c, primary_local());
    o.outcomes = vec![done(ActionKind::RenewLeader, 11_000)];
    ha.step(&o);
    assert_eq!(ha.leader_expiry(), Some(31_000));
    // DCS down with too little lease left: demote, and stop claiming the lock at once.
    let mut down = obs(12_000, Cluster::default(), primary_local());
    down.dcs = DcsView::Unreachable("refused".into());
    let d = ha.step(&down);
    assert_eq!(d.actions, vec![Action::Demote(crate::StopMode::Fast)]);
    assert!(!ha.is_leader(12_001));
}

#[test]
fn member_key_counts_as_written_only_once_confirmed() {
    let mut ha = Ha::new(Node::new("n1"));
    let first = ha.step(&obs(0, cluster(Some("n2"), vec![]), standby_local()));
    let Action::PublishMember(data) = first.actions[0].clone() else {
        panic!("{first:?}")
    };
    let mut c = cluster(Some("n2"), vec![Member::new("n1", data)]);
    c.members.push(member("n2", MemberRole::Primary, 1));
    // The previous decision was dropped (no outcome): write again.
    let d = ha.step(&obs(1, c.clone(), standby_local()));
    assert_eq!(d.actions[0].kind(), ActionKind::PublishMember);
    // Confirmed: quiet.
    let mut o = obs(2, c, standby_local());
    o.outcomes = vec![done(ActionKind::PublishMember, 1)];
    assert!(!ha.step(&o).has(ActionKind::PublishMember));
}

/// Simulator regression (seed 921971472681546990): a standby that was primary in between must
/// follow the member it once followed when that member leads again.
#[test]
fn follows_again_a_leader_it_followed_before_being_primary() {
    let mut ha = Ha::new(Node::new("n1"));
    let x = cluster(Some("n2"), vec![member("n2", MemberRole::Primary, 1)]);
    let follow = |d: &crate::Decision| d.has(ActionKind::Follow);
    assert!(follow(&ha.step(&obs(0, x.clone(), standby_local()))));
    // We lead for a while, then hand over back to n2 and run as a standby with no upstream.
    ha.step(&obs(1, cluster(Some("n1"), vec![]), primary_local()));
    let mut demoted = standby_local();
    demoted.receiver = Some(crate::ReceiverStatus {
        streaming: false,
        upstream_host: None,
        upstream_port: None,
    });
    let d = ha.step(&obs(2, x, demoted));
    assert!(follow(&d), "{d:?}");
}

/// Simulator regression (seed 2150658261075272723): a standby named synchronous while 4 MiB
/// behind must not be recorded in `/sync` before it has caught up.
#[test]
fn sync_standby_is_recorded_only_once_caught_up() {
    let mut ha = Ha::new(Node::new("n1"));
    let mut c = cluster(
        Some("n1"),
        vec![member("n2", MemberRole::Replica, 0x200_0000)],
    );
    configure(&mut c, |cfg| {
        cfg.synchronous_mode = crate::SynchronousMode::On
    });
    c.sync = Some(Versioned {
        version: 4,
        value: crate::SyncState {
            leader: Some("n1".into()),
            sync_standbys: vec![],
            quorum: None,
        },
    });
    let with_row = |flush: u64, sync_state: &str| {
        let mut l = primary_local();
        l.replication = vec![streaming_row("n2", flush, sync_state)];
        l
    };
    let writes_sync = |d: &crate::Decision| {
        d.actions.iter().any(|a| {
            matches!(a, Action::WriteSyncState { state, .. } if !state.sync_standbys.is_empty())
        })
    };
    let d = ha.step(&obs(0, c.clone(), with_row(0x200_0000, "async")));
    assert!(d
        .actions
        .iter()
        .any(|a| matches!(a, Action::SetSyncStandbys { names, .. } if names == &["n2"])));
    // The database now waits for n2 but n2 is 16 MiB behind the position it was named at.
    assert!(!writes_sync(&ha.step(&obs(
        1,
        c.clone(),
        with_row(0x200_0000, "sync")
    ))));
    // Caught up: record it.
    let d = ha.step(&obs(2, c, with_row(0x300_0000, "sync")));
    assert!(writes_sync(&d), "{d:?}");
}

/// Mode `on`: commits acknowledged between the observation that named a standby and the moment
/// the database applied the new names did not wait for it. The position it must reach is measured
/// in the first cycle after the change, not in the deciding one: a standby past the deciding
/// cycle's position but short of those commits is not recorded in `/sync`.
#[test]
fn sync_bar_is_measured_after_the_new_names_applied() {
    let mut ha = Ha::new(Node::new("n1"));
    let mut c = cluster(Some("n1"), vec![member("n2", MemberRole::Replica, 100)]);
    configure(&mut c, |cfg| {
        cfg.synchronous_mode = crate::SynchronousMode::On
    });
    c.sync = sync_key("n1", &[], None);
    let local = |wal: u64, flush: u64, sync_state: &str| {
        let mut l = primary_local();
        l.write_lsn = Some(Lsn(wal));
        l.replication = vec![streaming_row("n2", flush, sync_state)];
        l
    };
    let recorded = |d: &crate::Decision| {
        d.actions.iter().any(
            |a| matches!(a, Action::WriteSyncState { state, .. } if state.sync_standbys == ["n2"]),
        )
    };
    let d = ha.step(&obs(0, c.clone(), local(100, 100, "async")));
    assert!(
        d.actions
            .iter()
            .any(|a| matches!(a, Action::SetSyncStandbys { names, .. } if names == &["n2"])),
        "{d:?}"
    );
    assert!(!recorded(&d), "{d:?}");
    // Writes up to 150 were acknowledged before the database waited for n2.
    let mut o = obs(1_000, c.clone(), local(150, 120, "sync"));
    o.outcomes = vec![done(ActionKind::SetSyncStandbys, 0)];
    let d = ha.step(&o);
    assert!(
        !recorded(&d),
        "n2 lacks acknowledged writes 121..150: {d:?}"
    );
    let d = ha.step(&obs(2_000, c, local(170, 150, "sync")));
    assert!(recorded(&d), "{d:?}");
}

#[test]
fn unreadable_data_dir_stops_claiming_primary_at_once() {
    let mut ha = Ha::new(Node::new("n1"));
    let c = cluster(
        Some("n1"),
        vec![member("n1", MemberRole::Primary, 0x300_0000)],
    );
    let mut o = obs(100_000, c.clone(), primary_local());
    o.outcomes = vec![done(ActionKind::RenewLeader, 99_000)];
    ha.step(&o);
    assert!(ha.is_leader(100_000));
    let mut broken = primary_local();
    broken.data_dir = DataDirState::Unreadable("Input/output error".into());
    let d = ha.step(&obs(101_000, c, broken));
    assert!(
        !ha.is_leader(101_000),
        "/primary must answer 503 from this cycle on"
    );
    let kinds: Vec<ActionKind> = d.actions.iter().map(Action::kind).collect();
    let stop = kinds.iter().position(|k| *k == ActionKind::Stop).unwrap();
    let release = kinds
        .iter()
        .position(|k| *k == ActionKind::ReleaseLeader)
        .unwrap();
    assert!(stop < release, "stop before the lock goes: {kinds:?}");
}

#[test]
fn no_initialize_refusal_applies_only_before_the_agent_joined() {
    let mut ha = Ha::new(Node::new("n1"));
    let peers = vec![member("n2", MemberRole::Primary, 0x300_0000)];
    let d = ha.step(&obs(100_000, cluster(Some("n2"), peers), standby_local()));
    assert!(d.reason.to_string().contains("leader (n2)"), "{}", d.reason);
    // The DCS is wiped and the primary is gone: a joined replica must not refuse for ever.
    let wiped = Cluster {
        initialize: None,
        ..cluster(None, Vec::new())
    };
    let d = ha.step(&obs(200_000, wiped, standby_local()));
    assert_ne!(d.reason, crate::Reason::AbortJoin, "a joined agent refused");
    assert!(d.has(ActionKind::SetInitialize), "{d:?}");
    // A freshly started agent still refuses, as Patroni does.
    let mut fresh = Ha::new(Node::new("n3"));
    let wiped = Cluster {
        initialize: None,
        ..cluster(None, Vec::new())
    };
    let d = fresh.step(&obs(200_000, wiped, standby_local()));
    assert!(
        d.reason.to_string().contains("aborting start"),
        "{}",
        d.reason
    );
}

#[test]
fn emptied_config_is_restored_from_the_last_good_copy() {
    let mut ha = Ha::new(Node::new("n1"));
    let mut c = cluster(
        Some("n1"),
        vec![member("n1", MemberRole::Primary, 0x300_0000)],
    );
    c.config.as_mut().unwrap().value.ttl = 45;
    let mut o = obs(100_000, c.clone(), primary_local());
    o.outcomes = vec![done(ActionKind::RenewLeader, 99_000)];
    ha.step(&o);
    c.config = None;
    c.config_unreadable = Some(Versioned {
        version: 8,
        value: "the key is empty".into(),
    });
    let d = ha.step(&obs(101_000, c, primary_local()));
    let restored = d.actions.iter().find_map(|a| match a {
        Action::WriteConfig { config, version } => Some((config.ttl, *version)),
        _ => None,
    });
    assert_eq!(restored, Some((45, Some(8))), "{d:?}");
    assert!(
        d.reason.to_string().starts_with("restored /config"),
        "{}",
        d.reason
    );
}

#[test]
fn only_a_refused_guard_or_a_failed_stop_calls_for_a_restep() {
    let o = |kind, result| Outcome {
        kind,
        result,
        started_at: 1,
    };
    assert!(super::needs_restep(&[o(
        ActionKind::AcquireLeader,
        OutcomeResult::Lost
    )]));
    assert!(super::needs_restep(&[o(
        ActionKind::Stop,
        OutcomeResult::Failed("x".into())
    )]));
    assert!(!super::needs_restep(&[o(
        ActionKind::RenewLeader,
        OutcomeResult::DcsUnreachable("x".into())
    )]));
    assert!(!super::needs_restep(&[o(
        ActionKind::PublishMember,
        OutcomeResult::Failed("x".into())
    )]));
    assert!(!super::needs_restep(&[o(
        ActionKind::AcquireLeader,
        OutcomeResult::Skipped
    )]));
}

/// Found by the partition suite (flapping etcd links): a former primary back from a cut sees a
/// stale view, its renewal is refused, and it starts as a standby of the new leader. The
/// refusal must not make it cancel that standby start as if it were a primary's.
#[test]
fn a_standby_start_goes_on_after_a_refused_renewal() {
    let mut ha = Ha::new(Node::new("n1"));
    let stopped = LocalDb {
        process: ProcessState::Stopped,
        role: DbRole::Unknown,
        ..standby_local()
    };
    let leader_n2 = cluster(
        Some("n2"),
        vec![member("n2", MemberRole::Primary, 0x300_0000)],
    );
    let d = ha.step(&obs(1_000, leader_n2, stopped.clone()));
    assert!(
        d.actions
            .iter()
            .any(|a| matches!(a, Action::Start(crate::StartRole::Standby { .. }))),
        "{d:?}"
    );
    // The stale view still names us; the renewal it sent was refused while the start runs.
    let mut o = obs(
        2_000,
        cluster(
            Some("n1"),
            vec![member("n2", MemberRole::Primary, 0x300_0000)],
        ),
        LocalDb {
            process: ProcessState::Starting,
            ..stopped
        },
    );
    o.task = Some(crate::RunningTask {
        kind: ActionKind::Start,
        since: 1_000,
    });
    o.outcomes = vec![Outcome {
        kind: ActionKind::RenewLeader,
        result: OutcomeResult::Lost,
        started_at: 1_900,
    }];
    let d = ha.step(&o);
    assert!(
        !d.has(ActionKind::Demote) && !d.has(ActionKind::Stop),
        "{d:?}"
    );
}

fn follow_target(d: &crate::Decision) -> Option<String> {
    d.actions.iter().find_map(|a| match a {
        Action::Follow { leader } => Some(leader.name.clone()),
        _ => None,
    })
}

#[test]
fn replicatefrom_cascades_and_falls_back_to_the_leader_when_its_member_goes() {
    let mut node = Node::new("n3");
    node.tags.replicatefrom = Some("n2".into());
    let mut ha = Ha::new(node);
    let far_behind = cluster(
        Some("n1"),
        vec![
            member("n1", MemberRole::Primary, 0x300_0000),
            member("n2", MemberRole::Replica, 0x100_0000),
        ],
    );
    // n2 is 32 MiB behind us (more than maximum_lag_on_failover): stay on the leader.
    let d = ha.step(&obs(0, far_behind, standby_local()));
    assert_eq!(follow_target(&d).as_deref(), Some("n1"), "{d:?}");
    let both = cluster(
        Some("n1"),
        vec![
            member("n1", MemberRole::Primary, 0x300_0000),
            member("n2", MemberRole::Replica, 0x2F0_0000),
        ],
    );
    let d = ha.step(&obs(1, both, standby_local()));
    assert_eq!(follow_target(&d).as_deref(), Some("n2"), "{d:?}");
    assert!(
        d.reason.to_string().contains("replicatefrom"),
        "{}",
        d.reason
    );
    let gone = cluster(Some("n1"), vec![member("n1", MemberRole::Primary, 1)]);
    let d = ha.step(&obs(2, gone, standby_local()));
    assert_eq!(follow_target(&d).as_deref(), Some("n1"), "{d:?}");
}

#[test]
fn a_replicatefrom_loop_follows_the_leader() {
    let mut node = Node::new("n3");
    node.tags.replicatefrom = Some("n2".into());
    let mut ha = Ha::new(node);
    let mut n2 = member("n2", MemberRole::Replica, 1);
    n2.data.tags.replicatefrom = Some("n3".into());
    let c = cluster(Some("n1"), vec![member("n1", MemberRole::Primary, 1), n2]);
    let d = ha.step(&obs(0, c, standby_local()));
    assert_eq!(follow_target(&d).as_deref(), Some("n1"), "{d:?}");
}

#[test]
fn nostream_never_follows_and_stops_a_running_receiver() {
    let mut node = Node::new("n3");
    node.tags.nostream = true;
    let mut ha = Ha::new(node);
    let c = cluster(Some("n1"), vec![member("n1", MemberRole::Primary, 1)]);
    let mut streaming = standby_local();
    streaming.receiver = Some(crate::ReceiverStatus {
        streaming: true,
        upstream_host: Some("n1".into()),
        upstream_port: Some(5432),
    });
    let d = ha.step(&obs(0, c.clone(), streaming));
    assert!(
        d.actions.iter().any(|a| matches!(
            a,
            Action::Start(crate::StartRole::Standby { upstream: None })
        )),
        "{d:?}"
    );
    let d = ha.step(&obs(1, c.clone(), standby_local()));
    assert_eq!(follow_target(&d), None, "{d:?}");
    assert!(!d.has(ActionKind::Start), "{d:?}");
    // Started from scratch, it starts with no upstream.
    let mut stopped = standby_local();
    stopped.process = ProcessState::Stopped;
    let d = Ha::new({
        let mut n = Node::new("n3");
        n.tags.nostream = true;
        n
    })
    .step(&obs(0, c, stopped));
    assert!(
        d.actions.iter().any(|a| matches!(
            a,
            Action::Start(crate::StartRole::Standby { upstream: None })
        )),
        "{d:?}"
    );
}

#[test]
fn sync_prefers_failover_candidates_and_skips_members_not_running() {
    let mut c = cluster(
        Some("n1"),
        vec![
            member("n2", MemberRole::Replica, 0x300_0000),
            member("n3", MemberRole::Replica, 0x300_0000),
            member("n4", MemberRole::Replica, 0x300_0000),
        ],
    );
    c.members[0].data.tags.nofailover = true;
    c.members[2].data.state = MemberState::Stopped;
    configure(&mut c, |cfg| {
        cfg.synchronous_mode = crate::SynchronousMode::On
    });
    let row = |name: &str, flush: u64| streaming_row(name, flush, "async");
    let mut l = primary_local();
    // n2 is ahead but tagged nofailover; n4's member key says it is not running.
    l.replication = vec![
        row("n2", 0x300_0000),
        row("n3", 0x200_0000),
        row("n4", 0x300_0000),
    ];
    let d = Ha::new(Node::new("n1")).step(&obs(0, c, l));
    assert!(
        d.actions
            .iter()
            .any(|a| matches!(a, Action::SetSyncStandbys { names, .. } if names == &["n3"])),
        "{d:?}"
    );
}

#[test]
fn a_refused_promotion_gives_the_lock_back_and_sits_out_the_race_for_ttl() {
    let ttl = crate::instant::millis(crate::DynamicConfig::default().ttl_duration());
    let mut ha = Ha::new(Node::new("n1"));
    let peers = || {
        let mut peer = PeerStatus::unreachable("n2", 50_000);
        peer.reachable = true;
        peer.role = MemberRole::Replica;
        peer.state = MemberState::Running;
        peer.wal_position = Lsn(0x200_0000);
        Some(vec![peer])
    };
    let members = || vec![member("n2", MemberRole::Replica, 0x200_0000)];
    let mut o = obs(50_000, cluster(None, members()), standby_local());
    o.peers = peers();
    assert!(ha.step(&o).has(ActionKind::Promote));
    // The pre_promote script refused: the promotion failed while we held the lock.
    let mut o = obs(52_000, cluster(Some("n1"), members()), standby_local());
    o.outcomes = vec![
        done(ActionKind::PublishMember, 50_000),
        done(ActionKind::AcquireLeader, 50_000),
        Outcome {
            kind: ActionKind::Promote,
            result: OutcomeResult::Failed("pre_promote script exited with 1".into()),
            started_at: 50_000,
        },
    ];
    let d = ha.step(&o);
    assert!(
        d.has(ActionKind::ReleaseLeader) && !d.has(ActionKind::Promote),
        "{d:?}"
    );
    // Unlocked again: no race until ttl has passed since the failure, whatever the peers say.
    let mut o = obs(54_000, cluster(None, members()), standby_local());
    o.outcomes = vec![done(ActionKind::ReleaseLeader, 52_000)];
    o.peers = peers();
    let d = ha.step(&o);
    assert!(
        !d.has(ActionKind::AcquireLeader) && !d.has(ActionKind::Promote),
        "{d:?}"
    );
    assert!(d.reason.to_string().starts_with("backoff:"), "{}", d.reason);
    let mut o = obs(52_000 + ttl, cluster(None, members()), standby_local());
    o.peers = peers();
    assert!(
        ha.step(&o).has(ActionKind::AcquireLeader),
        "races again after ttl"
    );
}

#[test]
fn without_a_leader_a_node_with_a_restore_method_clones_from_backup() {
    let mut node = Node::new("n1");
    node.clone_without_leader = true;
    let empty = LocalDb::default();
    let step = |node: &Node, c: Cluster| Ha::new(node.clone()).step(&obs(0, c, empty.clone()));
    let d = step(&node, cluster(None, vec![]));
    assert!(d.actions.contains(&Action::CloneWithoutLeader), "{d:?}");
    assert_eq!(d.reason.to_string(), "trying to bootstrap (without leader)");
    assert_eq!(Action::CloneWithoutLeader.kind(), ActionKind::CloneFrom);
    // Someone is bootstrapping the cluster right now: wait for it.
    let mut bootstrapping = cluster(None, vec![]);
    bootstrapping.initialize = Some(String::new());
    let d = step(&node, bootstrapping);
    assert!(!d.actions.contains(&Action::CloneWithoutLeader), "{d:?}");
    // A running leader is copied from instead; without the method nothing is cloned.
    let d = step(
        &node,
        cluster(Some("n2"), vec![member("n2", MemberRole::Primary, 1)]),
    );
    assert!(
        d.actions
            .iter()
            .any(|a| matches!(a, Action::CloneFrom { source } if source.name == "n2")),
        "{d:?}"
    );
    node.clone_without_leader = false;
    let d = step(&node, cluster(None, vec![]));
    assert_eq!(d.reason.to_string(), "waiting for leader to bootstrap");
}

/// A lock holder whose server runs but refuses our SQL (a wrong superuser password) says so,
/// in its decision and its member key, instead of "still starting up".
#[test]
fn a_running_server_that_refuses_our_sql_is_not_starting_up() {
    let mut ha = Ha::new(Node::new("n1"));
    let mut local = LocalDb {
        process: ProcessState::Starting,
        role: DbRole::Unknown,
        ..primary_local()
    };
    let c = cluster(Some("n1"), vec![]);
    let d = ha.step(&obs(0, c.clone(), local.clone()));
    assert!(
        d.reason.to_string().contains("still starting up"),
        "{}",
        d.reason
    );
    local.report.sql_error = Some(crate::SqlProblem::Auth(
        "password authentication failed for user \"postgres\"".into(),
    ));
    let d = ha.step(&obs(1_000, c, local));
    assert!(
        d.reason.to_string().starts_with(
            "PostgreSQL is running but refuses our connection: password authentication failed"
        ),
        "{}",
        d.reason
    );
    assert!(
        !d.reason.to_string().contains("starting up"),
        "{}",
        d.reason
    );
    assert!(d.has(ActionKind::RenewLeader), "{d:?}");
    let data = d
        .actions
        .iter()
        .find_map(|a| match a {
            Action::PublishMember(data) => Some(data),
            _ => None,
        })
        .expect("the changed key is published");
    assert_eq!(
        data.extra.get("sql_error").and_then(|v| v.as_str()),
        Some("refuses our connection: password authentication failed for user \"postgres\"")
    );
}

fn failsafe_cluster(leader: Option<&str>) -> Cluster {
    let mut c = cluster(
        leader,
        vec![
            member("n1", MemberRole::Primary, 0x300_0000),
            member("n2", MemberRole::Replica, 0x300_0000),
        ],
    );
    configure(&mut c, |cfg| cfg.failsafe_mode = true);
    c
}

#[test]
fn failsafe_topology_is_written_and_an_outage_is_ridden_out_on_confirmed_rounds() {
    let mut ha = Ha::new(Node::new("n1"));
    let mut c = failsafe_cluster(Some("n1"));
    let mut o = obs(10_000, c.clone(), primary_local());
    o.outcomes = vec![done(ActionKind::RenewLeader, 10_000)];
    let d = ha.step(&o);
    let want: crate::FailsafeTopology = [
        ("n1".to_string(), "http://n1:8008/patroni".to_string()),
        ("n2".to_string(), "http://n2:8008/patroni".to_string()),
    ]
    .into();
    assert_eq!(d.actions.last(), Some(&Action::WriteFailsafe(want.clone())));
    c.failsafe = Some(want);
    o.dcs = DcsView::Ok(c);
    assert!(!ha.step(&o).has(ActionKind::WriteFailsafe), "written once");
    // Far past the lease: only the members' confirmation keeps the primary.
    let mut down = obs(60_000, Cluster::default(), primary_local());
    down.dcs = DcsView::Unreachable("timeout".into());
    let ask = ha.step(&down);
    assert_eq!(
        ask.actions,
        vec![Action::ConfirmFailsafe {
            members: vec![("n2".into(), "http://n2:8008/patroni".into())]
        }]
    );
    down.failsafe.round = Some(crate::FailsafeRound {
        started_at: 60_000,
        refused: Vec::new(),
    });
    let kept = ha.step(&down);
    assert!(kept.actions.is_empty(), "{kept:?}");
    assert_eq!(ha.leader_expiry(), Some(90_000));
    assert!(ha.failsafe_active(89_999));
    // A member that does not confirm: the lease rule again, and it has run out.
    let mut later = down.clone();
    later.now = 80_000;
    later.failsafe.round = Some(crate::FailsafeRound {
        started_at: 80_000,
        refused: vec![("n2".into(), "no answer".into())],
    });
    let d = ha.step(&later);
    assert_eq!(d.actions, vec![Action::Demote(crate::StopMode::Fast)]);
    assert!(
        d.reason.to_string().contains("n2: no answer"),
        "{}",
        d.reason
    );
    assert!(!ha.failsafe_active(80_001));
    // Failsafe mode off: the same outage demotes without asking anyone.
    let mut plain = Ha::new(Node::new("n1"));
    let mut c = failsafe_cluster(Some("n1"));
    configure(&mut c, |cfg| cfg.failsafe_mode = false);
    plain.step(&obs(10_000, c, primary_local()));
    let mut down = obs(60_000, Cluster::default(), primary_local());
    down.dcs = DcsView::Unreachable("timeout".into());
    assert_eq!(
        plain.step(&down).actions,
        vec![Action::Demote(crate::StopMode::Fast)]
    );
}

#[test]
fn a_member_that_confirmed_a_failsafe_leader_does_not_race_while_it_may_run() {
    let mut ha = Ha::new(Node::new("n2"));
    let mut c = failsafe_cluster(None);
    c.failsafe = Some(
        [
            ("n1".to_string(), "http://n1:8008/patroni".to_string()),
            ("n2".to_string(), "http://n2:8008/patroni".to_string()),
        ]
        .into(),
    );
    // Just started: a failsafe leader it confirmed before a restart may still run.
    let mut o = obs(1_000, c.clone(), standby_local());
    let d = ha.step(&o);
    assert!(!d.has(ActionKind::FetchPeerStatus), "{d:?}");
    o.now = 100_000;
    o.failsafe.leader = Some(crate::FailsafeLeader {
        name: "n1".into(),
        accepted_at: 80_000,
    });
    let d = ha.step(&o);
    assert!(
        !d.has(ActionKind::FetchPeerStatus) && !d.has(ActionKind::AcquireLeader),
        "{d:?}"
    );
    assert!(
        d.reason.to_string().contains("failsafe leader (n1)"),
        "{}",
        d.reason
    );
    // Once ttl has passed since the confirmation it races as usual.
    o.now = 110_000;
    assert!(ha.step(&o).has(ActionKind::FetchPeerStatus));
    // A member missing from /failsafe asks its members too, and does not race while one of
    // them is silent: it may be a primary riding an outage on that topology.
    let mut o3 = obs(200_000, c, standby_local());
    let mut n3 = Ha::new(Node::new("n3"));
    n3.step(&o3);
    o3.now = 300_000;
    let d = n3.step(&o3);
    assert_eq!(
        d.actions.last(),
        Some(&Action::FetchPeerStatus {
            members: vec!["n1".into(), "n2".into()]
        })
    );
    let mut n2 = PeerStatus::unreachable("n2", 300_000);
    n2.reachable = true;
    n2.role = MemberRole::Replica;
    n2.state = MemberState::Running;
    o3.peers = Some(vec![PeerStatus::unreachable("n1", 300_000), n2.clone()]);
    let d = n3.step(&o3);
    assert!(
        d.reason
            .to_string()
            .contains("n1, which is, does not answer"),
        "{}",
        d.reason
    );
    let mut n1 = n2.clone();
    n1.name = "n1".into();
    o3.peers = Some(vec![n1, n2]);
    assert!(n3.step(&o3).has(ActionKind::AcquireLeader));
}

/// Quorum mode: a standby promotes only with `quorum + 1` votes from the leader and voters in
/// `/sync`, its own included; a silent voter's vote is missing, one ahead of it refuses it.
#[test]
fn quorum_mode_promotes_only_with_enough_votes() {
    let mut c = cluster(None, vec![member("n2", MemberRole::Replica, 0x200_0000)]);
    configure(&mut c, |cfg| {
        cfg.synchronous_mode = crate::SynchronousMode::Quorum
    });
    c.sync = Some(Versioned {
        version: 1,
        value: crate::SyncState {
            leader: Some("n0".into()),
            sync_standbys: vec!["n1".into(), "n2".into()],
            quorum: Some(1),
        },
    });
    let mut ha = Ha::new(Node::new("n1"));
    let mut o = obs(50_000, c, standby_local());
    assert!(ha.step(&o).has(ActionKind::FetchPeerStatus));
    let mut n2 = PeerStatus::unreachable("n2", 50_000);
    o.peers = Some(vec![n2.clone()]);
    let d = ha.step(&o);
    assert!(!d.has(ActionKind::AcquireLeader), "{d:?}");
    assert!(
        d.reason.to_string().contains("1 of the 2 votes"),
        "{}",
        d.reason
    );
    n2.reachable = true;
    n2.role = MemberRole::Replica;
    n2.state = MemberState::Running;
    n2.wal_position = Lsn(0x400_0000);
    o.peers = Some(vec![n2.clone()]);
    let d = ha.step(&o);
    assert!(!d.has(ActionKind::AcquireLeader), "n2 is ahead: {d:?}");
    n2.wal_position = Lsn(0x200_0000);
    o.peers = Some(vec![n2]);
    let d = ha.step(&o);
    assert!(d.has(ActionKind::AcquireLeader), "{d:?}");
    assert!(d.has(ActionKind::Promote));
}

/// Quorum mode, leader side: `ANY 1` of both standbys first; the voters with quorum 1 only on a
/// later cycle, once the change has taken effect and both standbys flushed past it. Back in
/// mode `on`, the quorum voters lose their standing until confirmed under `FIRST n`.
#[test]
fn quorum_leader_sets_any_n_before_the_voters() {
    let mut ha = Ha::new(Node::new("n1"));
    let mut c = cluster(
        Some("n1"),
        vec![
            member("n2", MemberRole::Replica, 0x300_0000),
            member("n3", MemberRole::Replica, 0x300_0000),
        ],
    );
    configure(&mut c, |cfg| {
        cfg.synchronous_mode = crate::SynchronousMode::Quorum
    });
    let sync = |standbys: &[&str], quorum: Option<u32>| {
        Some(Versioned {
            version: 4,
            value: crate::SyncState {
                leader: Some("n1".into()),
                sync_standbys: standbys.iter().map(|s| s.to_string()).collect(),
                quorum,
            },
        })
    };
    c.sync = sync(&[], Some(0));
    let local = |flush: u64| {
        let mut l = primary_local();
        l.replication = ["n2", "n3"]
            .iter()
            .map(|n| streaming_row(n, flush, "quorum"))
            .collect();
        l
    };
    let sync_actions = |d: &crate::Decision| -> Vec<Action> {
        d.actions
            .iter()
            .filter(|a| {
                matches!(
                    a,
                    Action::WriteSyncState { .. } | Action::SetSyncStandbys { .. }
                )
            })
            .cloned()
            .collect()
    };
    let d = ha.step(&obs(0, c.clone(), local(0x300_0000)));
    assert_eq!(
        sync_actions(&d),
        vec![Action::SetSyncStandbys {
            names: vec!["n2".into(), "n3".into()],
            count: 1,
            quorum: true
        }]
    );
    // Our position grew since: the standbys have not flushed up to it yet.
    let mut ahead = local(0x300_0000);
    ahead.write_lsn = Some(Lsn(0x400_0000));
    assert_eq!(sync_actions(&ha.step(&obs(1, c.clone(), ahead))), vec![]);
    let d = ha.step(&obs(2, c.clone(), local(0x400_0000)));
    assert_eq!(
        sync_actions(&d),
        vec![Action::WriteSyncState {
            state: crate::SyncState {
                leader: Some("n1".into()),
                sync_standbys: vec!["n2".into(), "n3".into()],
                quorum: Some(1),
            },
            version: Some(4),
        }]
    );
    c.sync = sync(&["n2", "n3"], Some(1));
    assert_eq!(
        sync_actions(&ha.step(&obs(3, c.clone(), local(0x400_0000)))),
        vec![]
    );
    configure(&mut c, |cfg| {
        cfg.synchronous_mode = crate::SynchronousMode::On
    });
    let d = ha.step(&obs(4, c, local(0x400_0000)));
    assert_eq!(
        sync_actions(&d),
        vec![Action::WriteSyncState {
            state: crate::SyncState {
                leader: Some("n1".into()),
                sync_standbys: vec![],
                quorum: None,
            },
            version: Some(4),
        }]
    );
}

/// The synchronous actions of a decision, in order, and then the promotion if there is one.
fn sync_and_promote(d: &crate::Decision) -> Vec<Action> {
    d.actions
        .iter()
        .filter(|a| {
            matches!(
                a,
                Action::WriteSyncState { .. }
                    | Action::SetSyncStandbys { .. }
                    | Action::Promote { .. }
            )
        })
        .cloned()
        .collect()
}

fn sync_key(
    leader: &str,
    standbys: &[&str],
    quorum: Option<u32>,
) -> Option<Versioned<crate::SyncState>> {
    Some(Versioned {
        version: 4,
        value: crate::SyncState {
            leader: Some(leader.into()),
            sync_standbys: standbys.iter().map(|s| s.to_string()).collect(),
            quorum,
        },
    })
}

/// Mode `on`: a lock holder promoting its standby first stops its database waiting for the
/// standbys named in an earlier term (the setting survives demotion), and remembers it: the first
/// primary cycle with nobody to name sets nothing again, until a failure forgets it.
#[test]
fn promotion_in_sync_mode_clears_the_old_standby_names_first() {
    let mut ha = Ha::new(Node::new("n1"));
    let mut c = cluster(
        Some("n1"),
        vec![member("n2", MemberRole::Replica, 0x300_0000)],
    );
    configure(&mut c, |cfg| {
        cfg.synchronous_mode = crate::SynchronousMode::On
    });
    c.sync = sync_key("n2", &["n1"], None);
    let d = ha.step(&obs(0, c.clone(), standby_local()));
    assert_eq!(
        sync_and_promote(&d),
        vec![
            Action::WriteSyncState {
                state: crate::SyncState {
                    leader: Some("n1".into()),
                    sync_standbys: vec![],
                    quorum: None,
                },
                version: Some(4),
            },
            Action::SetSyncStandbys {
                names: vec![],
                count: 0,
                quorum: false,
            },
            Action::Promote {
                timeline: 2,
                planned: false,
            },
        ]
    );
    // Promoted, nobody streams from us yet: the setting is already what the sync step wants.
    c.sync = sync_key("n1", &[], None);
    let mut o = obs(1_000, c.clone(), primary_local());
    o.outcomes = vec![
        done(ActionKind::SetSyncStandbys, 0),
        done(ActionKind::Promote, 0),
    ];
    assert_eq!(sync_and_promote(&ha.step(&o)), vec![]);
    // Had it failed, the next cycle sets it again.
    o.now = 2_000;
    o.outcomes = vec![Outcome {
        kind: ActionKind::SetSyncStandbys,
        result: OutcomeResult::Failed("connection refused".into()),
        started_at: 0,
    }];
    assert_eq!(
        sync_and_promote(&ha.step(&o)),
        vec![Action::SetSyncStandbys {
            names: vec![],
            count: 0,
            quorum: false,
        }]
    );
}

/// Mode `on` after a promotion: the new primary names its first standby in its first primary
/// cycle, and records it only once it reached the position seen in the cycle after that, even if
/// the database (its setting from an earlier term) already reports it synchronous.
#[test]
fn a_new_primary_records_its_first_standby_only_past_the_position_after_naming_it() {
    let mut ha = Ha::new(Node::new("n1"));
    let mut c = cluster(Some("n1"), vec![member("n2", MemberRole::Replica, 200)]);
    configure(&mut c, |cfg| {
        cfg.synchronous_mode = crate::SynchronousMode::On
    });
    c.sync = sync_key("n2", &["n1"], None);
    assert!(ha
        .step(&obs(0, c.clone(), standby_local()))
        .has(ActionKind::Promote));
    c.sync = sync_key("n1", &[], None);
    let local = |wal: u64, flush: u64| {
        let mut l = primary_local();
        l.timeline = Some(2);
        l.write_lsn = Some(Lsn(wal));
        l.replication = vec![streaming_row("n2", flush, "sync")];
        l
    };
    let recorded = |d: &crate::Decision| {
        d.actions.iter().any(
            |a| matches!(a, Action::WriteSyncState { state, .. } if state.sync_standbys == ["n2"]),
        )
    };
    let mut o = obs(1_000, c.clone(), local(200, 200));
    o.outcomes = vec![
        done(ActionKind::SetSyncStandbys, 0),
        done(ActionKind::Promote, 0),
    ];
    let d = ha.step(&o);
    assert!(
        d.actions
            .iter()
            .any(|a| matches!(a, Action::SetSyncStandbys { names, .. } if names == &["n2"])),
        "{d:?}"
    );
    assert!(!recorded(&d), "{d:?}");
    let mut o = obs(2_000, c.clone(), local(250, 220));
    o.outcomes = vec![done(ActionKind::SetSyncStandbys, 1_000)];
    let d = ha.step(&o);
    assert!(!recorded(&d), "{d:?}");
    let d = ha.step(&obs(3_000, c, local(260, 250)));
    assert!(recorded(&d), "{d:?}");
}

/// Strict mode: the promoting node waits for the placeholder (no commit without a standby), not
/// for the standbys its database named before.
#[test]
fn strict_promotion_sets_the_placeholder_first() {
    let mut c = cluster(
        Some("n1"),
        vec![member("n2", MemberRole::Replica, 0x300_0000)],
    );
    if let Some(cfg) = c.config.as_mut() {
        cfg.value.synchronous_mode = crate::SynchronousMode::On;
        cfg.value.synchronous_mode_strict = true;
    }
    c.sync = sync_key("n2", &["n1"], None);
    let d = Ha::new(Node::new("n1")).step(&obs(0, c, standby_local()));
    let actions = sync_and_promote(&d);
    assert_eq!(
        actions.get(1),
        Some(&Action::SetSyncStandbys {
            names: vec![super::sync::STRICT_SYNC_PLACEHOLDER.into()],
            count: 1,
            quorum: false,
        }),
        "{actions:?}"
    );
    assert!(
        matches!(actions.get(2), Some(Action::Promote { .. })),
        "{actions:?}"
    );
}

/// Quorum mode: the race winner writes `/sync` naming only itself and sets `ANY 0 ()` before
/// promoting; the resolver starts from that, so a primary with no standby yet changes nothing.
#[test]
fn quorum_race_winner_sets_no_quorum_before_promoting() {
    let mut ha = Ha::new(Node::new("n1"));
    let mut c = cluster(
        None,
        vec![
            member("n1", MemberRole::Replica, 0x300_0000),
            member("n2", MemberRole::Replica, 0x200_0000),
        ],
    );
    configure(&mut c, |cfg| {
        cfg.synchronous_mode = crate::SynchronousMode::Quorum
    });
    c.sync = sync_key("n3", &["n1", "n2"], Some(1));
    let mut race = obs(50_000, c.clone(), standby_local());
    let mut peer = PeerStatus::unreachable("n2", 50_000);
    peer.reachable = true;
    peer.role = MemberRole::Replica;
    peer.state = MemberState::Running;
    peer.wal_position = Lsn(0x200_0000);
    race.peers = Some(vec![peer]);
    let d = ha.step(&race);
    assert_eq!(
        sync_and_promote(&d),
        vec![
            Action::WriteSyncState {
                state: crate::SyncState {
                    leader: Some("n1".into()),
                    sync_standbys: vec![],
                    quorum: Some(0),
                },
                version: Some(4),
            },
            Action::SetSyncStandbys {
                names: vec![],
                count: 0,
                quorum: true,
            },
            Action::Promote {
                timeline: 2,
                planned: false,
            },
        ],
        "{d:?}"
    );
    let mut c = cluster(Some("n1"), c.members.clone());
    configure(&mut c, |cfg| {
        cfg.synchronous_mode = crate::SynchronousMode::Quorum
    });
    c.sync = sync_key("n1", &[], Some(0));
    let mut o = obs(51_000, c.clone(), primary_local());
    o.outcomes = vec![
        done(ActionKind::AcquireLeader, 50_000),
        done(ActionKind::WriteSyncState, 50_000),
        done(ActionKind::SetSyncStandbys, 50_000),
        done(ActionKind::Promote, 50_000),
    ];
    assert_eq!(sync_and_promote(&ha.step(&o)), vec![]);
    // Had the setting failed while the promotion ran (no sync step that cycle), the first
    // primary cycle sets it again.
    let mut promoting = obs(50_500, c.clone(), standby_local());
    promoting.task = Some(crate::RunningTask {
        kind: ActionKind::Promote,
        since: 50_000,
    });
    promoting.outcomes = vec![Outcome {
        kind: ActionKind::SetSyncStandbys,
        result: OutcomeResult::Failed("connection refused".into()),
        started_at: 50_000,
    }];
    let mut ha = Ha::new(Node::new("n1"));
    assert!(ha.step(&race).has(ActionKind::Promote));
    ha.step(&promoting);
    assert_eq!(
        sync_and_promote(&ha.step(&obs(51_000, c, primary_local()))),
        vec![Action::SetSyncStandbys {
            names: vec![],
            count: 0,
            quorum: true,
        }]
    );
}

/// A restart requested with `timeout` judges its start by that timeout, not by
/// `primary_start_timeout` (300 s here): 5 s into the start, while the restart task still runs
/// and after it ended with the server still starting, the lock holder stops and gives way;
/// the same restart without `timeout` goes on waiting.
#[test]
fn a_restart_with_a_timeout_times_out_by_it_rather_than_by_primary_start_timeout() {
    use std::time::Duration;
    let mut c = cluster(
        Some("n1"),
        vec![
            member("n1", MemberRole::Primary, 0x300_0000),
            member("n2", MemberRole::Replica, 0x300_0000),
        ],
    );
    c.status = Some(crate::ClusterStatus {
        optime: Some(Lsn(0x300_0000)),
        ..Default::default()
    });
    assert_eq!(
        c.config
            .as_ref()
            .unwrap()
            .value
            .primary_start_timeout_duration(),
        Duration::from_secs(300)
    );
    let starting = LocalDb {
        process: ProcessState::Starting,
        role: DbRole::Unknown,
        ..primary_local()
    };
    let run = |timeout: Option<Duration>, task_ended: bool| {
        let mut ha = Ha::new(Node::new("n1"));
        let mut o = obs(0, c.clone(), primary_local());
        o.requests = vec![crate::LocalRequest::Restart { timeout }];
        let d = ha.step(&o);
        assert!(d.has(ActionKind::Restart), "{d:?}");
        let task = crate::RunningTask {
            kind: ActionKind::Restart,
            since: 0,
        };
        let mut o = obs(1_000, c.clone(), starting.clone());
        o.task = Some(task);
        let d = ha.step(&o);
        assert!(!d.has(ActionKind::Stop), "{d:?}");
        let mut o = obs(6_500, c.clone(), starting.clone());
        if task_ended {
            o.outcomes = vec![Outcome {
                kind: ActionKind::Restart,
                result: OutcomeResult::Failed("start timed out".into()),
                started_at: 0,
            }];
        } else {
            o.task = Some(task);
        }
        ha.step(&o)
    };
    for task_ended in [false, true] {
        let d = run(Some(Duration::from_secs(5)), task_ended);
        assert_eq!(
            d.reason.to_string(),
            "stopped PostgreSQL because of startup timeout",
            "task ended: {task_ended}"
        );
        assert!(
            d.has(ActionKind::Stop) && d.has(ActionKind::ReleaseLeader),
            "{d:?}"
        );
        let d = run(None, task_ended);
        assert!(
            !d.has(ActionKind::Stop) && !d.has(ActionKind::ReleaseLeader),
            "{d:?}"
        );
    }
    // Before the timeout the countdown is the request's.
    let mut ha = Ha::new(Node::new("n1"));
    let mut o = obs(0, c.clone(), primary_local());
    o.requests = vec![crate::LocalRequest::Restart {
        timeout: Some(Duration::from_secs(5)),
    }];
    ha.step(&o);
    ha.step(&obs(1_000, c.clone(), starting.clone()));
    let d = ha.step(&obs(3_000, c.clone(), starting.clone()));
    assert_eq!(
        d.reason.to_string(),
        "PostgreSQL is still starting up, 3 seconds until timeout"
    );
}
