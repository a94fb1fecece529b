//! Decision latency: one `Ha::step` for clusters of 3, 5 and 9 members, in a steady leader cycle
//! and in an unlocked race with every peer's answer at hand (the heaviest path).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use patroni::core::{
    ActionKind, Cluster, ClusterStatus, DataDirState, DbRole, DcsView, Ha, Leader, LocalDb, Lsn,
    Member, MemberData, MemberRole, MemberState, Node, Observation, Outcome, OutcomeResult,
    PeerStatus, ProcessState, Timestamp, Versioned,
};

fn member(i: usize, role: MemberRole, lsn: u64) -> Member {
    let name = format!("node{i}");
    Member::new(
        name.clone(),
        MemberData {
            conn_url: format!("postgres://10.0.0.{i}:5432/postgres"),
            api_url: format!("http://10.0.0.{i}:8008/patroni"),
            state: MemberState::Running,
            role,
            xlog_location: Some(Lsn(lsn)),
            timeline: Some(1),
            ..MemberData::default()
        },
    )
}

fn local(role: DbRole, lsn: u64) -> LocalDb {
    LocalDb {
        process: ProcessState::Running,
        data_dir: DataDirState::Initialized,
        role,
        system_id: Some("7300000000000000001".into()),
        timeline: Some(1),
        write_lsn: (role == DbRole::Primary).then_some(Lsn(lsn)),
        receive_lsn: (role == DbRole::Standby).then_some(Lsn(lsn)),
        replay_lsn: (role == DbRole::Standby).then_some(Lsn(lsn)),
        ..LocalDb::default()
    }
}

fn observation(cluster: Cluster, local: LocalDb, peers: Option<Vec<PeerStatus>>) -> Observation {
    Observation {
        peers,
        ..Observation::quiet(
            1_000_000,
            Timestamp(1_795_000_000_000),
            DcsView::Ok(cluster),
            local,
        )
    }
}

fn base(n: usize) -> Cluster {
    Cluster {
        initialize: Some("7300000000000000001".into()),
        config: Some(Versioned {
            version: 1,
            value: Default::default(),
        }),
        status: Some(ClusterStatus {
            optime: Some(Lsn(0x300_0000)),
            ..ClusterStatus::default()
        }),
        members: (1..=n)
            .map(|i| member(i, MemberRole::Replica, 0x2F0_0000))
            .collect(),
        ..Cluster::default()
    }
}

/// A leader whose member key is current: the idle cycle (renew only).
fn steady_leader(n: usize) -> (Ha, Observation) {
    let mut c = base(n);
    c.leader = Some(Leader {
        name: "node1".into(),
        version: 9,
    });
    let o = observation(c.clone(), local(DbRole::Primary, 0x300_0000), None);
    let mut ha = Ha::new(Node::new("node1"));
    let first = ha.step(&o);
    if let Some(patroni::core::Action::PublishMember(data)) = first.actions.first() {
        c.members[0] = Member::new("node1", data.clone());
    }
    let mut o = observation(c, local(DbRole::Primary, 0x300_0000), None);
    o.outcomes = vec![Outcome {
        kind: ActionKind::PublishMember,
        result: OutcomeResult::Done,
        started_at: 1_000_000,
    }];
    ha.step(&o);
    o.outcomes.clear();
    assert_eq!(ha.step(&o).actions.len(), 1, "steady cycle renews only");
    (ha, o)
}

/// An unlocked cluster, this node the most advanced standby, every peer answered.
fn race(n: usize) -> (Ha, Observation) {
    let c = base(n);
    let peers = (2..=n)
        .map(|i| {
            let mut p = PeerStatus::unreachable(format!("node{i}"), 1_000_000);
            p.reachable = true;
            p.role = MemberRole::Replica;
            p.state = MemberState::Running;
            p.wal_position = Lsn(0x2F0_0000);
            p.timeline = Some(1);
            p
        })
        .collect();
    let o = observation(c, local(DbRole::Standby, 0x300_0000), Some(peers));
    let mut ha = Ha::new(Node::new("node1"));
    assert!(ha.step(&o).has(patroni::core::ActionKind::AcquireLeader));
    (ha, o)
}

fn decide(c: &mut Criterion) {
    let mut g = c.benchmark_group("decide");
    for n in [3usize, 5, 9] {
        let (mut ha, o) = steady_leader(n);
        g.bench_with_input(BenchmarkId::new("steady_leader", n), &o, |b, o| {
            b.iter(|| black_box(ha.step(black_box(o))))
        });
        let (mut ha, o) = race(n);
        g.bench_with_input(BenchmarkId::new("race_with_peers", n), &o, |b, o| {
            b.iter(|| black_box(ha.step(black_box(o))))
        });
    }
    g.finish();
}

criterion_group!(benches, decide);
criterion_main!(benches);
