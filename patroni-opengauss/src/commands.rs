//! Every gs_ctl / gs_guc / pg_controldata / gs_initdb command line the adapter issues, built in one place.
//!
//! Rules from the research: always `-M` on start/restart (never `Normal`), always `-l` on
//! start/restart/build (else the server holds gs_ctl's stdout), `-T <term>` on failover,
//! switchover, notify and build (the default term 1 fences nothing).

use std::path::PathBuf;
use std::time::Duration;

use patroni_core::{Lsn, RebuildMode, StopMode};
use patroni_postgres::command::CommandSpec;

use crate::config::OpenGaussConfig;

/// The `-M` mode a server is started in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerMode {
    /// `-M primary`.
    Primary,
    /// `-M standby`.
    Standby,
    /// `-M pending`: read-only, waits for `gs_ctl notify` (the leader is not known yet).
    Pending,
}

impl ServerMode {
    /// The word gs_ctl takes.
    pub fn as_str(self) -> &'static str {
        match self {
            ServerMode::Primary => "primary",
            ServerMode::Standby => "standby",
            ServerMode::Pending => "pending",
        }
    }
}

/// Builds command specs for one node; holds paths, user and deadlines.
#[derive(Debug, Clone)]
pub struct Commands {
    bin: PathBuf,
    data: String,
    log: String,
    ctl_timeout: Duration,
    build_timeout: Duration,
    env: Vec<(String, String)>,
    run_as: Option<(u32, u32)>,
    name: String,
    pwfile: Option<PathBuf>,
}

/// Extra seconds the process deadline allows beyond gs_ctl's own `-t` wait.
const MARGIN: Duration = Duration::from_secs(30);

impl Commands {
    /// Command builder for `config`, running as `run_as` when set.
    pub fn new(config: &OpenGaussConfig, run_as: Option<(u32, u32)>) -> Self {
        let bin = config.bin_dir();
        let mut env = Vec::new();
        if let Some(home) = bin.parent().filter(|p| !p.as_os_str().is_empty()) {
            env.push(("GAUSSHOME".into(), home.to_string_lossy().into_owned()));
            let lib = home.join("lib").to_string_lossy().into_owned();
            let ld = match std::env::var("LD_LIBRARY_PATH") {
                Ok(old) if !old.is_empty() => format!("{lib}:{old}"),
                _ => lib,
            };
            env.push(("LD_LIBRARY_PATH".into(), ld));
        }
        Commands {
            bin,
            data: config.data_dir.to_string_lossy().into_owned(),
            log: config.log_file().to_string_lossy().into_owned(),
            ctl_timeout: config.ctl_timeout(),
            build_timeout: config.build_timeout(),
            env,
            run_as,
            name: config.name.clone(),
            pwfile: config.opengauss.initdb_pwfile.clone(),
        }
    }

    fn spec(&self, program: &str, args: Vec<String>, timeout: Duration) -> CommandSpec {
        let mut spec = CommandSpec::new(self.bin.join(program), args, timeout);
        spec.env = self.env.clone();
        spec.run_as = self.run_as;
        spec
    }

    fn ctl(&self, args: &[&str], waits: bool) -> CommandSpec {
        let mut a: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let timeout = if waits {
            a.push("-t".into());
            a.push(self.ctl_timeout.as_secs().to_string());
            self.ctl_timeout + MARGIN
        } else {
            MARGIN
        };
        self.spec("gs_ctl", a, timeout)
    }

    /// `gs_ctl status -D d`.
    pub fn status(&self) -> CommandSpec {
        self.ctl(&["status", "-D", &self.data], false)
    }

    /// `gs_ctl query -D d`.
    pub fn query(&self) -> CommandSpec {
        self.ctl(&["query", "-D", &self.data], false)
    }

    /// `gs_ctl query -D d -L lsn`: the max LSN on disk, also while stopped.
    pub fn query_lsn(&self, lsn: Lsn) -> CommandSpec {
        self.ctl(&["query", "-D", &self.data, "-L", &lsn.to_hi_lo()], false)
    }

    /// `gs_ctl querybuild -D d`.
    pub fn querybuild(&self) -> CommandSpec {
        self.ctl(&["querybuild", "-D", &self.data], false)
    }

    /// `gs_ctl start -D d -M mode -l log -t T`.
    pub fn start(&self, mode: ServerMode) -> CommandSpec {
        self.ctl(
            &[
                "start",
                "-D",
                &self.data,
                "-M",
                mode.as_str(),
                "-l",
                &self.log,
            ],
            true,
        )
    }

    /// `gs_ctl stop -D d -m fast|immediate -t T`.
    pub fn stop(&self, mode: StopMode) -> CommandSpec {
        self.ctl(&["stop", "-D", &self.data, "-m", stop_word(mode)], true)
    }

    /// `gs_ctl restart -D d -M mode -m fast|immediate -l log -t T`.
    pub fn restart(&self, mode: ServerMode, stop: StopMode) -> CommandSpec {
        self.ctl(
            &[
                "restart",
                "-D",
                &self.data,
                "-M",
                mode.as_str(),
                "-m",
                stop_word(stop),
                "-l",
                &self.log,
            ],
            true,
        )
    }

    /// `gs_ctl reload -D d`.
    pub fn reload(&self) -> CommandSpec {
        self.ctl(&["reload", "-D", &self.data], false)
    }

    /// `gs_ctl failover -D d -T term -t T`: promote while the old primary is gone.
    pub fn failover(&self, term: u64) -> CommandSpec {
        self.ctl(
            &["failover", "-D", &self.data, "-T", &term.to_string()],
            true,
        )
    }

    /// `gs_ctl switchover -D d -T term -t T`: run on the standby while the primary is alive.
    pub fn switchover(&self, term: u64) -> CommandSpec {
        self.ctl(
            &["switchover", "-D", &self.data, "-T", &term.to_string()],
            true,
        )
    }

    /// `gs_ctl notify -M mode -D d -T term -t T`: leaves `pending`.
    pub fn notify(&self, mode: ServerMode, term: u64) -> CommandSpec {
        self.ctl(
            &[
                "notify",
                "-M",
                mode.as_str(),
                "-D",
                &self.data,
                "-T",
                &term.to_string(),
            ],
            true,
        )
    }

    /// `gs_ctl build -D d -b auto|full -T term -l log`; the source comes from `replconninfoN`.
    pub fn build(&self, mode: RebuildMode, term: u64) -> CommandSpec {
        let b = match mode {
            RebuildMode::Auto => "auto",
            RebuildMode::Full => "full",
        };
        let mut spec = self.ctl(
            &[
                "build",
                "-D",
                &self.data,
                "-b",
                b,
                "-T",
                &term.to_string(),
                "-l",
                &self.log,
            ],
            false,
        );
        spec.timeout = self.build_timeout;
        spec
    }

    /// `gs_ctl build -D d -b full -T term -C conninfo -l log`: a first copy into an empty data
    /// directory, which has no `replconninfoN` yet to find the source by.
    pub fn build_from(&self, term: u64, conninfo: &str) -> CommandSpec {
        let mut spec = self.ctl(
            &[
                "build",
                "-D",
                &self.data,
                "-b",
                "full",
                "-T",
                &term.to_string(),
                "-C",
                conninfo,
                "-l",
                &self.log,
            ],
            false,
        );
        spec.timeout = self.build_timeout;
        spec
    }

    /// `gs_guc set|reload -D d -c "k=v" ...`: `reload` also signals a running server.
    pub fn guc(&self, reload: bool, params: &[(String, String)]) -> CommandSpec {
        let mut args = vec![
            if reload { "reload" } else { "set" }.to_string(),
            "-D".into(),
            self.data.clone(),
        ];
        for (k, v) in params {
            args.push("-c".into());
            args.push(format!("{k}={v}"));
        }
        self.spec("gs_guc", args, MARGIN)
    }

    /// `pg_controldata d`.
    pub fn controldata(&self) -> CommandSpec {
        self.spec("pg_controldata", vec![self.data.clone()], MARGIN)
    }

    /// `gs_initdb -D d --nodename=name [--pwfile=f]`.
    pub fn initdb(&self) -> CommandSpec {
        let mut args = vec![
            "-D".to_string(),
            self.data.clone(),
            format!("--nodename={}", self.name),
        ];
        if let Some(f) = &self.pwfile {
            args.push(format!("--pwfile={}", f.to_string_lossy()));
        }
        self.spec("gs_initdb", args, self.build_timeout)
    }
}

fn stop_word(mode: StopMode) -> &'static str {
    match mode {
        StopMode::Fast => "fast",
        StopMode::Immediate => "immediate",
    }
}

/// A string GUC value in single quotes, as gs_guc writes it into postgresql.conf.
pub fn quoted(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// The per-node settings: one `replconninfoN` per peer (HA port = port + 1), `application_name`,
/// `port`, `listen_addresses`, the socket directory when configured, and
/// `sync_config_strategy = none_node` so the primary does not overwrite them.
pub fn replication_params(config: &OpenGaussConfig) -> Vec<(String, String)> {
    let local_host = config.connect_host();
    let local_ha = config.port() as u32 + 1;
    let mut params: Vec<(String, String)> = config
        .opengauss
        .peers
        .iter()
        .enumerate()
        .map(|(i, p)| {
            (
                format!("replconninfo{}", i + 1),
                quoted(&format!(
                    "localhost={local_host} localport={local_ha} remotehost={} remoteport={}",
                    p.host,
                    p.port as u32 + 1
                )),
            )
        })
        .collect();
    params.push(("application_name".into(), quoted(&config.name)));
    params.push(("port".into(), config.port().to_string()));
    params.push(("listen_addresses".into(), quoted(&config.listen_host())));
    if let Some(dir) = &config.opengauss.unix_socket_dir {
        params.push((
            "unix_socket_directory".into(),
            quoted(&dir.to_string_lossy()),
        ));
    }
    params.push(("sync_config_strategy".into(), quoted("none_node")));
    params
}

/// `synchronous_standby_names` for "wait for `count` of `names`": the first ones in order, or
/// any of them with `quorum` (quorum commit); empty: no waiting.
pub fn sync_standby_names(names: &[String], count: u32, quorum: bool) -> String {
    if names.is_empty() || count == 0 {
        return quoted("");
    }
    let list: Vec<String> = names
        .iter()
        .map(|n| {
            if n.bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_')
            {
                n.clone()
            } else {
                format!("\"{}\"", n.replace('"', "\"\""))
            }
        })
        .collect();
    quoted(&format!(
        "{} {}({})",
        if quorum { "ANY" } else { "FIRST" },
        count.min(names.len() as u32),
        list.join(",")
    ))
}
