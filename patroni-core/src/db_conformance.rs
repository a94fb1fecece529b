//! The database conformance suite: the behaviour every [`Database`] adapter must show, written once.
//!
//! An adapter's tests provide a [`DbHarness`]: one local node under test, a leader it can follow
//! and rebuild from, and hooks that bring the local node into a state (running primary, streaming
//! standby, cleanly stopped, crashed, diverged) or give an adapter whose commands hang. Each case
//! takes a fresh harness, calls one hook, then acts through the [`Database`] port only and checks
//! what [`Database::observe`] reports afterwards. PostgreSQL runs the suite on real servers,
//! openGauss on a server scripted from its recorded `gs_ctl` transcripts.
//! Cases panic with a message on the first violated expectation, as test assertions do.

use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;

use crate::{
    CannotFollowReason, DataDirState, Database, DbError, DbRole, Endpoint, LocalDb, Member,
    ProcessState, RebuildMode, StartRole, StopMode,
};

/// What a database adapter provides to be checked: a local node, its leader, and fault hooks.
///
/// Each hook is called at most once, on a fresh harness, and does all the setup its state needs
/// (bootstrapping, cloning, writing) by whatever means the harness has.
#[async_trait]
pub trait DbHarness: Send + Sync {
    /// The adapter under test, bound to the local node.
    fn db(&self) -> &dyn Database;
    /// The member the local node follows and rebuilds from, as the DCS shows it; it runs as
    /// primary once [`make_standby`](Self::make_standby) or [`make_diverged`](Self::make_diverged) returned.
    fn leader(&self) -> Member;
    /// Makes the local node a running primary.
    async fn make_primary(&self);
    /// Makes the local node a running standby that streams from the [`leader`](Self::leader).
    async fn make_standby(&self);
    /// Makes the local node an initialised server that was shut down cleanly.
    async fn make_stopped(&self);
    /// Makes the local node an initialised server whose process died without a shutdown.
    async fn crash(&self);
    /// Makes the local node a running standby of the [`leader`](Self::leader) whose history forked
    /// from the leader's: it was primary and wrote what the leader never received while the leader
    /// was promoted. Returns the leader's timeline (openGauss term).
    async fn make_diverged(&self) -> u64;
    /// An adapter of the same kind whose external commands never answer, with the bound it
    /// gives the command [`Database::reload`] runs.
    async fn hung(&self) -> (Box<dyn Database>, Duration);
    /// Lets `ms` milliseconds pass.
    async fn pause(&self, ms: u64);
}

/// How often the wait loops observe.
const POLL_MS: u64 = 100;

/// Observes until `ok` holds, panicking with the last observation after `secs` seconds' worth of polls.
pub async fn wait_for<H: DbHarness + ?Sized>(
    h: &H,
    what: &str,
    secs: u64,
    ok: impl Fn(&LocalDb) -> bool,
) -> LocalDb {
    let mut polls = secs * 1000 / POLL_MS;
    loop {
        let db = h.db().observe().await;
        if ok(&db) {
            return db;
        }
        if polls == 0 {
            panic!("not {what} after {secs} s: {db:#?}");
        }
        polls -= 1;
        h.pause(POLL_MS).await;
    }
}

/// Polls `fut` until it finishes or `ms` of the harness's time passed; `None` on timeout.
async fn within<H: DbHarness + ?Sized, F: Future + Unpin>(
    h: &H,
    ms: u64,
    fut: &mut F,
) -> Option<F::Output> {
    crate::deadline::before(fut, h.pause(ms)).await
}

/// Whether the observation is a running standby whose receiver streams from `leader`.
fn streams_from(db: &LocalDb, leader: &Member) -> bool {
    let want = Endpoint::from_conn_url(&leader.data.conn_url)
        .unwrap_or_else(|e| panic!("leader conn_url {:?}: {e}", leader.data.conn_url));
    db.process == ProcessState::Running
        && db.role == DbRole::Standby
        && db.receiver.as_ref().is_some_and(|r| {
            r.streaming
                && r.upstream_port == Some(want.port)
                && r.upstream_host.as_deref() == Some(want.host.as_str())
        })
}

fn assert_running_primary(db: &LocalDb, context: &str) {
    assert!(
        db.is_running_primary(),
        "{context}: expected a running primary: {db:#?}"
    );
    assert_eq!(db.data_dir, DataDirState::Initialized, "{context}");
    assert!(
        db.write_lsn.is_some(),
        "{context}: a primary reports where it writes: {db:#?}"
    );
    assert_eq!(
        db.receiver, None,
        "{context}: a primary streams from nobody"
    );
    assert_eq!(db.cannot_follow, None, "{context}");
}

/// A running primary is seen running, writable, initialised, with its identity and positions.
pub async fn observes_a_running_primary<H: DbHarness + ?Sized>(h: &H) {
    h.make_primary().await;
    let db = h.db().observe().await;
    assert_running_primary(&db, "after make_primary");
    assert!(
        db.system_id.as_deref().is_some_and(|s| !s.is_empty()),
        "{db:#?}"
    );
    assert!(db.timeline.is_some_and(|t| t >= 1), "{db:#?}");
    assert_eq!(
        db.report.sql_error, None,
        "a server that answers has no SQL problem"
    );
    assert_eq!(db.wal_position(), db.write_lsn.expect("checked above"));
}

/// A cleanly stopped server is seen stopped (not crashed), its role unknown, its identity still
/// read from disk.
pub async fn observes_a_stopped_server<H: DbHarness + ?Sized>(h: &H) {
    h.make_stopped().await;
    let db = h.db().observe().await;
    assert_eq!(db.process, ProcessState::Stopped, "{db:#?}");
    assert_eq!(db.data_dir, DataDirState::Initialized);
    assert_eq!(db.role, DbRole::Unknown, "no role without a running server");
    assert!(
        db.controldata_state
            .as_deref()
            .is_some_and(|s| s.starts_with("shut down")),
        "the control file says it shut down: {db:#?}"
    );
    assert!(db.system_id.is_some(), "{db:#?}");
    assert_eq!((db.receiver, db.cannot_follow), (None, None));
}

/// A server that died without a shutdown is seen crashed, and starts again as primary after
/// recovering, with the same identity.
pub async fn observes_a_crashed_server_and_restarts_it<H: DbHarness + ?Sized>(h: &H) {
    h.crash().await;
    let crashed = h.db().observe().await;
    assert_eq!(crashed.process, ProcessState::Crashed, "{crashed:#?}");
    assert_eq!(crashed.data_dir, DataDirState::Initialized);
    assert!(
        crashed
            .controldata_state
            .as_deref()
            .is_some_and(|s| !s.starts_with("shut down")),
        "the control file does not say it shut down: {crashed:#?}"
    );
    h.db()
        .start(&StartRole::Primary)
        .await
        .unwrap_or_else(|e| panic!("start after a crash: {e}"));
    let db = h.db().observe().await;
    assert_running_primary(&db, "started after a crash");
    assert_eq!(db.system_id, crashed.system_id);
}

/// A running primary stops cleanly, stopping it again is no error, and it starts again as the
/// same primary on the same timeline.
pub async fn stops_and_starts<H: DbHarness + ?Sized>(h: &H) {
    h.make_primary().await;
    let before = h.db().observe().await;
    assert_running_primary(&before, "after make_primary");
    h.db()
        .stop(StopMode::Fast)
        .await
        .unwrap_or_else(|e| panic!("stop: {e}"));
    let down = h.db().observe().await;
    assert_eq!(down.process, ProcessState::Stopped, "{down:#?}");
    assert!(
        down.controldata_state
            .as_deref()
            .is_some_and(|s| s.starts_with("shut down")),
        "a fast stop is a clean shutdown: {down:#?}"
    );
    h.db()
        .stop(StopMode::Fast)
        .await
        .unwrap_or_else(|e| panic!("stopping a stopped server is not an error: {e}"));
    assert_eq!(h.db().observe().await.process, ProcessState::Stopped);
    h.db()
        .start(&StartRole::Primary)
        .await
        .unwrap_or_else(|e| panic!("start: {e}"));
    let after = h.db().observe().await;
    assert_running_primary(&after, "started again");
    assert_eq!(after.system_id, before.system_id);
    assert_eq!(after.timeline, before.timeline);
}

/// A streaming standby is seen as one, promotes onto the next timeline, and promoting a
/// primary again changes nothing.
pub async fn promotes_a_standby<H: DbHarness + ?Sized>(h: &H) {
    h.make_standby().await;
    let leader = h.leader();
    let standby = h.db().observe().await;
    assert!(
        streams_from(&standby, &leader),
        "streaming from {}: {standby:#?}",
        leader.data.conn_url
    );
    assert_eq!(standby.write_lsn, None, "a standby does not write");
    assert_eq!(standby.cannot_follow, None);
    assert!(standby.replay_lsn.is_some(), "{standby:#?}");
    let timeline = standby
        .timeline
        .expect("a running standby knows its timeline");
    h.db()
        .promote(timeline + 1, false)
        .await
        .unwrap_or_else(|e| panic!("promote: {e}"));
    let promoted = h.db().observe().await;
    assert_running_primary(&promoted, "promoted");
    assert_eq!(promoted.timeline, Some(timeline + 1), "{promoted:#?}");
    assert_eq!(promoted.system_id, standby.system_id);
    h.db()
        .promote(timeline + 1, false)
        .await
        .unwrap_or_else(|e| panic!("promoting a primary is not an error: {e}"));
    let again = h.db().observe().await;
    assert_running_primary(&again, "promoted twice");
    assert_eq!(again.timeline, Some(timeline + 1));
}

/// A stopped standby told to follow the leader starts and streams from it; following the same
/// leader again keeps it streaming.
pub async fn follows_a_leader<H: DbHarness + ?Sized>(h: &H) {
    h.make_standby().await;
    let leader = h.leader();
    h.db()
        .stop(StopMode::Fast)
        .await
        .unwrap_or_else(|e| panic!("stop: {e}"));
    assert_eq!(h.db().observe().await.process, ProcessState::Stopped);
    h.db()
        .follow(&leader)
        .await
        .unwrap_or_else(|e| panic!("follow: {e}"));
    let started = h.db().observe().await;
    assert!(
        started.process.is_alive() && started.role == DbRole::Standby,
        "follow starts a standby: {started:#?}"
    );
    let db = wait_for(h, "streaming from the leader", 30, |db| {
        streams_from(db, &leader)
    })
    .await;
    assert_eq!(db.cannot_follow, None);
    h.db()
        .follow(&leader)
        .await
        .unwrap_or_else(|e| panic!("following the same leader again: {e}"));
    let db = h.db().observe().await;
    assert!(streams_from(&db, &leader), "{db:#?}");
}

/// A standby whose history forked from the leader's says it cannot follow (diverged), and a
/// rebuild from the leader makes it stream on the leader's timeline again.
pub async fn rebuilds_after_divergence<H: DbHarness + ?Sized>(h: &H) {
    let leader_timeline = h.make_diverged().await;
    let leader = h.leader();
    let db = wait_for(h, "reporting cannot_follow", 30, |db| {
        db.cannot_follow.is_some()
    })
    .await;
    let cf = db.cannot_follow.clone().expect("waited for it");
    assert_eq!(cf.reason, CannotFollowReason::Diverged, "{cf:?}");
    assert!(!cf.detail.is_empty(), "the server's words are kept");
    assert!(
        db.process.is_alive() && db.role == DbRole::Standby,
        "a diverged standby keeps running: {db:#?}"
    );
    h.db()
        .rebuild(&leader, RebuildMode::Auto, leader_timeline)
        .await
        .unwrap_or_else(|e| panic!("rebuild: {e}"));
    let db = wait_for(h, "streaming on the leader's timeline", 30, |db| {
        streams_from(db, &leader) && db.timeline == Some(leader_timeline)
    })
    .await;
    assert_eq!(db.cannot_follow, None, "{db:#?}");
    assert_eq!(db.data_dir, DataDirState::Initialized);
}

/// A command that never answers is killed at its bound and reported as a timeout, not waited
/// for and not disguised as another failure.
pub async fn a_hung_command_times_out<H: DbHarness + ?Sized>(h: &H) {
    let (db, bound) = h.hung().await;
    let grace = Duration::from_secs(15);
    let mut call = db.reload();
    let result = within(h, crate::instant::millis(bound + grace), &mut call)
        .await
        .unwrap_or_else(|| panic!("reload still waiting {grace:?} past its {bound:?} bound"));
    match result {
        Err(DbError::Timeout { command, limit }) => {
            assert_eq!(limit, bound, "the bound the command was given: {command}");
            assert!(!command.is_empty());
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
}
