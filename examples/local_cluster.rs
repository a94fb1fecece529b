//! A local three-node PostgreSQL cluster with etcd, all on loopback, and a failover drill:
//! the primary's database is made unstartable and killed; who took over, how fast, and was anything lost?
//!
//! Run with `cargo xtask demo` (installs etcd and PostgreSQL 15 when missing). The cluster is the
//! test kit's (`patroni::agent::testkit`): the agents are this program, started again as
//! `local_cluster agent CONFIG`, and run with the servers as the `patroni-test` OS user.
//! Everything runs in a temporary directory and is stopped at the end.

use std::time::{Duration, Instant};

use patroni::agent::ctl::listing::{listing, render};
use patroni::agent::ctl::Format;
use patroni::agent::testkit::{serve_agent_if_invoked, LocalCluster, Options};

/// `patronictl list` as a table, read from etcd.
async fn list(c: &LocalCluster) -> anyhow::Result<String> {
    let cluster = c.dcs.load().await?;
    Ok(render(
        &listing(&cluster, &c.scope, false, Format::Pretty),
        Format::Pretty,
    ))
}

async fn drill(c: &LocalCluster, began: Instant) -> anyhow::Result<()> {
    let primary = c.wait_healthy(Duration::from_secs(120)).await;
    println!(
        "cluster up in {} ms:\n{}\n",
        began.elapsed().as_millis(),
        list(c).await?
    );

    let old = c.node(&primary);
    old.sql("CREATE TABLE demo(i int)")
        .ok_or_else(|| anyhow::anyhow!("create table"))?;
    old.sql("INSERT INTO demo SELECT generate_series(1, 10000)")
        .ok_or_else(|| anyhow::anyhow!("insert"))?;
    let written: u64 = old
        .sql("SELECT count(*) FROM demo")
        .unwrap_or_default()
        .parse()?;
    for n in c.nodes.iter().filter(|n| n.name != old.name) {
        c.wait("rows on the standbys", Duration::from_secs(30), || async {
            (n.sql("SELECT count(*) FROM demo").as_deref() == Some(&written.to_string()))
                .then_some(())
        })
        .await;
    }
    println!(
        "wrote {written} rows on {}; both standbys have them",
        old.name
    );

    let auto = old.data_dir().join("postgresql.auto.conf");
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
    old.kill9_postmaster();
    let new_primary = c.wait_new_primary(&primary, Duration::from_secs(60)).await;
    let ms = t.elapsed().as_millis();
    let new = c.node(&new_primary);
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
    println!("{}\n", list(c).await?);

    std::fs::write(&auto, original)?;
    let t = Instant::now();
    c.wait_streaming(
        &primary,
        "the old primary back as a standby",
        Duration::from_secs(90),
    )
    .await;
    println!(
        "{} repaired: back as a streaming standby after {} ms\n{}",
        old.name,
        t.elapsed().as_millis(),
        list(c).await?
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    // The agents, and their fence processes, are this program started again.
    serve_agent_if_invoked();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()?
        .block_on(demo())
}

async fn demo() -> anyhow::Result<()> {
    let began = Instant::now();
    let opts = Options {
        scope: Some("demo".into()),
        no_wait: true,
        ..Options::default()
    };
    let mut c = LocalCluster::start("demo", opts).await;
    println!(
        "etcd on {}, cluster directory {}",
        c.etcd.endpoint(),
        c.root().display()
    );
    for n in &c.nodes {
        println!(
            "{}: REST 127.0.0.1:{}, PostgreSQL 127.0.0.1:{}",
            n.name, n.api_port, n.pg_port
        );
    }
    let result = drill(&c, began).await;
    println!("stopping the agents and their databases");
    for n in &mut c.nodes {
        n.stop_agent(60);
    }
    // Whatever still runs (a database or fence an agent left behind) is stopped by PID on drop.
    drop(c);
    result
}
