//! One client per etcd endpoint, rotation between them, and the `retry_timeout` bound on every call.
//!
//! Failures are sorted into two kinds that must never be confused: nobody answered in time
//! ([`DcsError::Unreachable`]) versus an endpoint answered and refused ([`DcsError::Rejected`]).

use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use etcd_client::{Client, ConnectOptions};
use patroni_core::DcsError;
use tokio::time::{timeout, Instant};

use crate::config::{Etcd3Config, EtcdError};

/// The shortest time one endpoint gets per attempt, even when `retry_timeout` is split over many.
const MIN_ATTEMPT: Duration = Duration::from_secs(1);

/// How an etcd error should be handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// The endpoint is down, slow or has no raft leader: try the next one.
    Retry,
    /// The endpoint answered and refused (auth, permission, bad request): retrying cannot help.
    Refused,
}

pub(crate) fn classify(e: &etcd_client::Error) -> Failure {
    use etcd_client::Error as E;
    use tonic::Code;
    match e {
        E::GRpcStatus(s) => match s.code() {
            Code::Unauthenticated
            | Code::PermissionDenied
            | Code::InvalidArgument
            | Code::FailedPrecondition
            | Code::OutOfRange
            | Code::Unimplemented
            | Code::AlreadyExists
            | Code::NotFound => Failure::Refused,
            _ => Failure::Retry,
        },
        E::InvalidArgs(_) | E::InvalidUri(_) | E::InvalidMetadataValue(_) => Failure::Refused,
        _ => Failure::Retry,
    }
}

/// Whether etcd said the lease a request named does not exist (it expired or was revoked).
pub(crate) fn is_lease_not_found(e: &etcd_client::Error) -> bool {
    matches!(e, etcd_client::Error::GRpcStatus(s)
        if s.code() == tonic::Code::NotFound && s.message().contains("lease not found"))
}

/// The endpoints, their lazily built clients, and the request counter.
pub(crate) struct Connection {
    endpoints: Vec<String>,
    options: ConnectOptions,
    clients: Mutex<Vec<Option<Client>>>,
    current: AtomicUsize,
    retry_timeout: Duration,
    requests: AtomicU64,
}

impl Connection {
    pub(crate) fn new(config: &Etcd3Config, retry_timeout: Duration) -> Result<Self, EtcdError> {
        let endpoints = config.endpoints()?;
        let keepalive = (retry_timeout / 2).max(MIN_ATTEMPT);
        let mut options = ConnectOptions::new()
            .with_connect_timeout(MIN_ATTEMPT.max(retry_timeout / endpoints.len() as u32))
            .with_keep_alive(keepalive, retry_timeout.max(MIN_ATTEMPT))
            .with_keep_alive_while_idle(true)
            .with_require_leader(true)
            .with_auto_token_refresh(true);
        if let Some((user, password)) = config.credentials()? {
            options = options.with_user(user, password);
        }
        options = crate::tls::apply(config, options, &endpoints)?;
        Ok(Connection {
            clients: Mutex::new(vec![None; endpoints.len()]),
            endpoints,
            options,
            current: AtomicUsize::new(0),
            retry_timeout,
            requests: AtomicU64::new(0),
        })
    }

    pub(crate) fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Counts a request made outside [`Connection::call`] (a message on a held stream).
    pub(crate) fn count_request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    /// How long one endpoint gets per attempt: `retry_timeout / endpoints`, at least one second.
    pub(crate) fn attempt_budget(&self) -> Duration {
        (self.retry_timeout / self.endpoints.len() as u32).max(MIN_ATTEMPT)
    }

    /// The endpoint that answered last, where the next call and the watch start.
    pub(crate) fn current(&self) -> usize {
        self.current.load(Ordering::Relaxed)
    }

    pub(crate) fn endpoint(&self, idx: usize) -> &str {
        &self.endpoints[idx % self.endpoints.len()]
    }

    pub(crate) fn rotate_from(&self, idx: usize) {
        let _ = self.current.compare_exchange(
            idx,
            (idx + 1) % self.endpoints.len(),
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
    }

    /// The client of endpoint `idx`, connecting (and authenticating) on first use.
    pub(crate) async fn client(&self, idx: usize) -> Result<Client, etcd_client::Error> {
        let idx = idx % self.endpoints.len();
        if let Some(c) = self.lock_clients()[idx].clone() {
            return Ok(c);
        }
        let c = Client::connect([&self.endpoints[idx]], Some(self.options.clone())).await?;
        self.lock_clients()[idx] = Some(c.clone());
        Ok(c)
    }

    fn lock_clients(&self) -> std::sync::MutexGuard<'_, Vec<Option<Client>>> {
        self.clients.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `op` against the endpoints in rotation until one answers or `retry_timeout` passes.
    ///
    /// `what` names the operation in the error message.
    pub(crate) async fn call<T, F, Fut>(&self, what: &str, op: F) -> Result<T, DcsError>
    where
        F: Fn(Client) -> Fut,
        Fut: Future<Output = Result<T, etcd_client::Error>>,
    {
        let deadline = Instant::now() + self.retry_timeout;
        let n = self.endpoints.len();
        let start = self.current();
        let mut last = String::from("no attempt made");
        let mut attempt = 0usize;
        loop {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            let idx = (start + attempt) % n;
            attempt += 1;
            let budget = self.attempt_budget().min(deadline - now);
            self.requests.fetch_add(1, Ordering::Relaxed);
            let outcome = timeout(budget, async {
                let c = self.client(idx).await?;
                op(c).await
            })
            .await;
            match outcome {
                Ok(Ok(v)) => {
                    self.current.store(idx, Ordering::Relaxed);
                    return Ok(v);
                }
                Ok(Err(e)) if classify(&e) == Failure::Refused => {
                    return Err(DcsError::Rejected(format!(
                        "{what} at {}: {e}",
                        self.endpoints[idx]
                    )));
                }
                Ok(Err(e)) => last = format!("{}: {e}", self.endpoints[idx]),
                Err(_) => {
                    last = format!("{}: no answer within {budget:?}", self.endpoints[idx]);
                }
            }
            if attempt.is_multiple_of(n) {
                // Every endpoint failed once: pause briefly instead of spinning on refused connections.
                let pause = Duration::from_millis(100)
                    .min(deadline.saturating_duration_since(Instant::now()));
                tokio::time::sleep(pause).await;
            }
        }
        tracing::warn!(operation = what, error = %last, "etcd unreachable");
        Err(DcsError::Unreachable(format!(
            "no etcd endpoint answered {what} within {:?} (last: {last})",
            self.retry_timeout
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: tonic::Code, msg: &str) -> etcd_client::Error {
        etcd_client::Error::GRpcStatus(tonic::Status::new(code, msg))
    }

    #[test]
    fn outages_are_retried_refusals_are_not() {
        for code in [
            tonic::Code::Unavailable,
            tonic::Code::DeadlineExceeded,
            tonic::Code::Unknown,
            tonic::Code::Internal,
        ] {
            assert_eq!(
                classify(&status(code, "etcdserver: no leader")),
                Failure::Retry
            );
        }
        for code in [
            tonic::Code::Unauthenticated,
            tonic::Code::PermissionDenied,
            tonic::Code::InvalidArgument,
            tonic::Code::FailedPrecondition,
        ] {
            assert_eq!(classify(&status(code, "refused")), Failure::Refused);
        }
        let io = etcd_client::Error::IoError(std::io::Error::other("connection reset"));
        assert_eq!(classify(&io), Failure::Retry);
    }

    #[test]
    fn lease_not_found_is_recognised() {
        assert!(is_lease_not_found(&status(
            tonic::Code::NotFound,
            "etcdserver: requested lease not found"
        )));
        assert!(!is_lease_not_found(&status(
            tonic::Code::NotFound,
            "key not found"
        )));
        assert!(!is_lease_not_found(&status(
            tonic::Code::Unavailable,
            "lease not found"
        )));
    }

    #[test]
    fn attempts_share_retry_timeout_but_get_at_least_a_second() {
        let three = Etcd3Config::with_hosts(["a:1", "b:2", "c:3"]);
        let c = Connection::new(&three, Duration::from_secs(9)).unwrap();
        assert_eq!(c.attempt_budget(), Duration::from_secs(3));
        let c = Connection::new(&three, Duration::from_secs(2)).unwrap();
        assert_eq!(c.attempt_budget(), MIN_ATTEMPT);
        assert_eq!(c.endpoint(4), "http://b:2");
    }
}
