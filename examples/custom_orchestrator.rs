//! A custom orchestrator: three agents embedded in one program, each built with
//! [`AgentBuilder`] and a custom failover policy ([`SameSiteFirst`]: among the eligible standbys,
//! the one in the old primary's site wins). The program listens to each agent's decisions and
//! role changes instead of polling REST, makes the primary's database unstartable, and prints
//! which standby the policy chose. Then the same policy goes through the simulator's harness,
//! as it would before reaching production.
//!
//! Sites: node1 and node3 in `dc1`, node2 in `dc2`. node1 bootstraps; when it fails, Patroni's
//! rules would let node2 and node3 race on equal WAL, the custom policy makes it node3.
//!
//! Run: `cargo run --example custom_orchestrator` (etcd and PostgreSQL 15 installed, as for the demo).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use patroni_bin::{build_database, connect_dcs, AgentBuilder, AgentEvent, AgentHandle, Config};
use patroni_core::sim::{check_policy, SimConfig};
use patroni_core::MemberRole;
use patroni_etcd::testkit::EtcdProcess;
use patroni_postgres::testkit::{
    free_port, owned_temp_dir, pg_bin_dir, psql, test_user, TEST_PASSWORD, TEST_USER,
};
use tokio::sync::oneshot;

#[path = "support/same_site.rs"]
mod same_site;
use same_site::SameSiteFirst;

struct Node {
    name: String,
    dir: PathBuf,
    pg: u16,
    handle: AgentHandle,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Node {
    fn postmaster_pid(&self) -> Option<u32> {
        let text = std::fs::read_to_string(self.dir.join("data/postmaster.pid")).ok()?;
        let pid = text.lines().next()?.trim().parse().ok()?;
        Path::new(&format!("/proc/{pid}")).exists().then_some(pid)
    }

    fn role(&self) -> MemberRole {
        self.handle.role()
    }
}

fn yaml(name: &str, site: &str, etcd: &str, api: u16, pg: u16, dir: &Path) -> String {
    format!(
        r#"scope: orchestrated
name: {name}
tags: {{site: {site}}}
restapi: {{listen: "127.0.0.1:{api}"}}
etcd3: {{hosts: "{etcd}"}}
bootstrap:
  dcs:
    ttl: 10
    loop_wait: 2
    retry_timeout: 4
    postgresql:
      use_pg_rewind: true
      parameters: {{max_connections: 30}}
postgresql:
  listen: "127.0.0.1:{pg}"
  data_dir: {data}
  bin_dir: {bin}
  run_as: {user}
  authentication:
    superuser: {{username: postgres, password: "{pw}"}}
    replication: {{username: replicator, password: "{pw}"}}
  parameters: {{shared_buffers: 16MB, fsync: "off"}}
"#,
        data = dir.join("data").display(),
        bin = pg_bin_dir().display(),
        user = TEST_USER,
        pw = TEST_PASSWORD,
    )
}

/// Builds one agent from parts: the DCS and database adapters (here from the YAML, as any
/// program may build its own), the custom policy, and a REST listener for the peers' probes.
async fn start(name: &str, text: &str, log: bool) -> anyhow::Result<(AgentHandle, Node)> {
    let config = Config::parse(text, &format!("{name}.yml"), Vec::new())?.config;
    let node = config.node();
    let dcs = connect_dcs(&config, name, &node.bootstrap_config)?;
    let (db, config_hook) = build_database(&config)?;
    let agent = AgentBuilder::new(config.scope.clone(), node, dcs, db)
        .config_hook(config_hook)
        .policy(Box::new(SameSiteFirst))
        .rest_api(config.restapi.listen.clone())
        .pid_file(PathBuf::from(&config.postgresql.postgres.data_dir).join("postmaster.pid"))
        .build()
        .await?;
    let handle = agent.handle();
    if log {
        let mut events = handle.events();
        let who = name.to_string();
        tokio::spawn(async move {
            while let Ok(e) = events.recv().await {
                match e {
                    AgentEvent::RoleChanged { from, to } => {
                        println!("  [{who}] role {from:?} -> {to:?}")
                    }
                    AgentEvent::Decision {
                        message,
                        ineligible,
                        ..
                    } if message.contains("promoted")
                        || message.contains("healthiest")
                        || !ineligible.is_empty() =>
                    {
                        println!("  [{who}] {message}");
                        for (member, why) in ineligible {
                            println!("  [{who}]   {member}: {why}");
                        }
                    }
                    _ => {}
                }
            }
        });
    }
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        if let Err(e) = agent
            .run(async {
                let _ = rx.await;
            })
            .await
        {
            eprintln!("agent stopped with an error: {e}");
        }
    });
    let dir = PathBuf::from(&config.postgresql.postgres.data_dir)
        .parent()
        .unwrap()
        .to_path_buf();
    let pg = config
        .postgresql
        .postgres
        .listen
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or(5432);
    Ok((
        handle.clone(),
        Node {
            name: name.to_string(),
            dir,
            pg,
            handle,
            stop: Some(tx),
            task: Some(task),
        },
    ))
}

async fn wait_for<T>(what: &str, secs: u64, mut f: impl FnMut() -> Option<T>) -> anyhow::Result<T> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return Ok(v);
        }
        if Instant::now() > deadline {
            anyhow::bail!("timed out after {secs} s waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn drill(nodes: &[Node]) -> anyhow::Result<()> {
    let primary = wait_for("node1 as primary and two streaming standbys", 120, || {
        let roles: Vec<MemberRole> = nodes.iter().map(Node::role).collect();
        let streaming = nodes
            .iter()
            .filter(|n| {
                n.handle
                    .snapshot()
                    .local
                    .receiver
                    .is_some_and(|r| r.streaming)
            })
            .count();
        (roles[0] == MemberRole::Primary && streaming == 2).then_some(0)
    })
    .await?;
    let old = &nodes[primary];
    psql(old.pg, "CREATE TABLE orchestrated AS SELECT 1 AS v")
        .ok_or_else(|| anyhow::anyhow!("write on the primary"))?;
    // Both standbys at the same WAL position: only the policy tells them apart.
    wait_for("both standbys caught up", 30, || {
        nodes
            .iter()
            .skip(1)
            .all(|n| psql(n.pg, "SELECT count(*) FROM orchestrated").as_deref() == Some("1"))
            .then_some(())
    })
    .await?;
    let auto = old.dir.join("data/postgresql.auto.conf");
    let original = std::fs::read_to_string(&auto).unwrap_or_default();
    std::fs::write(&auto, format!("{original}\nshared_buffers = 'lots'\n"))?;
    let pid = old
        .postmaster_pid()
        .ok_or_else(|| anyhow::anyhow!("no postmaster on node1"))?;
    println!("node1's database made unstartable and killed (pid {pid}); the policy decides:");
    let t = Instant::now();
    Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()?;
    let chosen = wait_for("a new primary", 90, || {
        nodes
            .iter()
            .skip(1)
            .find(|n| n.role() == MemberRole::Primary)
            .map(|n| n.name.clone())
    })
    .await?;
    println!(
        "SameSiteFirst chose {chosen} ({} ms after the fault)",
        t.elapsed().as_millis()
    );
    std::fs::write(&auto, original)?;
    anyhow::ensure!(
        chosen == "node3",
        "the policy keeps the primary in dc1 (node3), but {chosen} was promoted"
    );
    // Operator requests go in-process, the same ones the REST API takes.
    let node2 = &nodes[1];
    wait_for("node2 streaming from node3", 60, || {
        node2
            .handle
            .snapshot()
            .local
            .receiver
            .is_some_and(|r| r.streaming)
            .then_some(())
    })
    .await?;
    node2
        .handle
        .set_pause(true)
        .await
        .map_err(|e| anyhow::anyhow!("pause: {e}"))?;
    node2
        .handle
        .set_pause(false)
        .await
        .map_err(|e| anyhow::anyhow!("resume: {e}"))?;
    let answer = node2
        .handle
        .switchover("node3", Some("node2"))
        .await
        .map_err(|e| anyhow::anyhow!("switchover: {e}"))?;
    println!("in-process switchover: {answer}");
    wait_for("node2 as primary", 60, || {
        (node2.role() == MemberRole::Primary).then_some(())
    })
    .await?;
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 4)]
async fn main() -> anyhow::Result<()> {
    // The agents' fence processes are this program, started as `custom_orchestrator fence ...`.
    if let Some(code) = patroni::agent::run_fence_if_invoked() {
        std::process::exit(code);
    }
    std::env::set_var(patroni::agent::FENCE_PROGRAM_ENV, std::env::current_exe()?);
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(
            std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
        ))
        .with_target(false)
        .init();
    let (uid, gid) = test_user();
    let etcd = EtcdProcess::start()
        .await
        .map_err(|e| anyhow::anyhow!("etcd: {e:?}"))?;
    let endpoint = etcd.endpoint().trim_start_matches("http://").to_string();
    let root = owned_temp_dir("patroni-orchestrator-");
    let mut nodes = Vec::new();
    for (i, site) in [(1, "dc1"), (2, "dc2"), (3, "dc1")] {
        let name = format!("node{i}");
        let dir = root.path().join(&name);
        std::fs::create_dir_all(&dir)?;
        std::os::unix::fs::chown(&dir, Some(uid), Some(gid))?;
        let text = yaml(&name, site, &endpoint, free_port(), free_port(), &dir);
        let (_, node) = start(&name, &text, true).await?;
        nodes.push(node);
        if i == 1 {
            // node1 bootstraps before the others start, so the drill begins from dc1.
            wait_for("node1 to bootstrap", 60, || {
                (nodes[0].role() == MemberRole::Primary).then_some(())
            })
            .await?;
        }
    }
    let result = drill(&nodes).await;
    for n in &mut nodes {
        if let Some(tx) = n.stop.take() {
            let _ = tx.send(());
        }
    }
    for n in &mut nodes {
        if let Some(t) = n.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(60), t).await;
        }
        if let Some(pid) = n.postmaster_pid() {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
    }
    drop(etcd);
    result?;

    // The policy that just decided a real failover, through the simulator's invariants.
    let started = Instant::now();
    let stats = check_policy(
        Arc::new(|| Box::new(SameSiteFirst) as _),
        patroni_core::sim::cases(100),
        |cfg: &mut SimConfig| {
            for (node, dc) in cfg.nodes.iter_mut().zip(["dc1", "dc2", "dc1"]) {
                node.tags.custom.insert("site".into(), dc.into());
            }
        },
    )
    .map_err(|f| anyhow::anyhow!("the simulator found a violation:\n{f}"))?;
    println!(
        "and the simulator agrees: {} fault schedules, {} promotions, every invariant held ({:.1} s)",
        stats.cases,
        stats.promotions,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
