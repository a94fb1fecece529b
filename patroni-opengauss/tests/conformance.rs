//! The `Database` conformance suite from patroni-core, against openGauss as its recorded
//! transcripts show it: no openGauss binaries can run here, so a scripted server keeps the
//! state a real one would be in (stopped, primary, streaming standby, diverged, with its term)
//! and answers every gs_ctl, gs_guc and pg_controldata call with the fixture transcript of that
//! outcome, and the adapter's SQL with the fixture rows.
//!
//! The local node is dn_6002 (10.10.0.12), the standby of the streaming transcripts; its leader
//! is dn_6001 (10.10.0.11), the primary those transcripts stream from.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use common::{guc_set_output, load, member, Fixture};
use patroni_core::db_conformance::{self, DbHarness};
use patroni_core::{Database, Member};
use patroni_opengauss::sql_rows::{
    SqlRows, SqlSource, SQL_CURRENT_LSN, SQL_REPLICATION, SQL_TERM_LSN,
};
use patroni_opengauss::{OpenGauss, Peer};
use patroni_postgres::command::{CommandError, CommandOutput, CommandRunner, CommandSpec};

/// The term the transcripts' cluster is on (`sql_last_xlog_replay_location_standby.tsv`).
const TERM: u64 = 3;

/// What the scripted server runs as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Proc {
    Stopped,
    Primary,
    Standby,
    Pending,
}

#[derive(Debug)]
struct State {
    proc: Proc,
    /// `Database cluster state` of the control file while stopped.
    stopped_as: &'static str,
    /// The history forked from the leader's: a standby then reports it cannot follow.
    forked: bool,
    term: u64,
    hang: bool,
    calls: Vec<String>,
    unscripted: Vec<String>,
}

/// One openGauss node as its transcripts show it: each command is answered with the recorded
/// output of what it does in the current state, and changes the state as the real program does.
struct TranscriptServer {
    state: Mutex<State>,
}

fn output(f: Fixture) -> CommandOutput {
    CommandOutput {
        code: f.exit_code,
        stdout: f.text,
        stderr: String::new(),
    }
}

fn transcript(name: &str) -> CommandOutput {
    output(load(name))
}

/// The value after `flag` in a command's arguments.
fn arg<'a>(args: &'a [String], flag: &str) -> Option<&'a str> {
    let i = args.iter().position(|a| a == flag)?;
    args.get(i + 1).map(String::as_str)
}

impl TranscriptServer {
    fn new(proc: Proc) -> Arc<Self> {
        Arc::new(TranscriptServer {
            state: Mutex::new(State {
                proc,
                stopped_as: "shut down",
                forked: false,
                term: TERM,
                hang: false,
                calls: Vec::new(),
                unscripted: Vec::new(),
            }),
        })
    }

    fn set(&self, edit: impl FnOnce(&mut State)) {
        edit(&mut self.state.lock().unwrap());
    }

    fn calls(&self) -> Vec<String> {
        self.state.lock().unwrap().calls.clone()
    }

    /// Panics if the adapter issued a command or query no transcript answers.
    fn assert_all_scripted(&self) {
        let s = self.state.lock().unwrap();
        assert!(
            s.unscripted.is_empty(),
            "unscripted: {:#?}\nall calls: {:#?}",
            s.unscripted,
            s.calls
        );
    }

    fn answer(s: &mut State, spec: &CommandSpec) -> Option<CommandOutput> {
        let program = spec.program.file_name()?.to_str()?;
        let args = &spec.args;
        let running = s.proc != Proc::Stopped;
        let out = match (program, args.first()?.as_str()) {
            ("pg_controldata", _) => {
                let state = match s.proc {
                    Proc::Stopped => s.stopped_as,
                    Proc::Primary => "in production",
                    Proc::Standby | Proc::Pending => "in archive recovery",
                };
                let mut f = load("pg_controldata_standby_shutdown_in_recovery.txt");
                f.text = f.text.replace("shut down in recovery", state);
                output(f)
            }
            ("gs_guc", "set") => CommandOutput {
                code: Some(0),
                stdout: guc_set_output(),
                stderr: String::new(),
            },
            ("gs_guc", "reload") if running => transcript("gs_guc_reload_success.txt"),
            ("gs_ctl", "query") if args.iter().any(|a| a == "-L") && !running => {
                transcript("gs_ctl_query_L_offline_max_lsn.txt")
            }
            ("gs_ctl", "query") => transcript(match s.proc {
                Proc::Stopped => "gs_ctl_query_server_not_running.txt",
                Proc::Primary => "gs_ctl_query_primary_no_standby_connected.txt",
                Proc::Standby if s.forked => "gs_ctl_query_old_primary_rejoined_diverged.txt",
                Proc::Standby => "gs_ctl_query_standby_streaming_normal.txt",
                Proc::Pending => "gs_ctl_query_pending.txt",
            }),
            ("gs_ctl", "start") if running => transcript("gs_ctl_start_already_running.txt"),
            ("gs_ctl", "start" | "restart") => {
                s.proc = match arg(args, "-M")? {
                    "primary" => Proc::Primary,
                    "standby" => Proc::Standby,
                    "pending" => Proc::Pending,
                    _ => return None,
                };
                // No restart transcript was recorded; its output ends as a start's does.
                transcript("gs_ctl_start_standby_success.txt")
            }
            ("gs_ctl", "stop") if running => {
                s.stopped_as = match s.proc {
                    Proc::Primary => "shut down",
                    _ => "shut down in recovery",
                };
                s.proc = Proc::Stopped;
                transcript("gs_ctl_stop_success.txt")
            }
            ("gs_ctl", "stop") => transcript("gs_ctl_stop_not_running.txt"),
            ("gs_ctl", "failover") if s.proc == Proc::Primary => {
                transcript("gs_ctl_failover_already_primary.txt")
            }
            ("gs_ctl", verb @ ("failover" | "switchover")) if running => {
                s.term = arg(args, "-T")?.parse().ok()?;
                s.proc = Proc::Primary;
                transcript(&format!("gs_ctl_{verb}_success.txt"))
            }
            ("gs_ctl", "build") if s.proc == Proc::Primary => {
                transcript("gs_ctl_build_refused_local_is_primary.txt")
            }
            ("gs_ctl", "build") => {
                let name = match arg(args, "-b")? {
                    "auto" => "gs_ctl_build_auto_incremental_success.txt",
                    "full" => "gs_ctl_build_full_success.txt",
                    _ => return None,
                };
                s.term = arg(args, "-T")?.parse().ok()?;
                s.proc = Proc::Standby;
                s.forked = false;
                transcript(name)
            }
            ("gs_ctl", "reload") if running => transcript("gs_ctl_reload_success.txt"),
            _ => return None,
        };
        Some(out)
    }
}

#[async_trait]
impl CommandRunner for TranscriptServer {
    async fn run(&self, spec: &CommandSpec) -> Result<CommandOutput, CommandError> {
        let mut s = self.state.lock().unwrap();
        let line = spec.command_line();
        s.calls.push(line.clone());
        if s.hang {
            // What the runner reports once it killed a command at its deadline.
            return Err(CommandError::Timeout {
                command: line,
                limit: spec.timeout,
            });
        }
        match Self::answer(&mut s, spec) {
            Some(out) => Ok(out),
            None => {
                s.unscripted.push(line);
                Ok(CommandOutput {
                    code: Some(127),
                    stdout: "not scripted".into(),
                    stderr: String::new(),
                })
            }
        }
    }
}

#[async_trait]
impl SqlSource for TranscriptServer {
    async fn query(&self, sql: &str) -> Result<SqlRows, patroni_postgres::sql::SqlError> {
        let mut s = self.state.lock().unwrap();
        s.calls.push(sql.to_string());
        if s.proc == Proc::Stopped {
            return Err(patroni_postgres::sql::SqlError::Unreachable(
                "connection refused".into(),
            ));
        }
        let tsv = match sql {
            SQL_TERM_LSN => load("sql_last_xlog_replay_location_standby.tsv")
                .text
                .replace(&format!("\n{TERM}\t"), &format!("\n{}\t", s.term)),
            // No rows were recorded for this one; the position is the transcripts' latest.
            SQL_CURRENT_LSN if s.proc == Proc::Primary => "location\n0/5F3A2B0\n".into(),
            // The transcripts' primary has no standby connected: the header alone.
            SQL_REPLICATION if s.proc == Proc::Primary => {
                load("sql_pg_stat_replication_primary.tsv")
                    .text
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .to_string()
            }
            _ => {
                s.unscripted.push(sql.to_string());
                return Err(patroni_postgres::sql::SqlError::Other(format!(
                    "not scripted: {sql}"
                )));
            }
        };
        Ok(SqlRows::from_tsv(&tsv))
    }
}

/// dn_6002 over a [`TranscriptServer`], with dn_6001 as its leader.
struct OgHarness {
    dir: tempfile::TempDir,
    server: Arc<TranscriptServer>,
    db: OpenGauss,
}

impl OgHarness {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        common::init_data_dir(dir.path());
        let server = TranscriptServer::new(Proc::Stopped);
        let db = Self::adapter(dir.path(), &server);
        OgHarness { dir, server, db }
    }

    fn adapter(root: &std::path::Path, server: &Arc<TranscriptServer>) -> OpenGauss {
        let mut cfg = common::config(root);
        cfg.name = "dn_6002".into();
        cfg.listen = "10.10.0.12:5432".into();
        cfg.connect_address = "10.10.0.12:5432".into();
        cfg.opengauss.peers = [("dn_6001", "10.10.0.11"), ("dn_6003", "10.10.0.13")]
            .into_iter()
            .map(|(name, host)| Peer {
                name: name.into(),
                host: host.into(),
                port: 5432,
            })
            .collect();
        OpenGauss::new(cfg, server.clone(), server.clone()).expect("adapter")
    }

    /// The commands issued so far that contain `word`, data directory and all.
    fn issued(&self, word: &str) -> Vec<String> {
        self.server
            .calls()
            .into_iter()
            .filter(|c| c.contains(word))
            .collect()
    }
}

#[async_trait]
impl DbHarness for OgHarness {
    fn db(&self) -> &dyn Database {
        &self.db
    }

    fn leader(&self) -> Member {
        member("dn_6001", "10.10.0.11")
    }

    async fn make_primary(&self) {
        self.server.set(|s| s.proc = Proc::Primary);
    }

    async fn make_standby(&self) {
        self.server.set(|s| s.proc = Proc::Standby);
    }

    async fn make_stopped(&self) {
        self.server.set(|s| {
            s.proc = Proc::Stopped;
            s.stopped_as = "shut down";
        });
    }

    /// A primary killed without a shutdown leaves its control file `in production`.
    async fn crash(&self) {
        self.server.set(|s| {
            s.proc = Proc::Stopped;
            s.stopped_as = "in production";
        });
    }

    /// The local node ran as primary (and the adapter saw it so), dn_6001 was failed over to
    /// with the next term while it kept writing, then the local node is pointed at dn_6001.
    async fn make_diverged(&self) -> u64 {
        self.server.set(|s| s.proc = Proc::Primary);
        assert!(self.db.observe().await.is_running_primary());
        self.server.set(|s| s.forked = true);
        self.db
            .follow(&self.leader())
            .await
            .expect("follow restarts it as standby");
        TERM + 1
    }

    /// A second adapter over a server whose every command runs into its deadline; the bound is
    /// the one the adapter gives `gs_ctl reload`.
    async fn hung(&self) -> (Box<dyn Database>, Duration) {
        let server = TranscriptServer::new(Proc::Primary);
        server.set(|s| s.hang = true);
        let db = Self::adapter(self.dir.path(), &server);
        let bound = db.commands().reload().timeout;
        (Box::new(db), bound)
    }

    async fn pause(&self, ms: u64) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
}

#[tokio::test]
async fn observes_a_running_primary() {
    let h = OgHarness::new();
    db_conformance::observes_a_running_primary(&h).await;
    h.server.assert_all_scripted();
}

#[tokio::test]
async fn observes_a_stopped_server() {
    let h = OgHarness::new();
    db_conformance::observes_a_stopped_server(&h).await;
    h.server.assert_all_scripted();
}

#[tokio::test]
async fn observes_a_crashed_server_and_restarts_it() {
    let h = OgHarness::new();
    db_conformance::observes_a_crashed_server_and_restarts_it(&h).await;
    h.server.assert_all_scripted();
    assert_eq!(h.issued(" start ").len(), 1, "{:#?}", h.server.calls());
    assert!(h.issued(" start ")[0].contains(" -M primary "));
}

#[tokio::test]
async fn stops_and_starts() {
    let h = OgHarness::new();
    db_conformance::stops_and_starts(&h).await;
    h.server.assert_all_scripted();
    assert_eq!(h.issued(" stop ").len(), 2, "{:#?}", h.server.calls());
}

#[tokio::test]
async fn promotes_a_standby() {
    let h = OgHarness::new();
    db_conformance::promotes_a_standby(&h).await;
    h.server.assert_all_scripted();
    // An unplanned promotion is a failover fenced with the new term, issued once.
    let failovers = h.issued(" failover ");
    assert_eq!(failovers.len(), 1, "{:#?}", h.server.calls());
    assert!(failovers[0].contains(&format!(" -T {} ", TERM + 1)));
}

#[tokio::test]
async fn follows_a_leader() {
    let h = OgHarness::new();
    db_conformance::follows_a_leader(&h).await;
    h.server.assert_all_scripted();
    let starts = h.issued(" start ");
    assert_eq!(starts.len(), 1, "{:#?}", h.server.calls());
    assert!(starts[0].contains(" -M standby "));
}

#[tokio::test]
async fn rebuilds_after_divergence() {
    let h = OgHarness::new();
    db_conformance::rebuilds_after_divergence(&h).await;
    h.server.assert_all_scripted();
    let builds = h.issued(" build ");
    assert_eq!(builds.len(), 1, "{:#?}", h.server.calls());
    assert!(builds[0].contains(&format!(" -b auto -T {} ", TERM + 1)));
    assert_eq!(h.db.known_term(), TERM + 1);
}

#[tokio::test]
async fn a_hung_command_times_out() {
    db_conformance::a_hung_command_times_out(&OgHarness::new()).await;
}
