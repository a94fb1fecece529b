//! Failover on a real cluster, measured: etcd and three PostgreSQL 15 nodes on loopback, each
//! with its agent as a separate process (the kit's `LocalCluster`), writers inserting into every
//! node every 100 ms over a connection each and recording each acknowledged insert. Each scenario
//! is injected at a random phase of the loop, repeated, under both timing profiles (and
//! synchronous mode where it matters); the table gives the write outage (the longest gap between
//! acknowledged writes around the fault), acknowledged writes lost, and for S6 the writes the old
//! primary still acknowledged after the new one took its first. Idle cost (agent RSS and CPU, etcd
//! requests per second) and PostgreSQL's own restart time are measured on the same machine. JSON
//! goes to `target/failover-bench.json`.
//!
//! `cargo bench --bench failover` runs everything (about 20 minutes; `PATRONI_BENCH_REPS` sets the
//! repetitions, default 5; `PATRONI_BENCH_PROFILE=fast|default` runs one timing profile;
//! `PATRONI_BENCH_SCENARIOS=S1,S3` runs only those, `none` only the idle measurement). The fast
//! profile and the default profile's asynchronous and synchronous runs go side by side, each on
//! clusters of its own (the default profile's lease waits leave the machine idle for minutes),
//! taking turns for everything but S3's and S6's lease waits (see [`STAGE`]);
//! `PATRONI_BENCH_SERIAL=1` runs them one after the other.
//! Progress and each repetition's heal time go to stderr. Under `cargo test --benches` it runs
//! one repetition of S1 only, so the harness never rots.
//!
//! | scenario | fault |
//! |---|---|
//! | S1 | the primary's postmaster SIGKILLed (it can start again) |
//! | S2b | the primary's configuration broken, then its postmaster SIGKILLed (it cannot start) |
//! | S3 | the primary's node lost: agent, fence and postmaster SIGKILLed |
//! | S4 | a standby's postmaster SIGKILLed: time until it streams again |
//! | S5 | a switchover through the REST API |
//! | S6 | the primary's agent SIGKILLed, its postgres left running (the fence must stop it) |

#[path = "support/timeline.rs"]
mod timeline;

use std::collections::{BTreeMap, HashSet};
use std::ops::{Deref, DerefMut};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use patroni::agent::testkit::writer::{outage, Ack, Writer};
use patroni::agent::testkit::{serve_agent_if_invoked, LocalCluster, Options, Profile};
use patroni_postgres::testkit::{pg_bin_dir, test_user};
use serde_json::{json, Value};

const DEFAULT: Profile = Profile::DEFAULT;
const FAST: Profile = Profile::FAST;

/// One cluster of the kit, driven from the bench's threads, with a blocking client for etcd's
/// JSON gateway and metrics. Every process it started is stopped by the kit on drop, by the pid it
/// started (checked by its command line), even when a measurement panics.
struct Cluster {
    kit: LocalCluster,
    rt: tokio::runtime::Handle,
    http: reqwest::blocking::Client,
}

impl Deref for Cluster {
    type Target = LocalCluster;

    fn deref(&self) -> &LocalCluster {
        &self.kit
    }
}

impl DerefMut for Cluster {
    fn deref_mut(&mut self) -> &mut LocalCluster {
        &mut self.kit
    }
}

impl Cluster {
    fn start(rt: &tokio::runtime::Runtime, p: Profile, sync: bool) -> Cluster {
        let opts = Options {
            scope: Some("bench".into()),
            profile: p,
            synchronous_mode: sync,
            no_wait: true,
            ..Options::default()
        };
        let c = Cluster {
            kit: rt.block_on(LocalCluster::start("bench", opts)),
            rt: rt.handle().clone(),
            http: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(2))
                .build()
                .unwrap(),
        };
        let p = c.healthy(Duration::from_secs(120));
        c.nodes[p]
            .sql("CREATE TABLE IF NOT EXISTS bench_writes (id bigint PRIMARY KEY)")
            .expect("create the table");
        c
    }

    /// The position of the node named `name`.
    fn index(&self, name: &str) -> usize {
        self.nodes.iter().position(|n| n.name == name).unwrap()
    }

    fn get(&self, i: usize, path: &str) -> Option<(u16, Value)> {
        self.rt.block_on(self.kit.get(&self.nodes[i].name, path))
    }

    /// One primary and two streaming standbys: the primary.
    fn ready(&self) -> Option<usize> {
        let p = self.rt.block_on(self.kit.healthy())?;
        Some(self.index(&p))
    }

    /// Waits for one primary and two streaming standbys; returns the primary.
    fn healthy(&self, within: Duration) -> usize {
        let p = self.rt.block_on(self.kit.wait_healthy(within));
        self.index(&p)
    }

    /// [`healthy`](Self::healthy) after a fault, asking every member for a cycle now and then
    /// (`POST /reload` wakes the loop): a rejoining node's replication slot is created by the
    /// leader's loop, and it would otherwise wait for the leader's next `loop_wait`. The heal is
    /// not measured; only the cluster the next fault meets is, and that is the same either way.
    fn healed(&self, within: Duration) -> usize {
        let deadline = Instant::now() + within;
        loop {
            let poke_until = Instant::now() + Duration::from_secs(1);
            while Instant::now() < poke_until {
                if let Some(p) = self.ready() {
                    return p;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            if Instant::now() > deadline {
                return self.healthy(Duration::ZERO);
            }
            for n in &self.nodes {
                let _ = self.http.post(format!("{}/reload", n.api())).send();
            }
        }
    }

    /// In synchronous mode, waits until `/sync` names a standby: until then no member may be
    /// promoted (the primary may hold acknowledged commits no standby has), by design, and a
    /// fault in that window measures the window, not the failover.
    fn sync_recorded(&self, i: usize, within: Duration) {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some((200, doc)) = self.get(i, "/cluster") {
                let members = doc["members"].as_array().cloned().unwrap_or_default();
                if members.iter().any(|m| m["role"] == "sync_standby") {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("no synchronous standby recorded in /sync");
    }

    fn patch_config(&self, i: usize, body: Value) {
        let code = self
            .rt
            .block_on(self.kit.patch_config(&self.nodes[i].name, body));
        assert!(
            code.is_some_and(|c| (200..300).contains(&c)),
            "PATCH /config: {code:?}"
        );
    }

    fn ids_on(&self, i: usize) -> HashSet<u64> {
        self.nodes[i]
            .sql("SELECT coalesce(string_agg(id::text, ','), '') FROM bench_writes")
            .unwrap_or_default()
            .split(',')
            .filter_map(|s| s.trim().parse().ok())
            .collect()
    }
}

/// One repetition's measurements.
#[derive(Clone, Default)]
struct Run {
    /// Write outage, or for S4 the time until the standby streams again.
    ms: u128,
    lost: usize,
    old_after_new: usize,
    /// Every acknowledged write (node, time), for the timeline picture.
    acks: Vec<(usize, Duration)>,
    fault_at: Duration,
    /// The first write after the fault that ended the outage: node and time.
    resumed: Option<(usize, Duration)>,
    /// S3/S6: from the moment the old leader key vanished (its lease ran out) to the first write
    /// on the new primary: what the agent adds to the lease's own wait.
    after_lock_ms: Option<u128>,
}

/// The leader key's value as etcd's JSON gateway returns it (base64), `None` when there is none.
fn leader_key(c: &Cluster) -> Option<String> {
    // base64 of `/service/bench/leader`.
    let body = json!({"key": "L3NlcnZpY2UvYmVuY2gvbGVhZGVy"});
    let doc: Value = c
        .http
        .post(format!("{}/v3/kv/range", c.etcd.endpoint()))
        .timeout(Duration::from_secs(2))
        .json(&body)
        .send()
        .ok()?
        .json()
        .ok()?;
    doc["kvs"][0]["value"].as_str().map(str::to_string)
}

/// Watches the leader key from the fault on and returns when it stopped naming the old leader
/// (writers' clock), polling every 10 ms.
fn lock_lost_at(c: &Cluster, w: &Writer, held: Option<String>, until: Instant) -> Option<Duration> {
    while Instant::now() < until {
        if leader_key(c) != held {
            return Some(w.now());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

fn random_phase(loop_wait: u64) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64;
    Duration::from_millis(nanos % (loop_wait * 1000).max(1))
}

/// Held by a lane for what must not share the machine with another lane's: a short scenario's
/// whole repetition (its outage is a fraction of a second), every heal and every cluster start
/// (the busy parts). S3 and S6 wait for a lease for most of their repetition and leave the stage
/// to the others meanwhile.
static STAGE: Mutex<()> = Mutex::new(());

fn on_stage() -> std::sync::MutexGuard<'static, ()> {
    STAGE.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs one repetition of `scenario` on a healthy cluster and heals it afterwards.
fn once(c: &mut Cluster, scenario: &str, p: Profile, sync: bool) -> Run {
    let short = !matches!(scenario, "S3" | "S6");
    let mut stage = short.then(on_stage);
    let primary = c.healthy(Duration::from_secs(180));
    if sync {
        c.sync_recorded(primary, Duration::from_secs(60));
    }
    let standby = (0..3).find(|&i| i != primary).unwrap();
    // Ids unique across repetitions on one cluster: a reused id fails its INSERT (duplicate key)
    // and would look like an outage.
    let first_id = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64;
    let every = Duration::from_millis(100);
    let w = Writer::to("bench_writes", Instant::now())
        .every(every)
        .retry(every)
        .first_id(first_id)
        .per_node(&c.pg_ports());
    let names: Vec<String> = c.nodes.iter().map(|n| n.name.clone()).collect();
    let node = |a: &Ack| names.iter().position(|n| *n == a.node).unwrap();
    // The fault comes only once writes are acknowledged, so the gap measured is the fault's.
    let ready = Instant::now() + Duration::from_secs(30);
    while !w.acks().iter().any(|a| node(a) == primary) {
        assert!(
            Instant::now() < ready,
            "no write acknowledged by the primary before the fault"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(1500) + random_phase(p.loop_wait));
    let held = leader_key(c);
    let fault_at = w.now();
    let auto = c.nodes[primary].data_dir().join("postgresql.auto.conf");
    let mut original = None;
    let mut run = Run::default();
    match scenario {
        "S1" => c.nodes[primary].kill9_postmaster(),
        "S2b" => {
            let text = std::fs::read_to_string(&auto).unwrap_or_default();
            std::fs::write(&auto, format!("{text}\nshared_buffers = 'lots'\n")).unwrap();
            original = Some(text);
            c.nodes[primary].kill9_postmaster();
        }
        "S3" => {
            c.nodes[primary].kill9_agent();
            c.nodes[primary].kill9_fence();
            c.nodes[primary].kill9_postmaster();
        }
        "S4" => {
            let old = c.nodes[standby].postmaster_pid();
            let t = Instant::now();
            c.nodes[standby].kill9_postmaster();
            // Streaming again means a new postmaster whose WAL receiver streams.
            let deadline = Instant::now() + Duration::from_secs(120);
            loop {
                let pm = c.nodes[standby].postmaster_pid();
                let streams = c.nodes[standby]
                    .sql("SELECT count(*) FROM pg_stat_wal_receiver WHERE status = 'streaming'");
                if pm.is_some() && pm != old && streams.as_deref() == Some("1") {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "the standby did not stream again"
                );
                std::thread::sleep(Duration::from_millis(10));
            }
            run.ms = t.elapsed().as_millis();
        }
        "S5" => {
            // In synchronous mode only the synchronous standby may be named: let the primary pick.
            let candidate = (!sync).then(|| c.nodes[standby].name.clone());
            let body = json!({"leader": c.nodes[primary].name, "candidate": candidate});
            let r =
                c.rt.block_on(c.post(&c.nodes[primary].name, "/switchover", body));
            assert!(
                r.as_ref()
                    .is_some_and(|(code, _)| (200..300).contains(code)),
                "switchover: {r:?}"
            );
        }
        "S6" => c.nodes[primary].kill9_agent(),
        other => panic!("unknown scenario {other}"),
    }
    let lock_lost = matches!(scenario, "S3" | "S6")
        .then(|| lock_lost_at(c, &w, held, Instant::now() + Duration::from_secs(p.ttl * 3)))
        .flatten();
    // Writes resume: on the same node after S1 (and S4 never stops them), on another one after
    // a failover or switchover; the old primary's own acks until its fence stops it do not count.
    let same_node = matches!(scenario, "S1" | "S4");
    let deadline = Instant::now() + Duration::from_secs(p.ttl * 4 + 60);
    loop {
        let resumed = w.acks().iter().any(|a| {
            a.at > fault_at + Duration::from_millis(200) && (same_node || node(a) != primary)
        });
        if resumed || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(1500));
    let end = w.now();
    let acks = w.finish();
    run.fault_at = fault_at;
    run.acks = acks.iter().map(|a| (node(a), a.at)).collect();
    run.resumed = (scenario != "S4")
        .then(|| {
            acks.iter().find(|a| {
                a.at > fault_at + Duration::from_millis(200) && (same_node || node(a) != primary)
            })
        })
        .flatten()
        .map(|a| (node(a), a.at));
    run.after_lock_ms = lock_lost
        .zip(run.resumed)
        .map(|(lost, (_, at))| at.saturating_sub(lost).as_millis());
    if scenario != "S4" {
        // Only the acks that reached a writer count as service: for a failover, the old
        // primary's last acks before its fence and the new primary's first ones bound the gap.
        run.ms = outage(&acks, fault_at, end).as_millis();
    }
    let moved_to = acks
        .iter()
        .rev()
        .find(|a| a.at > fault_at)
        .map(|a| a.node.clone())
        .unwrap_or_else(|| "nobody".into());
    eprintln!(
        "  {scenario}: {} ms, writes on {moved_to} afterwards (was {})",
        run.ms, c.nodes[primary].name
    );
    let new_primary = acks.last().map(node).unwrap_or(primary);
    if new_primary != primary {
        if let Some(first_new) = acks
            .iter()
            .find(|a| node(a) == new_primary && a.at > fault_at)
        {
            run.old_after_new = acks
                .iter()
                .filter(|a| node(a) == primary && a.at > first_new.at)
                .count();
        }
    }
    // Heal: the original configuration back, the lost node's agent started again.
    if let Some(text) = original {
        std::fs::write(&auto, text).unwrap();
    }
    if stage.is_none() {
        stage = Some(on_stage());
    }
    if c.nodes[primary].agent_pid().is_none() {
        c.nodes[primary].start_agent();
    }
    let heal = Instant::now();
    let now = c.healed(Duration::from_secs(240));
    // A rejoined standby catches up before the next fault can make it the candidate.
    std::thread::sleep(Duration::from_secs(p.loop_wait.min(3)));
    eprintln!(
        "  {scenario}: fault at {:.1} s after the writers started, healed in {:.1} s",
        fault_at.as_secs_f64(),
        heal.elapsed().as_secs_f64()
    );
    let present = c.ids_on(now);
    run.lost = acks.iter().filter(|a| !present.contains(&a.id)).count();
    drop(stage);
    run
}

/// PostgreSQL's own time from SIGKILL to the first write on the same machine, without an agent:
/// the cluster paused, the primary's postmaster killed and started again with `pg_ctl start -w`.
fn postgres_restart(c: &Cluster) -> u128 {
    let p = c.healthy(Duration::from_secs(120));
    c.patch_config(p, json!({"pause": true}));
    std::thread::sleep(Duration::from_secs(3));
    let m = &c.nodes[p];
    let t = Instant::now();
    m.kill9_postmaster();
    while m.postmaster_pid().is_some() {
        std::thread::sleep(Duration::from_millis(5));
    }
    let (uid, gid) = test_user();
    let status = Command::new(pg_bin_dir().join("pg_ctl"))
        .args(["start", "-w", "-D"])
        .arg(m.data_dir())
        .arg("-l")
        .arg(m.dir.join("manual-start.log"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .uid_gid(uid, gid)
        .status()
        .expect("pg_ctl start");
    assert!(status.success(), "pg_ctl start");
    while m
        .sql("INSERT INTO bench_writes VALUES (-1) ON CONFLICT DO NOTHING RETURNING 1")
        .is_none()
    {
        std::thread::sleep(Duration::from_millis(5));
    }
    let ms = t.elapsed().as_millis();
    c.patch_config(p, json!({"pause": null}));
    ms
}

trait UidGid {
    fn uid_gid(&mut self, uid: u32, gid: u32) -> &mut Self;
}

impl UidGid for Command {
    fn uid_gid(&mut self, uid: u32, gid: u32) -> &mut Self {
        use std::os::unix::process::CommandExt;
        self.uid(uid).gid(gid)
    }
}

/// Idle cost over `secs`, per cluster, all in one window (each cluster has its own agents and
/// etcd, and an idle one takes next to nothing from the others): each agent's RSS (MiB) and CPU
/// (% of a core), etcd requests per second.
fn idle(clusters: &[&Cluster], secs: u64) -> Vec<(f64, f64, f64)> {
    // CPU time in nanoseconds: an idle agent uses a few milliseconds a minute, below the 10 ms
    // resolution of `/proc/PID/stat`'s ticks, so the live threads' `schedstat` counts; the ticks
    // still count a thread that ended within the window.
    let ticks_ns = |pid: u32| -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
        let f: Vec<&str> = rest.split_whitespace().collect();
        let t = f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
            + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        t * 10_000_000
    };
    let sched_ns = |pid: u32| -> u64 {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            return 0;
        };
        tasks
            .flatten()
            .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
            .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
            .sum()
    };
    let cpu_ns = |pid: u32| (ticks_ns(pid), sched_ns(pid));
    let requests = |c: &Cluster| -> f64 {
        let text = c
            .http
            .get(format!("{}/metrics", c.etcd.endpoint()))
            .send()
            .and_then(|r| r.text())
            .unwrap_or_default();
        text.lines()
            .filter(|l| l.starts_with("grpc_server_handled_total{"))
            .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
            .sum()
    };
    for c in clusters {
        c.healthy(Duration::from_secs(120));
    }
    // Idle means after start-up has settled: PostgreSQL's first checkpoint and standby snapshots
    // move the WAL (and so every member key) for a while after the nodes come up.
    std::thread::sleep(Duration::from_secs(30));
    let pids: Vec<Vec<u32>> = clusters
        .iter()
        .map(|c| c.nodes.iter().filter_map(|n| n.agent_pid()).collect())
        .collect();
    let before: Vec<Vec<(u64, u64)>> = pids
        .iter()
        .map(|p| p.iter().map(|&p| cpu_ns(p)).collect())
        .collect();
    let r0: Vec<f64> = clusters.iter().map(|c| requests(c)).collect();
    let t = Instant::now();
    std::thread::sleep(Duration::from_secs(secs));
    let elapsed = t.elapsed().as_secs_f64();
    let r1: Vec<f64> = clusters.iter().map(|c| requests(c)).collect();
    (0..clusters.len())
        .map(|k| {
            let (pids, before) = (&pids[k], &before[k]);
            let (cpu, rss) = agent_costs(pids, before, elapsed, &cpu_ns);
            (rss, cpu, (r1[k] - r0[k]) / elapsed)
        })
        .collect()
}

/// The agents' mean CPU (% of a core) since `before` and mean RSS (MiB).
fn agent_costs(
    pids: &[u32],
    before: &[(u64, u64)],
    elapsed: f64,
    cpu_ns: &dyn Fn(u32) -> (u64, u64),
) -> (f64, f64) {
    let cpu: f64 = pids
        .iter()
        .zip(before)
        .map(|(&p, &(t0, s0))| {
            let (t1, s1) = cpu_ns(p);
            let (ticks, sched) = (t1.saturating_sub(t0), s1.saturating_sub(s0));
            // Ticks beyond their own 10 ms granularity mean a thread ended in the window.
            let used = if ticks > sched + 10_000_000 {
                ticks
            } else {
                sched
            };
            used as f64 / 1e9 / elapsed * 100.0
        })
        .sum::<f64>()
        / pids.len() as f64;
    let rss: f64 = pids
        .iter()
        .map(|&p| {
            std::fs::read_to_string(format!("/proc/{p}/status"))
                .unwrap_or_default()
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
                .unwrap_or(0.0)
                / 1024.0
        })
        .sum::<f64>()
        / pids.len() as f64;
    (cpu, rss)
}

/// Writes the median repetition's timeline as `<dir>/<title as a file name>.svg`.
fn draw(c: &Cluster, runs: &[Run], title: &str, dir: &Path) {
    let mut sorted: Vec<&Run> = runs.iter().collect();
    sorted.sort_by_key(|r| r.ms);
    let run = sorted[sorted.len() / 2];
    let picture = timeline::Timeline {
        title: format!("{title}: {:.2} s", run.ms as f64 / 1000.0),
        nodes: c.nodes.iter().map(|n| n.name.clone()).collect(),
        acks: &run.acks,
        fault: run.fault_at,
        resumed: run.resumed,
    };
    let name: String = title
        .chars()
        .map(|ch| {
            if ch.is_ascii_alphanumeric() {
                ch.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect::<String>()
        .split('-')
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join("-");
    let file = dir.join(format!("{name}.svg"));
    std::fs::write(&file, picture.svg()).expect("timeline written");
    println!("  timeline: {}", file.display());
}

/// One step of a lane: a profile and mode, its scenarios, and its cluster if already started.
type Step<'a> = (Profile, bool, Vec<&'a str>, Option<Cluster>);

fn stats(runs: &[Run]) -> Value {
    let mut ms: Vec<u128> = runs.iter().map(|r| r.ms).collect();
    ms.sort();
    let mut after: Vec<u128> = runs.iter().filter_map(|r| r.after_lock_ms).collect();
    after.sort();
    json!({
        "after_lock_median_ms": after.get(after.len() / 2),
        "median_ms": ms[ms.len() / 2],
        "min_ms": ms[0],
        "max_ms": ms[ms.len() - 1],
        "lost": runs.iter().map(|r| r.lost).sum::<usize>(),
        "old_primary_acks_after_new": runs.iter().map(|r| r.old_after_new).max().unwrap_or(0),
        "runs": runs.len(),
    })
}

fn main() {
    serve_agent_if_invoked();
    let args: Vec<String> = std::env::args().collect();
    let full = args.iter().any(|a| a == "--bench");
    let reps: usize = if full {
        std::env::var("PATRONI_BENCH_REPS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(5)
    } else {
        1
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    // `PATRONI_BENCH_PROFILE=fast` (or `default`) runs one timing profile only.
    let only = std::env::var("PATRONI_BENCH_PROFILE").unwrap_or_default();
    let plan: Vec<(Profile, bool, Vec<&str>)> = if full {
        [FAST, DEFAULT]
            .into_iter()
            .filter(|p| match only.as_str() {
                "fast" => p.ttl == FAST.ttl,
                "default" => p.ttl == DEFAULT.ttl,
                _ => true,
            })
            .flat_map(|p| {
                [
                    (p, false, vec!["S1", "S2b", "S3", "S4", "S5", "S6"]),
                    (p, true, vec!["S3", "S5", "S6"]),
                ]
            })
            .collect()
    } else {
        vec![(FAST, false, vec!["S1"])]
    };
    // `PATRONI_BENCH_SCENARIOS=S1,S3` runs only those; `none` measures only the idle costs.
    let picked = std::env::var("PATRONI_BENCH_SCENARIOS").ok();
    let plan: Vec<(Profile, bool, Vec<&str>)> = match &picked {
        Some(list) if full => plan
            .into_iter()
            .map(|(p, sync, all)| {
                let keep = all
                    .into_iter()
                    .filter(|s| list.split(',').any(|x| x.trim() == *s));
                (p, sync, keep.collect::<Vec<_>>())
            })
            .filter(|(_, sync, keep)| !sync || !keep.is_empty())
            .collect(),
        _ => plan,
    };
    let report = BTreeMap::new();
    let mut idle_report = BTreeMap::new();
    let timelines = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/failover-timelines");
    let _ = std::fs::create_dir_all(&timelines);
    let mut restart_ms = None;
    println!(
        "{:<18} {:<5} {:<4} {:>9} {:>9} {:>9} {:>5} {:>9} {:>11}",
        "profile", "mode", "case", "median", "min", "max", "lost", "old-acks", "after-lock"
    );
    let began = Instant::now();
    // Each profile's asynchronous cluster starts now and its idle cost is measured in one window
    // with the other's; the later one waits, idle, until its scenarios run.
    let mut ready: Vec<(u64, Cluster)> = Vec::new();
    if full {
        for (profile, _, _) in plan.iter().filter(|(_, sync, _)| !sync) {
            ready.push((profile.ttl, Cluster::start(&rt, *profile, false)));
        }
        let secs = std::env::var("PATRONI_BENCH_IDLE_SECS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(60);
        let clusters: Vec<&Cluster> = ready.iter().map(|(_, c)| c).collect();
        let costs = idle(&clusters, secs);
        for ((ttl, _), (rss, cpu, req)) in ready.iter().zip(costs) {
            let name = [FAST, DEFAULT]
                .iter()
                .find(|p| p.ttl == *ttl)
                .map_or("?", |p| p.name);
            idle_report.insert(
                name,
                json!({"agent_rss_mib": rss, "agent_cpu_percent": cpu, "etcd_requests_per_s": req}),
            );
            println!(
                "{name:<18} idle: agent RSS {rss:.1} MiB, agent CPU {cpu:.3} %, etcd {req:.2} requests/s"
            );
        }
        if let Some((_, c)) = ready.first() {
            let ms = postgres_restart(c);
            println!("PostgreSQL's own restart after SIGKILL to first write: {ms} ms");
            restart_ms = Some(ms);
        }
        eprintln!("[{:.0} s] idle measured", began.elapsed().as_secs_f64());
    }
    // Lanes run side by side, each on clusters and an etcd of its own, unless
    // `PATRONI_BENCH_SERIAL=1`: the default profile's lease waits leave the machine idle for
    // minutes. Its asynchronous and synchronous runs take a lane each; the fast profile's are
    // short and share one.
    let report = Mutex::new(report);
    let lane = |steps: Vec<Step>| {
        for (profile, sync, scenarios, waiting) in steps {
            let mode = if sync { "sync" } else { "async" };
            let mut c = waiting.unwrap_or_else(|| {
                let _stage = on_stage();
                Cluster::start(&rt, profile, sync)
            });
            for s in scenarios {
                let runs: Vec<Run> = (0..reps).map(|_| once(&mut c, s, profile, sync)).collect();
                let st = stats(&runs);
                draw(
                    &c,
                    &runs,
                    &format!("{s} {mode}, {}", profile.name),
                    &timelines,
                );
                println!(
                    "{:<18} {:<5} {:<4} {:>7}ms {:>7}ms {:>7}ms {:>5} {:>9} {:>11}",
                    profile.name,
                    mode,
                    s,
                    st["median_ms"].as_u64().unwrap_or(0),
                    st["min_ms"].as_u64().unwrap_or(0),
                    st["max_ms"].as_u64().unwrap_or(0),
                    st["lost"].as_u64().unwrap_or(0),
                    st["old_primary_acks_after_new"].as_u64().unwrap_or(0),
                    st["after_lock_median_ms"]
                        .as_u64()
                        .map_or_else(|| "-".to_string(), |v| format!("{v}ms"))
                );
                eprintln!(
                    "[{:.0} s] {} {mode} {s} done",
                    began.elapsed().as_secs_f64(),
                    profile.name
                );
                report
                    .lock()
                    .unwrap()
                    .insert(format!("{} {mode} {s}", profile.name), st);
            }
        }
    };
    let mut lanes: Vec<Vec<Step>> = Vec::new();
    for (profile, sync, scenarios) in plan {
        let waiting = ready
            .iter()
            .position(|(ttl, _)| !sync && *ttl == profile.ttl)
            .map(|k| ready.remove(k).1);
        let own = |p: &Profile, sync: bool| (p.ttl, sync && p.ttl == DEFAULT.ttl);
        let key = own(&profile, sync);
        let step = (profile, sync, scenarios, waiting);
        match lanes.iter_mut().find(|l| own(&l[0].0, l[0].1) == key) {
            Some(l) => l.push(step),
            None => lanes.push(vec![step]),
        }
    }
    if std::env::var("PATRONI_BENCH_SERIAL").is_ok_and(|v| v == "1") {
        lanes.into_iter().for_each(lane);
    } else {
        std::thread::scope(|scope| {
            for l in lanes {
                scope.spawn(|| lane(l));
            }
        });
    }
    let report = report.into_inner().unwrap();
    let out = json!({
        "scenarios": report,
        "idle": idle_report,
        "postgres_restart_ms": restart_ms,
        "repetitions": reps,
        "wall_time_s": began.elapsed().as_secs(),
    });
    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
    let _ = std::fs::create_dir_all(&target);
    let file = target.join("failover-bench.json");
    std::fs::write(&file, serde_json::to_string_pretty(&out).unwrap()).unwrap();
    println!("written to {}", file.display());
}
