//! Writers that record every acknowledged insert: which node acknowledged it, in which of its
//! primary terms, and when, so a test can check that no two nodes accepted writes at once and
//! that none acknowledged is missing from the final primary.
//!
//! [`Writer::per_node`] keeps one `psql` session per node and inserts into that node only, as
//! fast as it answers: a node that accepts a write it should refuse is caught whichever node a
//! client would have chosen. [`Writer::multi_host`] inserts through one multi-host read-write
//! DSN, a new connection per insert, as a client of a cluster without a proxy would.
//!
//! A term is the node and its postmaster's start time: a demoted PostgreSQL restarts, so two
//! separate spells as primary of one node never share a term.

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use patroni_postgres::testkit::{pg_bin_dir, TEST_PASSWORD};

/// How long one insert may take before its session is dropped and the insert counted unanswered.
const ANSWER_WITHIN: Duration = Duration::from_secs(5);

/// One acknowledged insert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    /// The row's id, unique across all writers of a run.
    pub id: u64,
    /// The node that acknowledged it (its name, or for a multi-host writer its port).
    pub node: String,
    /// The port of the server that acknowledged it.
    pub port: u16,
    /// `node@postmaster start time`: one spell as primary.
    pub term: String,
    /// When the insert was sent, since the writer's start instant.
    pub sent: Duration,
    /// When its acknowledgement arrived.
    pub at: Duration,
}

/// Writer threads and the acknowledgements they collected; stopped on drop.
pub struct Writer {
    stop: Arc<AtomicBool>,
    acks: Arc<Mutex<Vec<Ack>>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Writer {
    /// One session per `(name, port)`, each inserting ids into `table(id bigint)` of its node only.
    pub fn per_node(nodes: &[(String, u16)], table: &str, t0: Instant) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let acks = Arc::new(Mutex::new(Vec::new()));
        let next_id = Arc::new(AtomicU64::new(1));
        let threads = nodes
            .iter()
            .map(|(name, port)| {
                let ctx = Session {
                    name: name.clone(),
                    port: *port,
                    table: table.to_string(),
                    t0,
                    stop: Arc::clone(&stop),
                    acks: Arc::clone(&acks),
                    next_id: Arc::clone(&next_id),
                };
                std::thread::spawn(move || ctx.run())
            })
            .collect();
        Writer {
            stop,
            acks,
            threads,
        }
    }

    /// One thread inserting through `host=...` with `target_session_attrs=read-write`, one connection per insert.
    pub fn multi_host(ports: &[u16], table: &str, t0: Instant) -> Writer {
        let hosts = vec!["127.0.0.1"; ports.len()].join(",");
        let list: Vec<String> = ports.iter().map(u16::to_string).collect();
        let dsn = format!(
            "host={hosts} port={} user=postgres dbname=postgres target_session_attrs=read-write connect_timeout=2",
            list.join(",")
        );
        let stop = Arc::new(AtomicBool::new(false));
        let acks = Arc::new(Mutex::new(Vec::new()));
        let (s, a, table) = (Arc::clone(&stop), Arc::clone(&acks), table.to_string());
        let thread = std::thread::spawn(move || {
            let mut id = 0u64;
            while !s.load(Ordering::SeqCst) {
                id += 1;
                let sent = t0.elapsed();
                let out = Command::new("timeout")
                    .arg(ANSWER_WITHIN.as_secs().to_string())
                    .arg(pg_bin_dir().join("psql"))
                    .arg(&dsn)
                    .args(["-XAtq", "-c"])
                    .arg(format!(
                        "INSERT INTO {table} VALUES ({id}) RETURNING inet_server_port() || '|' || pg_postmaster_start_time()"
                    ))
                    .env("PGPASSWORD", TEST_PASSWORD)
                    .output();
                if let Ok(out) = out {
                    let text = String::from_utf8_lossy(&out.stdout);
                    if let (true, Some((port, start))) =
                        (out.status.success(), text.trim().split_once('|'))
                    {
                        if let Ok(port) = port.parse::<u16>() {
                            a.lock().unwrap().push(Ack {
                                id,
                                node: port.to_string(),
                                port,
                                term: format!("{port}@{start}"),
                                sent,
                                at: t0.elapsed(),
                            });
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        Writer {
            stop,
            acks,
            threads: vec![thread],
        }
    }

    /// The acknowledgements so far, in arrival order.
    pub fn acks(&self) -> Vec<Ack> {
        let mut v = self.acks.lock().unwrap().clone();
        v.sort_by_key(|a| a.at);
        v
    }

    /// Stops every thread and returns all acknowledgements, in arrival order.
    pub fn finish(mut self) -> Vec<Ack> {
        self.halt();
        self.acks()
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.halt();
    }
}

/// One node's writer thread.
struct Session {
    name: String,
    port: u16,
    table: String,
    t0: Instant,
    stop: Arc<AtomicBool>,
    acks: Arc<Mutex<Vec<Ack>>>,
    next_id: Arc<AtomicU64>,
}

/// A running `psql` reading statements from its stdin, and its output lines.
struct Psql {
    child: Child,
    stdin: std::process::ChildStdin,
    lines: mpsc::Receiver<String>,
}

impl Psql {
    fn start(port: u16) -> Option<Psql> {
        let mut child = Command::new(pg_bin_dir().join("psql"))
            .arg(format!(
                "host=127.0.0.1 port={port} user=postgres dbname=postgres connect_timeout=2"
            ))
            .arg("-XAtq")
            .env("PGPASSWORD", TEST_PASSWORD)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let stdin = child.stdin.take()?;
        let stdout = child.stdout.take()?;
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Some(Psql {
            child,
            stdin,
            lines,
        })
    }

    /// Ends this psql (the child this writer started) and reaps it.
    fn end(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What became of one insert.
enum Answer {
    /// Acknowledged by the postmaster started at this time.
    Ack(String),
    /// Refused (a standby, a lost connection): the session still answers.
    Refused,
    /// No answer in time, or the session ended.
    Gone,
}

impl Session {
    fn run(self) {
        let mut psql: Option<Psql> = None;
        while !self.stop.load(Ordering::SeqCst) {
            let Some(p) = psql.as_mut() else {
                psql = Psql::start(self.port);
                if psql.is_none() {
                    std::thread::sleep(Duration::from_millis(200));
                }
                continue;
            };
            let id = self.next_id.fetch_add(1, Ordering::SeqCst);
            let sent = self.t0.elapsed();
            match self.insert(p, id) {
                Answer::Ack(start) => self.acks.lock().unwrap().push(Ack {
                    id,
                    node: self.name.clone(),
                    port: self.port,
                    term: format!("{}@{start}", self.name),
                    sent,
                    at: self.t0.elapsed(),
                }),
                Answer::Refused => std::thread::sleep(Duration::from_millis(50)),
                Answer::Gone => {
                    if let Some(p) = psql.take() {
                        p.end();
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        if let Some(p) = psql.take() {
            p.end();
        }
    }

    /// Sends one insert and a marker, and reads until the marker.
    fn insert(&self, p: &mut Psql, id: u64) -> Answer {
        let stmt = format!(
            "INSERT INTO {} VALUES ({id}) RETURNING pg_postmaster_start_time();\n\\echo @@{id}\n",
            self.table
        );
        if p.stdin.write_all(stmt.as_bytes()).is_err() || p.stdin.flush().is_err() {
            return Answer::Gone;
        }
        let deadline = Instant::now() + ANSWER_WITHIN;
        let marker = format!("@@{id}");
        let mut row = None;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match p.lines.recv_timeout(left) {
                Ok(line) if line == marker => {
                    return row.map_or(Answer::Refused, Answer::Ack);
                }
                Ok(line) => row = Some(line),
                Err(_) => return Answer::Gone,
            }
        }
    }
}

/// One spell of one node acknowledging writes: its term, and its first and last acknowledgement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Term {
    /// `node@postmaster start time`.
    pub term: String,
    /// The node.
    pub node: String,
    /// The first acknowledgement in this term.
    pub first: Duration,
    /// The last one.
    pub last: Duration,
    /// How many.
    pub acks: usize,
}

/// The terms seen in `acks`, in order of their first acknowledgement.
pub fn terms(acks: &[Ack]) -> Vec<Term> {
    let mut by: BTreeMap<&str, Term> = BTreeMap::new();
    for a in acks {
        let t = by.entry(&a.term).or_insert_with(|| Term {
            term: a.term.clone(),
            node: a.node.clone(),
            first: a.at,
            last: a.at,
            acks: 0,
        });
        t.first = t.first.min(a.at);
        t.last = t.last.max(a.at);
        t.acks += 1;
    }
    let mut v: Vec<Term> = by.into_values().collect();
    v.sort_by_key(|t| t.first);
    v
}

/// Pairs of terms that acknowledged writes in overlapping spells: two nodes accepting writes at once.
pub fn overlaps(acks: &[Ack]) -> Vec<(Term, Term)> {
    let t = terms(acks);
    let mut out = Vec::new();
    for (i, a) in t.iter().enumerate() {
        for b in &t[i + 1..] {
            if b.first <= a.last {
                out.push((a.clone(), b.clone()));
            }
        }
    }
    out
}

/// The acknowledged ids missing from `present`.
pub fn lost(acks: &[Ack], present: &HashSet<u64>) -> Vec<u64> {
    acks.iter()
        .map(|a| a.id)
        .filter(|id| !present.contains(id))
        .collect()
}

/// The longest time between two acknowledgements within `[from, to]` (edges count as acknowledgements).
pub fn longest_gap(acks: &[Ack], from: Duration, to: Duration) -> Duration {
    let mut prev = from;
    let mut gap = Duration::ZERO;
    for a in acks.iter().filter(|a| a.at >= from && a.at <= to) {
        gap = gap.max(a.at - prev);
        prev = a.at;
    }
    gap.max(to.saturating_sub(prev))
}
