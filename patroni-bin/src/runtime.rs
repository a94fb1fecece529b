//! The daemon: builds the adapters from a [`Config`], serves the REST API and runs the [`Agent`](crate::Agent).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use patroni_core::{Database, Dcs, DynamicConfig};
use patroni_etcd::{EtcdDcs, EtcdIdentity};
use patroni_postgres::command::SystemRunner;
use patroni_postgres::datadir::lookup_user;
use patroni_postgres::{Postgres, PostgresConfig};

use crate::agent::{AgentError, ConfigHook, Fencing};
use crate::builder::AgentBuilder;
use crate::config::Config;
use patroni_opengauss::Flavour;

/// The tokio runtime the daemon runs on.
///
/// One thread: the agent waits nearly all the time, its work per loop is a few milliseconds, and
/// slow work (commands, file copies) runs in child processes or on the blocking pool, so more
/// worker threads would only add memory and idle wake-ups.
pub fn daemon_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

/// The DCS for `config`, acting as member `name` with the given timings.
pub fn connect_dcs(
    config: &Config,
    name: &str,
    timing: &DynamicConfig,
) -> Result<Arc<dyn Dcs>, AgentError> {
    let mut id = EtcdIdentity::new(config.scope.clone(), name.to_string());
    id.namespace = config.namespace.clone();
    id.ttl = timing.ttl_duration();
    id.retry_timeout = timing.retry_timeout_duration();
    id.loop_wait = timing.loop_wait_duration();
    let dcs = EtcdDcs::new(&config.etcd3, id).map_err(|e| AgentError::Dcs(e.to_string()))?;
    Ok(Arc::new(dcs))
}

/// The PostgreSQL adapter's settings from the `postgresql` section. Its `parameters` and
/// `use_pg_rewind` are the node's own: the cluster's come from `/config` (or `bootstrap.dcs`
/// before there is one), through [`patroni_core::Database::apply_parameters`] and the daemon's
/// [`ConfigHook`] every cycle.
pub fn postgres_config(config: &Config) -> Result<PostgresConfig, AgentError> {
    let mut cfg = config.postgresql.postgres.clone();
    cfg.connect_address = config.postgresql.connect_address().to_string();
    if let Some(user) = &config.postgresql.run_as {
        cfg.run_as = Some(lookup_user(user).map_err(AgentError::Database)?);
    }
    Ok(cfg)
}

/// The openGauss adapter's settings: the keys it shares with PostgreSQL plus the `opengauss` block.
pub fn opengauss_config(config: &Config) -> patroni_opengauss::OpenGaussConfig {
    let pg = &config.postgresql;
    patroni_opengauss::OpenGaussConfig {
        name: config.name.clone(),
        flavour: Some(Flavour::OpenGauss),
        data_dir: pg.postgres.data_dir.clone(),
        bin_dir: pg.postgres.bin_dir.clone(),
        listen: pg.postgres.listen.clone(),
        connect_address: pg.connect_address().to_string(),
        parameters: pg.postgres.parameters.clone(),
        opengauss: pg.opengauss.clone().unwrap_or_default(),
    }
}

/// The user openGauss's SQL connects as: `db_user`, else a superuser the file names (the
/// embedded default is PostgreSQL's `postgres`, no openGauss user), else `os_user`, else `omm`.
pub fn opengauss_sql_user(config: &Config, og: &patroni_opengauss::OpenGaussConfig) -> String {
    let superuser = &config.postgresql.postgres.authentication.superuser.username;
    let default = patroni_postgres::Authentication::default()
        .superuser
        .username;
    og.opengauss
        .db_user
        .clone()
        .or_else(|| Some(superuser.clone()).filter(|u| !u.is_empty() && *u != default))
        .unwrap_or_else(|| og.db_user())
}

/// The database adapter `config` asks for and, for PostgreSQL, the [`ConfigHook`] that keeps its
/// `use_pg_rewind` on the dynamic configuration's: hand both to [`AgentBuilder`], or a change of
/// `/config` is not applied.
pub fn build_database(
    config: &Config,
) -> Result<(Arc<dyn Database>, Option<ConfigHook>), AgentError> {
    match config.postgresql.flavour() {
        Flavour::Postgres => {
            let pg = build_postgres(config)?;
            let hook = rewind_hook(Arc::clone(&pg));
            Ok((pg, Some(hook)))
        }
        Flavour::OpenGauss => {
            let og = opengauss_config(config);
            let user = opengauss_sql_user(config, &og);
            let timeout = Duration::from_secs(og.opengauss.ctl_timeout.unwrap_or(60));
            let sql = patroni_opengauss::sql::PgSql::new(og.socket_dir(), og.port(), user, timeout);
            let db = patroni_opengauss::OpenGauss::new(og, Arc::new(SystemRunner), Arc::new(sql))
                .map_err(|e| AgentError::Database(e.to_string()))?;
            Ok((Arc::new(db), None))
        }
    }
}

/// The PostgreSQL adapter, following `bootstrap.dcs`'s `use_pg_rewind` until `/config` is read.
fn build_postgres(config: &Config) -> Result<Arc<Postgres>, AgentError> {
    let initdb = config
        .bootstrap
        .as_ref()
        .map(|b| b.initdb.clone())
        .unwrap_or_default();
    let replica = config
        .replica_methods()
        .map_err(|e| AgentError::Database(e.to_string()))?;
    let bootstrap = config
        .bootstrap_plan()
        .map_err(|e| AgentError::Database(e.to_string()))?;
    let pg = Postgres::new(
        config.name.clone(),
        postgres_config(config)?,
        Arc::new(SystemRunner),
    )
    .map_err(|e| AgentError::Database(e.to_string()))?
    .with_initdb(initdb)
    .with_methods(config.scope.clone(), replica, bootstrap);
    pg.set_use_pg_rewind(config.bootstrap_dcs().postgresql.use_pg_rewind);
    Ok(Arc::new(pg))
}

/// Hands the dynamic configuration's `postgresql.use_pg_rewind` to `pg` (its own
/// `postgresql.use_pg_rewind` still wins), so a change of `/config` applies from the next cycle
/// as in Patroni, and names the rewind tool the state machine reports to match.
fn rewind_hook(pg: Arc<Postgres>) -> ConfigHook {
    Box::new(move |dynamic, node| {
        pg.set_use_pg_rewind(dynamic.postgresql.use_pg_rewind);
        node.rewind_tool = crate::config::postgres_rewind_tool(pg.use_pg_rewind());
    })
}

/// The user's scripts from the `postgresql` section, run as `run_as` and bounded by `pg_ctl_timeout`.
pub fn build_callbacks(config: &Config) -> Result<Option<crate::callbacks::Callbacks>, AgentError> {
    let s = &config.postgresql;
    let run_as = match &s.run_as {
        Some(user) => Some(lookup_user(user).map_err(AgentError::Database)?),
        None => None,
    };
    let timeout = Duration::from_secs(s.postgres.pg_ctl_timeout.max(1));
    Ok(crate::callbacks::Callbacks::new(
        s,
        &config.scope,
        run_as,
        timeout,
        Arc::new(SystemRunner),
    ))
}

/// Takes the agent's exclusive lock on its data directory: a lock file beside it, held with
/// `flock` for the agent's lifetime (the kernel drops it when the process dies, however it dies).
///
/// Two agents driving one database fight: the second stops or rebuilds what the first runs.
pub fn lock_data_dir(data_dir: &std::path::Path) -> Result<std::fs::File, AgentError> {
    let name = data_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "data".into());
    let path = data_dir
        .parent()
        .unwrap_or(std::path::Path::new("/"))
        .join(format!(".{name}.patroni.lock"));
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .map_err(|e| AgentError::Database(format!("cannot open {}: {e}", path.display())))?;
    match file.try_lock() {
        Ok(()) => {
            let _ = file.set_len(0);
            let _ =
                std::io::Write::write_all(&mut &file, std::process::id().to_string().as_bytes());
            Ok(file)
        }
        Err(std::fs::TryLockError::WouldBlock) => {
            let holder = std::fs::read_to_string(&path).unwrap_or_default();
            Err(AgentError::Database(format!(
                "another agent (pid {}) already runs for the data directory {}; refusing to start a second one",
                holder.trim(),
                data_dir.display()
            )))
        }
        Err(std::fs::TryLockError::Error(e)) => Err(AgentError::Database(format!(
            "cannot lock {}: {e}",
            path.display()
        ))),
    }
}

/// The fence process (adopted or started) and the watchdog device, as `watchdog` asks.
///
/// A fence that cannot start is a warning in `automatic` mode; in `required` mode the agent runs
/// but never leads (the state machine sees the watchdog as not ready).
pub fn start_fencing(config: &Config) -> Result<Fencing, AgentError> {
    let settings = crate::watchdog::Settings::from_section(&config.watchdog)
        .map_err(|e| AgentError::Database(e.to_string()))?;
    let mut fencing = Fencing::new(settings.clone());
    if settings.mode == crate::watchdog::Mode::Off {
        tracing::warn!("watchdog.mode is off: nothing stops this node's database if its agent stalls or dies while it leads");
        return Ok(fencing);
    }
    let data_dir = config.postgresql.postgres.data_dir.clone();
    let (ctl, run_as) = match config.postgresql.flavour() {
        Flavour::Postgres => {
            let pg = postgres_config(config)?;
            (pg.binary("pg_ctl"), pg.run_as)
        }
        Flavour::OpenGauss => {
            let bin = opengauss_config(config).bin_dir();
            let run_as = match &config.postgresql.run_as {
                Some(user) => Some(lookup_user(user).map_err(AgentError::Database)?),
                None => None,
            };
            (bin.join("gs_ctl"), run_as)
        }
    };
    let fence = crate::fence::FenceSettings {
        paths: crate::fence::FencePaths::beside(&data_dir),
        data_dir,
        ctl,
        run_as,
    };
    let started = crate::fence::program()
        .ok_or_else(|| {
            "no fence program: set PATRONI_FENCE_PROGRAM to the patroni binary".to_string()
        })
        .and_then(|program| crate::fence::FenceClient::start(&fence, &program));
    match started {
        Ok(client) => {
            tracing::info!(state = %fence.paths.state.display(), "fence process running");
            fencing.client = Some(client);
        }
        Err(e) => tracing::error!(
            "fence process not running ({e}); {}",
            if settings.mode == crate::watchdog::Mode::Required {
                "watchdog.mode is required: this node will not lead"
            } else {
                "nothing stops this node's database if its agent stalls or dies while it leads"
            }
        ),
    }
    if fencing.device.present() {
        tracing::info!(device = %settings.device.display(), "watchdog device present; it is kept alive while this node leads");
    }
    Ok(fencing)
}

/// Runs the agent described by `config` until `shutdown` resolves (SIGTERM/SIGINT in the daemon).
///
/// SIGHUP and `POST /reload` re-read `config.source` (tags, bootstrap timings, the user scripts)
/// when it is set.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), AgentError> {
    let source = config.source.clone().unwrap_or_default();
    config.require_agent_keys(&source.display().to_string())?;
    // Held until this function returns: a second agent on the same data directory refuses.
    let _data_dir_lock = lock_data_dir(&config.postgresql.postgres.data_dir)?;
    let node = config.node();
    let dcs = connect_dcs(&config, &config.name, &node.bootstrap_config)?;
    let (db, hook) = build_database(&config)?;
    let mut builder = AgentBuilder::new(config.scope.clone(), node, dcs, db)
        .rest_api(config.restapi.listen.clone())
        .rest_limits(config.restapi.limits())
        .rest_auth(config.restapi.authentication.clone())
        .rest_security(config.restapi.clone())
        .peer_client(
            crate::rest::tls::client(&config.restapi, &config.ctl, true)
                .map_err(crate::rest::RestError::from)?,
        )
        .fencing(start_fencing(&config)?)
        .callbacks(build_callbacks(&config)?)
        .config_hook(hook)
        .pid_file(config.postgresql.postgres.data_dir.join("postmaster.pid"));
    if config.source.is_some() {
        let scope = config.scope.clone();
        builder = builder.reloader(Box::new(move || {
            let mut loaded = Config::load(&source).map_err(|e| e.to_string())?;
            for w in &loaded.warnings {
                tracing::warn!("{w}");
            }
            let node = loaded.config.node();
            // The scripts are told the cluster this agent is in, which a reload does not change.
            loaded.config.scope.clone_from(&scope);
            let callbacks = build_callbacks(&loaded.config).map_err(|e| e.to_string())?;
            Ok(crate::agent::Reloaded {
                node,
                callbacks: crate::agent::ReloadedScripts::Replace(callbacks.map(Box::new)),
            })
        }));
    }
    let agent = builder.build().await?;
    tracing::info!(
        "{}: REST API on {}, data directory {}",
        config.name,
        agent
            .rest_addr()
            .map_or_else(|| "-".to_string(), |a| a.to_string()),
        config.postgresql.postgres.data_dir.display()
    );
    let handle = agent.handle();
    let hup = tokio::spawn(async move {
        let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        else {
            return;
        };
        while s.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading the configuration");
            handle.reload();
        }
    });
    let result = agent.run(shutdown).await;
    hup.abort();
    result
}

#[cfg(test)]
mod tests {
    use super::{build_postgres, lock_data_dir, rewind_hook};
    use crate::config::Config;
    use patroni_core::DynamicConfig;

    /// A node whose own `use_pg_rewind` is `local` (absent when `None`), in a cluster whose
    /// `bootstrap.dcs` turns it on.
    fn config(local: Option<bool>) -> Config {
        let own = local.map_or(String::new(), |v| format!(", use_pg_rewind: {v}"));
        let text = format!(
            "scope: s\nname: n\netcd3: {{hosts: 127.0.0.1:2379}}\n\
             bootstrap: {{dcs: {{postgresql: {{use_pg_rewind: true}}}}}}\n\
             postgresql: {{listen: 127.0.0.1:5432, data_dir: /srv/rewind-hook-test/data{own}}}\n"
        );
        Config::parse(&text, "t.yml", Vec::new()).unwrap().config
    }

    fn dynamic(use_pg_rewind: bool) -> DynamicConfig {
        let mut d = DynamicConfig::default();
        d.postgresql.use_pg_rewind = use_pg_rewind;
        d
    }

    /// `use_pg_rewind` follows `/config` while the node does not set it, from `bootstrap.dcs`
    /// at start; the node's own setting wins either way. The node names the tool to match.
    #[test]
    fn use_pg_rewind_follows_the_dynamic_configuration_unless_set_locally() {
        let cfg = config(None);
        let mut node = cfg.node();
        let pg = build_postgres(&cfg).unwrap();
        assert!(pg.use_pg_rewind());
        assert_eq!(node.rewind_tool.as_deref(), Some("pg_rewind"));
        let hook = rewind_hook(std::sync::Arc::clone(&pg));
        hook(&dynamic(false), &mut node);
        assert!(!pg.use_pg_rewind());
        assert_eq!(node.rewind_tool, None);
        hook(&dynamic(true), &mut node);
        assert!(pg.use_pg_rewind());
        assert_eq!(node.rewind_tool.as_deref(), Some("pg_rewind"));
        for local in [false, true] {
            let cfg = config(Some(local));
            let mut node = cfg.node();
            let pg = build_postgres(&cfg).unwrap();
            assert_eq!(pg.use_pg_rewind(), local);
            assert_eq!(node.rewind_tool.is_some(), local);
            let hook = rewind_hook(std::sync::Arc::clone(&pg));
            for cluster in [!local, local, !local] {
                hook(&dynamic(cluster), &mut node);
                assert_eq!(pg.use_pg_rewind(), local);
                assert_eq!(node.rewind_tool.is_some(), local);
            }
        }
    }

    #[test]
    fn a_second_lock_on_one_data_directory_is_refused_until_the_first_goes() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let first = lock_data_dir(&data).unwrap();
        let e = lock_data_dir(&data).unwrap_err().to_string();
        assert!(
            e.contains("another agent") && e.contains(&std::process::id().to_string()),
            "{e}"
        );
        drop(first);
        lock_data_dir(&data).expect("free again");
    }
}
