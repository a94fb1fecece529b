//! The agent's HTTP API: Patroni's endpoints and status codes, so load balancers and tools work unchanged.
//!
//! Health checks read the last cycle's snapshot; admin verbs write DCS keys or queue a request
//! for the loop. Every body is size-limited and parsed defensively: no request can panic the agent.
//! With `restapi.certfile` it speaks HTTPS only ([`tls`]); the unsafe verbs obey the allowlist
//! and client-certificate rules ([`allowlist`]).

// Handlers return early with a ready `Response`; boxing it would only add noise.
#![allow(clippy::result_large_err)]

mod admin;
pub mod allowlist;
pub mod config;
mod failsafe;
mod health;
pub mod limits;
mod metrics;
mod switchover;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use base64::Engine;
use serde::de::DeserializeOwned;

use tokio::sync::Semaphore;

use crate::state::Shared;
pub use limits::RestLimits;

/// Largest request body accepted; Patroni's verbs take a few hundred bytes.
pub const MAX_BODY: usize = 64 * 1024;

/// Why the REST server could not run.
#[derive(Debug, thiserror::Error)]
pub enum RestError {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// The server stopped with an I/O error.
    #[error("REST server failed: {0}")]
    Serve(std::io::Error),
    /// The TLS settings (`restapi.certfile`, `keyfile`, `cafile`, `ctl.*`) cannot be used.
    #[error("REST API TLS: {0}")]
    Tls(#[from] tls::TlsError),
}

/// The router with every endpoint, over shared agent state, under `limits`.
pub fn router(shared: Arc<Shared>, limits: RestLimits) -> Router {
    // Answered from the last cycle's snapshot, at once: never bounded, so they answer when the
    // endpoints below are saturated.
    let mut fast = Router::new();
    for (path, check) in health::ROUTES {
        let c = *check;
        fast = fast.route(
            path,
            get(move |s, q| health::get(s, q, c))
                .head(move |s, q| health::head(s, q, c))
                .options(move |s, q| health::head(s, q, c)),
        );
    }
    let fast = fast
        .route("/patroni", get(health::patroni))
        .route("/metrics", get(metrics::metrics))
        .route(
            "/failsafe",
            get(failsafe::get_failsafe).post(failsafe::post_failsafe),
        );
    // These read or write the DCS, or wait for the loop: a bounded number at once.
    let waiting = Router::new()
        .route("/cluster", get(metrics::cluster))
        .route("/history", get(metrics::history))
        .route(
            "/config",
            get(config::get_config)
                .patch(config::patch_config)
                .put(config::put_config),
        )
        .route(
            "/switchover",
            post(switchover::post_switchover).delete(switchover::delete_switchover),
        )
        .route("/failover", post(switchover::post_failover))
        .route(
            "/restart",
            post(admin::restart).delete(admin::delete_restart),
        )
        .route("/reinitialize", post(admin::reinitialize))
        .route("/reload", post(admin::reload))
        .route_layer(axum::middleware::from_fn_with_state(
            Arc::new(Semaphore::new(limits.max_waiting_requests())),
            limits::bound_waiting,
        ));
    fast.merge(waiting)
        .layer(axum::middleware::from_fn_with_state(limits, limits::track))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(shared)
}

/// A bound REST server, so callers learn the port before serving (tests bind port 0).
pub struct RestServer {
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
    limits: RestLimits,
    registry: Arc<limits::Registry>,
    tls: Option<Arc<rustls::ServerConfig>>,
    access: Option<Arc<allowlist::Access>>,
}

impl RestServer {
    /// Binds `addr` with the default [`RestLimits`].
    pub async fn bind(addr: &str, shared: Arc<Shared>) -> Result<Self, RestError> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| RestError::Bind {
                addr: addr.to_string(),
                source,
            })?;
        let limits = RestLimits::default();
        Ok(RestServer {
            listener,
            shared,
            limits,
            registry: limits::Registry::new(limits),
            tls: None,
            access: None,
        })
    }

    /// Applies `restapi`'s TLS (`certfile`, `keyfile`, `keyfile_password`, `cafile`,
    /// `verify_client`), `allowlist`, `allowlist_include_members` and extra headers.
    pub async fn with_security(
        mut self,
        restapi: &crate::config::RestApiConfig,
    ) -> Result<Self, RestError> {
        self.tls = tls::server_config(restapi)?;
        self.access = Some(Arc::new(
            allowlist::Access::new(restapi, self.tls.is_some(), Arc::clone(&self.shared)).await,
        ));
        Ok(self)
    }

    /// Replaces the connection limits (`restapi.header_timeout`, `idle_timeout`, `max_connections`).
    pub fn with_limits(mut self, limits: RestLimits) -> Self {
        self.limits = limits;
        self.registry = limits::Registry::new(limits);
        self
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// The open connections, for tests and diagnostics.
    pub fn connections(&self) -> Arc<limits::Registry> {
        Arc::clone(&self.registry)
    }

    /// Serves until `shutdown` resolves.
    pub async fn serve(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), RestError> {
        let listener = limits::LimitedListener::new(self.listener, self.registry);
        let mut app = router(self.shared, self.limits);
        if let Some(access) = self.access {
            app = access.wrap(app);
        }
        let app = app.into_make_service_with_connect_info::<limits::ConnHandle>();
        match self.tls {
            None => axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
                .map_err(RestError::Serve),
            Some(config) => {
                let listener = tls::TlsListener::new(listener, config, self.limits.header_timeout);
                axum::serve(listener, app)
                    .with_graceful_shutdown(shutdown)
                    .await
                    .map_err(RestError::Serve)
            }
        }
    }
}

/// A plain-text answer, as Patroni gives for its verbs.
pub(crate) fn text(code: StatusCode, msg: impl Into<String>) -> Response {
    (
        code,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        msg.into(),
    )
        .into_response()
}

/// Checks basic auth for an unsafe verb; `Err` is the 401 to send.
pub(crate) fn require_auth(shared: &Shared, headers: &HeaderMap) -> Result<(), Response> {
    let Some(want) = &shared.auth else {
        return Ok(());
    };
    let header_sent = headers.contains_key(header::AUTHORIZATION);
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| {
            base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .ok()
        })
        .and_then(|raw| String::from_utf8(raw).ok());
    let ok = given.as_deref().and_then(|g| g.split_once(':'))
        == Some((want.username.as_str(), want.password.as_str()));
    if ok {
        Ok(())
    } else {
        Err((
            StatusCode::UNAUTHORIZED,
            [
                (header::WWW_AUTHENTICATE, "Basic realm=\"patroni\""),
                (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            ],
            if header_sent {
                "wrong credentials"
            } else {
                "no auth header received"
            },
        )
            .into_response())
    }
}

/// Parses a JSON body; an empty body is `{}`; `Err` is the 400 naming what is wrong.
pub(crate) fn json_body<T: DeserializeOwned>(body: &Bytes) -> Result<T, Response> {
    let raw: &[u8] = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        body
    };
    serde_json::from_slice(raw)
        .map_err(|e| text(StatusCode::BAD_REQUEST, format!("invalid JSON body: {e}")))
}

/// The prelude of every unsafe verb with a body: basic auth when configured, then the JSON body.
pub(crate) fn authorized_json<T: DeserializeOwned>(
    shared: &Shared,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<T, Response> {
    require_auth(shared, headers)?;
    json_body(body)
}

#[cfg(test)]
mod tests;
