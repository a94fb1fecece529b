//! `patronictl`: inspect and steer a cluster through its DCS and its members' REST APIs.

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand, ValueEnum};
use patroni_bin::config::Config;
use patroni_bin::ctl::{Ctl, Format};

#[derive(Parser)]
#[command(version, about = "Operate a patroni-rs (or Patroni) cluster")]
struct Args {
    /// The agent's YAML file: scope, namespace, etcd3 and restapi.authentication are read from it.
    #[arg(short = 'c', long = "config-file", global = true)]
    config: Option<PathBuf>,
    /// The DCS as a URL, e.g. etcd3://127.0.0.1:2379 (overrides the file's etcd3 section).
    #[arg(short = 'd', long = "dcs-url", global = true)]
    dcs_url: Option<String>,
    /// The cluster name, when no file gives it.
    #[arg(long, global = true)]
    scope: Option<String>,
    /// The DCS namespace.
    #[arg(long, global = true)]
    namespace: Option<String>,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Clone, Copy, ValueEnum)]
enum Fmt {
    Pretty,
    Json,
}

#[derive(Subcommand)]
enum Cmd {
    /// Members with role, state, timeline and lag.
    List {
        #[arg(short = 'f', long, value_enum, default_value = "pretty")]
        format: Fmt,
    },
    /// Members as a tree under the leader.
    Topology,
    /// Hand the leader role over to another member.
    Switchover {
        /// The current leader.
        #[arg(long, alias = "primary")]
        leader: Option<String>,
        /// The member to promote (the healthiest when omitted).
        #[arg(long)]
        candidate: Option<String>,
        /// When: an ISO 8601 time with a zone, or `now`.
        #[arg(long)]
        scheduled: Option<String>,
        /// Do not ask for confirmation (this tool never prompts; accepted for Patroni compatibility).
        #[arg(long)]
        force: bool,
    },
    /// Promote a named member even without a healthy leader.
    Failover {
        #[arg(long)]
        candidate: String,
        #[arg(long)]
        force: bool,
    },
    /// Restart the database on members (all when none named).
    Restart {
        members: Vec<String>,
        #[arg(long)]
        force: bool,
    },
    /// Wipe and re-clone members from the leader.
    Reinit {
        #[arg(required = true)]
        members: Vec<String>,
        #[arg(long)]
        force: bool,
    },
    /// Make members re-read their configuration file.
    Reload { members: Vec<String> },
    /// Maintenance mode on: agents stop acting on the databases.
    Pause,
    /// Maintenance mode off.
    Resume,
    /// Print the dynamic configuration.
    ShowConfig,
    /// Change the dynamic configuration (compare-and-swap).
    EditConfig {
        /// key=value, dotted keys for nesting (`postgresql.parameters.work_mem=8MB`).
        #[arg(short = 's', long = "set")]
        set: Vec<String>,
        /// A server parameter: shorthand for -s postgresql.parameters.NAME=VALUE.
        #[arg(short = 'p', long = "pg")]
        pg: Vec<String>,
        #[arg(long)]
        force: bool,
    },
    /// Promotions so far.
    History {
        #[arg(short = 'f', long, value_enum, default_value = "pretty")]
        format: Fmt,
    },
    /// Versions of this tool and of every member.
    Version,
}

fn cluster_config(args: &Args) -> anyhow::Result<Config> {
    let mut config = match &args.config {
        Some(p) => {
            let l = Config::load_for_ctl(p)?;
            for w in &l.warnings {
                eprintln!("warning: {w}");
            }
            l.config
        }
        None => Config::default(),
    };
    if let Some(url) = &args.dcs_url {
        let hosts = url
            .strip_prefix("etcd3://")
            .or_else(|| url.strip_prefix("etcd://"))
            .with_context(|| format!("--dcs-url {url}: expected etcd3://host:port[,host:port]"))?;
        config.etcd3.hosts = hosts.split(',').map(|h| h.trim().to_string()).collect();
        config.etcd3.url = None;
        config.etcd3.host = None;
    }
    if let Some(s) = &args.scope {
        config.scope = s.clone();
    }
    if let Some(n) = &args.namespace {
        config.namespace = n.clone();
    }
    if config.scope.is_empty() {
        bail!("no cluster scope: give -c config.yml or --scope");
    }
    config
        .etcd3
        .endpoints()
        .context("etcd3: give -c config.yml or --dcs-url etcd3://host:port")?;
    Ok(config)
}

fn fmt(f: Fmt) -> Format {
    match f {
        Fmt::Pretty => Format::Pretty,
        Fmt::Json => Format::Json,
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Cmd::Version = args.command {
        if args.config.is_none() && args.dcs_url.is_none() {
            println!("patronictl version {}", env!("CARGO_PKG_VERSION"));
            return Ok(());
        }
    }
    let config = cluster_config(&args)?;
    let dcs = patroni_bin::runtime::connect_dcs(&config, "patronictl", &config.bootstrap_dcs())?;
    let ctl = Ctl::new(
        dcs,
        config.scope.clone(),
        config.restapi.authentication.clone(),
    );
    match args.command {
        Cmd::List { format } => println!("{}", ctl.list(fmt(format)).await?),
        Cmd::Topology => println!("{}", ctl.topology().await?),
        Cmd::Switchover {
            leader,
            candidate,
            scheduled,
            force: _,
        } => println!(
            "{}",
            ctl.switchover(
                leader.as_deref(),
                candidate.as_deref(),
                scheduled.as_deref()
            )
            .await?
        ),
        Cmd::Failover {
            candidate,
            force: _,
        } => println!("{}", ctl.failover(&candidate).await?),
        Cmd::Restart { members, force } => {
            for l in ctl.member_verb("restart", &members, force).await? {
                println!("{l}");
            }
        }
        Cmd::Reinit { members, force } => {
            for l in ctl.member_verb("reinit", &members, force).await? {
                println!("{l}");
            }
        }
        Cmd::Reload { members } => {
            for l in ctl.member_verb("reload", &members, false).await? {
                println!("{l}");
            }
        }
        Cmd::Pause => {
            ctl.set_pause(true).await?;
            println!("Success: cluster management is paused");
        }
        Cmd::Resume => {
            ctl.set_pause(false).await?;
            println!("Success: cluster management is resumed");
        }
        Cmd::ShowConfig => print!("{}", ctl.show_config().await?),
        Cmd::EditConfig { set, pg, force: _ } => {
            let mut all = set;
            all.extend(pg.into_iter().map(|p| format!("postgresql.parameters.{p}")));
            if all.is_empty() {
                bail!("nothing to change: give -s key=value or -p param=value");
            }
            let new = ctl.edit_config(&all).await?;
            print!("{}", serde_yaml::to_string(&new)?);
        }
        Cmd::History { format } => println!("{}", ctl.history(fmt(format)).await?),
        Cmd::Version => {
            for l in ctl.versions().await? {
                println!("{l}");
            }
        }
    }
    Ok(())
}
