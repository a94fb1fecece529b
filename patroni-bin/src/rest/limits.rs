//! Connection limits: a client that sends half a header, a keep-alive connection left idle, or a
//! flood of connections must not use up the agent's file descriptors, or the health checks that
//! load balancers rely on stop answering.
//!
//! Each accepted connection is registered with its activity: when it last read or wrote, since
//! when a request's first bytes wait for the rest of the header, and how many requests it has in
//! flight. Its socket refuses to wait past the header timeout (a request begun but not complete)
//! or the idle timeout (nothing in flight, nothing begun). When `max_connections` are open, a new
//! connection closes the one idle the longest (else the one whose header has waited longest); a
//! connection with a request in flight is never closed that way, and endpoints that can wait (on
//! the DCS, on a restart or a switchover) may hold at most half the connections, so there is
//! always one to close and the health endpoints keep answering.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use axum::body::Body;
use axum::extract::connect_info::Connected;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;
use axum::serve::{IncomingStream, Listener};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::{Instant, Sleep};

use super::{text, MAX_BODY};

/// How long clients may take and how many connections may be open at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestLimits {
    /// From a request's first byte until its header (and body) has arrived.
    pub header_timeout: Duration,
    /// How long a connection with no request in flight and none begun stays open.
    pub idle_timeout: Duration,
    /// Open connections at most; a new one closes the longest-idle one.
    pub max_connections: usize,
}

impl Default for RestLimits {
    fn default() -> Self {
        RestLimits {
            header_timeout: Duration::from_secs(DEFAULT_HEADER_TIMEOUT_SECS),
            idle_timeout: Duration::from_secs(DEFAULT_IDLE_TIMEOUT_SECS),
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

/// Default `restapi.header_timeout`, seconds: Patroni's clients send a request in one write.
pub const DEFAULT_HEADER_TIMEOUT_SECS: u64 = 10;
/// Default `restapi.idle_timeout`, seconds: above the minute a peer or HAProxy waits between checks.
pub const DEFAULT_IDLE_TIMEOUT_SECS: u64 = 60;
/// Default `restapi.max_connections`: well under the usual 1024 descriptors per process.
pub const DEFAULT_MAX_CONNECTIONS: usize = 256;

impl RestLimits {
    /// How many requests to endpoints that can wait may run at once (half the connections).
    pub fn max_waiting_requests(&self) -> usize {
        (self.max_connections / 2).max(1)
    }
}

/// One connection's activity.
#[derive(Debug)]
struct Activity {
    /// The last byte read or written (or the accept).
    last_active: Instant,
    /// When the first byte of a request not yet handed to a handler arrived.
    request_begun: Option<Instant>,
    /// Requests handed to a handler and not answered yet.
    in_flight: u32,
    /// Closed by eviction: every later read or write fails.
    closed: bool,
    /// The task to wake when the connection is closed or its activity changes.
    waker: Option<Waker>,
}

/// A registered connection.
#[derive(Debug)]
pub struct Conn {
    id: u64,
    limits: RestLimits,
    activity: Mutex<Activity>,
}

impl Conn {
    fn activity(&self) -> MutexGuard<'_, Activity> {
        self.activity.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Closes the connection: its next read or write fails and hyper drops it.
    fn close(&self) {
        let waker = {
            let mut a = self.activity();
            a.closed = true;
            a.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    fn request_started(&self) {
        let mut a = self.activity();
        a.in_flight += 1;
        a.request_begun = None;
        a.last_active = Instant::now();
    }

    fn request_finished(&self) {
        let waker = {
            let mut a = self.activity();
            a.in_flight = a.in_flight.saturating_sub(1);
            a.last_active = Instant::now();
            a.waker.take()
        };
        // The socket's deadline changed: let it re-arm its timer.
        if let Some(w) = waker {
            w.wake();
        }
    }

    fn on_read(&self, n: usize) {
        if n == 0 {
            return;
        }
        let now = Instant::now();
        let mut a = self.activity();
        a.last_active = now;
        if a.in_flight == 0 && a.request_begun.is_none() {
            a.request_begun = Some(now);
        }
    }

    fn on_write(&self) {
        self.activity().last_active = Instant::now();
    }

    /// Registers `waker`; `Err` when the connection must end now, else its deadline, if any.
    fn check(&self, waker: &Waker) -> io::Result<Option<Instant>> {
        let mut a = self.activity();
        if a.closed {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "closed to admit a newer connection",
            ));
        }
        let deadline = if a.in_flight > 0 {
            None
        } else if let Some(begun) = a.request_begun {
            Some(begun + self.limits.header_timeout)
        } else {
            Some(a.last_active + self.limits.idle_timeout)
        };
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                if a.request_begun.is_some() {
                    "request header not received in time"
                } else {
                    "idle connection closed"
                },
            ));
        }
        if !a.waker.as_ref().is_some_and(|w| w.will_wake(waker)) {
            a.waker = Some(waker.clone());
        }
        Ok(deadline)
    }

    /// Whether eviction may close it, and how it ranks: idle ones first, longest idle first.
    fn eviction_rank(&self) -> Option<(bool, Instant)> {
        let a = self.activity();
        if a.in_flight > 0 || a.closed {
            return None;
        }
        Some(match a.request_begun {
            None => (false, a.last_active),
            Some(begun) => (true, begun),
        })
    }
}

/// Every open connection of one server.
#[derive(Debug)]
pub struct Registry {
    limits: RestLimits,
    next_id: AtomicU64,
    conns: Mutex<HashMap<u64, Arc<Conn>>>,
}

impl Registry {
    /// An empty registry under `limits`.
    pub fn new(limits: RestLimits) -> Arc<Self> {
        Arc::new(Registry {
            limits,
            next_id: AtomicU64::new(1),
            conns: Mutex::new(HashMap::new()),
        })
    }

    fn conns(&self) -> MutexGuard<'_, HashMap<u64, Arc<Conn>>> {
        self.conns.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.conns().len()
    }

    /// Registers a new connection, closing the best victim when full; `None`: refuse it (every
    /// open connection has a request in flight).
    fn admit(&self) -> Option<Arc<Conn>> {
        let mut conns = self.conns();
        if conns.len() >= self.limits.max_connections {
            let victim = conns
                .values()
                .filter_map(|c| c.eviction_rank().map(|r| (r, c.id)))
                .min()
                .map(|(_, id)| id)?;
            if let Some(v) = conns.remove(&victim) {
                tracing::debug!(
                    "REST: {} connections open, closing the longest idle",
                    conns.len() + 1
                );
                v.close();
            }
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(Conn {
            id,
            limits: self.limits,
            activity: Mutex::new(Activity {
                last_active: Instant::now(),
                request_begun: None,
                in_flight: 0,
                closed: false,
                waker: None,
            }),
        });
        conns.insert(id, Arc::clone(&conn));
        Some(conn)
    }

    fn remove(&self, id: u64) {
        self.conns().remove(&id);
    }
}

/// A TCP listener that registers what it accepts and refuses past the cap.
pub struct LimitedListener {
    inner: TcpListener,
    registry: Arc<Registry>,
}

impl LimitedListener {
    /// Wraps a bound listener.
    pub fn new(inner: TcpListener, registry: Arc<Registry>) -> Self {
        LimitedListener { inner, registry }
    }
}

/// What handlers learn about their connection (through `ConnectInfo`).
#[derive(Debug, Clone)]
pub struct ConnHandle {
    /// The peer's address.
    pub remote: SocketAddr,
    /// Whether the peer showed a TLS client certificate that `restapi.cafile` vouches for.
    pub client_cert: bool,
    conn: Arc<Conn>,
}

impl Listener for LimitedListener {
    type Io = LimitedStream;
    type Addr = ConnHandle;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let (stream, remote) = match self.inner.accept().await {
                Ok(v) => v,
                Err(e) => {
                    // Out of descriptors or a connection reset before accept: wait a little so a
                    // persistent error does not spin, as axum's own listener does.
                    tracing::warn!("REST: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let Some(conn) = self.registry.admit() else {
                tracing::warn!("REST: every connection has a request in flight; refusing {remote}");
                drop(stream);
                continue;
            };
            let io = LimitedStream {
                inner: stream,
                conn: Arc::clone(&conn),
                registry: Arc::downgrade(&self.registry),
                timer: Box::pin(tokio::time::sleep_until(Instant::now())),
            };
            return (
                io,
                ConnHandle {
                    remote,
                    client_cert: false,
                    conn,
                },
            );
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        // A listener has no connection of its own; `RestServer::local_addr` answers before serving.
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "use RestServer::local_addr",
        ))
    }
}

impl Connected<IncomingStream<'_, LimitedListener>> for ConnHandle {
    fn connect_info(stream: IncomingStream<'_, LimitedListener>) -> Self {
        stream.remote_addr().clone()
    }
}

/// An accepted socket that enforces its connection's deadlines.
pub struct LimitedStream {
    inner: TcpStream,
    conn: Arc<Conn>,
    registry: Weak<Registry>,
    timer: Pin<Box<Sleep>>,
}

impl Drop for LimitedStream {
    fn drop(&mut self) {
        if let Some(r) = self.registry.upgrade() {
            r.remove(self.conn.id);
        }
    }
}

impl LimitedStream {
    /// After the socket said "not yet": fail when the connection is closed or past its deadline,
    /// else arm the timer so the task wakes at the deadline.
    fn wait(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.conn.check(cx.waker()) {
            Err(e) => Poll::Ready(Err(e)),
            Ok(None) => Poll::Pending,
            Ok(Some(deadline)) => {
                if self.timer.deadline() != deadline {
                    self.timer.as_mut().reset(deadline);
                }
                if self.timer.as_mut().poll(cx).is_ready() {
                    // The deadline passed between the check and now.
                    return match self.conn.check(cx.waker()) {
                        Err(e) => Poll::Ready(Err(e)),
                        Ok(_) => Poll::Pending,
                    };
                }
                Poll::Pending
            }
        }
    }
}

impl AsyncRead for LimitedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Err(e) = this.conn.check(cx.waker()) {
            return Poll::Ready(Err(e));
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                this.conn.on_read(buf.filled().len() - before);
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => match this.wait(cx) {
                Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                _ => Poll::Pending,
            },
        }
    }
}

impl AsyncWrite for LimitedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Err(e) = this.conn.check(cx.waker()) {
            return Poll::Ready(Err(e));
        }
        match Pin::new(&mut this.inner).poll_write(cx, buf) {
            Poll::Ready(Ok(n)) => {
                this.conn.on_write();
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            // A client that stops reading its answer is idle, not busy.
            Poll::Pending => match this.wait(cx) {
                Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                _ => Poll::Pending,
            },
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// Marks a request in flight on its connection until dropped (answered or abandoned).
struct InFlight(Option<Arc<Conn>>);

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(c) = self.0.take() {
            c.request_finished();
        }
    }
}

/// Middleware on every route: counts the request in flight on its connection and reads its body
/// within the header timeout (a body trickled byte by byte must not hold a connection).
pub async fn track(State(limits): State<RestLimits>, req: Request, next: Next) -> Response {
    let conn = req
        .extensions()
        .get::<ConnectInfo<ConnHandle>>()
        .map(|c| Arc::clone(&c.0.conn));
    if let Some(c) = &conn {
        c.request_started();
    }
    let _in_flight = InFlight(conn);
    let (parts, body) = req.into_parts();
    let bytes =
        match tokio::time::timeout(limits.header_timeout, axum::body::to_bytes(body, MAX_BODY))
            .await
        {
            Ok(Ok(b)) => b,
            Ok(Err(_)) => return text(StatusCode::PAYLOAD_TOO_LARGE, "request body too large"),
            Err(_) => {
                return text(
                    StatusCode::REQUEST_TIMEOUT,
                    "request body not received in time",
                )
            }
        };
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// Middleware on endpoints that can wait: at most [`RestLimits::max_waiting_requests`] at once,
/// so waiting requests can never hold every connection.
pub async fn bound_waiting(
    State(permits): State<Arc<Semaphore>>,
    req: Request,
    next: Next,
) -> Response {
    match permits.try_acquire() {
        Ok(_permit) => next.run(req).await,
        Err(_) => text(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many requests in progress; retry later",
        ),
    }
}
