//! Our `patronictl` as a drop-in for Python Patroni 4's, run as a program against a real
//! three-node cluster: Python's positional cluster name, its `list` keys, roles and states in
//! every format, `show-config` that reads back (`'on'`), `topology` with the system id, `dsn`,
//! `query`, `restart`, `pause/resume --wait`, `flush`, a refused switchover explained by the
//! members' states, `remove` with its typed confirmations, and errors on one line whatever
//! `RUST_BACKTRACE` says.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::ctl::{ctl, run};
use common::TestCluster;
use patroni_core::{Dcs, DynamicConfig, MemberData, MemberRole, MemberState, Timestamp};
use patroni_etcd::{Etcd3Config, EtcdDcs, EtcdIdentity};
use serde_json::Value;

/// Runs `patronictl -c <node1's file> ARGS` on a terminal (a pseudo-terminal from util-linux
/// `script`), typing `answers` one line at a time; returns what the terminal showed.
fn on_terminal(c: &TestCluster, args: &[&str], answers: &[&str]) -> String {
    let mut line = format!(
        "{} -c {}",
        env!("CARGO_BIN_EXE_patronictl"),
        c.node("node1").config.display()
    );
    for a in args {
        line.push(' ');
        line.push_str(a);
    }
    let mut child = Command::new("script")
        .args(["-q", "-e", "-c", &line, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run script (Debian package bsdutils)");
    let mut stdin = child.stdin.take().unwrap();
    for a in answers {
        std::thread::sleep(Duration::from_millis(700));
        stdin.write_all(format!("{a}\n").as_bytes()).unwrap();
        stdin.flush().unwrap();
    }
    std::thread::sleep(Duration::from_millis(700));
    let out = child.wait_with_output().unwrap();
    drop(stdin);
    String::from_utf8_lossy(&out.stdout).replace('\r', "")
}

/// The keys Python 4's `list -f json` can print.
const PYTHON_KEYS: [&str; 14] = [
    "Cluster",
    "Member",
    "Host",
    "Role",
    "State",
    "TL",
    "Receive LSN",
    "Receive Lag",
    "Replay LSN",
    "Replay Lag",
    "Pending restart",
    "Pending restart reason",
    "Scheduled restart",
    "Tags",
];

/// `list CLUSTER -f json` as rows, checked against Python's keys and the cluster's roles.
fn list_json(c: &TestCluster, leader: &str) -> Vec<Value> {
    let r = ctl(c, &["list", &c.scope, "-f", "json"], "");
    let text = r.ok("list -f json");
    assert_eq!(
        text.lines().count(),
        1,
        "json.dumps prints one line: {text}"
    );
    let rows: Vec<Value> = serde_json::from_str(text).expect("list -f json is JSON");
    assert_eq!(rows.len(), 3, "{text}");
    let names: Vec<&str> = rows.iter().map(|r| r["Member"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        ["node1", "node2", "node3"],
        "sorted by name as Python does"
    );
    for row in &rows {
        for k in row.as_object().unwrap().keys() {
            assert!(
                PYTHON_KEYS.contains(&k.as_str()),
                "key {k:?} is not Python's: {text}"
            );
        }
        assert_eq!(row["Cluster"], c.scope.as_str());
        let name = row["Member"].as_str().unwrap();
        let port = c.node(name).pg_port;
        assert_eq!(row["Host"], format!("127.0.0.1:{port}"));
        assert!(row["TL"].as_u64().is_some(), "{row}");
        if name == leader {
            assert_eq!(
                (&row["Role"], &row["State"]),
                (&"Leader".into(), &"running".into())
            );
            assert!(
                row.get("Receive LSN").is_none(),
                "the leader has no lag: {row}"
            );
        } else {
            assert_eq!(
                (&row["Role"], &row["State"]),
                (&"Replica".into(), &"streaming".into())
            );
            assert!(
                row["Receive LSN"].as_str().is_some_and(|l| l.contains('/')),
                "{row}"
            );
            assert!(row["Replay Lag"].as_u64().is_some(), "{row}");
        }
    }
    rows
}

fn future(secs: i64) -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    Timestamp(now.as_millis() as i64 + secs * 1000).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patronictl_is_a_drop_in_for_pythons() {
    let c = TestCluster::start("pctl").await;
    let started = std::time::Instant::now();
    let leader = c.leader().await.expect("a leader");
    let replica = c.other_than(&[&leader]);
    let scope = c.scope.clone();

    // list: JSON with Python's keys, the same rows as YAML, and TSV with its header line.
    let rows = list_json(&c, &leader);
    let yaml = ctl(&c, &["list", &scope, "-f", "yaml"], "");
    let from_yaml: Vec<Value> =
        yaml_serde::from_str(yaml.ok("list -f yaml")).expect("list -f yaml is YAML");
    assert_eq!(from_yaml, rows, "yaml and json list the same");
    let tsv = ctl(&c, &["list", &scope, "-f", "tsv"], "");
    let lines: Vec<&str> = tsv.ok("list -f tsv").lines().collect();
    assert_eq!(
        lines[0],
        "Cluster\tMember\tHost\tRole\tState\tTL\tReceive LSN\tReceive Lag\tReplay LSN\tReplay Lag"
    );
    assert_eq!(lines.len(), 4, "{}", tsv.stdout);
    assert!(lines.iter().any(
        |l| l.starts_with(&format!("{scope}\t{leader}\t")) && l.contains("\tLeader\trunning\t")
    ));

    // topology: the system identifier in the title, replicas under the leader.
    let sysid = c.view().await.unwrap().initialize.unwrap();
    assert!(sysid.len() > 10, "{sysid}");
    let topo = ctl(&c, &["topology", &scope], "");
    let text = topo.ok("topology");
    assert!(
        text.lines()
            .next()
            .unwrap()
            .starts_with(&format!("+ Cluster: {scope} ({sysid}) -")),
        "{text}"
    );
    assert!(text.contains(&format!("| {leader}  ")), "{text}");
    assert!(text.contains(&format!("| + {replica} ")), "{text}");

    // show-config: `'on'` stays quoted, so the text reads back to the same configuration.
    let shown = ctl(&c, &["show-config", &scope], "");
    let shown = shown.ok("show-config").to_string();
    assert!(shown.contains("    wal_log_hints: 'on'\n"), "{shown}");
    let doc: yaml_serde::Value = yaml_serde::from_str(&shown).unwrap();
    assert_eq!(
        doc["postgresql"]["parameters"]["wal_log_hints"],
        yaml_serde::Value::String("on".into())
    );
    let same = ctl(
        &c,
        &["edit-config", &scope, "--replace", "-", "--force"],
        &shown,
    );
    assert_eq!(same.ok("edit-config --replace -").trim(), "Not changed");
    let set = ctl(
        &c,
        &["edit-config", &scope, "-p", "work_mem=8MB", "--force"],
        "",
    );
    let out = set.ok("edit-config -p");
    assert!(
        out.contains("+    work_mem: 8MB") && out.ends_with("Configuration changed\n"),
        "{out}"
    );
    let cfg = c.view().await.unwrap().config.unwrap().value;
    assert_eq!(cfg.postgresql.parameters["work_mem"], "8MB");
    let unset = ctl(
        &c,
        &[
            "edit-config",
            &scope,
            "-p",
            "work_mem=null",
            "--force",
            "-q",
        ],
        "",
    );
    assert_eq!(unset.ok("edit-config -q").trim(), "Configuration changed");

    // dsn, query and version.
    let dsn = ctl(&c, &["dsn", &scope], "");
    assert_eq!(
        dsn.ok("dsn"),
        format!("host=127.0.0.1 port={}\n", c.node(&leader).pg_port)
    );
    let dsn = ctl(&c, &["dsn", &scope, "-m", &replica], "");
    assert_eq!(
        dsn.ok("dsn -m"),
        format!("host=127.0.0.1 port={}\n", c.node(&replica).pg_port)
    );
    let q = ctl(
        &c,
        &["query", &scope, "-U", "postgres", "-c", "SELECT 1"],
        "",
    );
    assert_eq!(q.ok("query"), "?column?\n1\n");
    let q = ctl(
        &c,
        &[
            "query",
            &scope,
            "-U",
            "postgres",
            "-r",
            "replica",
            "-c",
            "SELECT pg_is_in_recovery() AS r",
        ],
        "",
    );
    assert_eq!(q.ok("query -r replica"), "r\nTrue\n");
    let q = ctl(
        &c,
        &[
            "query",
            &scope,
            "-U",
            "postgres",
            "-c",
            "SELECT * FROM nosuch",
        ],
        "",
    );
    assert_eq!(q.error("query error"), "Error: ERROR, SQLSTATE: 42P01");
    let v = ctl(&c, &["version", &scope], "");
    let text = v.ok("version");
    assert!(text.starts_with("patronictl version 4."), "{text}");
    for n in ["node1", "node2", "node3"] {
        assert!(
            text.contains(&format!("\n{n}: Patroni 4.")) && text.contains("PostgreSQL 15."),
            "{text}"
        );
    }

    // restart a member by Python's positional arguments.
    let before = c.node(&replica).postmaster_pid().expect("replica running");
    let r = ctl(&c, &["restart", &scope, &replica, "--force"], "");
    let out = r.ok("restart");
    assert!(
        out.ends_with(&format!("Success: restart on member {replica}\n")),
        "{out}"
    );
    assert_ne!(
        c.node(&replica).postmaster_pid(),
        Some(before),
        "a new postmaster"
    );
    c.wait_streaming(
        &replica,
        "the restarted replica streaming",
        Duration::from_secs(30),
    )
    .await;
    let r = ctl(&c, &["reload", &scope, &replica, "--force"], "");
    assert!(r
        .ok("reload")
        .contains(&format!("Reload request received for member {replica}")));
    // Without a terminal a missing answer is an error naming the option, not a hang.
    let r = ctl(&c, &["restart", &scope, &replica], "y\n");
    let e = r.error("restart without --force");
    assert!(
        e.starts_with("Error: missing --scheduled (or --force): stdin is not a terminal"),
        "{e}"
    );
    let r = ctl(&c, &["restart", &scope, "node9", "--force"], "");
    assert_eq!(
        r.error("restart node9"),
        "Error: node9 is not a member of cluster"
    );

    // flush: nothing scheduled, then a scheduled switchover discarded.
    let f = ctl(&c, &["flush", &scope, "restart", "--force"], "");
    let out = f.ok("flush restart");
    for n in ["node1", "node2", "node3"] {
        assert!(
            out.contains(&format!("No scheduled restart for member {n}\n")),
            "{out}"
        );
    }
    let f = ctl(&c, &["flush", &scope, "switchover"], "");
    assert_eq!(
        f.ok("flush switchover").trim(),
        "No pending scheduled switchover"
    );
    let at = future(3600);
    let s = ctl(
        &c,
        &[
            "switchover",
            &scope,
            "--candidate",
            &replica,
            "--scheduled",
            &at,
            "--force",
        ],
        "",
    );
    assert!(
        s.ok("scheduled switchover")
            .contains(" Switchover scheduled\n"),
        "{}",
        s.stdout
    );
    let l = ctl(&c, &["list", &scope], "");
    assert!(
        l.ok("list").contains(" Switchover scheduled at: "),
        "{}",
        l.stdout
    );
    assert!(c.view().await.unwrap().failover_request().is_some());
    let f = ctl(&c, &["flush", &scope, "switchover"], "");
    assert_eq!(
        f.ok("flush switchover").trim(),
        "Success: scheduled switchover deleted"
    );
    assert!(c.view().await.unwrap().failover_request().is_none());
    assert_eq!(c.leader().await.as_deref(), Some(leader.as_str()));

    // On a terminal the missing options are asked for, with Python's prompts.
    let shown = on_terminal(&c, &["switchover", &scope], &["", &replica, "", "n"]);
    for prompt in [
        format!("Primary [{leader}]: "),
        "Candidate ['".to_string(),
        "When should the switchover take place (e.g. ".to_string(),
        format!("Are you sure you want to switchover cluster {scope}, demoting current leader {leader}? [y/N]: "),
        "Error: Aborting switchover".to_string(),
    ] {
        assert!(shown.contains(&prompt), "{prompt:?} not shown:\n{shown}");
    }
    assert_eq!(c.leader().await.as_deref(), Some(leader.as_str()));

    // pause --wait: every member has seen it when the command returns.
    let p = ctl(&c, &["pause", &scope, "--wait"], "");
    assert_eq!(
        p.ok("pause --wait"),
        "'pause' request sent, waiting until it is recognized by all nodes\nSuccess: cluster management is paused\n"
    );
    for n in &c.nodes {
        let (_, doc) = c.get(&n.name, "/patroni").await.unwrap();
        assert_eq!(doc["pause"], true, "{} has not seen the pause", n.name);
    }
    let again = ctl(&c, &["pause", &scope], "");
    assert_eq!(
        again.error("pause twice"),
        "Error: Cluster is already paused"
    );

    // A refused switchover says who cannot take over and why: the paused agent leaves the
    // killed replica down, and the leader refuses it.
    c.node(&replica).kill9_postmaster();
    c.wait(
        "the killed replica published as not running",
        Duration::from_secs(20),
        || async {
            let v = c.view().await?;
            (v.member(&replica)?.data.state != MemberState::Running).then_some(())
        },
    )
    .await;
    let s = ctl(
        &c,
        &["switchover", &scope, "--candidate", &replica, "--force"],
        "",
    );
    let e = s.error("refused switchover");
    assert!(e.starts_with("Error: Switchover failed, details: "), "{e}");
    assert!(
        e.contains(&format!("{replica}: database not running")),
        "{e}"
    );
    assert_eq!(c.leader().await.as_deref(), Some(leader.as_str()));

    let r = ctl(&c, &["resume", &scope, "--wait"], "");
    assert!(r
        .ok("resume --wait")
        .ends_with("Success: cluster management is resumed\n"));
    c.wait_streaming(
        &replica,
        "the killed replica back after resume",
        Duration::from_secs(40),
    )
    .await;

    // remove, on a throwaway cluster with a leader: three typed answers, read from stdin.
    let ghost_scope = format!("{scope}-throwaway");
    let ghost = EtcdDcs::new(
        &Etcd3Config::with_hosts([c.etcd.endpoint()]),
        EtcdIdentity::new(ghost_scope.clone(), "ghost"),
    )
    .unwrap();
    assert!(ghost.take_initialize().await.unwrap());
    ghost.set_initialize("7000000000000000001").await.unwrap();
    assert!(ghost
        .write_config(&DynamicConfig::default(), None)
        .await
        .unwrap());
    ghost
        .publish_member(&MemberData {
            conn_url: "postgres://127.0.0.1:1/postgres".into(),
            api_url: "http://127.0.0.1:1/patroni".into(),
            state: MemberState::Running,
            role: MemberRole::Primary,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(ghost.acquire_leader().await.unwrap());
    let wrong = ctl(&c, &["remove", &ghost_scope], "not-it\n");
    assert_eq!(
        wrong.error("remove, wrong name"),
        "Error: Cluster names specified do not match"
    );
    let bad_leader = ctl(
        &c,
        &["remove", &ghost_scope],
        &format!("{ghost_scope}\nYes I am aware\nnode1\n"),
    );
    assert_eq!(
        bad_leader.error("remove, wrong leader"),
        "Error: You did not specify the current leader of the cluster"
    );
    assert!(
        ghost.load().await.unwrap().initialize.is_some(),
        "nothing removed yet"
    );
    let gone = ctl(
        &c,
        &["remove", &ghost_scope],
        &format!("{ghost_scope}\nYes I am aware\nghost\n"),
    );
    let out = gone.ok("remove");
    assert!(
        out.contains("Please confirm the cluster name to remove: "),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "You are about to remove all information in DCS for {ghost_scope}, please type: \"Yes I am aware\": "
        )),
        "{out}"
    );
    assert!(out.contains(
        "This cluster currently is healthy. Please specify the leader name to continue: "
    ));
    let after = ghost.load().await.unwrap();
    assert!(
        after.initialize.is_none()
            && after.members.is_empty()
            && after.leader.is_none()
            && after.config.is_none(),
        "every key removed: {after:?}"
    );
    assert!(
        c.view().await.unwrap().initialize.is_some(),
        "the real cluster is untouched"
    );

    // Errors are one line whatever RUST_BACKTRACE says; a bad command line exits 2 as click does.
    let e = run(&["-c", "/nonexistent/patroni.yml", "list"], "");
    assert_eq!(
        e.error("missing config file"),
        "Error: Provided config file /nonexistent/patroni.yml not existing or no read rights. Check the -c/--config-file parameter"
    );
    let bad = ctl(&c, &["list", "--no-such-option"], "");
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    assert_eq!(bad.stderr.lines().count(), 1, "{}", bad.stderr);
    assert!(bad.stderr.starts_with("Error: "), "{}", bad.stderr);
    let e = run(&["-d", "consul://127.0.0.1:8500", "list", "x"], "");
    assert!(
        e.error("unsupported DCS").contains("consul"),
        "{}",
        e.stderr
    );
    println!(
        "patronictl: every check ran in {} ms on a live cluster",
        started.elapsed().as_millis()
    );
}
