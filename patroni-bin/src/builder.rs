//! [`AgentBuilder`]: an agent from parts. The `patroni` daemon feeds it from YAML; a custom
//! orchestrator feeds it its own DCS (a Consul or Kubernetes lease behind the [`Dcs`] port), its
//! own database control (a [`Database`]), the failover policy it proved in the simulator (a
//! [`FailoverPolicy`]), and a REST listener or none.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::http::StatusCode;
use patroni_core::{Database, Dcs, FailoverPolicy, LocalRequest, Node};
use serde_json::json;
use tokio::sync::broadcast;

use crate::agent::{Agent, AgentError, Fencing, Reloader};
use crate::config::Credentials;
use crate::events::AgentEvent;
use crate::requests::{hand_over, patch_config, HandOver};
use crate::rest::{RestLimits, RestServer};
use crate::state::{Shared, Snapshot};

/// Collects the parts of one agent; [`build`](Self::build) binds its REST listener (if any).
///
/// On adapters of one's own (any [`Dcs`] and [`Database`]):
///
/// ```no_run
/// use std::sync::Arc;
/// use patroni_bin::{AgentBuilder, AgentError, AgentEvent};
/// use patroni_core::{Database, Dcs, Node, PatroniPolicy};
///
/// async fn embed(dcs: Arc<dyn Dcs>, db: Arc<dyn Database>) -> Result<(), AgentError> {
///     let agent = AgentBuilder::new("my-cluster", Node::new("node1"), dcs, db)
///         .policy(Box::new(PatroniPolicy))
///         .rest_api("127.0.0.1:8008")
///         .build()
///         .await?;
///     let handle = agent.handle();
///     let mut events = handle.events();
///     tokio::spawn(async move {
///         while let Ok(e) = events.recv().await {
///             if let AgentEvent::RoleChanged { to, .. } = e {
///                 println!("now {to:?}"); // e.g. update service discovery
///             }
///         }
///     });
///     agent.run(async {
///         let _ = tokio::signal::ctrl_c().await;
///     })
///     .await
/// }
/// ```
pub struct AgentBuilder {
    scope: String,
    node: Node,
    dcs: Arc<dyn Dcs>,
    db: Arc<dyn Database>,
    policy: Option<Box<dyn FailoverPolicy>>,
    rest: Option<(String, RestLimits)>,
    auth: Option<Credentials>,
    fencing: Option<Fencing>,
    pid_file: Option<PathBuf>,
    reloader: Option<Reloader>,
    config_hook: Option<crate::agent::ConfigHook>,
    callbacks: Option<crate::callbacks::Callbacks>,
    security: Option<crate::config::RestApiConfig>,
    peer_client: Option<reqwest::Client>,
}

impl AgentBuilder {
    /// An agent for `node` of cluster `scope`, on these ports, deciding with Patroni's rules,
    /// with no REST API and no fencing until told otherwise.
    pub fn new(
        scope: impl Into<String>,
        node: Node,
        dcs: Arc<dyn Dcs>,
        db: Arc<dyn Database>,
    ) -> Self {
        AgentBuilder {
            scope: scope.into(),
            node,
            dcs,
            db,
            policy: None,
            rest: None,
            auth: None,
            fencing: None,
            pid_file: None,
            reloader: None,
            config_hook: None,
            callbacks: None,
            security: None,
            peer_client: None,
        }
    }

    /// Decides failovers with `policy` (Patroni's rules when never called).
    pub fn policy(mut self, policy: Box<dyn FailoverPolicy>) -> Self {
        self.policy = Some(policy);
        self
    }

    /// Serves Patroni's REST API on `listen` (`host:port`; port 0 picks a free one), which the
    /// other members' leader races probe: a cluster of agents without it cannot compare WAL.
    pub fn rest_api(mut self, listen: impl Into<String>) -> Self {
        self.rest = Some((listen.into(), RestLimits::default()));
        self
    }

    /// The REST API's connection limits.
    pub fn rest_limits(mut self, limits: RestLimits) -> Self {
        if let Some((_, l)) = self.rest.as_mut() {
            *l = limits;
        }
        self
    }

    /// Basic-auth credentials the REST API asks for on its unsafe verbs.
    pub fn rest_auth(mut self, auth: Option<Credentials>) -> Self {
        self.auth = auth;
        self
    }

    /// The REST API's TLS, allowlist and extra headers, from these `restapi` settings.
    pub fn rest_security(mut self, restapi: crate::config::RestApiConfig) -> Self {
        self.security = Some(restapi);
        self
    }

    /// The HTTP client for the peers' REST APIs (HTTPS settings from `ctl.cacert` or
    /// `restapi.cafile`, and `ctl`'s client certificate).
    pub fn peer_client(mut self, client: reqwest::Client) -> Self {
        self.peer_client = Some(client);
        self
    }

    /// The user's scripts run around database actions (`postgresql.callbacks` and friends),
    /// until a reload replaces them (see [`Reloaded`](crate::Reloaded)).
    pub fn callbacks(mut self, callbacks: Option<crate::callbacks::Callbacks>) -> Self {
        self.callbacks = callbacks;
        self
    }

    /// The fence process and watchdog device this agent keeps informed.
    pub fn fencing(mut self, fencing: Fencing) -> Self {
        self.fencing = Some(fencing);
        self
    }

    /// The database's `postmaster.pid`, watched so a crash wakes the loop at once.
    pub fn pid_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.pid_file = Some(path.into());
        self
    }

    /// How to re-read the node's settings and user scripts on `POST /reload` (or SIGHUP in the
    /// daemon).
    pub fn reloader(mut self, reloader: Reloader) -> Self {
        self.reloader = Some(reloader);
        self
    }

    /// What each new dynamic configuration is handed to (see [`ConfigHook`](crate::agent::ConfigHook));
    /// [`build_database`](crate::build_database) gives the stock adapter's.
    pub fn config_hook(mut self, hook: Option<crate::agent::ConfigHook>) -> Self {
        self.config_hook = hook;
        self
    }

    /// Assembles the agent and binds its REST listener.
    pub async fn build(self) -> Result<EmbeddedAgent, AgentError> {
        let shared = Shared::new(self.scope, self.node, self.dcs, self.auth);
        let server = match self.rest {
            Some((listen, limits)) => {
                let mut s = RestServer::bind(&listen, Arc::clone(&shared))
                    .await?
                    .with_limits(limits);
                if let Some(restapi) = &self.security {
                    s = s.with_security(restapi).await?;
                }
                Some(s)
            }
            None => None,
        };
        let mut agent = Agent::new(Arc::clone(&shared), self.db);
        if let Some(p) = self.policy {
            agent = agent.with_policy(p);
        }
        if let Some(f) = self.fencing {
            agent = agent.with_fencing(f);
        }
        if let Some(p) = self.pid_file {
            agent = agent.with_pid_file(p);
        }
        if let Some(r) = self.reloader {
            agent = agent.with_reloader(r);
        }
        if let Some(h) = self.config_hook {
            agent = agent.with_config_hook(h);
        }
        if let Some(c) = self.callbacks {
            agent = agent.with_callbacks(c);
        }
        if let Some(c) = self.peer_client {
            agent = agent.with_peer_client(c);
        }
        Ok(EmbeddedAgent {
            agent,
            server,
            handle: AgentHandle { shared },
        })
    }
}

/// A built agent, ready to [`run`](Self::run).
pub struct EmbeddedAgent {
    agent: Agent,
    server: Option<RestServer>,
    handle: AgentHandle,
}

impl EmbeddedAgent {
    /// What the embedding program keeps: events, the state, and operator requests.
    pub fn handle(&self) -> AgentHandle {
        self.handle.clone()
    }

    /// Where the REST API listens, when it was asked for.
    pub fn rest_addr(&self) -> Option<SocketAddr> {
        self.server.as_ref().map(RestServer::local_addr)
    }

    /// Runs the agent (and its REST API) until `shutdown` resolves; then the database is stopped
    /// (a leader hands over first) unless the cluster is paused, and the lock is released.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), AgentError> {
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let rest = self.server.map(|s| {
            tokio::spawn(s.serve(async {
                let _ = stop_rx.await;
            }))
        });
        self.agent.run(shutdown).await;
        let _ = stop_tx.send(());
        if let Some(rest) = rest {
            match rest.await {
                Ok(r) => r?,
                Err(e) => tracing::error!("REST task: {e}"),
            }
        }
        Ok(())
    }
}

/// Why an operator request was refused: Patroni's status code and message, as the REST API
/// would have answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} ({code})")]
pub struct Refused {
    /// The HTTP status the REST API answers with.
    pub code: u16,
    /// Patroni's message.
    pub message: String,
}

fn refused((code, message): (StatusCode, String)) -> Refused {
    Refused {
        code: code.as_u16(),
        message,
    }
}

/// An embedding program's line to its agent: cheap to clone, usable from any task.
#[derive(Clone)]
pub struct AgentHandle {
    shared: Arc<Shared>,
}

impl AgentHandle {
    /// Each decision and role change from now on (a slow reader misses the oldest, and hears so).
    pub fn events(&self) -> broadcast::Receiver<AgentEvent> {
        self.shared.events.subscribe()
    }

    /// The last cycle's view: local database, cluster, leader lease, status line.
    pub fn snapshot(&self) -> Snapshot {
        self.shared.snapshot()
    }

    /// The role this member reports, as the REST API and the member key say it: what a service
    /// registry should route by.
    pub fn role(&self) -> patroni_core::MemberRole {
        crate::status::role(&self.shared.snapshot())
    }

    /// `patronictl switchover`: hands the leader role from `leader` to `candidate` (the
    /// healthiest when `None`) and waits for the new leader, as `POST /switchover` does.
    pub async fn switchover(
        &self,
        leader: &str,
        candidate: Option<&str>,
    ) -> Result<String, Refused> {
        let req = HandOver {
            leader: Some(leader.to_string()),
            candidate: candidate.map(str::to_string),
            scheduled_at: None,
        };
        hand_over(&self.shared, req, false)
            .await
            .map(|(_, msg)| msg)
            .map_err(refused)
    }

    /// `patronictl failover`: promotes `candidate` even without a healthy leader, as
    /// `POST /failover` does (the lag limit still holds).
    pub async fn failover(&self, candidate: &str) -> Result<String, Refused> {
        let req = HandOver {
            leader: None,
            candidate: Some(candidate.to_string()),
            scheduled_at: None,
        };
        hand_over(&self.shared, req, true)
            .await
            .map(|(_, msg)| msg)
            .map_err(refused)
    }

    /// `patronictl pause` / `resume`: maintenance mode for the whole cluster.
    pub async fn set_pause(&self, paused: bool) -> Result<(), Refused> {
        let patch = json!({ "pause": if paused { json!(true) } else { json!(null) } });
        patch_config(&self.shared, &patch)
            .await
            .map(|_| ())
            .map_err(refused)
    }

    /// `POST /reload` on this node: re-read its settings with the builder's reloader.
    pub fn reload(&self) {
        self.shared.reload.notify_one();
    }

    /// `POST /restart` on this node: the database restarts in its current role.
    pub fn restart(&self) {
        self.shared
            .push_request(LocalRequest::Restart { timeout: None });
    }

    /// `POST /reinitialize` on this node: the replica's data directory is copied again.
    pub fn reinitialize(&self, force: bool) {
        self.shared
            .push_request(LocalRequest::Reinitialize { force });
    }
}
