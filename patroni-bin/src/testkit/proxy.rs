//! A fault-injecting TCP proxy for tests, in the manner of toxiproxy: it listens on a free
//! 127.0.0.1 port, forwards every connection to one target, and injects faults on command.
//!
//! Faults, each set on the whole proxy ([`Proxy::link`]) or on one source ([`Proxy::link_from`]):
//! - a cut both ways, in one of two modes. [`Cut::Blackhole`] is the silent partition: no byte
//!   passes either way on existing connections and new ones are accepted but never answered, as
//!   when packets are dropped; nothing is lost, so when the cut heals the held bytes flow again
//!   as TCP retransmission would deliver them (a peer that gave up meanwhile has closed its end).
//!   [`Cut::Reset`] is the loud one: existing connections are reset (RST) at once and new ones
//!   are reset as soon as they are accepted, as a host that answers "connection refused" does;
//! - a one-way cut ([`Link::cut_one_way`]): bytes in one [`Direction`] are held, the other
//!   direction flows;
//! - added latency per chunk, each direction ([`Link::delay`]);
//! - a bandwidth limit in bytes per second, each direction ([`Link::bandwidth`]).
//!
//! When both the whole proxy and a connection's source have faults, the connection gets both: a
//! cut on either cuts it (reset wins over blackhole), latencies add up, the lower bandwidth holds.
//!
//! **Per-link cuts between PostgreSQL nodes.** Every member reaches a node at the one
//! `connect_address` the node publishes, so a proxy per destination alone cannot cut one replica
//! from the primary while another keeps streaming. A proxy started with [`Proxy::postgres`]
//! therefore tells sources apart by the startup packet: standbys (and `pg_basebackup`) connect
//! with `application_name` set to their member name, which becomes the connection's source. It
//! answers an `SSLRequest` or `GSSENCRequest` with `N` itself (the target then sees a plaintext
//! startup), and forwards a `CancelRequest` unnamed. Connections without an `application_name`
//! (`pg_rewind`, most clients) have no source and get only the proxy-wide faults. An `N` answer
//! is given at once unless the whole proxy is cut, since the source is only known after it.
//!
//! Proxies run on one small runtime of their own, so a test thread blocked in `psql` cannot
//! starve them. Dropping a [`Proxy`] closes its listener and every connection it forwards.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// How a cut treats connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// Nothing passes and nothing is answered, like dropped packets; resumes on heal.
    Blackhole,
    /// Connections are reset (RST) at once, new ones as soon as they arrive.
    Reset,
}

/// One direction of a forwarded connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// From the connecting client to the target.
    Upstream,
    /// From the target back to the client.
    Downstream,
}

/// The faults in force on a link; the default is a healthy link.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Faults {
    /// A cut both ways, if any.
    pub cut: Option<Cut>,
    /// Bytes from client to target are held.
    pub upstream_held: bool,
    /// Bytes from target to client are held.
    pub downstream_held: bool,
    /// Added to every chunk's delivery, each direction.
    pub latency: Duration,
    /// At most this many bytes per second, each direction.
    pub bandwidth: Option<u64>,
}

impl Faults {
    /// Both sets at once: either cut cuts (reset wins), latencies add, the lower bandwidth holds.
    fn and(self, o: Faults) -> Faults {
        let cut = match (self.cut, o.cut) {
            (Some(Cut::Reset), _) | (_, Some(Cut::Reset)) => Some(Cut::Reset),
            (a, b) => a.or(b),
        };
        let bandwidth = match (self.bandwidth, o.bandwidth) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        Faults {
            cut,
            upstream_held: self.upstream_held || o.upstream_held,
            downstream_held: self.downstream_held || o.downstream_held,
            latency: self.latency + o.latency,
            bandwidth,
        }
    }

    /// Whether bytes may move in `dir` now.
    fn flows(&self, dir: Direction) -> bool {
        self.cut.is_none()
            && match dir {
                Direction::Upstream => !self.upstream_held,
                Direction::Downstream => !self.downstream_held,
            }
    }
}

/// How the proxy names a connection's source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Routing {
    /// Every connection is anonymous.
    Plain,
    /// The PostgreSQL startup packet's `application_name`.
    Postgres,
}

#[derive(Default)]
struct State {
    all: Faults,
    from: HashMap<String, Faults>,
    connections: u64,
    open: u64,
}

struct Shared {
    target: SocketAddr,
    routing: Routing,
    state: Mutex<State>,
    /// Bumped on every fault change, so held bytes and waiting connections look again.
    changed: watch::Sender<u64>,
    /// True once the proxy is dropped.
    stopped: watch::Sender<bool>,
}

impl Shared {
    fn faults(&self, source: Option<&str>) -> Faults {
        let s = self.state.lock().unwrap();
        match source.and_then(|n| s.from.get(n)) {
            Some(f) => s.all.and(*f),
            None => s.all,
        }
    }

    /// Waits until `ok` holds for this source's faults; `false` when the proxy stopped meanwhile.
    async fn wait_for(
        &self,
        source: Option<&str>,
        rx: &mut watch::Receiver<u64>,
        ok: impl Fn(&Faults) -> bool,
    ) -> bool {
        loop {
            rx.borrow_and_update();
            if *self.stopped.borrow() {
                return false;
            }
            if ok(&self.faults(source)) {
                return true;
            }
            if rx.changed().await.is_err() {
                return false;
            }
        }
    }
}

/// The runtime every proxy runs on: two threads apart from the tests' own.
fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("test-proxy")
            .enable_all()
            .build()
            .expect("proxy runtime")
    })
}

/// One proxy: a listener on 127.0.0.1 forwarding to a target, stopped on drop.
pub struct Proxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

/// The fault controls of one link: the whole proxy, or the connections of one source.
pub struct Link<'a> {
    shared: &'a Shared,
    source: Option<String>,
}

impl Proxy {
    /// A plain TCP proxy to `target`.
    pub fn tcp(target: SocketAddr) -> Proxy {
        Self::start(target, Routing::Plain)
    }

    /// A proxy to a PostgreSQL server that names each connection's source by its startup
    /// packet's `application_name` (see the module documentation).
    pub fn postgres(target: SocketAddr) -> Proxy {
        Self::start(target, Routing::Postgres)
    }

    fn start(target: SocketAddr, routing: Routing) -> Proxy {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a proxy port");
        std_listener.set_nonblocking(true).unwrap();
        let addr = std_listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            target,
            routing,
            state: Mutex::new(State::default()),
            changed: watch::channel(0).0,
            stopped: watch::channel(false).0,
        });
        let rt = runtime();
        let listener = {
            let _entered = rt.enter();
            TcpListener::from_std(std_listener).expect("register the proxy listener")
        };
        rt.spawn(accept_loop(listener, Arc::clone(&shared)));
        Proxy { addr, shared }
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The port clients connect to.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `127.0.0.1:<port>`, for configuration files.
    pub fn host_port(&self) -> String {
        format!("127.0.0.1:{}", self.addr.port())
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.shared.state.lock().unwrap().connections
    }

    /// One line for failure reports: port, target, connections accepted and still open, faults.
    pub fn describe(&self) -> String {
        let s = self.shared.state.lock().unwrap();
        format!(
            "proxy :{} -> {}: {} accepted, {} open, faults {:?}, per source {:?}",
            self.addr.port(),
            self.shared.target,
            s.connections,
            s.open,
            s.all,
            s.from
        )
    }

    /// The faults of every connection through this proxy.
    pub fn link(&self) -> Link<'_> {
        Link {
            shared: &self.shared,
            source: None,
        }
    }

    /// The faults of connections from `source` only (an `application_name`, see [`Proxy::postgres`]).
    pub fn link_from(&self, source: &str) -> Link<'_> {
        Link {
            shared: &self.shared,
            source: Some(source.to_string()),
        }
    }

    /// Heals the whole proxy and every per-source link.
    pub fn heal_all(&self) {
        {
            let mut s = self.shared.state.lock().unwrap();
            s.all = Faults::default();
            s.from.clear();
        }
        self.shared.changed.send_modify(|g| *g += 1);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stopped.send_replace(true);
        self.shared.changed.send_modify(|g| *g += 1);
    }
}

impl Link<'_> {
    /// The faults set on this link (not merged with the proxy-wide ones).
    pub fn faults(&self) -> Faults {
        let s = self.shared.state.lock().unwrap();
        match &self.source {
            None => s.all,
            Some(n) => s.from.get(n).copied().unwrap_or_default(),
        }
    }

    /// Replaces this link's faults.
    pub fn set(&self, faults: Faults) {
        {
            let mut s = self.shared.state.lock().unwrap();
            match &self.source {
                None => s.all = faults,
                Some(n) => {
                    s.from.insert(n.clone(), faults);
                }
            }
        }
        self.shared.changed.send_modify(|g| *g += 1);
    }

    fn update(&self, f: impl FnOnce(&mut Faults)) {
        let mut faults = self.faults();
        f(&mut faults);
        self.set(faults);
    }

    /// Cuts both directions (see [`Cut`]).
    pub fn cut(&self, how: Cut) {
        self.update(|f| f.cut = Some(how));
    }

    /// Holds the bytes going in `dir`; the other direction keeps flowing.
    pub fn cut_one_way(&self, dir: Direction) {
        self.update(|f| match dir {
            Direction::Upstream => f.upstream_held = true,
            Direction::Downstream => f.downstream_held = true,
        });
    }

    /// Delays every chunk by `latency`, each direction.
    pub fn delay(&self, latency: Duration) {
        self.update(|f| f.latency = latency);
    }

    /// Limits each direction to `bytes_per_sec`.
    pub fn bandwidth(&self, bytes_per_sec: u64) {
        self.update(|f| f.bandwidth = Some(bytes_per_sec.max(1)));
    }

    /// Removes every fault of this link; held bytes flow again.
    pub fn heal(&self) {
        self.set(Faults::default());
    }
}

/// Returns once the proxy is dropped.
async fn until_stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut stopped = shared.stopped.subscribe();
    loop {
        tokio::select! {
            _ = until_stopped(&mut stopped) => return,
            accepted = listener.accept() => {
                let Ok((client, _)) = accepted else {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                {
                    let mut s = shared.state.lock().unwrap();
                    s.connections += 1;
                    s.open += 1;
                }
                let _ = client.set_nodelay(true);
                tokio::spawn(connection(client, Arc::clone(&shared)));
            }
        }
    }
}

/// Ends a connection with RST rather than FIN.
fn reset(s: &TcpStream) {
    let _ = s.set_zero_linger();
}

/// Serves one accepted connection until both directions end, a reset cut, or the proxy stops.
async fn connection(mut client: TcpStream, shared: Arc<Shared>) {
    let mut stopped = shared.stopped.subscribe();
    let served = async {
        let mut changes = shared.changed.subscribe();
        let mut initial = Vec::new();
        let mut source = None;
        if shared.routing == Routing::Postgres {
            // Before answering an SSLRequest: hold or reset as the whole proxy says.
            if !shared
                .wait_for(None, &mut changes, |f| f.cut != Some(Cut::Blackhole))
                .await
            {
                return;
            }
            if shared.faults(None).cut == Some(Cut::Reset) {
                reset(&client);
                return;
            }
            match tokio::time::timeout(Duration::from_secs(10), startup(&mut client)).await {
                Ok(Ok((packet, name))) => {
                    initial = packet;
                    source = name;
                }
                _ => return,
            }
        }
        let source = source.as_deref();
        // A new connection waits out a blackhole before reaching the target; a reset refuses it.
        if !shared
            .wait_for(source, &mut changes, |f| f.cut != Some(Cut::Blackhole))
            .await
        {
            return;
        }
        if shared.faults(source).cut == Some(Cut::Reset) {
            reset(&client);
            return;
        }
        let Ok(Ok(mut server)) =
            tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(shared.target)).await
        else {
            reset(&client);
            return;
        };
        let _ = server.set_nodelay(true);
        {
            let (cr, cw) = client.split();
            let (sr, sw) = server.split();
            let up = pump(cr, sw, initial, Direction::Upstream, &shared, source);
            let down = pump(sr, cw, Vec::new(), Direction::Downstream, &shared, source);
            let mut watch_reset = shared.changed.subscribe();
            let reset_cut =
                shared.wait_for(source, &mut watch_reset, |f| f.cut == Some(Cut::Reset));
            tokio::select! {
                _ = async { tokio::join!(up, down) } => return,
                still_running = reset_cut => if !still_running { return },
            }
        }
        reset(&client);
        reset(&server);
    };
    tokio::select! {
        _ = served => {}
        _ = until_stopped(&mut stopped) => {}
    }
    shared.state.lock().unwrap().open -= 1;
}

/// Reads the startup packet, answering `N` to SSL and GSS encryption requests; returns the
/// packet to forward and its `application_name`.
async fn startup(client: &mut TcpStream) -> std::io::Result<(Vec<u8>, Option<String>)> {
    const SSL_REQUEST: u32 = 80_877_103;
    const GSSENC_REQUEST: u32 = 80_877_104;
    const PROTOCOL_3: u32 = 196_608;
    loop {
        let len = client.read_u32().await? as usize;
        if !(8..=10_000).contains(&len) {
            return Err(std::io::Error::other("not a PostgreSQL startup packet"));
        }
        let mut body = vec![0u8; len - 4];
        client.read_exact(&mut body).await?;
        let code = u32::from_be_bytes([body[0], body[1], body[2], body[3]]);
        if len == 8 && (code == SSL_REQUEST || code == GSSENC_REQUEST) {
            client.write_all(b"N").await?;
            continue;
        }
        let mut packet = (len as u32).to_be_bytes().to_vec();
        packet.extend_from_slice(&body);
        let name = (code == PROTOCOL_3)
            .then(|| application_name(&body[4..]))
            .flatten();
        return Ok((packet, name));
    }
}

/// The `application_name` among the startup packet's NUL-terminated key/value pairs.
fn application_name(params: &[u8]) -> Option<String> {
    let mut fields = params.split(|b| *b == 0);
    while let (Some(k), Some(v)) = (fields.next(), fields.next()) {
        if k.is_empty() {
            return None;
        }
        if k == b"application_name" {
            return Some(String::from_utf8_lossy(v).into_owned());
        }
    }
    None
}

/// Moves bytes one way: a reader that stamps each chunk with its delivery time and a writer that
/// delivers it then, while the direction flows and within the bandwidth. An end of stream is
/// forwarded as a shutdown of the write side, in order.
async fn pump<R, W>(
    mut from: R,
    mut to: W,
    initial: Vec<u8>,
    dir: Direction,
    shared: &Shared,
    source: Option<&str>,
) where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let (tx, mut rx) = mpsc::channel::<(Instant, Option<Vec<u8>>)>(64);
    let reader = async move {
        let mut changes = shared.changed.subscribe();
        if !initial.is_empty() {
            let at = Instant::now() + shared.faults(source).latency;
            if tx.send((at, Some(initial))).await.is_err() {
                return;
            }
        }
        loop {
            if !shared
                .wait_for(source, &mut changes, |f| f.flows(dir))
                .await
            {
                return;
            }
            let mut buf = vec![0u8; 16 * 1024];
            let n = from.read(&mut buf).await.unwrap_or(0);
            let at = Instant::now() + shared.faults(source).latency;
            let chunk = (n > 0).then(|| {
                buf.truncate(n);
                buf
            });
            let end = chunk.is_none();
            if tx.send((at, chunk)).await.is_err() || end {
                return;
            }
        }
    };
    let writer = async move {
        let mut changes = shared.changed.subscribe();
        while let Some((at, chunk)) = rx.recv().await {
            tokio::time::sleep_until(at).await;
            if !shared
                .wait_for(source, &mut changes, |f| f.flows(dir))
                .await
            {
                return;
            }
            let Some(bytes) = chunk else {
                let _ = to.shutdown().await;
                return;
            };
            if to.write_all(&bytes).await.is_err() {
                return;
            }
            if let Some(rate) = shared.faults(source).bandwidth {
                let secs = bytes.len() as f64 / rate as f64;
                tokio::time::sleep(Duration::from_secs_f64(secs)).await;
            }
        }
    };
    tokio::join!(reader, writer);
}
