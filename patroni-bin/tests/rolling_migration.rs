//! A running Python Patroni cluster is migrated to patroni-rs node by node, as an operator would:
//! pause, replace each node's agent (the database keeps running), resume, then a switchover to
//! one of ours. The cluster was tuned through `/config` (parameters, slots) by Python; a writer
//! runs throughout. No data directory is rebuilt and no acknowledged write is lost.

mod common;

use std::collections::HashSet;
use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::pyvenv::venv;
use common::writer::{lost, overlaps, Writer};
use patroni_bin::testkit::signal_if_cmdline;
use patroni_etcd::testkit::EtcdProcess;
use patroni_postgres::testkit::{
    free_port, owned_temp_dir, pg_bin_dir, psql, test_user, TEST_PASSWORD,
};
use serde_json::Value;

struct Member {
    name: String,
    dir: PathBuf,
    api: u16,
    pg: u16,
    agent: Option<Child>,
    /// `python` or `rust`, for messages.
    kind: &'static str,
}

impl Member {
    fn config(&self) -> PathBuf {
        self.dir.join("patroni.yml")
    }

    fn log(&self) -> PathBuf {
        self.dir.join(format!("agent-{}.log", self.kind))
    }

    /// Starts `program args... config` as the test user, logging to the member's file.
    fn start(&mut self, kind: &'static str, program: &Path, args: &[&str]) {
        assert!(self.agent.is_none());
        self.kind = kind;
        let (uid, gid) = test_user();
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.log())
            .unwrap();
        let child = Command::new(program)
            .args(args)
            .arg(self.config())
            .env("RUST_LOG", "info")
            .env("HOME", &self.dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .uid(uid)
            .gid(gid)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", program.display()));
        self.agent = Some(child);
    }

    /// SIGTERM to the agent we started (checked by its command line), waiting for it to exit.
    fn stop(&mut self) {
        let Some(mut child) = self.agent.take() else {
            return;
        };
        signal_if_cmdline(child.id(), "patroni", "TERM");
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    fn sql(&self, q: &str) -> Option<String> {
        psql(self.pg, q)
    }

    fn postmaster_pid(&self) -> Option<u32> {
        let text = std::fs::read_to_string(self.dir.join("data/postmaster.pid")).ok()?;
        text.lines().next()?.trim().parse().ok()
    }

    fn tail(&self) -> String {
        let text = std::fs::read_to_string(self.log()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        if let Some(mut c) = self.agent.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        // The server was started by an agent we stopped; stop it by its pid, checked.
        if let Some(pid) = self.postmaster_pid() {
            signal_if_cmdline(pid, "postgres", "KILL");
        }
    }
}

/// One YAML both agents read: Patroni's layout, which ours takes as it is.
fn yaml(scope: &str, m: &Member, etcd: &str) -> String {
    format!(
        r#"scope: {scope}
name: {name}
restapi:
  listen: 127.0.0.1:{api}
  connect_address: 127.0.0.1:{api}
etcd3:
  hosts: {etcd}
bootstrap:
  dcs:
    ttl: 20
    loop_wait: 2
    retry_timeout: 4
    maximum_lag_on_failover: 16777216
    postgresql:
      use_pg_rewind: true
      use_slots: true
      parameters:
        max_connections: 60
        wal_keep_size: 64MB
        work_mem: 6MB
  initdb:
  - auth-host: scram-sha-256
  - auth-local: trust
postgresql:
  listen: 127.0.0.1:{pg}
  connect_address: 127.0.0.1:{pg}
  data_dir: {dir}/data
  bin_dir: {bin}
  pgpass: {dir}/pgpass
  authentication:
    superuser: {{username: postgres, password: "{pw}"}}
    replication: {{username: replicator, password: "{pw}"}}
  parameters:
    shared_buffers: 16MB
    fsync: "off"
    unix_socket_directories: {dir}
  pg_hba:
  - local all all trust
  - host replication replicator 127.0.0.1/32 scram-sha-256
  - host all all 127.0.0.1/32 scram-sha-256
"#,
        name = m.name,
        api = m.api,
        pg = m.pg,
        dir = m.dir.display(),
        bin = pg_bin_dir().display(),
        pw = TEST_PASSWORD,
    )
}

async fn cluster_doc(http: &reqwest::Client, api: u16) -> Option<Value> {
    http.get(format!("http://127.0.0.1:{api}/cluster"))
        .timeout(Duration::from_secs(3))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()
}

/// Waits for one leader and every other member streaming, as `/cluster` on `api` says.
async fn wait_healthy(http: &reqwest::Client, api: u16, members: &[Member], what: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(doc) = cluster_doc(http, api).await {
            let ms = doc["members"].as_array().cloned().unwrap_or_default();
            let leader = ms
                .iter()
                .find(|m| m["role"] == "leader" && m["state"] == "running")
                .and_then(|m| m["name"].as_str().map(str::to_string));
            let streaming = ms
                .iter()
                .filter(|m| m["role"] != "leader" && m["state"] == "streaming")
                .count();
            if let (Some(l), true) = (leader, streaming == members.len() - 1) {
                return l;
            }
        }
        if Instant::now() > deadline {
            for m in members {
                eprintln!("===== {} ({}) =====\n{}", m.name, m.kind, m.tail());
            }
            panic!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn patronictl(bin: &Path, config: &Path, args: &[&str]) -> String {
    let out = Command::new(bin.join("patronictl"))
        .arg("-c")
        .arg(config)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run patronictl");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "patronictl {args:?}: {text}");
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_patroni_cluster_is_migrated_node_by_node() {
    let py = venv();
    let etcd = EtcdProcess::start().await.expect("etcd");
    let endpoint = etcd.endpoint().trim_start_matches("http://").to_string();
    let root = owned_temp_dir("patroni-migrate-");
    let scope = format!("migrate-{}", std::process::id());
    let (uid, gid) = test_user();
    let mut members: Vec<Member> = (1..=3)
        .map(|i| {
            let dir = root.path().join(format!("node{i}"));
            std::fs::create_dir_all(&dir).unwrap();
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).unwrap();
            Member {
                name: format!("node{i}"),
                dir,
                api: free_port(),
                pg: free_port(),
                agent: None,
                kind: "python",
            }
        })
        .collect();
    for m in &members {
        std::fs::write(m.config(), yaml(&scope, m, &endpoint)).unwrap();
    }
    let python_patroni = py.join("patroni");
    // node1 first, so it bootstraps; the others clone from it.
    members[0].start("python", &python_patroni, &[]);
    tokio::time::sleep(Duration::from_secs(3)).await;
    for m in members.iter_mut().skip(1) {
        m.start("python", &python_patroni, &[]);
    }
    let http = reqwest::Client::new();
    let leader = wait_healthy(&http, members[0].api, &members, "the Python cluster").await;
    let ctl_config = members[0].config();
    // Tuned through /config by Python's own tools: a parameter and a permanent slot.
    patronictl(
        &py,
        &ctl_config,
        &[
            "edit-config",
            "--force",
            "-p",
            "work_mem=7MB",
            "-s",
            "permanent_slots.keeper.type=physical",
        ],
    );
    let ids: Vec<String> = members
        .iter()
        .map(|m| {
            m.sql("SELECT system_identifier FROM pg_control_system()")
                .unwrap()
        })
        .collect();
    assert!(ids.iter().all(|i| *i == ids[0]), "{ids:?}");
    // A marker only this data directory has: a rebuild would take it away.
    for m in &members {
        std::fs::write(m.dir.join("data/migration-marker"), &m.name).unwrap();
    }
    let lead = members.iter().find(|m| m.name == leader).unwrap();
    lead.sql("CREATE TABLE migration (id bigint PRIMARY KEY)")
        .unwrap();
    let t0 = Instant::now();
    let ports: Vec<u16> = members.iter().map(|m| m.pg).collect();
    let writer = Writer::multi_host(&ports, "migration", t0);

    // Pause, then replace each agent: replicas first, the leader last.
    patronictl(&py, &ctl_config, &["pause", "--wait"]);
    let mut order: Vec<usize> = (0..3).filter(|&i| members[i].name != leader).collect();
    order.push(members.iter().position(|m| m.name == leader).unwrap());
    let ours = PathBuf::from(env!("CARGO_BIN_EXE_patroni"));
    for i in order {
        let pm = members[i].postmaster_pid();
        members[i].stop();
        assert_eq!(
            members[i].postmaster_pid(),
            pm,
            "{}: the database must keep running while paused",
            members[i].name
        );
        members[i].start("rust", &ours, &[]);
        let api = members[i].api;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ok = http
                .get(format!("http://127.0.0.1:{api}/patroni"))
                .timeout(Duration::from_secs(2))
                .send()
                .await
                .ok()
                .filter(|r| r.status().is_success());
            if ok.is_some() {
                break;
            }
            assert!(Instant::now() < deadline, "{}", members[i].tail());
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let ctl = PathBuf::from(env!("CARGO_BIN_EXE_patronictl"));
    let run_ours = |args: &[&str]| {
        let out = Command::new(&ctl)
            .arg("-c")
            .arg(&ctl_config)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "our patronictl {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run_ours(&["resume"]);
    let leader = wait_healthy(
        &http,
        members[0].api,
        &members,
        "our agents after the resume",
    )
    .await;
    // The cluster's parameter reached every member, the slots are there.
    for m in &members {
        let deadline = Instant::now() + Duration::from_secs(30);
        while m.sql("SHOW work_mem").as_deref() != Some("7MB") {
            assert!(
                Instant::now() < deadline,
                "{}: work_mem from /config not applied\n{}\n/config: {}",
                m.name,
                m.tail(),
                patronictl(&py, &ctl_config, &["show-config"])
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    // Python's `edit-config --pg` reaches every one of our agents.
    patronictl(
        &py,
        &ctl_config,
        &["edit-config", "--force", "-p", "work_mem=9MB"],
    );
    for m in &members {
        let deadline = Instant::now() + Duration::from_secs(30);
        while m.sql("SHOW work_mem").as_deref() != Some("9MB") {
            assert!(
                Instant::now() < deadline,
                "{}: work_mem not applied\n{}",
                m.name,
                m.tail()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    // A switchover to one of ours, through Python's patronictl.
    let target = members
        .iter()
        .map(|m| m.name.clone())
        .find(|n| *n != leader)
        .unwrap();
    patronictl(
        &py,
        &ctl_config,
        &[
            "switchover",
            "--force",
            "--leader",
            &leader,
            "--candidate",
            &target,
        ],
    );
    let now_leader = wait_healthy(&http, members[0].api, &members, "the switchover").await;
    assert_eq!(now_leader, target);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let acks = writer.finish();
    assert!(
        acks.len() > 50,
        "the writer barely ran: {} acks",
        acks.len()
    );
    let primary = members.iter().find(|m| m.name == target).unwrap();
    let present: HashSet<u64> = primary
        .sql("SELECT string_agg(id::text, ',') FROM migration")
        .unwrap_or_default()
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    assert_eq!(
        lost(&acks, &present),
        Vec::<u64>::new(),
        "acknowledged writes lost"
    );
    assert!(
        overlaps(&acks).is_empty(),
        "two nodes accepted writes at once"
    );
    for m in &members {
        assert_eq!(
            std::fs::read_to_string(m.dir.join("data/migration-marker"))
                .ok()
                .as_deref(),
            Some(m.name.as_str()),
            "{}: the data directory was rebuilt",
            m.name
        );
        let id = m.sql("SELECT system_identifier FROM pg_control_system()");
        assert_eq!(id.as_ref(), Some(&ids[0]), "{}", m.name);
        assert!(
            m.sql("SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'keeper'")
                .as_deref()
                == Some("1"),
            "{}: the permanent slot",
            m.name
        );
    }
    println!(
        "rolling migration: {} writes acknowledged, 0 lost, longest write gap {:?}",
        acks.len(),
        common::writer::longest_gap(&acks, Duration::ZERO, t0.elapsed())
    );
    for m in &mut members {
        m.stop();
    }
    drop(etcd);
}
