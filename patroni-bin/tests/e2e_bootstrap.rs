//! Bootstrap, REST health codes, patronictl, and seed rule 3 (a crashed standby is restarted).

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{report, TestCluster};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bootstrap_health_codes_ctl_and_standby_crash() {
    let started = Instant::now();
    let c = TestCluster::start("boot").await;
    report(
        "bootstrap",
        "one primary and two streaming standbys",
        started.elapsed().as_millis(),
    );
    let primary = c.primary().await.expect("one primary");
    let view = c.view().await.unwrap();
    assert_eq!(
        view.leader.as_ref().map(|l| l.name.as_str()),
        Some(primary.as_str())
    );
    assert!(
        view.initialize.as_deref().is_some_and(|s| !s.is_empty()),
        "initialize holds the system id"
    );
    assert_eq!(view.members.len(), 3);
    let replicas: Vec<String> = c
        .nodes
        .iter()
        .map(|n| n.name.clone())
        .filter(|n| *n != primary)
        .collect();

    // Writes reach both standbys.
    assert_eq!(c.write_rows(&primary, "t_boot", 1000), "1000");
    for r in &replicas {
        let node = c.node(r);
        c.wait("rows replicated", Duration::from_secs(20), || async {
            (node.sql("SELECT count(*) FROM t_boot").as_deref() == Some("1000")).then_some(())
        })
        .await;
    }

    // Health codes, as HAProxy would see them.
    for (path, want) in [
        ("/primary", 200),
        ("/", 200),
        ("/read-write", 200),
        ("/leader", 200),
        ("/read-only", 200),
        ("/health", 200),
        ("/liveness", 200),
        ("/readiness", 200),
        ("/replica", 503),
        ("/async", 503),
    ] {
        let (code, _) = c.get(&primary, path).await.unwrap();
        assert_eq!(code, want, "primary {path}");
    }
    for r in &replicas {
        for (path, want) in [
            ("/primary", 503),
            ("/leader", 503),
            ("/replica", 200),
            ("/replica?lag=16MB", 200),
            ("/read-only", 200),
            ("/health", 200),
            ("/async", 200),
            ("/liveness", 200),
            ("/readiness", 200),
        ] {
            let (code, _) = c.get(r, path).await.unwrap();
            assert_eq!(code, want, "{r} {path}");
        }
    }
    let (code, doc) = c.get(&primary, "/patroni").await.unwrap();
    assert_eq!(code, 200);
    assert_eq!(doc["role"], "primary");
    assert_eq!(doc["server_version"].as_u64().map(|v| v / 10000), Some(15));
    let (_, cluster) = c.get(&replicas[0], "/cluster").await.unwrap();
    assert_eq!(cluster["members"].as_array().map(Vec::len), Some(3));
    // Sorted by name, as Patroni lists them; the leader is the one with the leader role.
    let members = cluster["members"].as_array().unwrap();
    let names: Vec<&str> = members.iter().filter_map(|m| m["name"].as_str()).collect();
    assert_eq!(names, ["node1", "node2", "node3"]);
    let leaders: Vec<&str> = members
        .iter()
        .filter(|m| m["role"] == "leader")
        .filter_map(|m| m["name"].as_str())
        .collect();
    assert_eq!(leaders, [primary.as_str()]);

    // patronictl reads the same cluster from etcd.
    let out = Command::new(env!("CARGO_BIN_EXE_patronictl"))
        .args([
            "-c",
            c.node("node1").config.to_str().unwrap(),
            "list",
            "-f",
            "json",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows.as_array().map(Vec::len), Some(3));
    // Python Patroni's keys and role names (`Member`, `Role: Leader`).
    let ctl_leaders: Vec<&str> = rows
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["Role"] == "Leader")
        .filter_map(|r| r["Member"].as_str())
        .collect();
    assert_eq!(ctl_leaders, [primary.as_str()]);
    let table = Command::new(env!("CARGO_BIN_EXE_patronictl"))
        .args(["-c", c.node("node2").config.to_str().unwrap(), "list"])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(
        table.contains("| Member") && table.contains(&primary),
        "{table}"
    );

    // Seed rule 3: a standby's postmaster is killed; its agent starts it again and it streams.
    let victim = c.node(&replicas[0]);
    let old_pid = victim.postmaster_pid().unwrap();
    let t = Instant::now();
    victim.kill9_postmaster();
    c.wait(
        "the standby streaming again",
        Duration::from_secs(30),
        || async {
            let pid = victim.postmaster_pid()?;
            (pid != old_pid && c.is_streaming(&victim.name).await).then_some(())
        },
    )
    .await;
    report(
        "seed rule 3 (standby crash)",
        "standby restarted and streaming",
        t.elapsed().as_millis(),
    );
    assert_eq!(
        c.leader().await.as_deref(),
        Some(primary.as_str()),
        "no failover for a standby crash"
    );
    assert!(c.is_primary(&primary).await);
}

/// The superuser's password changes under a running agent: the leader's decisions, `/patroni`,
/// the member key and the log say the server refuses our connection (logged once), where they
/// used to say it was "still starting up" until `primary_start_timeout`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_superuser_login_reaches_the_operator() {
    let hba = "  pg_hba:\n  - local all all scram-sha-256\n  - host all all 127.0.0.1/32 scram-sha-256\n  - host replication replicator 127.0.0.1/32 scram-sha-256\n";
    let c = TestCluster::start_opts(
        "sqlerror",
        common::Options {
            nodes: 1,
            extra_postgresql: hba.into(),
            ..Default::default()
        },
    )
    .await;
    let leader = c.primary().await.expect("a primary");
    let node = c.node(&leader);
    // One session: change the password and cut the agent's connection, so it must log in again.
    node.sql(
        "ALTER ROLE postgres PASSWORD 'changed-elsewhere'; \
         SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
         WHERE application_name = 'patroni-rs'",
    )
    .expect("password changed");
    let wanted = "refuses our connection: password authentication failed for user \"postgres\"";
    // The error shows at once; the state follows with the next published member data.
    c.wait(
        "sql_error and state starting in /patroni",
        Duration::from_secs(30),
        || async {
            let (_, doc) = c.get(&leader, "/patroni").await?;
            (doc["sql_error"] == wanted && doc["state"] == "starting").then_some(())
        },
    )
    .await;
    let key = c
        .wait(
            "sql_error in the member key",
            Duration::from_secs(20),
            || async {
                let view = c.view().await?;
                let data = view.member(&leader)?.data.clone();
                data.extra.get("sql_error").is_some().then_some(data)
            },
        )
        .await;
    assert_eq!(key.extra["sql_error"], wanted);
    // A few loops later: every decision says why, the warning was logged once.
    let decision = format!("PostgreSQL is running but {wanted}; ");
    c.wait("three such decisions", Duration::from_secs(30), || async {
        let log = node.log_tail(400);
        (log.matches(&decision).count() >= 3).then_some(())
    })
    .await;
    let log = node.log_tail(400);
    assert!(!log.contains("still starting up"), "{log}");
    let warnings = log
        .lines()
        .filter(|l| l.contains(&format!("PostgreSQL is running but {wanted}")))
        .filter(|l| !l.contains("seconds until timeout"))
        .count();
    assert_eq!(warnings, 1, "{log}");
}
