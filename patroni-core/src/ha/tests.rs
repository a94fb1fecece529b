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

fn obs(now: u64, c: Cluster, local: LocalDb) -> Observation {
    Observation {
        now,
        wall_clock: crate::Timestamp(1_795_000_000_000),
        dcs: DcsView::Ok(c),
        local,
        peers: None,
        outcomes: Vec::new(),
        task: None,
        requests: Vec::new(),
    }
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
    assert!(!ha
        .step(&obs(1, c2.clone(), primary_local()))
        .has(ActionKind::PublishMember));
    let mut node = Node::new("n1");
    node.tags.nofailover = true;
    ha.set_node(node);
    let d = ha.step(&obs(2, c2, primary_local()));
    let Action::PublishMember(data) = &d.actions[0] else {
        panic!("{:?}", d.actions)
    };
    assert!(data.tags.nofailover);
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
    o.outcomes = vec![done(ActionKind::PublishMember, 50_000)];
    let second = ha.step(&o);
    assert_eq!(
        second.actions.iter().map(Action::kind).collect::<Vec<_>>(),
        vec![
            ActionKind::PublishMember,
            ActionKind::AcquireLeader,
            ActionKind::Promote
        ],
        "our key is still missing from this cycle's view, so it is written again"
    );
    assert_eq!(ha.step(&o), second, "a repeated step decides the same");
}

#[test]
fn primary_claim_window_starts_when_a_leader_was_last_seen() {
    let mut ha = Ha::new(Node::new("n1"));
    let n2 = member("n2", MemberRole::Primary, 0x300_0000);
    // Cycle 1 at t=0 sees n2 as leader; cycle 2 at t=25s sees no leader but n2 still claims primary.
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
    let mut o = obs(25_000, cluster(None, vec![n2]), standby_local());
    o.peers = Some(vec![peer.clone()]);
    let blocked = ha.step(&o);
    assert_eq!(blocked.message, "Primary (n2) is still alive");
    assert!(!blocked.has(ActionKind::AcquireLeader));
    // At t=30s the old primary's lease has certainly expired: its claim no longer counts.
    o.now = 30_000;
    peer.fetched_at = 30_000;
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
