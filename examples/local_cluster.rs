//! A local three-node PostgreSQL cluster with etcd, all on loopback, and a failover drill:
//! the primary's database is made unstartable and killed; who took over, how fast, and was anything lost?
//!
//! Run with `cargo xtask demo` (installs etcd and PostgreSQL 15 when missing). Everything runs in a
//! temporary directory and is stopped at the end; the servers run as the `patroni-test` OS user.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use patroni_bin::ctl::listing::{listing, render};
use patroni_bin::ctl::output::Format;
use patroni_bin::Config;
use patroni_core::Dcs;
use patroni_etcd::testkit::EtcdProcess;
use patroni_etcd::{EtcdDcs, EtcdIdentity};
use patroni_postgres::testkit::{
    free_port, owned_temp_dir, pg_bin_dir, psql, test_user, TEST_PASSWORD, TEST_USER,
};
use tokio::sync::oneshot;

struct Node {
    name: String,
    dir: PathBuf,
    api: u16,
    pg: u16,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Node {
    fn sql(&self, q: &str) -> Option<String> {
        psql(self.pg, q)
    }

    fn postmaster_pid(&self) -> Option<u32> {
        let text = std::fs::read_to_string(self.dir.join("data/postmaster.pid")).ok()?;
        let pid = text.lines().next()?.trim().parse().ok()?;
        Path::new(&format!("/proc/{pid}")).exists().then_some(pid)
    }
}

fn yaml(scope: &str, name: &str, etcd: &str, api: u16, pg: u16, dir: &Path) -> String {
    format!(
        r#"scope: {scope}
name: {name}
restapi: {{listen: "127.0.0.1:{api}"}}
etcd3: {{hosts: "{etcd}"}}
bootstrap:
  dcs:
    ttl: 10
    loop_wait: 2
    retry_timeout: 4
    postgresql:
      use_pg_rewind: true
      parameters: {{wal_log_hints: "on", wal_keep_size: 64MB, max_connections: 30}}
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

async fn status(http: &reqwest::Client, node: &Node, path: &str) -> Option<serde_json::Value> {
    let r = http
        .get(format!("http://127.0.0.1:{}{path}", node.api))
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .ok()?;
    if !r.status().is_success() {
        return None;
    }
    r.json().await.ok()
}

async fn primary(http: &reqwest::Client, nodes: &[Node]) -> Option<usize> {
    let mut found = None;
    for (i, n) in nodes.iter().enumerate() {
        if status(http, n, "/primary").await.is_some() {
            if found.is_some() {
                return None;
            }
            found = Some(i);
        }
    }
    found
}

async fn streaming(http: &reqwest::Client, n: &Node) -> bool {
    status(http, n, "/patroni")
        .await
        .is_some_and(|d| d["role"] == "replica" && d["replication_state"] == "streaming")
}

async fn wait_until<T, F, Fut>(what: &str, secs: u64, mut f: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return Ok(v);
        }
        if Instant::now() > deadline {
            anyhow::bail!("timed out after {secs} s waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `patronictl list` as a table, read from etcd.
struct Ctl {
    dcs: EtcdDcs,
    scope: String,
}

impl Ctl {
    async fn list(&self) -> anyhow::Result<String> {
        let cluster = self.dcs.load().await?;
        Ok(render(
            &listing(&cluster, &self.scope, false, Format::Pretty),
            Format::Pretty,
        ))
    }
}

async fn drill(nodes: &mut [Node], ctl: &Ctl, http: &reqwest::Client) -> anyhow::Result<()> {
    let t = Instant::now();
    let p = wait_until("a primary and two streaming standbys", 120, || async {
        let p = primary(http, nodes).await?;
        for (i, n) in nodes.iter().enumerate() {
            if i != p && !streaming(http, n).await {
                return None;
            }
        }
        Some(p)
    })
    .await?;
    println!(
        "cluster up in {} ms:\n{}\n",
        t.elapsed().as_millis(),
        ctl.list().await?
    );

    let old = &nodes[p];
    old.sql("CREATE TABLE demo(i int)")
        .ok_or_else(|| anyhow::anyhow!("create table"))?;
    old.sql("INSERT INTO demo SELECT generate_series(1, 10000)")
        .ok_or_else(|| anyhow::anyhow!("insert"))?;
    let written: u64 = old
        .sql("SELECT count(*) FROM demo")
        .unwrap_or_default()
        .parse()?;
    for n in nodes.iter().filter(|n| n.name != old.name) {
        wait_until("rows on the standbys", 30, || async {
            (n.sql("SELECT count(*) FROM demo").as_deref() == Some(&written.to_string()))
                .then_some(())
        })
        .await?;
    }
    println!(
        "wrote {written} rows on {}; both standbys have them",
        old.name
    );

    let auto = old.dir.join("data/postgresql.auto.conf");
    let original = std::fs::read_to_string(&auto).unwrap_or_default();
    std::fs::write(&auto, format!("{original}\nshared_buffers = 'lots'\n"))?;
    let pid = old
        .postmaster_pid()
        .ok_or_else(|| anyhow::anyhow!("no postmaster"))?;
    println!(
        "making {}'s database unstartable (bad shared_buffers) and killing its postmaster (pid {pid})",
        old.name
    );
    let t = Instant::now();
    Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()?;
    let np = wait_until("a new primary", 60, || async {
        primary(http, nodes).await.filter(|&i| i != p)
    })
    .await?;
    let ms = t.elapsed().as_millis();
    let new = &nodes[np];
    let have: u64 = new
        .sql("SELECT count(*) FROM demo")
        .unwrap_or_default()
        .parse()?;
    println!(
        "{} promoted after {ms} ms; rows on the new primary: {have} of {written} ({})",
        new.name,
        if have == written {
            "no writes lost"
        } else {
            "WRITES LOST"
        }
    );
    println!("{}\n", ctl.list().await?);

    std::fs::write(&auto, original)?;
    let t = Instant::now();
    let old = &nodes[p];
    wait_until("the old primary back as a standby", 90, || async {
        streaming(http, old).await.then_some(())
    })
    .await?;
    println!(
        "{} repaired: back as a streaming standby after {} ms\n{}",
        old.name,
        t.elapsed().as_millis(),
        ctl.list().await?
    );
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 4)]
async fn main() -> anyhow::Result<()> {
    // The agents' fence processes are this program, started as `local_cluster fence ...`.
    if let Some(code) = patroni::agent::fence::run_if_invoked() {
        std::process::exit(code);
    }
    std::env::set_var(patroni::agent::fence::PROGRAM_ENV, std::env::current_exe()?);
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(
            std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
        ))
        .with_target(false)
        .init();
    test_user();
    let etcd = EtcdProcess::start()
        .await
        .map_err(|e| anyhow::anyhow!("etcd: {e:?}"))?;
    let root = owned_temp_dir("patroni-demo-");
    let scope = "demo";
    let endpoint = etcd.endpoint().trim_start_matches("http://").to_string();
    println!(
        "etcd on {endpoint}, cluster directory {}",
        root.path().display()
    );
    let (uid, gid) = test_user();
    let mut nodes = Vec::new();
    for i in 1..=3 {
        let name = format!("node{i}");
        let dir = root.path().join(&name);
        std::fs::create_dir_all(&dir)?;
        std::os::unix::fs::chown(&dir, Some(uid), Some(gid))?;
        let (api, pg) = (free_port(), free_port());
        let text = yaml(scope, &name, &endpoint, api, pg, &dir);
        let loaded = Config::parse(&text, &format!("{name}.yml"), Vec::new())?;
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let r = patroni_bin::runtime::run(loaded.config, async {
                let _ = rx.await;
            })
            .await;
            if let Err(e) = r {
                eprintln!("agent stopped with an error: {e}");
            }
        });
        println!("{name}: REST 127.0.0.1:{api}, PostgreSQL 127.0.0.1:{pg}");
        nodes.push(Node {
            name,
            dir,
            api,
            pg,
            stop: Some(tx),
            task: Some(task),
        });
    }
    let dcs = EtcdDcs::new(&etcd.config(), EtcdIdentity::new(scope, "demo-observer"))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let ctl = Ctl {
        dcs,
        scope: scope.to_string(),
    };
    let http = reqwest::Client::new();
    let result = drill(&mut nodes, &ctl, &http).await;
    println!("stopping the agents and their databases");
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
        // The agent told its fence to exit; one that did not is stopped by its recorded pid.
        let fence = patroni::agent::fence::FencePaths::beside(&n.dir.join("data"));
        if let Some(pid) = patroni::agent::fence::running_fence(&fence.pid) {
            let _ = Command::new("kill")
                .args(["-s", "KILL", "--", &pid.to_string()])
                .status();
        }
    }
    drop(etcd);
    result
}
