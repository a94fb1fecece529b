//! The local database as the adapter observed it at the start of a cycle.

use crate::{Lsn, Timestamp};

/// Whether the database process runs, as the adapter saw it (process table, not only a connection).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ProcessState {
    /// The postmaster is alive and accepts connections.
    Running,
    /// The postmaster is alive but not yet accepting connections (recovery, startup).
    Starting,
    /// No postmaster, and the control file says the last shutdown was clean.
    #[default]
    Stopped,
    /// No postmaster, and the control file says it did not shut down cleanly.
    Crashed,
}

impl ProcessState {
    /// Whether a server process exists, ready or not.
    pub fn is_alive(self) -> bool {
        matches!(self, ProcessState::Running | ProcessState::Starting)
    }
}

/// What the data directory holds.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum DataDirState {
    /// Missing or empty: this node must bootstrap or clone.
    #[default]
    Empty,
    /// An initialised cluster.
    Initialized,
    /// Present but unreadable (permissions, corruption), with the reason.
    Unreadable(String),
}

/// The role the running server plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum DbRole {
    /// Writable primary.
    Primary,
    /// Read-only standby (PostgreSQL in recovery; openGauss Standby, Pending or Cascade Standby).
    Standby,
    /// Not known (not running, or the query failed).
    #[default]
    Unknown,
}

/// Why a running standby will never catch up with its leader and must be rebuilt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CannotFollowReason {
    /// Its history forked from the leader's (it wrote WAL the leader never had, or is on an abandoned timeline).
    Diverged,
    /// The WAL it needs has been removed from the leader.
    WalRemoved,
    /// It is behind a timeline (or term) switch it cannot cross.
    TimelineMismatch,
    /// It belongs to another cluster (system identifier differs).
    SystemIdMismatch,
    /// The adapter reported some other unrecoverable replication error.
    Other,
}

/// The "cannot follow the leader" signal with its reason, which triggers a rebuild.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CannotFollow {
    /// The classified reason.
    pub reason: CannotFollowReason,
    /// The server's own words (log line, `detail_information`), for the operator.
    pub detail: String,
}

/// Declares a wire-text enum: known values as variants, anything else kept as `Other`, read
/// case-insensitively and written lower-case, so the REST documents say what the server said.
macro_rules! wire_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        #[serde(from = "String", into = "String")]
        pub enum $name {
            $($(#[$vmeta])* $variant,)*
            /// A value this version does not know, lower-cased.
            Other(String),
        }

        impl $name {
            /// The text the server (and Patroni's REST API) uses for it.
            pub fn as_str(&self) -> &str {
                match self {
                    $($name::$variant => $text,)*
                    $name::Other(s) => s,
                }
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                let lower = s.to_ascii_lowercase();
                match lower.as_str() {
                    $($text => $name::$variant,)*
                    _ => $name::Other(lower),
                }
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                $name::from(s.as_str())
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.as_str().to_string()
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.as_str().eq_ignore_ascii_case(other)
            }
        }
    };
}

wire_enum! {
    /// A WAL sender's state (`pg_stat_replication.state`, openGauss sender state).
    SenderState {
        /// Connecting.
        Startup = "startup",
        /// Catching up with the primary: not yet a candidate for synchronous replication.
        Catchup = "catchup",
        /// Streaming WAL as it is written.
        Streaming = "streaming",
        /// Sending a base backup.
        Backup = "backup",
        /// Shutting down.
        Stopping = "stopping",
    }
}

wire_enum! {
    /// Whether the primary waits for a standby's commits (`pg_stat_replication.sync_state`).
    StandbySync {
        /// Not waited for.
        Async = "async",
        /// Waited for (`FIRST n`).
        Sync = "sync",
        /// Would be waited for if a synchronous one dropped out.
        Potential = "potential",
        /// A voter of `ANY n`.
        Quorum = "quorum",
    }
}

impl StandbySync {
    /// Whether the database waits for this standby now (`sync`, or a `quorum` voter).
    pub fn waited_for(&self) -> bool {
        matches!(self, StandbySync::Sync | StandbySync::Quorum)
    }

    /// Whether it is named in `synchronous_standby_names` at all (also `potential`).
    pub fn listed(&self) -> bool {
        self.waited_for() || *self == StandbySync::Potential
    }
}

/// One standby connection seen from the primary (`pg_stat_replication`, openGauss senders).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicationRow {
    /// The standby's `application_name`, which is its member name.
    pub application_name: String,
    /// Where the WAL sender is (`streaming`, `catchup`, ...).
    pub state: SenderState,
    /// Whether the database waits for it (`sync`, `async`, `potential`, `quorum`).
    pub sync_state: StandbySync,
    /// What the standby has flushed, which synchronous commit waits for.
    pub flush_lsn: Option<Lsn>,
    /// What the standby has replayed.
    pub replay_lsn: Option<Lsn>,
}

/// The standby's WAL receiver (`pg_stat_wal_receiver`, openGauss receiver info).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiverStatus {
    /// Whether the receiver is connected and streaming.
    pub streaming: bool,
    /// The host it streams from, if known.
    pub upstream_host: Option<String>,
    /// The port it streams from, if known.
    pub upstream_port: Option<u16>,
}

/// The local database at the start of a cycle.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LocalDb {
    /// Whether the server process runs.
    pub process: ProcessState,
    /// What the data directory holds.
    pub data_dir: DataDirState,
    /// The role the running server plays.
    pub role: DbRole,
    /// `pg_controldata` "Database system identifier", once initialised.
    pub system_id: Option<String>,
    /// PostgreSQL timeline or openGauss term: the generation of the history this node is on.
    pub timeline: Option<u64>,
    /// Primary: current write position.
    pub write_lsn: Option<Lsn>,
    /// Standby: last position received from upstream.
    pub receive_lsn: Option<Lsn>,
    /// Standby: last position replayed.
    pub replay_lsn: Option<Lsn>,
    /// Primary: connected standbys.
    pub replication: Vec<ReplicationRow>,
    /// Standby: the WAL receiver, if one runs.
    pub receiver: Option<ReceiverStatus>,
    /// Set when a standby runs but can never catch up with its leader.
    pub cannot_follow: Option<CannotFollow>,
    /// The control file's "Database cluster state" line, when read (tells crashed from shut down).
    pub controldata_state: Option<String>,
    /// Server version string.
    pub version: Option<String>,
    /// A restart is needed for changed parameters to apply.
    pub pending_restart: bool,
    /// What operators and monitoring read about the server; never an input to a decision.
    pub report: StatusReport,
}

/// Facts the REST API and metrics report as Patroni does, kept apart from what decisions read.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StatusReport {
    /// When the postmaster started (`pg_postmaster_start_time()`), for `/patroni` and metrics.
    pub postmaster_start_time: Option<Timestamp>,
    /// Standby: commit time of the last replayed transaction (`pg_last_xact_replay_timestamp()`).
    pub replayed_timestamp: Option<Timestamp>,
    /// Standby: replay is paused (`pg_is_wal_replay_paused()`).
    pub replay_paused: bool,
    /// Standby: a `restore_command` is set, so WAL can come from the archive when not streaming.
    pub restore_command: bool,
    /// Primary: each WAL sender as `pg_stat_replication` describes it, in Patroni's field names.
    pub replication: Vec<WalSender>,
    /// While a copy (clone or rebuild) runs: how far it has got.
    pub copy: Option<CopyProgress>,
    /// Why the running server answered none of our SQL; `None` when it answered or is only
    /// starting up. It changes the words of a decision, never its actions.
    pub sql_error: Option<SqlProblem>,
}

/// Why a running server answered none of the agent's SQL, so an operator reads the cause (a
/// wrong password, say) instead of a server that seems to be starting up for ever.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SqlProblem {
    /// The server refused our credentials (wrong password, no `pg_hba.conf` entry): its words.
    Auth(String),
    /// Nothing accepted the connection (connection refused, no socket file): the client's words.
    Refused(String),
    /// Connecting or querying did not finish in time: what did not.
    Timeout(String),
    /// Any other failure, in the server's or the client's words.
    Other(String),
}

impl std::fmt::Display for SqlProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SqlProblem::Auth(m) => write!(f, "refuses our connection: {m}"),
            SqlProblem::Refused(m) => write!(f, "cannot be connected to: {m}"),
            SqlProblem::Timeout(m) => write!(f, "does not answer in time: {m}"),
            SqlProblem::Other(m) => write!(f, "fails our queries: {m}"),
        }
    }
}

/// How far a running base backup (clone, rebuild, `reinit`) has got, so an operator watching a
/// long copy sees it move instead of a bare "creating replica".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CopyProgress {
    /// Bytes in the target directory so far.
    pub bytes: u64,
    /// Average rate since the copy started, bytes per second.
    pub bytes_per_second: u64,
    /// Seconds since the copy started.
    pub seconds: u64,
}

/// One WAL sender as Patroni's `/patroni` lists it under `replication`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WalSender {
    /// The role the standby connected as (`usename`).
    pub usename: Option<String>,
    /// The standby's `application_name`.
    pub application_name: String,
    /// The standby's address (`client_addr`); `None` over a Unix socket.
    pub client_addr: Option<String>,
    /// `streaming`, `catchup`, ... as the server spells it.
    pub state: String,
    /// `sync`, `async`, `potential`, `quorum`, as the server spells it.
    pub sync_state: String,
    /// Its priority for synchronous replication (`sync_priority`).
    pub sync_priority: Option<i64>,
}

impl LocalDb {
    /// The furthest WAL position this node has, the figure candidates are compared by.
    pub fn wal_position(&self) -> Lsn {
        [self.write_lsn, self.receive_lsn, self.replay_lsn]
            .into_iter()
            .flatten()
            .max()
            .unwrap_or(Lsn::ZERO)
    }

    /// Whether the server runs and is writable.
    pub fn is_running_primary(&self) -> bool {
        self.process == ProcessState::Running && self.role == DbRole::Primary
    }

    /// Standbys the database itself treats as synchronous right now (sync or quorum rows).
    pub fn sync_standbys(&self) -> impl Iterator<Item = &str> {
        self.replication
            .iter()
            .filter(|r| r.sync_state.waited_for())
            .map(|r| r.application_name.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::{SenderState, StandbySync};

    #[test]
    fn replication_states_keep_the_servers_words() {
        assert_eq!(SenderState::from("STREAMING"), SenderState::Streaming);
        assert_eq!(StandbySync::from("Quorum"), StandbySync::Quorum);
        let odd = SenderState::from("Wal_Catchup");
        assert_eq!(odd, SenderState::Other("wal_catchup".into()));
        assert_eq!(odd.to_string(), "wal_catchup");
        let json = serde_json::to_string(&[StandbySync::Potential, StandbySync::Async]).unwrap();
        assert_eq!(json, r#"["potential","async"]"#);
        let back: Vec<StandbySync> = serde_json::from_str(r#"["sync","SYNC","other"]"#).unwrap();
        assert_eq!(
            back,
            [
                StandbySync::Sync,
                StandbySync::Sync,
                StandbySync::Other("other".into())
            ]
        );
        assert!(StandbySync::Quorum.waited_for() && !StandbySync::Potential.waited_for());
        assert!(StandbySync::Potential.listed() && !StandbySync::Async.listed());
    }
}
