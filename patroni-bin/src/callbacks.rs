//! Patroni's user scripts around database events: `postgresql.callbacks`, `pre_promote` and `before_stop`.
//!
//! They belong to the daemon, not to a database adapter: the same scripts run, with the same
//! arguments, for PostgreSQL and openGauss alike.
//!
//! * A callback (`on_start`, `on_stop`, `on_restart`, `on_reload`, `on_role_change`) is split into
//!   words like a shell would and run with three more: `<action> <role> <scope>`, where the role
//!   is Patroni's (`primary`, `replica`, `demoted`). It runs in the background; the HA loop never
//!   waits for it. One runs at a time: a callback still running when the next one fires is killed
//!   with its children, as Patroni does. `on_reload` has a slot of its own, so it only ever
//!   replaces an older `on_reload`.
//! * `pre_promote` runs before a promotion and is waited for: a non-zero exit or a timeout cancels
//!   the promotion, which fails the `Promote` action, so the state machine gives the lock back.
//! * `before_stop` runs before the database is stopped and is waited for; its result is logged and
//!   the stop goes ahead anyway.
//!
//! Every script runs as `postgresql.run_as` (when set) and is killed at `pg_ctl_timeout`.
//!
//! A reload replaces the scripts whole ([`LiveCallbacks`]), as Patroni re-reads
//! `postgresql.callbacks` on reload: the next event runs the new script, while one already
//! running finishes with the old (or is killed by the next, as ever) and is waited for at exit.
//!
//! Which event fires when follows Patroni: `on_start` after a start (a fresh bootstrap or copy
//! included), `on_stop` after stopping a running database, `on_restart` after a restart,
//! `on_reload` after a reload (and after pointing a running standby at a new leader, which is a
//! reload), `on_role_change` after a promotion (`primary`) and after a demotion (`replica`). A
//! former primary that is started again as a standby reports `on_role_change replica`, not
//! `on_start`.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use patroni_core::{Action, Database, DbError, DbRole, LocalDb, ProcessState, StartRole, StopMode};
use patroni_postgres::command::{CommandRunner, CommandSpec};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;
use tokio::task::JoinHandle;

/// `postgresql.callbacks`: the command run after each database event, Patroni's keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct CallbacksSection {
    /// Run after the database was started.
    pub on_start: Option<String>,
    /// Run after the database was stopped.
    pub on_stop: Option<String>,
    /// Run after the database was restarted.
    pub on_restart: Option<String>,
    /// Run after the database re-read its configuration.
    pub on_reload: Option<String>,
    /// Run after a promotion or a demotion.
    pub on_role_change: Option<String>,
}

/// A database event a callback may be configured for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// `on_start`.
    Start,
    /// `on_stop`.
    Stop,
    /// `on_restart`.
    Restart,
    /// `on_reload`.
    Reload,
    /// `on_role_change`.
    RoleChange,
}

impl Event {
    /// The callback's key, which is also the first argument the script gets.
    pub fn name(self) -> &'static str {
        match self {
            Event::Start => "on_start",
            Event::Stop => "on_stop",
            Event::Restart => "on_restart",
            Event::Reload => "on_reload",
            Event::RoleChange => "on_role_change",
        }
    }
}

/// The database role handed to a callback, in Patroni's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A writable primary (also right after a promotion).
    Primary,
    /// A read-only standby.
    Replica,
    /// A former primary that has been stopped to become a standby.
    Demoted,
}

impl Role {
    /// The word the script gets.
    pub fn name(self) -> &'static str {
        match self {
            Role::Primary => "primary",
            Role::Replica => "replica",
            Role::Demoted => "demoted",
        }
    }
}

/// Why a configured script cannot be run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallbackError {
    /// The command has unbalanced quotes or is empty.
    #[error("cannot split `{0}` into words")]
    Unparsable(String),
}

/// The words of `command`, split as a POSIX shell would (no expansion).
pub fn split_command(command: &str) -> Result<Vec<String>, CallbackError> {
    shlex::split(command)
        .filter(|w| !w.is_empty())
        .ok_or_else(|| CallbackError::Unparsable(command.to_string()))
}

/// The argument vector of a callback: its command's words, then `<action> <role> <scope>`.
pub fn callback_argv(
    command: &str,
    event: Event,
    role: Role,
    scope: &str,
) -> Result<Vec<String>, CallbackError> {
    let mut argv = split_command(command)?;
    argv.extend([event.name().into(), role.name().into(), scope.into()]);
    Ok(argv)
}

/// Which of the two one-at-a-time slots a callback runs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// `on_start`, `on_stop`, `on_restart` and `on_role_change` replace one another.
    Main,
    /// `on_reload` only replaces an older `on_reload`.
    Reload,
}

impl Slot {
    /// The slot `event`'s callback runs in.
    pub fn of(event: Event) -> Slot {
        match event {
            Event::Reload => Slot::Reload,
            _ => Slot::Main,
        }
    }
}

/// The event a start in `new` role reports, by Patroni's rule: a database whose last role was
/// primary (or demoted) that comes back as a standby changed its role; anything else started.
/// `called` is whether any start, stop, restart or role-change event was reported before.
pub fn start_event(called: bool, last: Option<Role>, new: Role) -> Event {
    let was_primary = matches!(last, Some(Role::Primary | Role::Demoted));
    if called && was_primary && new == Role::Replica {
        Event::RoleChange
    } else {
        Event::Start
    }
}

/// A callback running in the background.
struct Running {
    command: String,
    handle: JoinHandle<()>,
}

/// What outlives a reload: the callbacks running now and the role history Patroni's rules need.
#[derive(Default)]
struct State {
    main: Option<Running>,
    reload: Option<Running>,
    /// The role the database was last known in, as Patroni tracks it.
    role: Option<Role>,
    /// Whether a start, stop, restart or role-change event was reported (Patroni's `cb_called`).
    called: bool,
}

/// The configured scripts and the callbacks running now.
pub struct Callbacks {
    section: CallbacksSection,
    pre_promote: Option<String>,
    before_stop: Option<String>,
    scope: String,
    run_as: Option<(u32, u32)>,
    timeout: Duration,
    runner: Arc<dyn CommandRunner>,
    /// Shared with the sets this one replaced or is replaced by ([`LiveCallbacks`]).
    state: Arc<Mutex<State>>,
}

impl Callbacks {
    /// The scripts of a `postgresql` section for cluster `scope`, run through `runner` as `run_as`
    /// and killed after `timeout`; `None` when none is configured.
    pub fn new(
        section: &crate::config::PostgresqlSection,
        scope: &str,
        run_as: Option<(u32, u32)>,
        timeout: Duration,
        runner: Arc<dyn CommandRunner>,
    ) -> Option<Callbacks> {
        let set = |s: &Option<String>| s.as_ref().filter(|c| !c.trim().is_empty()).cloned();
        let c = &section.callbacks;
        let callbacks = CallbacksSection {
            on_start: set(&c.on_start),
            on_stop: set(&c.on_stop),
            on_restart: set(&c.on_restart),
            on_reload: set(&c.on_reload),
            on_role_change: set(&c.on_role_change),
        };
        let pre_promote = set(&section.pre_promote);
        let before_stop = set(&section.before_stop);
        if callbacks == CallbacksSection::default()
            && pre_promote.is_none()
            && before_stop.is_none()
        {
            return None;
        }
        Some(Callbacks {
            section: callbacks,
            pre_promote,
            before_stop,
            scope: scope.to_string(),
            run_as,
            timeout,
            runner,
            state: Arc::default(),
        })
    }

    fn command(&self, event: Event) -> Option<&str> {
        let c = &self.section;
        match event {
            Event::Start => c.on_start.as_deref(),
            Event::Stop => c.on_stop.as_deref(),
            Event::Restart => c.on_restart.as_deref(),
            Event::Reload => c.on_reload.as_deref(),
            Event::RoleChange => c.on_role_change.as_deref(),
        }
    }

    fn spec(&self, argv: Vec<String>) -> CommandSpec {
        let mut words = argv.into_iter();
        let program = words.next().unwrap_or_default();
        let mut spec = CommandSpec::new(program, words, self.timeout);
        spec.run_as = self.run_as;
        spec.kill_group_on_cancel = true;
        spec
    }

    /// Starts `event`'s callback with `role` in the background, first killing the one still
    /// running in its slot; records the role for later events.
    pub async fn fire(&self, event: Event, role: Role) {
        let mut state = self.state.lock().await;
        state.role = Some(role);
        if event != Event::Reload {
            state.called = true;
        }
        let Some(command) = self.command(event) else {
            return;
        };
        let argv = match callback_argv(command, event, role, &self.scope) {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!("callback {}: {e}", event.name());
                return;
            }
        };
        let slot = match Slot::of(event) {
            Slot::Main => &mut state.main,
            Slot::Reload => &mut state.reload,
        };
        if let Some(old) = slot.take() {
            if !old.handle.is_finished() {
                old.handle.abort();
                // Dropping the run kills the script's process group before the next one starts.
                let _ = old.handle.await;
                tracing::warn!("Killed `{}` because it was still running", old.command);
            }
        }
        let spec = self.spec(argv);
        let line = spec.command_line();
        tracing::info!("calling {line}");
        let runner = Arc::clone(&self.runner);
        let command = line.clone();
        let handle = tokio::spawn(async move {
            match runner.run(&spec).await {
                Ok(out) if out.success() => tracing::info!("callback `{command}` exited with 0"),
                Ok(out) => tracing::warn!(
                    "callback `{command}` failed ({}): {}",
                    out.status_text(),
                    out.combined().trim()
                ),
                Err(e) => tracing::warn!("callback failed: {e}"),
            }
        });
        *slot = Some(Running {
            command: line,
            handle,
        });
    }

    /// Runs a waited-for script (`pre_promote`, `before_stop`); whether it exited with 0.
    async fn run_script(&self, key: &str, command: &str) -> Result<(), String> {
        let argv = split_command(command).map_err(|e| format!("{key}: {e}"))?;
        let spec = self.spec(argv);
        let line = spec.command_line();
        tracing::info!("{key}: running `{line}`");
        match self.runner.run(&spec).await {
            Ok(out) if out.success() => {
                tracing::info!("{key} script `{line}` exited with 0");
                Ok(())
            }
            Ok(out) => {
                let why = format!(
                    "{key} script `{line}` exited with {}: {}",
                    out.code
                        .map_or_else(|| "a signal".into(), |c| c.to_string()),
                    out.combined().trim()
                );
                tracing::warn!("{why}");
                Err(why)
            }
            Err(e) => {
                let why = format!("{key} script: {e}");
                tracing::warn!("{why}");
                Err(why)
            }
        }
    }

    /// Runs `before_stop` when the database runs; the stop goes ahead whatever it returns.
    pub async fn before_stop(&self, running: bool) {
        if let (true, Some(cmd)) = (running, self.before_stop.as_deref()) {
            let _ = self.run_script("before_stop", cmd).await;
        }
    }

    /// Runs `pre_promote`; an error cancels the promotion.
    pub async fn pre_promote(&self) -> Result<(), DbError> {
        let Some(cmd) = self.pre_promote.as_deref() else {
            return Ok(());
        };
        self.run_script("pre_promote", cmd)
            .await
            .map_err(|why| DbError::CommandFailed {
                command: "pre_promote".into(),
                status: "promotion cancelled".into(),
                output: why,
            })
    }

    /// The role the database is in now: what was observed while it ran, else the last one recorded.
    async fn current_role(&self, before: &LocalDb) -> Role {
        if let Some(r) = observed_role(before) {
            return r;
        }
        self.state.lock().await.role.unwrap_or(Role::Replica)
    }

    /// Performs `action` on `db` with the scripts Patroni runs around it; `before` is the
    /// database as last observed. `None` for actions no script is tied to.
    pub async fn perform(
        &self,
        db: &dyn Database,
        action: &Action,
        before: &LocalDb,
    ) -> Option<Result<(), DbError>> {
        let running = before.process.is_alive();
        let r = match action {
            Action::Bootstrap => {
                let r = db.bootstrap().await;
                if r.is_ok() {
                    self.fire(Event::Start, Role::Primary).await;
                }
                r
            }
            Action::CloneFrom { source } => {
                let r = db.clone_from(source).await;
                if r.is_ok() {
                    self.started(Role::Replica).await;
                }
                r
            }
            Action::Start(role) => {
                let new = match role {
                    StartRole::Primary => Role::Primary,
                    StartRole::Standby { .. } => Role::Replica,
                };
                let was = observed_role(before).filter(|_| running);
                // A database running in the other role is stopped first.
                self.before_stop(was.is_some_and(|old| old != new)).await;
                let r = db.start(role).await;
                if r.is_ok() {
                    match was {
                        // Already running in that role: nothing was started.
                        Some(old) if old == new => {}
                        Some(_) => self.fire(Event::RoleChange, new).await,
                        None => self.started(new).await,
                    }
                }
                r
            }
            Action::Stop(mode) => return Some(self.stop(db, *mode, before).await),
            Action::Restart => {
                self.before_stop(running).await;
                let r = db.restart().await;
                if r.is_ok() {
                    let role = self.current_role(before).await;
                    self.fire(Event::Restart, role).await;
                }
                r
            }
            Action::Reload => {
                let r = db.reload().await;
                if r.is_ok() {
                    let role = self.current_role(before).await;
                    self.fire(Event::Reload, role).await;
                }
                r
            }
            Action::Promote { timeline, planned } => {
                // Patroni skips the script (and the promotion) for a database already primary.
                if !before.is_running_primary() {
                    if let Err(e) = self.pre_promote().await {
                        return Some(Err(e));
                    }
                }
                let r = db.promote(*timeline, *planned).await;
                if r.is_ok() && !before.is_running_primary() {
                    self.fire(Event::RoleChange, Role::Primary).await;
                }
                r
            }
            Action::Demote(mode) => {
                if running && self.section.on_stop.is_some() {
                    // Stopped first on its own so `on_stop` runs while the standby starts, as
                    // in Patroni, instead of being replaced by `on_role_change` at once.
                    if let Err(e) = self.stop(db, *mode, before).await {
                        return Some(Err(e));
                    }
                } else {
                    self.before_stop(running).await;
                }
                let r = db.demote(*mode).await;
                if r.is_ok() {
                    self.fire(Event::RoleChange, Role::Replica).await;
                }
                r
            }
            Action::Follow { leader } => {
                let was = observed_role(before).filter(|_| running);
                // A running primary is stopped to come back as a standby.
                self.before_stop(was == Some(Role::Primary)).await;
                let r = db.follow(leader).await;
                if r.is_ok() {
                    match was {
                        // A standby is pointed at the new leader with a reload.
                        Some(Role::Replica) => self.fire(Event::Reload, Role::Replica).await,
                        Some(_) => self.fire(Event::RoleChange, Role::Replica).await,
                        None => self.started(Role::Replica).await,
                    }
                }
                r
            }
            Action::Rebuild {
                source,
                mode,
                timeline,
            } => {
                let r = db.rebuild(source, *mode, *timeline).await;
                if r.is_ok() {
                    self.started(Role::Replica).await;
                }
                r
            }
            _ => return None,
        };
        Some(r)
    }

    /// Reports a start in `role` as Patroni does ([`start_event`]).
    async fn started(&self, role: Role) {
        let event = {
            let state = self.state.lock().await;
            start_event(state.called, state.role, role)
        };
        self.fire(event, role).await;
    }

    /// `before_stop`, the stop, then `on_stop` when a running database was stopped.
    async fn stop(
        &self,
        db: &dyn Database,
        mode: StopMode,
        before: &LocalDb,
    ) -> Result<(), DbError> {
        let running = before.process.is_alive();
        self.before_stop(running).await;
        let r = db.stop(mode).await;
        if r.is_ok() && running {
            let role = self.current_role(before).await;
            self.fire(Event::Stop, role).await;
            if role == Role::Primary {
                self.state.lock().await.role = Some(Role::Demoted);
            }
        }
        r
    }

    /// Waits up to `bound` for the running callbacks to end (the agent is exiting and would kill them).
    pub async fn finish(&self, bound: Duration) {
        finish(&self.state, bound).await;
    }
}

/// Waits up to `bound` for the callbacks running in `state` to end.
async fn finish(state: &Mutex<State>, bound: Duration) {
    let mut state = state.lock().await;
    let handles: Vec<Running> = [state.main.take(), state.reload.take()]
        .into_iter()
        .flatten()
        .collect();
    drop(state);
    for r in handles {
        if tokio::time::timeout(bound, r.handle).await.is_err() {
            tracing::warn!("callback `{}` still runs at exit; killing it", r.command);
        }
    }
}

/// The scripts in force (none at first), which a reload replaces whole (or removes).
///
/// Every set it holds shares one record of the callbacks running and of the database's last
/// role: the first event after a reload still replaces a script the old set started, Patroni's
/// start-or-role-change rule still sees the history, and [`finish`](Self::finish) waits for
/// every running script whichever set started it.
#[derive(Default)]
pub struct LiveCallbacks {
    current: RwLock<Option<Arc<Callbacks>>>,
    state: Arc<Mutex<State>>,
}

impl LiveCallbacks {
    /// The set in force; an action holds on to it, so it ends with the scripts it began with.
    pub fn get(&self) -> Option<Arc<Callbacks>> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Puts `callbacks` in force from the next action (none when `None`).
    pub fn replace(&self, callbacks: Option<Callbacks>) {
        let next = callbacks.map(|mut c| {
            c.state = Arc::clone(&self.state);
            Arc::new(c)
        });
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = next;
    }

    /// Waits up to `bound` for the running callbacks to end, the replaced sets' included.
    pub async fn finish(&self, bound: Duration) {
        finish(&self.state, bound).await;
    }
}

/// The role a running database was observed in.
fn observed_role(local: &LocalDb) -> Option<Role> {
    if local.process != ProcessState::Running && local.process != ProcessState::Starting {
        return None;
    }
    match local.role {
        DbRole::Primary => Some(Role::Primary),
        DbRole::Standby => Some(Role::Replica),
        DbRole::Unknown => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use patroni_postgres::command::SystemRunner;

    #[test]
    fn arguments_are_the_words_then_action_role_scope() {
        let argv = callback_argv(
            "/usr/local/bin/cb.sh --flag 'two words'",
            Event::RoleChange,
            Role::Primary,
            "batman",
        )
        .unwrap();
        assert_eq!(
            argv,
            [
                "/usr/local/bin/cb.sh",
                "--flag",
                "two words",
                "on_role_change",
                "primary",
                "batman"
            ]
        );
        assert!(callback_argv("cb.sh 'open", Event::Start, Role::Replica, "s").is_err());
        assert!(callback_argv("   ", Event::Start, Role::Replica, "s").is_err());
    }

    #[test]
    fn the_keys_are_read_from_the_postgresql_section_without_warnings() {
        let yaml = "scope: s\nname: n\nrestapi: {listen: 127.0.0.1:8008}\netcd3: {hosts: 127.0.0.1:2379}\n\
postgresql:\n  listen: 127.0.0.1:5432\n  data_dir: /tmp/d\n  callbacks:\n    on_start: /bin/cb start\n    \
on_role_change: \"/bin/cb --x\"\n  pre_promote: /bin/fence\n  before_stop: /bin/drain\n";
        let loaded = crate::Config::parse(yaml, "t.yml", Vec::new()).unwrap();
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        let pg = &loaded.config.postgresql;
        assert_eq!(pg.callbacks.on_start.as_deref(), Some("/bin/cb start"));
        assert_eq!(pg.callbacks.on_role_change.as_deref(), Some("/bin/cb --x"));
        assert_eq!(pg.pre_promote.as_deref(), Some("/bin/fence"));
        assert_eq!(pg.before_stop.as_deref(), Some("/bin/drain"));
        let none = crate::config::PostgresqlSection::default();
        let runner = Arc::new(SystemRunner);
        assert!(Callbacks::new(&none, "s", None, Duration::from_secs(1), runner).is_none());
    }

    #[test]
    fn only_on_reload_has_a_slot_of_its_own() {
        assert_eq!(Slot::of(Event::Reload), Slot::Reload);
        for e in [Event::Start, Event::Stop, Event::Restart, Event::RoleChange] {
            assert_eq!(Slot::of(e), Slot::Main, "{e:?}");
        }
    }

    #[test]
    fn a_former_primary_started_as_standby_changed_role() {
        assert_eq!(
            start_event(true, Some(Role::Primary), Role::Replica),
            Event::RoleChange
        );
        assert_eq!(
            start_event(true, Some(Role::Demoted), Role::Replica),
            Event::RoleChange
        );
        assert_eq!(
            start_event(true, Some(Role::Replica), Role::Replica),
            Event::Start
        );
        // Nothing reported yet (a fresh agent): a plain start.
        assert_eq!(
            start_event(false, Some(Role::Primary), Role::Replica),
            Event::Start
        );
        assert_eq!(
            start_event(true, Some(Role::Primary), Role::Primary),
            Event::Start
        );
    }

    fn section(dir: &std::path::Path, slow: &str, fast: &str) -> crate::config::PostgresqlSection {
        let script = |name: &str, body: &str| {
            let path = dir.join(name);
            std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
            let mut p = std::fs::metadata(&path).unwrap().permissions();
            std::os::unix::fs::PermissionsExt::set_mode(&mut p, 0o755);
            std::fs::set_permissions(&path, p).unwrap();
            path.display().to_string()
        };
        let mut s = crate::config::PostgresqlSection::default();
        s.callbacks.on_start = Some(script("slow.sh", slow));
        s.callbacks.on_role_change = Some(script("fast.sh", fast));
        s.callbacks.on_reload = Some(script("reload.sh", fast));
        s
    }

    async fn wait_for(path: &std::path::Path, lines: usize) -> String {
        for _ in 0..100 {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            if text.lines().count() >= lines {
                return text;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        std::fs::read_to_string(path).unwrap_or_default()
    }

    #[tokio::test]
    async fn a_callback_still_running_is_killed_with_its_children_when_the_next_fires() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let child_pid = dir.path().join("child.pid");
        // The slow one leaves a grandchild that must die with it.
        let slow = format!(
            "sleep 30 &\necho $! > {pid}\nwait\necho \"late $1 $2 $3\" >> {out}",
            pid = child_pid.display(),
            out = out.display()
        );
        let fast = format!("echo \"$1 $2 $3\" >> {}", out.display());
        let s = section(dir.path(), &slow, &fast);
        let cb = Callbacks::new(
            &s,
            "batman",
            None,
            Duration::from_secs(60),
            Arc::new(SystemRunner),
        )
        .unwrap();
        cb.fire(Event::Start, Role::Replica).await;
        let mut pid = None;
        for _ in 0..100 {
            pid = std::fs::read_to_string(&child_pid)
                .ok()
                .and_then(|t| t.trim().parse::<u32>().ok());
            if pid.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let pid = pid.expect("the slow callback started its child");
        assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
        // An on_reload does not touch the running on_start.
        cb.fire(Event::Reload, Role::Replica).await;
        assert_eq!(wait_for(&out, 1).await, "on_reload replica batman\n");
        assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
        cb.fire(Event::RoleChange, Role::Primary).await;
        let text = wait_for(&out, 2).await;
        assert_eq!(
            text,
            "on_reload replica batman\non_role_change primary batman\n"
        );
        let mut gone = false;
        for _ in 0..100 {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // Gone, or a zombie waiting for init to reap it.
            if stat.is_empty()
                || stat
                    .rsplit_once(')')
                    .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
            {
                gone = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(gone, "the replaced callback's child {pid} still runs");
        cb.finish(Duration::from_secs(5)).await;
        assert!(!std::fs::read_to_string(&out).unwrap().contains("late"));
    }

    #[tokio::test]
    async fn pre_promote_failure_and_timeout_cancel_the_promotion() {
        let with = |script: &str, timeout: Duration| {
            let s = crate::config::PostgresqlSection {
                pre_promote: Some(script.into()),
                ..Default::default()
            };
            Callbacks::new(&s, "s", None, timeout, Arc::new(SystemRunner)).unwrap()
        };
        let e = with("sh -c 'exit 3'", Duration::from_secs(5))
            .pre_promote()
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("exited with 3"), "{e}");
        let e = with("sleep 5", Duration::from_millis(300))
            .pre_promote()
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("did not finish"), "{e}");
        with("true", Duration::from_secs(5))
            .pre_promote()
            .await
            .unwrap();
    }
}
