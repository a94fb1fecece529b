//! The member key: what this node tells the cluster about itself, written only when it changed.

use super::{Cycle, Ha};
use crate::action::ActionKind;
use crate::{
    Action, DataDirState, DbRole, LocalDb, MemberData, MemberRole, MemberState, Node, ProcessState,
};

/// Builds the member key value from the node's identity and what the adapter saw.
pub(super) fn member_data(
    node: &Node,
    local: &LocalDb,
    task: Option<ActionKind>,
    paused: bool,
    start_failed: bool,
    extra: &serde_json::Map<String, serde_json::Value>,
) -> MemberData {
    let state = match task {
        Some(ActionKind::Bootstrap) => MemberState::Initializing,
        Some(ActionKind::CloneFrom) => MemberState::CreatingReplica,
        Some(ActionKind::Rebuild) => MemberState::Rebuilding,
        Some(ActionKind::Start | ActionKind::Restart) if local.process != ProcessState::Running => {
            MemberState::Starting
        }
        _ if start_failed && !local.process.is_alive() => MemberState::StartFailed,
        _ => match local.process {
            ProcessState::Running => MemberState::Running,
            ProcessState::Starting => MemberState::Starting,
            ProcessState::Stopped => MemberState::Stopped,
            ProcessState::Crashed => MemberState::Crashed,
        },
    };
    let role = match (local.role, &local.data_dir) {
        (DbRole::Primary, _) => MemberRole::Primary,
        (DbRole::Standby, _) => MemberRole::Replica,
        (DbRole::Unknown, DataDirState::Empty) => MemberRole::Uninitialized,
        (DbRole::Unknown, _) => MemberRole::Unknown,
    };
    let standby = local.role == DbRole::Standby;
    let xlog = if standby {
        local.receive_lsn.max(local.replay_lsn)
    } else {
        local.write_lsn
    };
    MemberData {
        conn_url: node.conn_url.clone(),
        api_url: node.api_url.clone(),
        state,
        role,
        version: local.version.clone(),
        xlog_location: xlog,
        receive_lsn: if standby { local.receive_lsn } else { None },
        replay_lsn: if standby { local.replay_lsn } else { None },
        replication_state: local
            .receiver
            .as_ref()
            .filter(|r| standby && r.streaming)
            .map(|_| "streaming".to_string()),
        timeline: local.timeline,
        tags: node.tags.clone(),
        pending_restart: local.pending_restart,
        pause: paused,
        extra: with_sql_error(extra, local),
    }
}

/// The agent's extra fields plus `sql_error` while the running server refuses our SQL, so
/// `patronictl` users and other tools reading the member key see why it looks stuck.
fn with_sql_error(
    extra: &serde_json::Map<String, serde_json::Value>,
    local: &LocalDb,
) -> serde_json::Map<String, serde_json::Value> {
    let mut extra = extra.clone();
    if let Some(problem) = &local.report.sql_error {
        extra.insert("sql_error".into(), problem.to_string().into());
    }
    extra
}

impl Ha {
    /// `PublishMember` when our key changed since the last confirmed write or is missing from the view.
    pub(super) fn publish(&mut self, cy: &Cycle<'_>) -> Option<Action> {
        let mut data = member_data(
            cy.node,
            &cy.obs.local,
            cy.obs.task.map(|t| t.kind),
            cy.paused,
            self.mem.start_failures.0 > 0,
            &cy.obs.member_extra,
        );
        if cy.standby && cy.hold && data.role == MemberRole::Replica {
            data.role = MemberRole::StandbyLeader;
        }
        let missing = cy.cluster.member(cy.me()).is_none();
        if !missing && self.mem.published.as_ref() == Some(&data) {
            return None;
        }
        self.mem.publishing = Some(data.clone());
        Some(Action::PublishMember(data))
    }

    /// Whether this cycle must not write at all (a foreign data directory must not pose as a member).
    pub(super) fn suppress_publish(&self, cy: &Cycle<'_>) -> bool {
        super::bootstrap::system_id_mismatch(cy).is_some()
    }
}
