//! A standby cluster's lock holder: the standby leader, a standby of the remote primary.

use super::{Cycle, Ha};
use crate::{
    Action, Decision, DynamicConfig, Endpoint, LocalDb, Member, Reason, StandbyCluster, StartRole,
    StopMode, SynchronousMode, REMOTE_MEMBER,
};

/// The active `standby_cluster` section of `config`, an unreadable one as a section with no
/// remote (the cluster then waits, never promotes); synchronous replication is switched off in
/// `config` for a standby cluster, as Patroni does not apply it there.
pub(super) fn standby_section(config: &mut DynamicConfig) -> Option<StandbyCluster> {
    let section = config
        .standby_cluster()
        .unwrap_or_else(|_| Some(StandbyCluster::default()));
    if section.is_some() {
        config.synchronous_mode = SynchronousMode::Off;
    }
    section
}

/// Whether the local WAL receiver streams from `remote`, when it reports where it streams from.
fn streams_from(local: &LocalDb, remote: &Member) -> Option<bool> {
    let rx = local.receiver.as_ref()?;
    let want = Endpoint::from_conn_url(&remote.data.conn_url).ok()?;
    match (rx.upstream_host.as_deref(), rx.upstream_port) {
        (Some(host), Some(port)) => Some(want.is(host, port)),
        (Some(host), None) if want.host.eq_ignore_ascii_case(host) => None,
        _ => Some(false),
    }
}

impl Ha {
    /// The standby leader replays with the section's recovery settings (`restore_command` and
    /// the like): they are handed to the database with the cluster's parameters.
    pub(super) fn standby_leader_parameters(&mut self, config: &DynamicConfig) {
        let Ok(Some(section)) = config.standby_cluster() else {
            return;
        };
        if let Some(c) = self.mem.config.as_mut() {
            c.postgresql
                .parameters
                .extend(section.recovery_parameters());
        }
    }

    /// The lock is ours in a standby cluster: keep it and stream from the remote primary.
    pub(super) fn lead_standby(&mut self, cy: &Cycle<'_>) -> Decision {
        let local = &cy.obs.local;
        let me = cy.me();
        if local.is_running_primary() {
            if cy.paused {
                return Decision::new(vec![Action::RenewLeader], Reason::StandbyClusterPaused);
            }
            // The operator turned this cluster into a standby cluster: stop taking writes, then
            // follow the remote primary (Patroni's `demote-cluster`).
            return Decision::new(
                vec![Action::RenewLeader, Action::Demote(StopMode::Fast)],
                Reason::DemoteStandbyCluster,
            );
        }
        let mut actions = vec![Action::RenewLeader];
        let mut reason = Reason::StandbyLeaderWithLock { me: me.to_string() };
        // A switchover hands the standby leadership over like a primary's.
        match self.handover(cy) {
            super::switchover::Handover::Demote(d) => return d,
            super::switchover::Handover::Note(d) => {
                reason = d.reason;
                actions.extend(d.actions);
            }
            super::switchover::Handover::Nothing => {}
        }
        if local.role == crate::DbRole::Standby {
            match &cy.remote {
                Some(remote) => {
                    let following = streams_from(local, remote)
                        .unwrap_or(self.mem.following.as_deref() == Some(REMOTE_MEMBER));
                    self.mem.following = Some(REMOTE_MEMBER.to_string());
                    if !following {
                        actions.push(Action::Follow {
                            leader: remote.clone(),
                        });
                        reason = Reason::StandbyLeaderFollowsRemote;
                    }
                }
                None => {
                    self.mem.following = None;
                    let streaming = local
                        .receiver
                        .as_ref()
                        .is_some_and(|rx| rx.upstream_host.is_some());
                    if streaming {
                        // Archive only: a receiver left pointed at a member is dropped.
                        actions.push(Action::Start(StartRole::Standby { upstream: None }));
                    }
                }
            }
        }
        actions.extend(self.upkeep(cy));
        Decision::new(actions, reason)
    }

    /// What a standby that won the race in a standby cluster does instead of promoting.
    pub(super) fn become_standby_leader(&mut self, cy: &Cycle<'_>, actions: &mut Vec<Action>) {
        if let Some(remote) = &cy.remote {
            self.mem.following = Some(REMOTE_MEMBER.to_string());
            actions.push(Action::Follow {
                leader: remote.clone(),
            });
        }
    }

    /// An empty data directory won `/initialize` in a standby cluster: copy the remote primary.
    pub(super) fn bootstrap_standby_leader(&mut self, cy: &Cycle<'_>) -> Decision {
        let (action, reason) = match &cy.remote {
            Some(remote) => {
                self.mem.following = Some(REMOTE_MEMBER.to_string());
                (
                    Action::CloneFrom {
                        source: remote.clone(),
                    },
                    Reason::BootstrappingStandbyLeader,
                )
            }
            None if cy.node.clone_without_leader => (
                Action::CloneWithoutLeader,
                Reason::BootstrappingStandbyLeaderWithoutLeader,
            ),
            None => return Decision::because(Reason::StandbyClusterNoSource),
        };
        Decision::new(vec![Action::TakeInitialize, action], reason)
    }

    /// Whether our receiver streams from the standby cluster's remote primary (now, or before
    /// the cluster was promoted): not an unknown server that might be a lockless primary of ours.
    ///
    /// An agent restarted after the promotion remembers no remote; the one its `bootstrap.dcs`
    /// names (a cluster created as a standby cluster) still counts.
    pub(super) fn streams_from_remote(&self, cy: &Cycle<'_>) -> bool {
        let seeded = cy
            .node
            .bootstrap_config
            .standby_cluster()
            .ok()
            .flatten()
            .and_then(|s| s.remote());
        let local = &cy.obs.local;
        let streams = |r: Option<&Member>| r.is_some_and(|r| streams_from(local, r) == Some(true));
        streams(cy.remote.as_ref())
            || streams(self.mem.standby_remote.as_ref())
            || streams(seeded.as_ref())
    }
}

impl Ha {
    /// Whether the cluster is a standby cluster as this node last saw `/config`: its lock
    /// holder is a standby leader, never a writable primary (what the REST checks answer by).
    pub fn is_standby_cluster(&self) -> bool {
        self.mem
            .config
            .as_ref()
            .is_some_and(DynamicConfig::is_standby_cluster)
    }
}

#[cfg(test)]
mod tests {
    use crate::{
        Action, Cluster, DataDirState, DbRole, Ha, Leader, LocalDb, Lsn, Member, MemberData,
        MemberRole, MemberState, Node, Observation, ProcessState, ReceiverStatus, StartRole,
        SynchronousMode, Versioned, REMOTE_MEMBER,
    };

    fn standby_config(on: bool) -> crate::DynamicConfig {
        let mut c = crate::DynamicConfig {
            synchronous_mode: SynchronousMode::On,
            ..Default::default()
        };
        if on {
            c.extra.insert(
                "standby_cluster".into(),
                serde_json::json!({"host": "10.9.9.9", "port": 6000, "primary_slot_name": "dr"}),
            );
        }
        c
    }

    fn member(name: &str) -> Member {
        Member::new(
            name,
            MemberData {
                conn_url: format!("postgres://{name}:5432/postgres"),
                api_url: format!("http://{name}:8008/patroni"),
                state: MemberState::Running,
                role: MemberRole::Replica,
                xlog_location: Some(Lsn(100)),
                ..MemberData::default()
            },
        )
    }

    fn cluster(leader: Option<&str>, standby: bool) -> Cluster {
        Cluster {
            initialize: Some("7000".into()),
            config: Some(Versioned {
                version: 1,
                value: standby_config(standby),
            }),
            leader: leader.map(|n| Leader {
                name: n.into(),
                version: 1,
            }),
            members: vec![member("n1")],
            ..Cluster::default()
        }
    }

    fn local(role: DbRole, upstream: Option<(&str, u16)>) -> LocalDb {
        LocalDb {
            process: ProcessState::Running,
            data_dir: DataDirState::Initialized,
            role,
            system_id: Some("7000".into()),
            timeline: Some(1),
            write_lsn: (role == DbRole::Primary).then_some(Lsn(100)),
            receive_lsn: (role == DbRole::Standby).then_some(Lsn(100)),
            receiver: upstream.map(|(h, p)| ReceiverStatus {
                streaming: true,
                upstream_host: Some(h.into()),
                upstream_port: Some(p),
            }),
            ..LocalDb::default()
        }
    }

    /// The decision tests' observation at the instant these tests run.
    fn obs(c: Cluster, local: LocalDb) -> Observation {
        crate::ha::tests::obs(10_000, c, local)
    }

    fn follows_remote(a: &Action) -> bool {
        matches!(a, Action::Follow { leader } if leader.name == REMOTE_MEMBER
            && leader.data.conn_url == "postgres://10.9.9.9:6000/postgres")
    }

    #[test]
    fn the_lock_holder_follows_the_remote_and_never_promotes() {
        let mut ha = Ha::new(Node::new("n1"));
        let d = ha.step(&obs(
            cluster(Some("n1"), true),
            local(DbRole::Standby, None),
        ));
        assert!(d.actions.iter().any(follows_remote), "{d:?}");
        assert!(!d
            .actions
            .iter()
            .any(|a| matches!(a, Action::Promote { .. })));
        assert!(d
            .actions
            .iter()
            .any(|a| matches!(a, Action::PublishMember(m) if m.role == MemberRole::StandbyLeader)));
        assert!(ha.is_standby_cluster());
        // Once the receiver streams from the remote nothing changes.
        let d = ha.step(&obs(
            cluster(Some("n1"), true),
            local(DbRole::Standby, Some(("10.9.9.9", 6000))),
        ));
        assert_eq!(
            d.reason.to_string(),
            "no action. I am (n1), the standby leader with the lock"
        );
        assert!(!d
            .actions
            .iter()
            .any(|a| matches!(a, Action::Follow { .. } | Action::Promote { .. })));
        // Removing the section promotes the standby leader.
        let d = ha.step(&obs(
            cluster(Some("n1"), false),
            local(DbRole::Standby, Some(("10.9.9.9", 6000))),
        ));
        assert!(
            d.actions
                .iter()
                .any(|a| matches!(a, Action::Promote { .. })),
            "{d:?}"
        );
        assert!(!ha.is_standby_cluster());
    }

    #[test]
    fn a_primary_in_a_standby_cluster_is_demoted() {
        let mut ha = Ha::new(Node::new("n1"));
        let d = ha.step(&obs(
            cluster(Some("n1"), true),
            local(DbRole::Primary, None),
        ));
        assert!(
            d.actions.iter().any(|a| matches!(a, Action::Demote(_))),
            "{d:?}"
        );
    }

    #[test]
    fn the_race_winner_becomes_a_standby_leader_without_sync() {
        let mut ha = Ha::new(Node::new("n1"));
        let d = ha.step(&obs(
            cluster(None, true),
            local(DbRole::Standby, Some(("old", 5432))),
        ));
        // The receiver streams from a server nobody names: probe-free refusal is the safe side.
        assert!(
            !d.actions.iter().any(|a| matches!(a, Action::AcquireLeader))
                || d.actions.iter().any(follows_remote)
        );
        let d = ha.step(&obs(
            cluster(None, true),
            local(DbRole::Standby, Some(("10.9.9.9", 6000))),
        ));
        assert_eq!(
            d.reason.to_string(),
            "promoted self to a standby leader by acquiring session lock"
        );
        assert!(d.actions.iter().any(|a| matches!(a, Action::AcquireLeader)));
        assert!(d.actions.iter().any(follows_remote));
        assert!(
            !d.actions
                .iter()
                .any(|a| matches!(a, Action::Promote { .. } | Action::WriteSyncState { .. })),
            "{d:?}"
        );
    }

    #[test]
    fn bootstrap_clones_the_remote_and_a_down_leader_restarts_as_standby() {
        let mut ha = Ha::new(Node::new("n1"));
        let mut c = cluster(None, true);
        c.initialize = None;
        c.members.clear();
        let empty = LocalDb {
            data_dir: DataDirState::Empty,
            ..LocalDb::default()
        };
        let d = ha.step(&obs(c, empty));
        assert_eq!(
            d.reason.to_string(),
            "trying to bootstrap a new standby leader"
        );
        assert!(
            matches!(d.actions.as_slice(), [Action::PublishMember(_), Action::TakeInitialize, Action::CloneFrom { source }] if source.name == REMOTE_MEMBER),
            "{d:?}"
        );

        let mut ha = Ha::new(Node::new("n1"));
        let down = LocalDb {
            process: ProcessState::Stopped,
            ..local(DbRole::Unknown, None)
        };
        let d = ha.step(&obs(cluster(Some("n1"), true), down));
        assert!(d.actions.iter().any(|a| matches!(a, Action::Start(StartRole::Standby { upstream: Some(u) }) if u.name == REMOTE_MEMBER)), "{d:?}");
    }

    #[test]
    fn the_standby_leader_replays_with_the_sections_recovery_settings() {
        let mut ha = Ha::new(Node::new("n1"));
        let mut c = cluster(Some("n1"), true);
        if let Some(v) = c.config.as_mut() {
            v.value.extra.insert(
                "standby_cluster".into(),
                serde_json::json!({"host": "h", "restore_command": "cp /a/%f %p"}),
            );
        }
        ha.step(&obs(c, local(DbRole::Standby, None)));
        let params = &ha.dynamic_config().unwrap().postgresql.parameters;
        assert_eq!(params["restore_command"], "cp /a/%f %p");
    }
}
