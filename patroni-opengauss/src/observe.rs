//! Mapping what gs_ctl, pg_controldata and SQL said into the core's [`LocalDb`] (pure).

use patroni_core::{
    CannotFollow, CannotFollowReason, DataDirState, DbRole, LocalDb, Lsn, ProcessState,
    ReceiverStatus, ReplicationRow, SqlProblem,
};

use crate::query::{HaState, QueryOutput, StreamRow};
use crate::sections::Layout;
use crate::sql_rows::NamedStandby;
use patroni_postgres::controldata::ControlData;

/// Everything one observation gathered; missing pieces stay `None`.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    /// What the data directory holds.
    pub data_dir: DataDirState,
    /// `gs_ctl query`, if it ran and parsed.
    pub query: Option<QueryOutput>,
    /// `pg_controldata`, if it ran and parsed.
    pub control: Option<ControlData>,
    /// `gs_ctl query -L` max LSN while stopped.
    pub offline_lsn: Option<Lsn>,
    /// `(term, replayed lsn)` from SQL.
    pub term_lsn: Option<(u64, Lsn)>,
    /// `pg_current_xlog_location()` on a primary.
    pub current_lsn: Option<Lsn>,
    /// `pg_stat_replication` rows, to name senders.
    pub named: Vec<NamedStandby>,
    /// `(host, member name)` of configured peers, to name senders when SQL did not.
    pub peer_names: Vec<(String, String)>,
    /// The highest term this adapter has used or seen (terms survive restarts in `term_file`).
    pub known_term: u64,
    /// This node was primary earlier: `WAL segment removed` then means its history diverged.
    pub was_primary: bool,
    /// Why the SQL of this observation failed, if it did (see [`crate::sql::SqlError::problem`]).
    pub sql_error: Option<SqlProblem>,
}

/// The core's role for an openGauss `local_role`.
pub fn role_of(local_role: &str) -> DbRole {
    match local_role {
        "Primary" | "Normal" => DbRole::Primary,
        "Standby" | "Cascade Standby" | "Pending" | "Main Standby" => DbRole::Standby,
        _ => DbRole::Unknown,
    }
}

/// Whether the HA state says this standby can never catch up, and why (the server's words kept).
///
/// `Need repair` with `Connecting...`/`Disconnected` is a standby whose primary is down (or a
/// pending instance): it is waiting, not broken.
pub fn cannot_follow(ha: &HaState, was_primary: bool) -> Option<CannotFollow> {
    if role_of(&ha.local_role) != DbRole::Standby || ha.db_state != "Need repair" {
        return None;
    }
    let reason = match ha.detail_information.as_str() {
        "WAL segment removed" if was_primary => CannotFollowReason::Diverged,
        "WAL segment removed" => CannotFollowReason::WalRemoved,
        "System id not matched" => CannotFollowReason::SystemIdMismatch,
        "Timeline not matched" => CannotFollowReason::TimelineMismatch,
        "Version not matched" | "Mode not matched" | "DCF log loss" => CannotFollowReason::Other,
        _ => return None,
    };
    Some(CannotFollow {
        reason,
        detail: format!(
            "{} / {}: {}",
            ha.db_state, ha.detail_information, ha.local_role
        ),
    })
}

fn name_sender(row: &StreamRow, facts: &Facts) -> String {
    let Some(ch) = &row.channel else {
        return String::new();
    };
    facts
        .named
        .iter()
        .find(|n| {
            n.client_addr.as_deref() == Some(ch.remote_host.as_str())
                && n.client_port == Some(ch.remote_port)
        })
        .map(|n| n.application_name.clone())
        .or_else(|| {
            facts
                .peer_names
                .iter()
                .find(|(h, _)| *h == ch.remote_host)
                .map(|(_, n)| n.clone())
        })
        .unwrap_or_else(|| ch.remote_host.clone())
}

/// Builds the observation.
pub fn local_db(facts: &Facts) -> LocalDb {
    let mut db = LocalDb {
        data_dir: facts.data_dir.clone(),
        system_id: facts.control.as_ref().and_then(ControlData::system_id),
        controldata_state: facts
            .control
            .as_ref()
            .and_then(|c| c.state().map(str::to_string)),
        ..LocalDb::default()
    };
    let sql_term = facts.term_lsn.map(|t| t.0).unwrap_or(0);
    let term = sql_term.max(facts.known_term);
    db.timeline = (term > 0).then_some(term);
    let report = match &facts.query {
        Some(QueryOutput::Running(r)) => r,
        Some(QueryOutput::NotRunning { .. }) | None => {
            db.process = match &facts.control {
                Some(c) if !c.cleanly_shut_down() && facts.query.is_some() => ProcessState::Crashed,
                _ => ProcessState::Stopped,
            };
            let control_pos = facts
                .control
                .as_ref()
                .and_then(|c| c.min_recovery_end().max(c.checkpoint_lsn()));
            db.replay_lsn = facts.offline_lsn.max(control_pos);
            return db;
        }
    };
    db.role = role_of(&report.ha.local_role);
    db.process = if report.layout == Layout::StateFile
        || matches!(report.ha.db_state.as_str(), "Starting" | "Building")
    {
        ProcessState::Starting
    } else {
        ProcessState::Running
    };
    db.cannot_follow = cannot_follow(&report.ha, facts.was_primary);
    db.report.sql_error = facts.sql_error.clone();
    let sql_replay = facts.term_lsn.map(|t| t.1).filter(|l| *l != Lsn::ZERO);
    match db.role {
        DbRole::Primary => {
            db.write_lsn = facts
                .current_lsn
                .or_else(|| report.senders.iter().filter_map(|s| s.sender_sent).max())
                .or(sql_replay);
            db.replication = if report.senders.is_empty() {
                facts
                    .named
                    .iter()
                    .map(|n| ReplicationRow {
                        application_name: n.application_name.clone(),
                        state: n.state.as_str().into(),
                        sync_state: n.sync_state.as_str().into(),
                        flush_lsn: n.flush,
                        replay_lsn: n.replay,
                    })
                    .collect()
            } else {
                report
                    .senders
                    .iter()
                    .map(|s| ReplicationRow {
                        application_name: name_sender(s, facts),
                        state: s.state.as_str().into(),
                        sync_state: s.sync_state.as_deref().unwrap_or_default().into(),
                        flush_lsn: s.receiver_flush,
                        replay_lsn: s.receiver_replay,
                    })
                    .collect()
            };
        }
        DbRole::Standby | DbRole::Unknown => {
            if let Some(r) = &report.receiver {
                db.receive_lsn = r.receiver_received.or(r.receiver_flush);
                db.receiver = Some(ReceiverStatus {
                    streaming: matches!(r.state.as_str(), "Normal" | "Catchup" | "Streaming")
                        && r.peer_role == "Primary",
                    upstream_host: r.channel.as_ref().map(|c| c.remote_host.clone()),
                    // The channel names the upstream's HA port, which this adapter always sets to
                    // the client port + 1; the state machine compares client ports (`conn_url`).
                    upstream_port: r
                        .channel
                        .as_ref()
                        .and_then(|c| c.remote_port.checked_sub(1)),
                });
            }
            db.replay_lsn = sql_replay.or(report.receiver.as_ref().and_then(|r| r.receiver_replay));
        }
    }
    db
}
