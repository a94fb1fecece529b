//! Patroni's callbacks, `pre_promote` and `before_stop` on a real cluster: which script runs when,
//! in which order, with which arguments.
//!
//! Every script appends one line to a shared file: `<node> <action> <role> <scope>` for the
//! callbacks, `<node> before_stop running|stopped` and `<node> pre_promote`. The expected
//! sequences are Patroni's (`postgresql/__init__.py`, `ha.py`):
//!
//! * start: `on_start` with the role started in (`primary` after bootstrap, `replica` after a copy);
//! * switchover, old leader: `before_stop` (database still running), `on_stop primary`, then
//!   `on_role_change replica` once it runs as a standby; a later `on_reload replica` when it is
//!   pointed at the new leader (Patroni does that in the same step only when the new leader has
//!   the lock within its 2 s wait, so the test accepts both);
//! * switchover or failover, new leader: `pre_promote`, then `on_role_change primary`;
//! * the standby that only changes upstream: `on_reload replica` (PostgreSQL 13+ reloads
//!   `primary_conninfo`);
//! * a node that lost its agent and database and comes back: `on_start replica` (a fresh agent has
//!   reported nothing yet, so it is a start, not a role change);
//! * `pre_promote` exiting non-zero: no promotion, the lock given back, and no race for `ttl`.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{Options, TestCluster, TTL_MS};
use patroni_postgres::testkit::owned_temp_dir;
use serde_json::json;

/// The scripts and the file they write, in a directory the agents' OS user owns.
struct Scripts {
    dir: tempfile::TempDir,
}

impl Scripts {
    fn new() -> Scripts {
        let dir = owned_temp_dir("patroni-e2e-callbacks-");
        let s = Scripts { dir };
        let log = s.log();
        s.write(
            "cb.sh",
            &format!("node=$1; shift\necho \"$node $*\" >> {}", log.display()),
        );
        s.write(
            "before_stop.sh",
            &format!(
                "if [ -f \"$2/postmaster.pid\" ]; then s=running; else s=stopped; fi\necho \"$1 before_stop $s\" >> {}",
                log.display()
            ),
        );
        s.write(
            "pre_promote.sh",
            &format!(
                "echo \"$1 pre_promote\" >> {log}\nif [ -e {dir}/refuse-$1 ]; then exit 1; fi\nexit 0",
                log = log.display(),
                dir = s.dir.path().display()
            ),
        );
        s
    }

    fn write(&self, name: &str, body: &str) {
        let path = self.dir.path().join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        let mut p = std::fs::metadata(&path).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut p, 0o755);
        std::fs::set_permissions(&path, p).unwrap();
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("callbacks.log")
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    /// Makes `node`'s `pre_promote` fail (or succeed again).
    fn refuse(&self, node: &str, refuse: bool) {
        let flag = self.dir.path().join(format!("refuse-{node}"));
        if refuse {
            std::fs::write(flag, "").unwrap();
        } else {
            let _ = std::fs::remove_file(flag);
        }
    }

    /// The `postgresql` lines that configure every script for a node.
    fn config(&self) -> String {
        let cb = self.path("cb.sh");
        let mut out = String::from("  callbacks:\n");
        for key in [
            "on_start",
            "on_stop",
            "on_restart",
            "on_reload",
            "on_role_change",
        ] {
            out.push_str(&format!("    {key}: {cb} {{name}}\n"));
        }
        out.push_str(&format!(
            "  before_stop: {} {{name}} {{dir}}/data\n",
            self.path("before_stop.sh")
        ));
        out.push_str(&format!(
            "  pre_promote: {} {{name}}\n",
            self.path("pre_promote.sh")
        ));
        out
    }

    /// The lines `node`'s scripts wrote, in order, without the node's name.
    fn lines(&self, node: &str) -> Vec<String> {
        read_lines(&self.log(), node)
    }
}

fn read_lines(log: &Path, node: &str) -> Vec<String> {
    let prefix = format!("{node} ");
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.strip_prefix(&prefix).map(str::to_string))
        .collect()
}

async fn cluster(tag: &str, scripts: &Scripts) -> TestCluster {
    TestCluster::start_opts(
        tag,
        Options {
            extra_postgresql: scripts.config(),
            ..Options::default()
        },
    )
    .await
}

/// Waits until `node` wrote at least `n` lines after the first `from`; returns those lines.
async fn wait_lines(
    c: &TestCluster,
    s: &Scripts,
    node: &str,
    from: usize,
    n: usize,
) -> Vec<String> {
    c.wait(
        &format!("{n} script lines from {node}"),
        Duration::from_secs(60),
        || async {
            let lines = s.lines(node);
            (lines.len() >= from + n).then(|| lines[from..].to_vec())
        },
    )
    .await
}

/// Asserts `got` starts with `want` and the rest are only `tail_ok` lines.
fn assert_sequence(node: &str, got: &[String], want: &[String], tail_ok: &[String]) {
    assert!(
        got.len() >= want.len() && got[..want.len()] == *want,
        "{node}: expected {want:?} first, got {got:?}"
    );
    for extra in &got[want.len()..] {
        assert!(
            tail_ok.contains(extra),
            "{node}: unexpected {extra:?} after {want:?} (all: {got:?})"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callbacks_around_start_switchover_and_failover() {
    let s = Scripts::new();
    let mut c = cluster("callbacks", &s).await;
    let scope = c.scope.clone();
    let line = |action: &str, role: &str| format!("{action} {role} {scope}");
    let reload = vec![line("on_reload", "replica")];
    let leader = c.primary().await.expect("a primary");
    let names: Vec<String> = c.nodes.iter().map(|n| n.name.clone()).collect();

    // Start: the bootstrapping node reports a primary start, the copies a replica start.
    for n in &names {
        let role = if *n == leader { "primary" } else { "replica" };
        let got = wait_lines(&c, &s, n, 0, 1).await;
        assert_sequence(n, &got, &[line("on_start", role)], &reload);
    }

    // Planned switchover.
    let cand = names.iter().find(|n| **n != leader).unwrap().clone();
    let third = c.other_than(&[&leader, &cand]);
    let mark = |n: &str| s.lines(n).len();
    let (m_old, m_cand, m_third) = (mark(&leader), mark(&cand), mark(&third));
    let (code, body) = c
        .post(
            &leader,
            "/switchover",
            json!({"leader": leader, "candidate": cand}),
        )
        .await
        .unwrap();
    assert_eq!(code, 200, "{body}");
    c.wait_streaming(
        &leader,
        "the old primary streaming",
        Duration::from_secs(60),
    )
    .await;
    c.wait_streaming(&third, "the third node streaming", Duration::from_secs(60))
        .await;
    assert_eq!(c.primary().await.as_deref(), Some(cand.as_str()));
    let old = wait_lines(&c, &s, &leader, m_old, 3).await;
    assert_sequence(
        &leader,
        &old,
        &[
            "before_stop running".into(),
            line("on_stop", "primary"),
            line("on_role_change", "replica"),
        ],
        &reload,
    );
    let new = wait_lines(&c, &s, &cand, m_cand, 2).await;
    assert_sequence(
        &cand,
        &new,
        &["pre_promote".into(), line("on_role_change", "primary")],
        &[],
    );
    let other = wait_lines(&c, &s, &third, m_third, 1).await;
    assert_sequence(&third, &other, &reload, &reload);

    // Failover: the new primary loses its agent and its database.
    let lost = cand;
    let (m_a, m_b) = (mark(&leader), mark(&third));
    c.node_mut(&lost).kill9_agent();
    c.node(&lost).kill9_postmaster();
    let m_lost = mark(&lost);
    let winner = c.wait_new_primary(&lost, Duration::from_secs(60)).await;
    let follower = if winner == leader {
        third.clone()
    } else {
        leader.clone()
    };
    let (m_w, m_f) = if winner == leader {
        (m_a, m_b)
    } else {
        (m_b, m_a)
    };
    let won = wait_lines(&c, &s, &winner, m_w, 2).await;
    assert_sequence(
        &winner,
        &won,
        &["pre_promote".into(), line("on_role_change", "primary")],
        &[],
    );
    c.wait_streaming(
        &follower,
        "the other standby following",
        Duration::from_secs(60),
    )
    .await;
    let followed = wait_lines(&c, &s, &follower, m_f, 1).await;
    assert_sequence(&follower, &followed, &reload, &reload);
    assert_eq!(mark(&lost), m_lost, "a dead agent runs no scripts");

    // The lost node comes back as a standby: a start.
    c.node_mut(&lost).start_agent();
    c.wait_streaming(&lost, "the lost node back", Duration::from_secs(90))
        .await;
    let back = wait_lines(&c, &s, &lost, m_lost, 1).await;
    assert_sequence(
        &lost,
        &back,
        &[line("on_start", "replica")],
        &[line("on_start", "replica"), line("on_reload", "replica")],
    );

    // A clean agent stop: before_stop while the database runs, then on_stop.
    let m = mark(&follower);
    c.node_mut(&follower).stop_agent(60);
    let stopped = wait_lines(&c, &s, &follower, m, 2).await;
    assert_sequence(
        &follower,
        &stopped,
        &["before_stop running".into(), line("on_stop", "replica")],
        &[],
    );
    eprintln!("{}", std::fs::read_to_string(s.log()).unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_pre_promote_keeps_the_node_a_replica_and_gives_the_lock_back() {
    let s = Scripts::new();
    let mut c = cluster("prepromote", &s).await;
    let scope = c.scope.clone();
    let primary = c.primary().await.expect("a primary");
    let replicas: Vec<String> = c
        .nodes
        .iter()
        .map(|n| n.name.clone())
        .filter(|n| *n != primary)
        .collect();
    for r in &replicas {
        s.refuse(r, true);
    }
    let marks: Vec<usize> = replicas.iter().map(|r| s.lines(r).len()).collect();
    c.node_mut(&primary).kill9_agent();
    c.node(&primary).kill9_postmaster();

    // Both candidates refuse: for two ttl nobody promotes, and the lock is seen free after a refusal.
    let deadline = Instant::now() + Duration::from_millis(2 * TTL_MS + 5_000);
    let mut refusals = 0;
    let mut free_after_refusal = false;
    while Instant::now() < deadline {
        for r in &replicas {
            assert!(
                !c.is_primary(r).await,
                "{r} promoted although pre_promote failed"
            );
        }
        refusals = replicas
            .iter()
            .zip(&marks)
            .map(|(r, m)| {
                s.lines(r)[*m..]
                    .iter()
                    .filter(|l| *l == "pre_promote")
                    .count()
            })
            .sum();
        if refusals > 0 && c.leader().await.is_none() {
            free_after_refusal = true;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(refusals > 0, "no pre_promote ran");
    assert!(free_after_refusal, "the lock was never given back");
    for r in &replicas {
        match c.get(r, "/patroni").await {
            Some((200, doc)) => assert_eq!(doc["role"], "replica", "{r}: {doc}"),
            other => panic!("{r}: {other:?}"),
        }
        let lines = s.lines(r);
        assert!(
            !lines.iter().any(|l| l.starts_with("on_role_change")),
            "{r}: {lines:?}"
        );
    }
    let backoff = replicas.iter().any(|r| {
        c.node(r)
            .log_tail(400)
            .contains("backoff: skip leader race")
    });
    assert!(backoff, "no agent sat out the race after a refusal");

    // One candidate stops refusing: it takes over, the other stays a replica.
    let (yes, no) = (&replicas[0], &replicas[1]);
    s.refuse(yes, false);
    let winner = c
        .wait(
            "the candidate that no longer refuses promoted",
            Duration::from_secs(60),
            || async { c.primary().await },
        )
        .await;
    assert_eq!(&winner, yes);
    let promoted = format!("on_role_change primary {scope}");
    let lines = c
        .wait(
            "on_role_change primary from the winner",
            Duration::from_secs(30),
            || async {
                let lines = s.lines(yes);
                lines.contains(&promoted).then_some(lines)
            },
        )
        .await;
    let at = lines.iter().position(|l| *l == promoted).unwrap();
    assert!(at > 0 && lines[at - 1] == "pre_promote", "{lines:?}");
    assert!(!c.is_primary(no).await);
    assert!(!s.lines(no).contains(&promoted));
    eprintln!("{}", std::fs::read_to_string(s.log()).unwrap());
}
