//! The HA loop: observe the DCS and the database, ask the state machine, act, sleep until the next
//! cycle or until something worth waking for happens (leader key change, database exit, request).

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use patroni_core::executor::{Next, Rounds, Sequence};
use patroni_core::slots::SlotKeeper;
use patroni_core::{
    Action, ActionKind, Cluster, Database, DcsView, Decision, DynamicConfig, FailoverPolicy,
    FailsafeInput, FailsafeRound, Ha, LocalDb, LocalRequest, MemberRole, Node, Observation,
    Outcome, OutcomeResult, PeerStatus, ProcessState, RunningTask, StopMode, Timestamp,
};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::{sleep, sleep_until, timeout, Instant};

use crate::events::AgentEvent;
use crate::execute::Executor;
use crate::scheduled::{self, Verdict};
use crate::state::Shared;
use crate::status::PatroniStatus;

/// The shortest loop period, whatever `loop_wait` says, so a zero never spins the loop.
const MIN_LOOP: Duration = Duration::from_millis(100);

/// Why the agent stopped abnormally.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AgentError {
    /// The configuration is unusable.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The REST server failed.
    #[error(transparent)]
    Rest(#[from] crate::rest::RestError),
    /// The DCS adapter could not be created.
    #[error("DCS: {0}")]
    Dcs(String),
    /// The database adapter could not be created.
    #[error("database: {0}")]
    Database(String),
    /// Installing signal handlers failed.
    #[error("signals: {0}")]
    Signals(std::io::Error),
}

/// What stops this node's database when its agent cannot: the fence process and the watchdog
/// device, as the `watchdog` section asks: [`start_fencing`](crate::start_fencing) from a
/// [`Config`](crate::Config), or [`Fencing::off`].
#[derive(Debug)]
pub struct Fencing {
    /// The section's settings.
    pub(crate) settings: crate::watchdog::Settings,
    /// The fence process, when it runs.
    pub(crate) client: Option<crate::fence::FenceClient>,
    /// The watchdog device (used only when present).
    pub(crate) device: crate::watchdog::Device,
}

impl Fencing {
    /// Fencing with nothing started yet.
    pub(crate) fn new(settings: crate::watchdog::Settings) -> Fencing {
        Fencing {
            device: crate::watchdog::Device::new(&settings.device),
            settings,
            client: None,
        }
    }

    /// No fencing at all (`watchdog.mode: off`), for embedders and tests.
    pub fn off() -> Fencing {
        let off = crate::config::WatchdogSection {
            mode: Some("off".into()),
            ..Default::default()
        };
        Fencing::new(crate::watchdog::Settings::from_section(&off).expect("mode off is valid"))
    }
}

/// Re-reads the node's settings on SIGHUP or `POST /reload`; an error keeps the running ones.
pub type Reloader = Box<dyn Fn() -> Result<Reloaded, String> + Send + Sync>;

/// What a [`Reloader`] read, put in force from the next cycle.
pub struct Reloaded {
    /// This member's identity (tags, bootstrap timings, ...).
    pub node: Node,
    /// What becomes of the user's scripts.
    pub callbacks: ReloadedScripts,
}

/// The user's scripts after a reload. A script already running finishes as it began.
pub enum ReloadedScripts {
    /// Those in force stay, for a reloader that reads the node alone.
    Keep,
    /// These ([`build_callbacks`](crate::build_callbacks)) replace those in force; `None` runs
    /// none from now on.
    Replace(Option<Box<crate::callbacks::Callbacks>>),
}

/// A reload that reads the node alone: the scripts in force stay.
impl From<Node> for Reloaded {
    fn from(node: Node) -> Reloaded {
        Reloaded {
            node,
            callbacks: ReloadedScripts::Keep,
        }
    }
}

/// Applies the dynamic configuration in force (`/config`, or `bootstrap.dcs` before there is
/// one) to what the [`Database`] port does not carry, and to this node's identity: the daemon
/// switches PostgreSQL's `use_pg_rewind` and names the rewind tool in [`Node::rewind_tool`].
/// Called when that configuration changes, before the cycle's actions run.
pub type ConfigHook = Box<dyn Fn(&DynamicConfig, &mut Node) + Send + Sync>;

/// A slow action running in the background, with the actions listed after it.
struct Task {
    kind: ActionKind,
    since: u64,
    done: oneshot::Receiver<Vec<Outcome>>,
    handle: JoinHandle<()>,
}

/// What ended the wait between cycles.
enum Wake {
    Cycle,
    TaskDone(Result<Vec<Outcome>, oneshot::error::RecvError>),
    Reload,
    Shutdown,
}

/// One agent: the state machine plus the ports it drives; embeddable in other programs.
pub struct Agent {
    shared: Arc<Shared>,
    exec: Executor,
    ha: Ha,
    pid_file: Option<PathBuf>,
    reloader: Option<Reloader>,
    http: reqwest::Client,
    /// The lease timing last handed to the DCS.
    lease_timing: Option<(Duration, Duration)>,
    /// The fence process and watchdog device.
    fencing: Fencing,
    /// Every member's REST address seen so far, for probing one whose key has expired.
    api_urls: std::sync::Mutex<std::collections::HashMap<String, String>>,
    /// Which downstream members were seen when, for their replication slots.
    slots: SlotKeeper,
    /// The role last reported, for [`AgentEvent::RoleChanged`].
    role: MemberRole,
    /// The postmaster's pidfd, kept between waits.
    exit_watch: crate::exit_watch::ExitWatch,
    /// What a changed dynamic configuration is handed to.
    config_hook: Option<ConfigHook>,
    /// The dynamic configuration last handed to `config_hook`.
    hooked: Option<DynamicConfig>,
}

impl Agent {
    /// An agent for `shared.node()` driving `db` and `shared.dcs`.
    pub fn new(shared: Arc<Shared>, db: Arc<dyn Database>) -> Self {
        let node = shared.node();
        let exec = Executor {
            dcs: Arc::clone(&shared.dcs),
            db,
            shared: Arc::clone(&shared),
            dcs_timeout: node
                .bootstrap_config
                .retry_timeout_duration()
                .max(Duration::from_secs(1)),
            callbacks: Default::default(),
        };
        Agent {
            ha: Ha::new(node),
            shared,
            exec,
            pid_file: None,
            reloader: None,
            http: reqwest::Client::new(),
            lease_timing: None,
            fencing: Fencing::off(),
            api_urls: Default::default(),
            slots: SlotKeeper::new(),
            role: MemberRole::Uninitialized,
            exit_watch: Default::default(),
            config_hook: None,
            hooked: None,
        }
    }

    /// Decides with `policy` instead of Patroni's rules (a policy proven in the simulator).
    pub fn with_policy(mut self, policy: Box<dyn FailoverPolicy>) -> Self {
        self.ha = Ha::with_policy(self.shared.node(), policy);
        self
    }

    /// Watches this `postmaster.pid` so a database exit wakes the loop within 250 ms.
    pub fn with_pid_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.pid_file = Some(path.into());
        self
    }

    /// Sets the fencing this agent keeps informed (the daemon's default is `automatic`).
    pub fn with_fencing(mut self, fencing: Fencing) -> Self {
        self.fencing = fencing;
        self
    }

    /// Runs the user's scripts (`postgresql.callbacks`, `pre_promote`, `before_stop`) around
    /// database actions, until a reload replaces them (see [`Reloaded`]).
    pub fn with_callbacks(self, callbacks: crate::callbacks::Callbacks) -> Self {
        self.exec.callbacks.replace(Some(callbacks));
        self
    }

    /// Sets how to re-read the node's settings and user scripts on reload.
    pub fn with_reloader(mut self, r: Reloader) -> Self {
        self.reloader = Some(r);
        self
    }

    /// Hands each new dynamic configuration to `hook` (see [`ConfigHook`]).
    pub fn with_config_hook(mut self, hook: ConfigHook) -> Self {
        self.config_hook = Some(hook);
        self
    }

    /// Probes peers with `client` (HTTPS settings from `ctl.cacert` or `restapi.cafile`, and
    /// `ctl`'s client certificate).
    pub fn with_peer_client(mut self, client: reqwest::Client) -> Self {
        self.http = client;
        self
    }

    /// The state shared with the REST API.
    pub fn shared(&self) -> Arc<Shared> {
        Arc::clone(&self.shared)
    }

    /// Runs cycles until `shutdown` resolves, then stops the database (unless paused) and releases the lock.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut outcomes: Vec<Outcome> = Vec::new();
        let mut task: Option<Task> = None;
        let mut last_local = LocalDb::default();
        loop {
            let started = Instant::now();
            let config = self.shared.read(|s| s.dynamic_config(self.ha.node()));
            self.exec.dcs_timeout = config.retry_timeout_duration().max(Duration::from_secs(1));
            // A shutdown is not kept waiting by a cycle stuck on DCS timeouts: the leader stops
            // its database and releases the lock (when etcd answers) in `shut_down`.
            let stopped = tokio::select! {
                biased;
                _ = shutdown.as_mut() => true,
                _ = self.one_cycle(&mut outcomes, &mut task, &mut last_local) => false,
            };
            if stopped {
                tracing::info!("shutting down in the middle of a cycle");
                break;
            }
            self.update_fencing(&last_local);
            let next = started + config.loop_wait_duration().max(MIN_LOOP);
            if Instant::now() > next {
                tracing::warn!("Loop time exceeded, rescheduling immediately.");
            }
            let next = self.wake_for_scheduled_restart(next);
            let watch_db = task.is_none() && last_local.process == ProcessState::Running;
            let wake = self
                .wait(next, watch_db, &mut task, shutdown.as_mut())
                .await;
            let mut failed = false;
            match wake {
                Wake::Cycle => {}
                Wake::TaskDone(r) => {
                    let t = task.take();
                    failed = !matches!(&r, Ok(done) if done.iter().all(|o| o.result == OutcomeResult::Done));
                    match r {
                        Ok(done) => {
                            self.record_finished(&done);
                            outcomes.extend(done);
                        }
                        Err(_) => {
                            if let Some(t) = t {
                                outcomes.push(Outcome {
                                    kind: t.kind,
                                    result: OutcomeResult::Failed("task ended unexpectedly".into()),
                                    started_at: t.since,
                                })
                            }
                        }
                    }
                }
                Wake::Reload => self.reload(),
                Wake::Shutdown => break,
            }
            // A failed task is retried on the regular schedule, not in a tight loop.
            if failed {
                let retry_at = Instant::now() + config.loop_wait_duration().max(MIN_LOOP);
                tokio::select! {
                    _ = shutdown.as_mut() => break,
                    _ = sleep_until(retry_at) => {}
                    _ = self.shared.wake.notified() => {}
                }
            }
            // Never spin: a burst of watch events still leaves room for the REST API and the database.
            sleep(Duration::from_millis(20)).await;
        }
        self.shut_down(task).await;
    }

    /// One cycle: step, act, and step again at once after peer probes or a refused guard (a
    /// lost race must demote now, not one loop_wait later), as the core's executor says.
    async fn one_cycle(
        &mut self,
        outcomes: &mut Vec<Outcome>,
        task: &mut Option<Task>,
        last_local: &mut LocalDb,
    ) {
        let mut rounds = Rounds::new();
        let mut peers = None;
        let mut failsafe = None;
        loop {
            if let Some(t) = task.as_mut() {
                if let Ok(done) = t.done.try_recv() {
                    self.record_finished(&done);
                    outcomes.extend(done);
                    *task = None;
                }
            }
            let (decision, view) = self
                .cycle(outcomes, task, last_local, peers.take(), failsafe.take())
                .await;
            self.apply_lease_timing().await;
            self.apply_config_hook();
            if task.is_none() {
                self.apply_parameters().await;
                if let Some(cluster) = &view {
                    self.sync_slots(cluster, last_local).await;
                }
            }
            let cluster = view.unwrap_or_default();
            let acted_from = outcomes.len();
            let (message, ineligible) = (decision.reason.to_string(), decision.ineligible.clone());
            let probing = decision.has(ActionKind::FetchPeerStatus);
            (peers, failsafe) = self.act(decision.actions, outcomes, task, &cluster).await;
            let done = &outcomes[acted_from..];
            // The fence's deadline must count from this renewal.
            self.ha.absorb_lease_outcomes(done);
            if done.iter().any(|o| changes_role(o.kind)) {
                self.reobserve(last_local).await;
            }
            // Log what was done: a decision whose lock write was refused did not happen (a node
            // that lost the race never says it promoted itself).
            match done
                .iter()
                .find(|o| o.kind.is_guard() && o.result == OutcomeResult::Lost)
            {
                Some(lost) => tracing::info!("{:?} was refused; deciding again", lost.kind),
                None if !probing => {
                    tracing::info!("{message}");
                    for (name, why) in &ineligible {
                        tracing::info!(member = %name, "not a failover candidate: {why}");
                    }
                    let _ = self.shared.events.send(AgentEvent::Decision {
                        message: message.clone(),
                        actions: done.iter().map(|o| o.kind).collect(),
                        ineligible: ineligible
                            .iter()
                            .map(|(n, why)| (n.clone(), why.to_string()))
                            .collect(),
                    });
                }
                None => {}
            }
            self.report_role();
            let probed = peers.is_some() || failsafe.is_some();
            if !rounds.again(probed, &outcomes[acted_from..]) {
                break;
            }
        }
    }

    /// Hands the decision's lease TTL to the DCS before its lock writes run, so a `/config`
    /// change of `ttl` moves us to a lease of the new TTL exactly when the state machine starts
    /// counting with it.
    async fn apply_lease_timing(&mut self) {
        let Some(timing) = self.ha.lease_timing() else {
            return;
        };
        if self.lease_timing == Some(timing) {
            return;
        }
        let (ttl, loop_wait) = timing;
        self.exec.dcs.set_timing(ttl, loop_wait).await;
        self.lease_timing = Some(timing);
    }

    /// Hands a changed dynamic configuration to the config hook before the decision's actions
    /// run (a rebuild in this cycle already rewinds or copies as it says), and takes the node
    /// identity the hook leaves at once.
    fn apply_config_hook(&mut self) {
        let (Some(hook), Some(config)) = (&self.config_hook, self.ha.dynamic_config()) else {
            return;
        };
        if self.hooked.as_ref() == Some(config) {
            return;
        }
        let config = config.clone();
        let mut node = self.ha.node().clone();
        hook(&config, &mut node);
        if node != *self.ha.node() {
            *self.shared.node.write().unwrap_or_else(|p| p.into_inner()) = node.clone();
            self.ha.set_node(node);
        }
        self.hooked = Some(config);
    }

    /// Hands `/config`'s server parameters to the database before the decision runs, so a start
    /// in this cycle already uses them. Never while a task runs: a start, promotion or rebuild
    /// in the background rewrites the same files.
    async fn apply_parameters(&mut self) {
        let Some(params) = self
            .ha
            .dynamic_config()
            .map(|c| c.postgresql.parameters.clone())
        else {
            return;
        };
        let bound = self.exec.dcs_timeout.max(Duration::from_secs(10));
        match timeout(bound, self.exec.db.apply_parameters(&params)).await {
            Ok(Ok(true)) => tracing::info!("applied the server parameters from /config"),
            Ok(Ok(false)) => {}
            Ok(Err(e)) => {
                tracing::warn!("could not apply the server parameters from /config: {e}")
            }
            Err(_) => tracing::warn!(
                "applying the server parameters from /config took longer than {} s",
                bound.as_secs()
            ),
        }
    }

    /// Keeps the replication slots as `use_slots` wants them (only on a DCS view read this
    /// cycle: a slot is never dropped, nor a standby's slot name changed, on a stale view).
    async fn sync_slots(&mut self, cluster: &Cluster, local: &LocalDb) {
        let Some(config) = self.ha.dynamic_config() else {
            return;
        };
        let now = self.shared.clock.now();
        let plan = self.slots.plan(
            cluster,
            config,
            &self.ha.node().name,
            local.is_running_primary(),
            now,
        );
        let bound = self.exec.dcs_timeout.max(Duration::from_secs(10));
        match timeout(bound, self.exec.db.sync_slots(&plan)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!("could not sync the replication slots: {e}"),
            Err(_) => tracing::warn!(
                "syncing the replication slots took longer than {} s",
                bound.as_secs()
            ),
        }
    }

    /// Whether fencing works as `watchdog.mode` asks (only `required` can make this false).
    fn fence_ready(&self) -> bool {
        self.fencing.settings.mode != crate::watchdog::Mode::Required
            || self.fencing.client.as_ref().is_some_and(|c| c.is_running())
    }

    /// After each cycle: the fence's deadline follows our lease, and the device is kept alive
    /// while we lead.
    fn update_fencing(&mut self, local: &LocalDb) {
        let now = self.shared.clock.now();
        let order = self.ha.fence_order(
            now,
            local.is_running_primary(),
            self.fencing.settings.safety_margin,
        );
        if let Some(client) = self.fencing.client.as_mut() {
            if let Err(e) = client.update(order, now) {
                tracing::error!("cannot write the fence state: {e}");
            }
        }
        if self.fencing.settings.mode != crate::watchdog::Mode::Off && self.fencing.device.present()
        {
            match order {
                patroni_core::FenceOrder::ArmUntil(_) => {
                    if let Err(e) = self.fencing.device.keep_alive() {
                        tracing::error!("watchdog device: {e}");
                    }
                }
                patroni_core::FenceOrder::Disarm => self.fencing.device.disable(),
                patroni_core::FenceOrder::Keep => {}
            }
        }
    }

    /// Tells subscribers when the role `/patroni` reports has changed.
    fn report_role(&mut self) {
        let role = self.shared.read(crate::status::role);
        if role != self.role {
            let from = std::mem::replace(&mut self.role, role);
            let _ = self
                .shared
                .events
                .send(AgentEvent::RoleChanged { from, to: role });
        }
    }

    /// Observes the database again after an action that changed it ran in this cycle, so the
    /// REST API reports its actual role (a demoted primary answers `/primary` with 503 at once).
    async fn reobserve(&self, last_local: &mut LocalDb) {
        if let Ok(local) = timeout(self.exec.dcs_timeout, self.exec.db.observe()).await {
            crate::status::log_sql_error_change(last_local, &local);
            *last_local = local.clone();
            self.shared.update(|s| s.local = local);
        }
    }

    fn record_finished(&self, done: &[Outcome]) {
        self.shared.update(|s| {
            s.finished.extend(done.iter().cloned());
            let excess = s.finished.len().saturating_sub(16);
            s.finished.drain(..excess);
        });
    }

    /// Observes, steps once (with the peers' answers when the previous step asked for them),
    /// logs and publishes the snapshot; returns the decision and the cluster view it came from.
    async fn cycle(
        &mut self,
        outcomes: &mut Vec<Outcome>,
        task: &Option<Task>,
        last_local: &mut LocalDb,
        peers: Option<Vec<PeerStatus>>,
        failsafe: Option<FailsafeRound>,
    ) -> (Decision, Option<Cluster>) {
        let clock = self.shared.clock;
        let bound = self.exec.dcs_timeout;
        let dcs = if failsafe.is_some() {
            // The round answers the outage this cycle just saw; reading the DCS again would
            // cost another `retry_timeout` of the time the round keeps us primary.
            DcsView::Unreachable("DCS unreachable (failsafe round)".into())
        } else {
            match timeout(bound, self.exec.dcs.load()).await {
                Ok(Ok(c)) => DcsView::Ok(c),
                Ok(Err(e)) => DcsView::Unreachable(e.to_string()),
                Err(_) => DcsView::Unreachable(format!("no answer within {} s", bound.as_secs())),
            }
        };
        let local = match timeout(bound, self.exec.db.observe()).await {
            Ok(l) => l,
            Err(_) => {
                tracing::warn!("observing the database timed out; using the previous observation");
                last_local.clone()
            }
        };
        crate::status::log_sql_error_change(last_local, &local);
        *last_local = local.clone();
        let mut requests = self.shared.take_requests();
        if task.is_none() {
            requests.extend(self.due_restart(&dcs, &local, clock.wall()));
        }
        let obs = Observation {
            peers,
            outcomes: std::mem::take(outcomes),
            task: task.as_ref().map(|t| RunningTask {
                kind: t.kind,
                since: t.since,
            }),
            requests,
            watchdog_ready: self.fence_ready(),
            member_extra: self.member_extra(),
            failsafe: FailsafeInput {
                round: failsafe,
                leader: self.shared.read(|s| s.failsafe_leader.clone()),
            },
            ..Observation::quiet(clock.now(), clock.wall(), dcs, local)
        };
        let decision = self.ha.step(&obs);
        self.shared.update(|s| {
            if let Some(c) = obs.cluster() {
                s.cluster = Some(c.clone());
                s.dcs_last_seen = Some(obs.wall_clock);
            }
            s.local = obs.local.clone();
            s.last_cycle = Some(obs.now);
            s.leader_expiry = self.ha.leader_expiry();
            s.failsafe_until = self
                .ha
                .failsafe_active(obs.now)
                .then(|| self.ha.leader_expiry())
                .flatten();
            s.message = decision.reason.to_string();
            s.task = obs.task;
        });
        let cluster = match obs.dcs {
            DcsView::Ok(c) => Some(c),
            DcsView::Unreachable(_) => None,
        };
        (decision, cluster)
    }

    /// A scheduled restart that is due becomes this cycle's restart request, and one that can no
    /// longer run is dropped, as Patroni's `evaluate_scheduled_restart` does: only while the
    /// cluster has a leader and the database runs, where Patroni looks at it.
    fn due_restart(&self, dcs: &DcsView, local: &LocalDb, now: Timestamp) -> Option<LocalRequest> {
        let s = self.shared.read(|s| s.scheduled_restart.clone())?;
        let DcsView::Ok(cluster) = dcs else {
            return None;
        };
        if cluster.leader.is_none() || local.process != ProcessState::Running {
            return None;
        }
        let config = cluster
            .config
            .as_ref()
            .map(|c| c.value.clone())
            .unwrap_or_else(|| self.ha.node().bootstrap_config.clone());
        let verdict = scheduled::evaluate(&s, now, config.loop_wait, config.pause, local);
        match &verdict {
            Verdict::Keep => return None,
            Verdict::AlreadyRestarted(t) => tracing::info!(
                "Cancelling scheduled restart: postgres restart has already happened at {}",
                crate::status::python_datetime(*t)
            ),
            Verdict::Stale => {
                tracing::warn!("Found a stale restart value, cleaning up: {}", s.schedule)
            }
            Verdict::Run => tracing::info!("Manual scheduled restart at {}", s.schedule),
            Verdict::Refused(why) => {
                tracing::info!("not proceeding with the restart: {why}");
                tracing::warn!("Scheduled restart: restart conditions are not satisfied");
            }
        }
        // Dropped whatever happens next, unless the operator replaced it meanwhile.
        self.shared.update(|snap| {
            if snap.scheduled_restart.as_ref() == Some(&s) {
                snap.scheduled_restart = None;
            }
        });
        (verdict == Verdict::Run).then(|| s.conditions.request())
    }

    /// What this agent adds to its member key: the scheduled restart, as Patroni's `touch_member`.
    fn member_extra(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut extra = serde_json::Map::new();
        if let Some(s) = self.shared.read(|s| s.scheduled_restart.clone()) {
            extra.insert("scheduled_restart".into(), s.to_json(true));
        }
        extra
    }

    /// Wakes the loop when a scheduled restart falls due before `next`, so it runs on time
    /// without a cycle ever sleeping for it.
    fn wake_for_scheduled_restart(&self, next: Instant) -> Instant {
        let Some(s) = self.shared.read(|s| s.scheduled_restart.clone()) else {
            return next;
        };
        match scheduled::due_in_ms(&s, self.shared.clock.wall()) {
            Some(ms) => next.min(Instant::now() + Duration::from_millis(ms)),
            None => next,
        }
    }

    /// Asks each member's `GET /patroni` in parallel, 2 s each; silence is "unreachable".
    async fn probe(&self, cluster: &Cluster, members: &[String]) -> Vec<PeerStatus> {
        let mut set = tokio::task::JoinSet::new();
        if let Ok(mut seen) = self.api_urls.lock() {
            for m in &cluster.members {
                if !m.data.api_url.is_empty() {
                    seen.insert(m.name.clone(), m.data.api_url.clone());
                }
            }
        }
        for name in members {
            // A member whose key has gone (its lease ran out) is asked at its last known address.
            let url = cluster
                .member(name)
                .map(|m| m.data.api_url.clone())
                .or_else(|| self.api_urls.lock().ok()?.get(name).cloned())
                .or_else(|| cluster.failsafe.as_ref()?.get(name).cloned());
            let http = self.http.clone();
            let name = name.clone();
            let clock = self.shared.clock;
            set.spawn(async move {
                let url = url.filter(|u| !u.is_empty());
                let fetched = match &url {
                    None => Err("no REST API URL known".to_string()),
                    Some(url) => async {
                        http.get(url)
                            .timeout(Duration::from_secs(2))
                            .send()
                            .await?
                            .text()
                            .await
                    }
                    .await
                    .map_err(|e| crate::ctl::api::one_line(&e))
                    .and_then(|body| {
                        PatroniStatus::from_json(&body).map_err(|e| format!("not JSON: {e}"))
                    }),
                };
                match fetched {
                    Ok(status) => status.peer_status(&name, clock.now()),
                    Err(e) => {
                        // As Patroni logs it: an unanswered probe is the first thing to look at
                        // when a failover picks an unexpected member.
                        tracing::warn!(
                            "Request failed to {name}: GET {} ({e})",
                            url.as_deref().unwrap_or("-")
                        );
                        PeerStatus::unreachable(&name, clock.now())
                    }
                }
            });
        }
        let mut out = Vec::new();
        while let Some(r) = set.join_next().await {
            if let Ok(p) = r {
                out.push(p);
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// Carries a decision out as the core's [`Sequence`] says: quick actions now, in order, the
    /// slow tail in one background task; returns the peers' answers when it probed them.
    async fn act(
        &self,
        actions: Vec<Action>,
        outcomes: &mut Vec<Outcome>,
        task: &mut Option<Task>,
        cluster: &Cluster,
    ) -> (Option<Vec<PeerStatus>>, Option<FailsafeRound>) {
        let mut seq = Sequence::foreground(actions, task.is_some());
        let mut peers = None;
        let mut failsafe = None;
        loop {
            match seq.next(self.shared.clock.now()) {
                Next::Done => break,
                Next::CancelTask => {
                    if let Some(t) = task.take() {
                        tracing::warn!(task = ?t.kind, "cancelling the running task to demote");
                        t.handle.abort();
                        seq.cancelled(t.kind, t.since);
                    }
                }
                Next::Run(Action::FetchPeerStatus { members }) => {
                    peers = Some(self.probe(cluster, &members).await);
                    seq.report(OutcomeResult::Done);
                }
                Next::Run(Action::ConfirmFailsafe { members }) => {
                    let round = crate::failsafe::confirm(
                        &self.http,
                        self.shared.auth.as_ref(),
                        &self.shared.node(),
                        &members,
                        self.shared.clock.now(),
                    )
                    .await;
                    seq.report(if round.confirmed() {
                        OutcomeResult::Done
                    } else {
                        OutcomeResult::Failed("not every failsafe member confirmed".into())
                    });
                    failsafe = Some(round);
                }
                Next::Run(action) => {
                    let result = self.exec.run_logged(&action).await;
                    seq.report(result);
                }
                Next::Spawn(slow) => {
                    let now = self.shared.clock.now();
                    let kind = slow[0].kind();
                    tracing::info!(task = ?kind, "starting in the background");
                    let (tx, rx) = oneshot::channel();
                    let exec = self.exec.clone();
                    let handle = tokio::spawn(async move {
                        let done = exec.run_background(slow).await;
                        exec.shared.wake.notify_one();
                        let _ = tx.send(done);
                    });
                    self.shared.update(|s| {
                        s.task = Some(RunningTask { kind, since: now });
                    });
                    *task = Some(Task {
                        kind,
                        since: now,
                        done: rx,
                        handle,
                    });
                    break;
                }
            }
        }
        let done = seq.into_outcomes();
        for o in done.iter().filter(|o| o.result == OutcomeResult::Skipped) {
            tracing::debug!(action = ?o.kind, "skipped");
        }
        outcomes.extend(done);
        (peers, failsafe)
    }

    /// Sleeps until `next`, or less when the leader key changes, the database exits, a request
    /// arrives, the task finishes, a reload is asked for, or shutdown begins.
    async fn wait(
        &self,
        next: Instant,
        watch_db: bool,
        task: &mut Option<Task>,
        mut shutdown: std::pin::Pin<&mut impl Future<Output = ()>>,
    ) -> Wake {
        let dcs = Arc::clone(&self.exec.dcs);
        let dcs_change = async move {
            if dcs.wait_for_change().await.is_err() {
                sleep_until(next).await;
            }
        };
        let db_exit = async {
            match &self.pid_file {
                Some(p) if watch_db => {
                    self.exit_watch.exited(p).await;
                    tracing::warn!("the database process exited");
                }
                _ => std::future::pending::<()>().await,
            }
        };
        let task_done = async {
            match task.as_mut() {
                Some(t) => (&mut t.done).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = &mut shutdown => Wake::Shutdown,
            r = task_done => Wake::TaskDone(r),
            _ = sleep_until(next) => Wake::Cycle,
            _ = dcs_change => Wake::Cycle,
            _ = db_exit => Wake::Cycle,
            _ = self.shared.wake.notified() => Wake::Cycle,
            _ = self.shared.reload.notified() => Wake::Reload,
        }
    }

    fn reload(&mut self) {
        let Some(r) = &self.reloader else {
            tracing::info!("reload asked for, but this agent has no configuration file");
            return;
        };
        match r() {
            Ok(Reloaded { node, callbacks }) => {
                tracing::info!("configuration reloaded");
                *self.shared.node.write().unwrap_or_else(|p| p.into_inner()) = node.clone();
                self.ha.set_node(node);
                // The reloaded identity has not seen the dynamic configuration yet.
                self.hooked = None;
                if let ReloadedScripts::Replace(callbacks) = callbacks {
                    self.exec.callbacks.replace(callbacks.map(|c| *c));
                }
            }
            Err(e) => tracing::error!("reload failed, keeping the running configuration: {e}"),
        }
    }

    /// A leader stops its database and then releases the lock, so a standby takes over in seconds.
    async fn shut_down(self, task: Option<Task>) {
        if let Some(t) = task {
            tracing::info!(task = ?t.kind, "cancelling the running task for shutdown");
            t.handle.abort();
        }
        let snap = self.shared.snapshot();
        let node = self.shared.node();
        let now = self.shared.clock.now();
        let leader = self.ha.is_leader(now)
            || snap
                .cluster
                .as_ref()
                .is_some_and(|c| c.is_leader(&node.name));
        if snap.paused(&node) {
            tracing::info!("paused: leaving the database running");
        } else {
            tracing::info!("stopping the database");
            // Through the executor, so `before_stop` and `on_stop` run as for any stop.
            let stop = Action::Stop(StopMode::Fast);
            match timeout(Duration::from_secs(120), self.exec.run(&stop)).await {
                Ok(OutcomeResult::Done) => {}
                Ok(r) => tracing::error!("stopping the database failed: {r:?}"),
                Err(_) => tracing::error!("stopping the database timed out"),
            }
        }
        if leader && !snap.paused(&node) {
            // Bounded: with etcd unreachable the lease simply runs out (the database is stopped).
            let bound = self.exec.dcs_timeout.min(Duration::from_secs(2));
            match timeout(bound, self.exec.dcs.release_leader()).await {
                Ok(Ok(true)) => tracing::info!("leader lock released"),
                Ok(Ok(false)) => tracing::info!("the leader lock was not ours any more"),
                Ok(Err(e)) => tracing::error!("releasing the leader lock failed: {e}"),
                Err(_) => tracing::error!("releasing the leader lock timed out"),
            }
        }
        // Scripts a reload replaced included.
        self.exec.callbacks.finish(Duration::from_secs(10)).await;
        let mut fencing = self.fencing;
        fencing.device.disable();
        if let Some(client) = fencing.client.as_mut() {
            if let Err(e) = client.shut_down() {
                tracing::error!("cannot tell the fence to exit: {e}");
            }
        }
        tracing::info!("agent stopped");
    }
}

/// Whether an action of this kind leaves the database in another role or state.
fn changes_role(kind: ActionKind) -> bool {
    matches!(
        kind,
        ActionKind::Demote
            | ActionKind::Promote
            | ActionKind::Stop
            | ActionKind::Start
            | ActionKind::Restart
            | ActionKind::Follow
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::execute::tests::Obliging;
    use patroni_core::{Dcs, MemoryDcs, MemoryStore, SharedStore};

    /// A change of `/config` reaches the config hook in the next cycle (an unchanged one is not
    /// handed over again), and the node identity the hook leaves is the one the agent uses.
    #[tokio::test]
    async fn a_changed_dynamic_configuration_reaches_the_config_hook_in_the_next_cycle() {
        let store = SharedStore::new(MemoryStore::new(Duration::from_secs(30)));
        let dcs: Arc<dyn Dcs> = Arc::new(MemoryDcs::new(store, "n1", Arc::new(|| 0)));
        let mut node = Node::new("n1");
        node.can_bootstrap = false;
        let shared = Shared::new("demo", node, Arc::clone(&dcs), None);
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        let mut agent = Agent::new(shared, Arc::new(Obliging)).with_config_hook(Box::new(
            move |config: &DynamicConfig, node: &mut Node| {
                let on = config.postgresql.use_pg_rewind;
                log.lock().unwrap().push(on);
                node.rewind_tool = on.then(|| "pg_rewind".to_string());
            },
        ));
        let (mut outcomes, mut task, mut local) = (Vec::new(), None, LocalDb::default());
        let seen = move || seen.lock().unwrap().clone();
        // No `/config` yet: the node's bootstrap configuration, once.
        for _ in 0..2 {
            agent.one_cycle(&mut outcomes, &mut task, &mut local).await;
        }
        assert_eq!(seen(), [false]);
        assert_eq!(agent.ha.node().rewind_tool, None);
        assert_eq!(agent.shared.node().rewind_tool, None);
        let mut config = DynamicConfig::default();
        config.postgresql.use_pg_rewind = true;
        assert!(dcs.write_config(&config, None).await.unwrap());
        for _ in 0..2 {
            agent.one_cycle(&mut outcomes, &mut task, &mut local).await;
        }
        assert_eq!(seen(), [false, true]);
        assert_eq!(agent.ha.node().rewind_tool.as_deref(), Some("pg_rewind"));
        assert_eq!(
            agent.shared.node().rewind_tool.as_deref(),
            Some("pg_rewind")
        );
    }

    /// A reload puts the re-read scripts in force: a changed `on_role_change` runs the new
    /// command, a removed one runs nothing, and a script the old set started is still waited for
    /// at exit.
    #[tokio::test]
    async fn a_reload_replaces_the_callbacks() {
        use crate::callbacks::Callbacks;
        use crate::config::PostgresqlSection;
        use patroni_postgres::command::SystemRunner;

        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        // `sh -c` takes the callback's `<action> <role> <scope>` as `$0 $1 $2`.
        let writes = |word: &str, delay: &str| {
            Some(format!(
                "sh -c 'sleep {delay}; echo \"{word} $0 $1\" >> {}'",
                out.display()
            ))
        };
        let mut first = PostgresqlSection::default();
        first.callbacks.on_role_change = writes("old", "0.3");
        let file = Arc::new(std::sync::Mutex::new(first.clone()));
        let build = |s: &PostgresqlSection| {
            let runner = Arc::new(SystemRunner);
            Callbacks::new(s, "demo", None, Duration::from_secs(30), runner)
        };
        let read = Arc::clone(&file);
        let store = SharedStore::new(MemoryStore::new(Duration::from_secs(30)));
        let dcs: Arc<dyn Dcs> = Arc::new(MemoryDcs::new(store, "n1", Arc::new(|| 0)));
        let shared = Shared::new("demo", Node::new("n1"), Arc::clone(&dcs), None);
        let mut agent = Agent::new(shared, Arc::new(Obliging))
            .with_callbacks(build(&first).unwrap())
            .with_reloader(Box::new(move || {
                Ok(Reloaded {
                    node: Node::new("n1"),
                    callbacks: ReloadedScripts::Replace(build(&read.lock().unwrap()).map(Box::new)),
                })
            }));
        let promote = Action::Promote {
            timeline: 2,
            planned: false,
        };
        let exit = Duration::from_secs(10);
        let lines = || std::fs::read_to_string(&out).unwrap_or_default();

        // The old script is still running when the file changes and the agent reloads.
        assert_eq!(agent.exec.run(&promote).await, OutcomeResult::Done);
        let mut changed = first.clone();
        changed.callbacks.on_role_change = writes("new", "0");
        changed.callbacks.on_start = writes("start", "0");
        *file.lock().unwrap() = changed.clone();
        agent.reload();
        agent.exec.callbacks.finish(exit).await;
        assert_eq!(lines(), "old on_role_change primary\n");

        assert_eq!(agent.exec.run(&promote).await, OutcomeResult::Done);
        agent.exec.callbacks.finish(exit).await;
        assert_eq!(
            lines(),
            "old on_role_change primary\nnew on_role_change primary\n"
        );

        // `on_role_change` removed while another script stays, then every script removed.
        changed.callbacks.on_role_change = None;
        *file.lock().unwrap() = changed;
        agent.reload();
        assert_eq!(agent.exec.run(&promote).await, OutcomeResult::Done);
        *file.lock().unwrap() = PostgresqlSection::default();
        agent.reload();
        assert!(agent.exec.callbacks.get().is_none());
        assert_eq!(agent.exec.run(&promote).await, OutcomeResult::Done);
        agent.exec.callbacks.finish(exit).await;
        assert_eq!(
            lines(),
            "old on_role_change primary\nnew on_role_change primary\n"
        );
    }
}
