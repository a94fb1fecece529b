//! Writers that record every acknowledged insert: which node acknowledged it, in which of its
//! primary terms, and when, so a test can check that no two nodes accepted writes at once and
//! that none acknowledged is missing from the final primary; and the checks themselves.
//!
//! [`WriterOptions::per_node`] keeps one connection per node and inserts into that node only: a
//! node that accepts a write it should refuse is caught whichever node a client would have
//! chosen. [`WriterOptions::multi_host`] keeps one connection through the whole host list with
//! `target_session_attrs=read-write`, as a client of a cluster without a proxy would, and
//! reconnects (to whichever node then accepts writes) when an insert fails; or, with
//! [`WriterOptions::connection_per_insert`], connects afresh for every insert, so each one goes to
//! the first node in the list that accepts writes at that moment.
//!
//! Connections are tokio-postgres sessions on one small runtime of the writer's own, not `psql`
//! processes, so writing costs little and does not compete with the cluster for the machine.
//! Connecting and every insert have deadlines: a hung server stalls only its own session.
//!
//! A term is the node and its postmaster's start time: a demoted PostgreSQL restarts, so two
//! separate spells as primary of one node never share a term.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use patroni_postgres::testkit::TEST_PASSWORD;
use tokio::sync::watch;
use tokio_postgres::config::TargetSessionAttrs;
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

/// How long one insert may take before its session is dropped and the insert counted unanswered.
const ANSWER_WITHIN: Duration = Duration::from_secs(5);
/// How long connecting to one host may take.
const CONNECT_WITHIN: Duration = Duration::from_secs(2);

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

/// How a writer inserts; built by [`Writer::to`], started by [`per_node`](Self::per_node) or
/// [`multi_host`](Self::multi_host).
#[derive(Debug, Clone)]
pub struct WriterOptions {
    table: String,
    t0: Instant,
    every: Duration,
    retry: Duration,
    first_id: u64,
    fresh: bool,
}

impl WriterOptions {
    /// The pause after an acknowledged insert (default 10 ms).
    pub fn every(mut self, pause: Duration) -> Self {
        self.every = pause;
        self
    }

    /// The pause after a refused or unanswered insert or a failed connection (default 100 ms).
    pub fn retry(mut self, pause: Duration) -> Self {
        self.retry = pause;
        self
    }

    /// The first row id (default 1); ids go up by one across the writer's sessions.
    pub fn first_id(mut self, id: u64) -> Self {
        self.first_id = id;
        self
    }

    /// A new connection for every insert (default: one kept while its inserts are acknowledged).
    pub fn connection_per_insert(mut self) -> Self {
        self.fresh = true;
        self
    }

    /// One session per `(name, port)`, each inserting ids into `table(id bigint)` of its node only.
    pub fn per_node(self, nodes: &[(String, u16)]) -> Writer {
        let targets = nodes
            .iter()
            .map(|(name, port)| Target {
                name: Some(name.clone()),
                ports: vec![*port],
            })
            .collect();
        Writer::start(self, targets)
    }

    /// One session through every port of `ports` with `target_session_attrs=read-write`: kept
    /// while its inserts are acknowledged, replaced when one fails.
    pub fn multi_host(self, ports: &[u16]) -> Writer {
        let target = Target {
            name: None,
            ports: ports.to_vec(),
        };
        Writer::start(self, vec![target])
    }
}

/// Where one session connects: one node (named), or a read-write host list.
struct Target {
    name: Option<String>,
    ports: Vec<u16>,
}

/// Writer sessions and the acknowledgements they collected; stopped on drop.
pub struct Writer {
    stop: watch::Sender<bool>,
    acks: Arc<Mutex<Vec<Ack>>>,
    thread: Option<std::thread::JoinHandle<()>>,
    t0: Instant,
}

impl Writer {
    /// Options for writers inserting into `table(id bigint)`, timing acknowledgements from `t0`.
    pub fn to(table: &str, t0: Instant) -> WriterOptions {
        WriterOptions {
            table: table.to_string(),
            t0,
            every: Duration::from_millis(10),
            retry: Duration::from_millis(100),
            first_id: 1,
            fresh: false,
        }
    }

    /// [`WriterOptions::per_node`] with the default pace.
    pub fn per_node(nodes: &[(String, u16)], table: &str, t0: Instant) -> Writer {
        Writer::to(table, t0).per_node(nodes)
    }

    /// [`WriterOptions::multi_host`], an insert every 20 ms, each on a new connection: a newly
    /// promoted node earlier in the list gets the next insert even while the old primary still
    /// accepts writes, so a check that two nodes never both acknowledged sees both.
    pub fn multi_host(ports: &[u16], table: &str, t0: Instant) -> Writer {
        let pace = Duration::from_millis(20);
        Writer::to(table, t0)
            .every(pace)
            .retry(pace)
            .connection_per_insert()
            .multi_host(ports)
    }

    fn start(o: WriterOptions, targets: Vec<Target>) -> Writer {
        let (stop, stopped) = watch::channel(false);
        let acks = Arc::new(Mutex::new(Vec::new()));
        let next_id = Arc::new(AtomicU64::new(o.first_id));
        let (t0, shared) = (o.t0, Arc::clone(&acks));
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("writer runtime");
            rt.block_on(async move {
                let o = Arc::new(o);
                let mut sessions = tokio::task::JoinSet::new();
                for target in targets {
                    let session = Session {
                        o: Arc::clone(&o),
                        target,
                        acks: Arc::clone(&shared),
                        next_id: Arc::clone(&next_id),
                    };
                    let mut stopped = stopped.clone();
                    sessions.spawn(async move {
                        tokio::select! {
                            _ = session.run() => {}
                            _ = stopped.wait_for(|s| *s) => {}
                        }
                    });
                }
                while sessions.join_next().await.is_some() {}
            });
        });
        Writer {
            stop,
            acks,
            thread: Some(thread),
            t0,
        }
    }

    /// Time since the writer's start instant, on the acknowledgements' clock.
    pub fn now(&self) -> Duration {
        self.t0.elapsed()
    }

    /// The acknowledgements so far, in arrival order.
    pub fn acks(&self) -> Vec<Ack> {
        let mut v = self.acks.lock().unwrap_or_else(|e| e.into_inner()).clone();
        v.sort_by_key(|a| a.at);
        v
    }

    /// Stops every session and returns all acknowledgements, in arrival order.
    pub fn finish(mut self) -> Vec<Ack> {
        self.halt();
        self.acks()
    }

    fn halt(&mut self) {
        let _ = self.stop.send(true);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.halt();
    }
}

/// One session's loop.
struct Session {
    o: Arc<WriterOptions>,
    target: Target,
    acks: Arc<Mutex<Vec<Ack>>>,
    next_id: Arc<AtomicU64>,
}

/// What became of one insert.
enum Answer {
    /// Acknowledged by the server on this port whose postmaster started at this time.
    Ack(u16, String),
    /// Refused (a standby): the session still answers.
    Refused,
    /// No answer in time, or the session ended.
    Gone,
}

impl Session {
    async fn run(self) {
        let mut client: Option<Client> = None;
        loop {
            let Some(c) = client.as_ref() else {
                client = self.connect().await;
                if client.is_none() {
                    tokio::time::sleep(self.o.retry).await;
                }
                continue;
            };
            let id = self.next_id.fetch_add(1, Ordering::SeqCst);
            let sent = self.o.t0.elapsed();
            match self.insert(c, id).await {
                Answer::Ack(port, start) => {
                    let node = self.target.name.clone().unwrap_or_else(|| port.to_string());
                    let ack = Ack {
                        id,
                        term: format!("{node}@{start}"),
                        node,
                        port,
                        sent,
                        at: self.o.t0.elapsed(),
                    };
                    self.acks
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(ack);
                    if self.o.fresh {
                        client = None;
                    }
                    tokio::time::sleep(self.o.every).await;
                }
                Answer::Refused if self.target.name.is_some() => {
                    tokio::time::sleep(self.o.retry).await;
                }
                // A multi-host session looks for the node that accepts writes now.
                Answer::Refused | Answer::Gone => {
                    client = None;
                    tokio::time::sleep(self.o.retry).await;
                }
            }
        }
    }

    /// A session to the target (for a host list, to one that accepts writes), or `None`.
    async fn connect(&self) -> Option<Client> {
        let mut cfg = tokio_postgres::Config::new();
        for &port in &self.target.ports {
            cfg.host("127.0.0.1").port(port);
        }
        cfg.user("postgres")
            .password(TEST_PASSWORD)
            .dbname("postgres")
            .application_name("testkit-writer")
            .options(format!(
                "-c statement_timeout={}",
                ANSWER_WITHIN.as_millis()
            ))
            .connect_timeout(CONNECT_WITHIN);
        if self.target.name.is_none() {
            cfg.target_session_attrs(TargetSessionAttrs::ReadWrite);
        }
        // Each host has its own deadline; the whole attempt one more.
        let limit = CONNECT_WITHIN * (self.target.ports.len() as u32 + 1);
        let (client, connection) = tokio::time::timeout(limit, cfg.connect(NoTls))
            .await
            .ok()?
            .ok()?;
        tokio::spawn(connection);
        Some(client)
    }

    /// Sends one insert and waits (at most [`ANSWER_WITHIN`]) for its answer.
    async fn insert(&self, c: &Client, id: u64) -> Answer {
        let stmt = format!(
            "INSERT INTO {} VALUES ({id}) RETURNING inet_server_port()::text, pg_postmaster_start_time()::text",
            self.o.table
        );
        match tokio::time::timeout(ANSWER_WITHIN, c.simple_query(&stmt)).await {
            Ok(Ok(messages)) => {
                let row = messages.iter().find_map(|m| match m {
                    SimpleQueryMessage::Row(r) => Some(r),
                    _ => None,
                });
                let answer = row.and_then(|r| {
                    let port = r.get(0)?.parse().ok()?;
                    Some(Answer::Ack(port, r.get(1)?.to_string()))
                });
                answer.unwrap_or(Answer::Refused)
            }
            Ok(Err(_)) if !c.is_closed() => Answer::Refused,
            _ => Answer::Gone,
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

/// A fault's write outage: the longest gap between consecutive acknowledgements (`acks` in
/// arrival order, any node) from the last one before `from` until `end`; writes that never
/// resumed count until `end`.
pub fn outage(acks: &[Ack], from: Duration, end: Duration) -> Duration {
    let mut times: Vec<Duration> = acks.iter().map(|a| a.at).collect();
    let start = times.iter().rposition(|&t| t <= from).unwrap_or(0);
    if times.last().is_none_or(|&t| t <= from) {
        times.push(end);
    }
    times[start..]
        .windows(2)
        .map(|w| w[1] - w[0])
        .max()
        .unwrap_or_default()
}
