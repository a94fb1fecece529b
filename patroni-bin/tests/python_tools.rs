//! Patroni's own clients against a patroni-rs cluster: `patronictl` (from Python Patroni) reads
//! the cluster from etcd, `check_patroni` (the Nagios plugin) reads it through our REST API.
//!
//! Both are installed from PyPI, at pinned versions, into a virtualenv under the target
//! directory, created once and reused. On a healthy cluster every cluster check and every node
//! check that applies to a node is OK; with the primary gone (agent and server killed, the
//! replicas tagged `nofailover` so that no one takes over) the checks that watch for that are
//! CRITICAL. On the way, the fields those tools and Prometheus read are checked on the real
//! cluster, and a flood of idle connections must not silence the primary's health check.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::pyvenv::{show, venv};
use common::TestCluster;
use serde_json::Value;

/// Nagios exit codes.
const OK: i32 = 0;
const CRITICAL: i32 = 2;
const UNKNOWN: i32 = 3;

/// Runs a tool from the virtualenv with a deadline; the child is killed by its PID when late.
fn run(bin: &Path, tool: &str, args: &[String]) -> Output {
    let mut child = Command::new(bin.join(tool))
        .args(args)
        .env_remove("PATRONICTL_CONFIG_FILE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start {tool}: {e}"));
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            return child.wait_with_output().unwrap();
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!("{tool} {args:?} did not finish in 60 s:\n{}", show(&out));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs one `check_patroni` service against `endpoints`; returns its exit code and output.
fn check(bin: &Path, endpoints: &[String], service: &str, extra: &[&str]) -> (i32, String) {
    let mut args: Vec<String> = Vec::new();
    for e in endpoints {
        args.push("-e".into());
        args.push(e.clone());
    }
    args.push("--timeout".into());
    args.push("5".into());
    args.push(service.into());
    args.extend(extra.iter().map(|s| s.to_string()));
    let out = run(bin, "check_patroni", &args);
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout).trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        ),
    )
}

fn state_name(code: i32) -> &'static str {
    match code {
        0 => "OK",
        1 => "WARNING",
        2 => "CRITICAL",
        3 => "UNKNOWN",
        _ => "?",
    }
}

/// Checks run and the codes they gave, printed as a table at the end (and on failure).
#[derive(Default)]
struct Results {
    rows: Vec<(String, String, i32, i32, String)>,
}

impl Results {
    fn expect(&mut self, phase: &str, what: String, want: i32, (got, out): (i32, String)) {
        self.rows.push((phase.into(), what, want, got, out));
    }

    fn print(&self) {
        println!(
            "{:<10} {:<62} {:<9} {:<9}",
            "phase", "check", "expected", "got"
        );
        for (phase, what, want, got, _) in &self.rows {
            println!(
                "{phase:<10} {what:<62} {:<9} {:<9}",
                state_name(*want),
                state_name(*got)
            );
        }
    }

    fn assert_all(&self, cluster: &TestCluster) {
        self.print();
        let wrong: Vec<String> = self
            .rows
            .iter()
            .filter(|(_, _, want, got, _)| want != got)
            .map(|(phase, what, want, got, out)| {
                format!(
                    "{phase} {what}: expected {}, got {}: {out}",
                    state_name(*want),
                    state_name(*got)
                )
            })
            .collect();
        if !wrong.is_empty() {
            cluster.dump();
            panic!("check_patroni disagreed:\n{}", wrong.join("\n"));
        }
    }
}

/// `patronictl list -f json`, parsed.
fn patronictl_list(bin: &Path, config: &Path) -> Vec<Value> {
    let out = run(
        bin,
        "patronictl",
        &[
            "-c".into(),
            config.display().to_string(),
            "list".into(),
            "-f".into(),
            "json".into(),
        ],
    );
    assert!(
        out.status.success(),
        "patronictl list failed:\n{}",
        show(&out)
    );
    serde_json::from_slice::<Value>(&out.stdout)
        .unwrap_or_else(|e| panic!("patronictl list -f json is not JSON ({e}):\n{}", show(&out)))
        .as_array()
        .cloned()
        .unwrap_or_else(|| panic!("patronictl list -f json is not a list:\n{}", show(&out)))
}

fn roles_and_states(rows: &[Value]) -> Vec<(String, String, String)> {
    let mut v: Vec<(String, String, String)> = rows
        .iter()
        .map(|r| {
            (
                r["Member"].as_str().unwrap_or("?").to_string(),
                r["Role"].as_str().unwrap_or("?").to_string(),
                r["State"].as_str().unwrap_or("?").to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// 600 idle connections to the primary's agent (more than its default cap of 256): its health
/// check still answers and its descriptors stay bounded.
async fn idle_flood(c: &TestCluster, primary: &str) {
    let node = c.node(primary);
    let pid = node.agent_pid().expect("the primary's agent runs");
    let before = open_fds(pid);
    let addr = format!("127.0.0.1:{}", node.api_port);
    let mut idle = Vec::new();
    for _ in 0..600 {
        match tokio::net::TcpStream::connect(&addr).await {
            Ok(s) => idle.push(s),
            Err(e) => panic!("connect {addr}: {e}"),
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let started = std::time::Instant::now();
    let resp = http
        .get(format!("{}/primary", node.api()))
        .send()
        .await
        .expect("/primary answers past the connection cap");
    assert_eq!(resp.status().as_u16(), 200);
    let during = open_fds(pid);
    println!(
        "MEASURED idle flood: /primary answered in {} ms; agent descriptors {before} before, {during} with 600 idle connections",
        started.elapsed().as_millis()
    );
    assert!(
        during <= before + 256 + 8,
        "the agent holds {during} descriptors (had {before}) with 600 idle connections"
    );
    drop(idle);
}

/// A sample line's value from Prometheus text, `None` when the metric is absent.
fn sample(metrics: &str, name: &str) -> Option<f64> {
    metrics.lines().find_map(|l| {
        let rest = l.strip_prefix(name)?;
        let rest = rest.strip_prefix('{')?;
        let (_, value) = rest.split_once("} ")?;
        value.trim().parse().ok()
    })
}

fn is_lsn_text(v: &Value) -> bool {
    v.as_str().is_some_and(|s| {
        s.split_once('/').is_some_and(|(a, b)| {
            !a.is_empty()
                && !b.is_empty()
                && a.chars().chain(b.chars()).all(|c| c.is_ascii_hexdigit())
        })
    })
}

/// The fields Patroni's tools read, from a real cluster: `/patroni`, `/cluster`, `/metrics`.
async fn assert_patroni_fields(c: &TestCluster, primary: &str, replicas: &[String]) {
    // The primary's next observation lists both senders.
    let doc = c
        .wait(
            "two streaming WAL senders in /patroni",
            Duration::from_secs(60),
            || async {
                let (_, doc) = c.get(primary, "/patroni").await?;
                // A replica still cloning shows as a `backup` sender (and a second one for its
                // WAL): wait for both replicas' own streams.
                let rows = doc["replication"].as_array()?;
                (rows.len() == 2 && rows.iter().all(|r| r["state"] == "streaming")).then_some(doc)
            },
        )
        .await;
    let started = doc["postmaster_start_time"].as_str().unwrap_or("");
    // Python's str(datetime): `2026-01-02 03:04:05.678000+00:00`.
    assert!(
        started.len() >= 25 && started.as_bytes()[10] == b' ' && started.ends_with("+00:00"),
        "postmaster_start_time {started:?} in {doc}"
    );
    let rows = doc["replication"].as_array().cloned().unwrap_or_default();
    assert_eq!(rows.len(), 2, "replication rows in {doc}");
    for r in &rows {
        assert_eq!(r["usename"], "replicator", "{r}");
        assert_eq!(r["client_addr"], "127.0.0.1", "{r}");
        assert_eq!(r["state"], "streaming", "{r}");
        assert_eq!(r["sync_state"], "async", "{r}");
        assert_eq!(r["sync_priority"], 0, "{r}");
        assert!(
            replicas.iter().any(|n| r["application_name"] == n.as_str()),
            "{r}"
        );
    }
    // As Patroni: no `tags` when none are set, no `pause` or `cluster_unlocked` when false.
    assert!(
        doc.get("tags").is_none()
            && doc.get("pause").is_none()
            && doc.get("cluster_unlocked").is_none(),
        "{doc}"
    );
    for r in replicas {
        let (_, doc) = c.get(r, "/patroni").await.expect("/patroni");
        assert_eq!(doc["replication_state"], "streaming", "{doc}");
        assert_eq!(doc["xlog"]["paused"], false, "{doc}");
        assert!(doc["postmaster_start_time"].is_string(), "{doc}");
    }
    let (_, cluster) = c.get(primary, "/cluster").await.expect("/cluster");
    assert!(cluster.get("pause").is_none(), "{cluster}");
    let members = cluster["members"].as_array().cloned().unwrap_or_default();
    let names: Vec<&str> = members.iter().filter_map(|m| m["name"].as_str()).collect();
    assert_eq!(
        names,
        ["node1", "node2", "node3"],
        "sorted by name: {cluster}"
    );
    for m in &members {
        if m["name"] == primary {
            assert!(m.get("lsn").is_none() && m.get("lag").is_none(), "{m}");
            continue;
        }
        for k in ["lsn", "receive_lsn", "replay_lsn"] {
            assert!(is_lsn_text(&m[k]), "{k} in {m}");
        }
        for k in ["lag", "receive_lag", "replay_lag"] {
            assert!(m[k].is_u64(), "{k} in {m}");
        }
    }
    let metrics = c
        .http
        .get(format!("{}/metrics", c.node(primary).api()))
        .send()
        .await
        .expect("/metrics")
        .text()
        .await
        .unwrap();
    for name in [
        "patroni_postgres_state",
        "patroni_postgres_streaming",
        "patroni_postgres_in_archive_recovery",
        "patroni_postgres_server_version",
        "patroni_postmaster_start_time",
        "patroni_xlog_paused",
        "patroni_xlog_replayed_timestamp",
        "patroni_sync_standby",
        "patroni_quorum_standby",
        "patroni_standby_leader",
        "patroni_failsafe_mode_is_active",
    ] {
        assert!(
            sample(&metrics, name).is_some(),
            "{name} missing:\n{metrics}"
        );
    }
    assert_eq!(sample(&metrics, "patroni_postgres_state"), Some(5.0));
    assert_eq!(sample(&metrics, "patroni_primary"), Some(1.0));
    assert!(sample(&metrics, "patroni_postgres_server_version").unwrap() >= 150000.0);
    assert!(sample(&metrics, "patroni_postmaster_start_time").unwrap() > 1.0e9);
    let metrics = c
        .http
        .get(format!("{}/metrics", c.node(&replicas[0]).api()))
        .send()
        .await
        .expect("/metrics")
        .text()
        .await
        .unwrap();
    assert_eq!(
        sample(&metrics, "patroni_postgres_streaming"),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(sample(&metrics, "patroni_replica"), Some(1.0), "{metrics}");
    assert_eq!(
        sample(&metrics, "patroni_xlog_paused"),
        Some(0.0),
        "{metrics}"
    );
}

/// Python's `patronictl restart --scheduled` and `flush ... restart` against our REST API: the
/// restart is kept and shown by `list`, then cancelled.
async fn python_scheduled_restart(bin: &Path, config: &Path, c: &TestCluster, member: &str) {
    let ctl = |args: &[&str]| {
        let mut all = vec!["-c".to_string(), config.display().to_string()];
        all.extend(args.iter().map(|s| s.to_string()));
        let out = run(bin, "patronictl", &all);
        assert!(out.status.success(), "patronictl {args:?}:\n{}", show(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let at = patroni_core::Timestamp(
        (std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
            + 3600)
            * 1000,
    );
    let at = format!("{}+00:00", &at.to_string()[..19]);
    let out = ctl(&["restart", &c.scope, member, "--scheduled", &at, "--force"]);
    assert!(
        out.contains(&format!("Success: restart scheduled on member {member}")),
        "{out}"
    );
    let (_, doc) = c.get(member, "/patroni").await.expect("/patroni");
    assert_eq!(doc["scheduled_restart"]["schedule"], at.as_str(), "{doc}");
    c.wait(
        "the schedule in the member key",
        Duration::from_secs(10),
        || async {
            let view = c.view().await?;
            view.member(member)?
                .data
                .extra
                .get("scheduled_restart")
                .map(|_| ())
        },
    )
    .await;
    let rows = patronictl_list(bin, config);
    let row = rows
        .iter()
        .find(|r| r["Member"] == member)
        .expect("the member in list");
    assert_eq!(row["Scheduled restart"], at.as_str(), "{row}");
    let out = ctl(&["flush", &c.scope, member, "restart", "--force"]);
    assert!(
        out.contains(&format!(
            "Success: flush scheduled restart for member {member}"
        )),
        "{out}"
    );
    let (_, doc) = c.get(member, "/patroni").await.expect("/patroni");
    assert!(doc.get("scheduled_restart").is_none(), "{doc}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patronictl_and_check_patroni_read_a_patroni_rs_cluster() {
    let bin = tokio::task::spawn_blocking(venv).await.unwrap();
    let mut c = TestCluster::start("pytools").await;
    let primary = c.wait_healthy(Duration::from_secs(60)).await;
    let replicas: Vec<String> = c
        .nodes
        .iter()
        .map(|n| n.name.clone())
        .filter(|n| *n != primary)
        .collect();
    // The cluster view settles (every member streaming in the DCS, the leader's optime published).
    c.wait(
        "every replica streaming in /cluster",
        Duration::from_secs(30),
        || async {
            let (code, doc) = c.get(&primary, "/cluster").await?;
            let members = doc["members"].as_array()?;
            let ok = code == 200
                && members.len() == 3
                && members.iter().all(|m| {
                    m["role"] == "leader" && m["state"] == "running"
                        || m["role"] == "replica" && m["state"] == "streaming" && m["lag"].is_u64()
                });
            ok.then_some(())
        },
    )
    .await;

    assert_patroni_fields(&c, &primary, &replicas).await;

    // patronictl reads the cluster from etcd as a Patroni cluster.
    let ctl_config = c.nodes[0].dir.join("patronictl.yml");
    std::fs::write(
        &ctl_config,
        format!(
            "scope: {}\netcd3:\n  hosts: {}\n",
            c.scope,
            c.etcd.endpoint().trim_start_matches("http://")
        ),
    )
    .unwrap();
    let rows = patronictl_list(&bin, &ctl_config);
    println!("patronictl list -f json: {}", Value::Array(rows.clone()));
    let mut want = vec![(primary.clone(), "Leader".to_string(), "running".to_string())];
    for r in &replicas {
        want.push((r.clone(), "Replica".into(), "streaming".into()));
    }
    want.sort();
    assert_eq!(
        roles_and_states(&rows),
        want,
        "patronictl list roles and states"
    );
    for r in &rows {
        assert_eq!(r["Cluster"], c.scope.as_str());
        assert_eq!(r["TL"], 1, "timeline in {r}");
    }
    python_scheduled_restart(&bin, &ctl_config, &c, &replicas[0]).await;

    let apis: std::collections::HashMap<String, String> =
        c.nodes.iter().map(|n| (n.name.clone(), n.api())).collect();
    let api = |name: &str| apis[name].clone();
    let all: Vec<String> = c.nodes.iter().map(|n| n.api()).collect();
    let mut results = Results::default();

    // Healthy: every cluster check is OK.
    let state_file = c.nodes[0].dir.join("check_patroni.state");
    let state = state_file.display().to_string();
    let _ = check(
        &bin,
        &all,
        "cluster_config_has_changed",
        &["--state-file", &state, "--save"],
    );
    for (service, extra) in [
        (
            "cluster_config_has_changed",
            vec!["--state-file", state.as_str()],
        ),
        ("cluster_has_leader", vec![]),
        (
            "cluster_has_replica",
            vec!["--critical", "2:", "--max-lag", "16MB"],
        ),
        ("cluster_has_scheduled_action", vec![]),
        ("cluster_is_in_maintenance", vec![]),
        (
            "cluster_node_count",
            vec!["--critical", "3:", "--healthy-critical", "3:"],
        ),
    ] {
        let what = format!("{service} {}", extra.join(" "));
        results.expect("healthy", what, OK, check(&bin, &all, service, &extra));
    }
    // Healthy: every node check that applies to the node is OK, and the role checks that do not
    // apply are CRITICAL.
    for n in &c.nodes {
        let e = vec![api(&n.name)];
        let tl = c.get(&n.name, "/patroni").await.expect("/patroni").1["timeline"].to_string();
        for (service, extra) in [
            ("node_is_alive", vec![]),
            ("node_is_pending_restart", vec![]),
            ("node_patroni_version", vec!["--patroni-version", "4.0.4"]),
            ("node_tl_has_changed", vec!["--timeline", tl.as_str()]),
        ] {
            let what = format!("{service} {} @{}", extra.join(" "), n.name);
            results.expect("healthy", what, OK, check(&bin, &e, service, &extra));
        }
        let is_primary = n.name == primary;
        let role = |yes: bool| if yes { OK } else { CRITICAL };
        for (service, extra, applies) in [
            ("node_is_primary", vec![], is_primary),
            ("node_is_leader", vec![], is_primary),
            ("node_is_replica", vec![], !is_primary),
            ("node_is_replica", vec!["--is-async"], !is_primary),
            ("node_is_replica", vec!["--max-lag", "16MB"], !is_primary),
            ("node_is_replica", vec!["--is-sync"], false),
        ] {
            let what = format!("{service} {} @{}", extra.join(" "), n.name);
            results.expect(
                "healthy",
                what,
                role(applies),
                check(&bin, &e, service, &extra),
            );
        }
    }
    results.assert_all(&c);

    idle_flood(&c, &primary).await;

    // The replicas may not take over, so the primary's loss lasts.
    for r in &replicas {
        let node = c.node(r);
        let mut text = std::fs::read_to_string(&node.config).unwrap();
        text.push_str("tags:\n  nofailover: true\n");
        std::fs::write(&node.config, text).unwrap();
        let (code, body) = c
            .post(r, "/reload", serde_json::json!({}))
            .await
            .expect("/reload");
        assert_eq!(code, 202, "{body}");
    }
    for r in &replicas {
        c.wait("nofailover published", Duration::from_secs(30), || async {
            let view = c.view().await?;
            view.member(r)
                .is_some_and(|m| m.data.tags.nofailover)
                .then_some(())
        })
        .await;
    }

    // The primary goes down: its agent, its fence and its server are killed.
    let old = primary.clone();
    {
        let n = c.node_mut(&old);
        n.kill9_agent();
        n.kill9_fence();
        n.kill9_postmaster();
    }
    let survivors: Vec<String> = replicas.iter().map(|r| api(r)).collect();
    // The lease runs out and nobody takes over: no leader.
    c.wait(
        "the leader key to expire",
        Duration::from_secs(40),
        || async { c.view().await.filter(|v| v.leader.is_none()).map(|_| ()) },
    )
    .await;
    let mut down = Results::default();
    for (service, extra) in [
        ("cluster_has_leader", vec![]),
        (
            "cluster_has_replica",
            vec!["--critical", "2:", "--max-lag", "16MB"],
        ),
        (
            "cluster_node_count",
            vec!["--critical", "3:", "--healthy-critical", "3:"],
        ),
    ] {
        let what = format!("{service} {}", extra.join(" "));
        down.expect(
            "down",
            what,
            CRITICAL,
            check(&bin, &survivors, service, &extra),
        );
    }
    for r in &replicas {
        let e = vec![api(r)];
        for service in ["node_is_primary", "node_is_leader"] {
            let what = format!("{service} @{r}");
            down.expect("down", what, CRITICAL, check(&bin, &e, service, &[]));
        }
        down.expect(
            "down",
            format!("node_is_alive @{r}"),
            OK,
            check(&bin, &e, "node_is_alive", &[]),
        );
    }
    // The old primary's API is gone: check_patroni cannot tell why, so it says UNKNOWN, as it
    // does for a stopped Patroni.
    let e = vec![api(&old)];
    for service in ["node_is_primary", "node_is_alive"] {
        let what = format!("{service} @{old} (agent killed)");
        down.expect("down", what, UNKNOWN, check(&bin, &e, service, &[]));
    }
    // patronictl sees no leader either.
    let rows = patronictl_list(&bin, &ctl_config);
    println!(
        "patronictl list -f json (primary down): {}",
        Value::Array(rows.clone())
    );
    assert!(
        rows.iter().all(|r| r["Role"] != "Leader"),
        "no leader expected: {rows:?}"
    );
    down.assert_all(&c);
}
