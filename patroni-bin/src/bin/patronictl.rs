//! `patronictl`: Python Patroni 4's command-line tool for patroni-rs (and Patroni) clusters.
//!
//! `patronictl [-c FILE] [-d DCS_URL] [-k] COMMAND [CLUSTER_NAME] [MEMBER_NAMES]...`; every error
//! is one `Error: ...` line on stderr with exit status 1 (2 for a command line that does not
//! parse), never a backtrace.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use patroni_bin::ctl::{
    self, admin, dynconf, info, query, remove, switchover, CtlError, CtlSection, Format,
    RoleFilter, Session, Term,
};
use patroni_bin::Config;

#[derive(Parser)]
#[command(
    name = "patronictl",
    version,
    about = "Command-line interface for interacting with Patroni (patroni-rs).",
    arg_required_else_help = true
)]
struct Args {
    /// Configuration file (default: $PATRONICTL_CONFIG_FILE, else ~/.config/patroni/patronictl.yaml).
    #[arg(short = 'c', long = "config-file")]
    config: Option<PathBuf>,
    /// The DCS connect url, e.g. etcd3://host:2379[/namespace] (default: $DCS_URL).
    #[arg(short = 'd', long = "dcs-url", visible_alias = "dcs")]
    dcs_url: Option<String>,
    /// Allow connections to SSL sites without certs.
    #[arg(short = 'k', long)]
    insecure: bool,
    /// The cluster name, when neither the command line nor the file gives it.
    #[arg(long, hide = true)]
    scope: Option<String>,
    /// The DCS namespace (default /service).
    #[arg(long, hide = true)]
    namespace: Option<String>,
    #[command(subcommand)]
    command: Cmd,
}

fn role(s: &str) -> Result<RoleFilter, String> {
    RoleFilter::parse(s).ok_or_else(|| {
        format!(
            "invalid role {s:?}: expected leader, primary, standby-leader, replica, standby or any"
        )
    })
}

fn format(s: &str) -> Result<Format, String> {
    match Format::parse(s) {
        Some(Format::Topology) | None => Err(format!(
            "invalid format {s:?}: expected pretty, tsv, json, yaml or yml"
        )),
        Some(f) => Ok(f),
    }
}

#[derive(Subcommand)]
enum Cmd {
    /// Generate a dsn for the provided member, defaults to a dsn of the leader
    Dsn {
        cluster_name: Option<String>,
        /// Give a dsn of any member with this role
        #[arg(short = 'r', long, value_parser = role)]
        role: Option<RoleFilter>,
        /// Generate a dsn for this member
        #[arg(short = 'm', long)]
        member: Option<String>,
    },
    /// Query a Patroni PostgreSQL member
    Query {
        cluster_name: Option<String>,
        /// Output format (pretty, tsv, json, yaml)
        #[arg(long = "format", value_parser = format, default_value = "tsv")]
        format: Format,
        /// Execute the SQL commands from this file (- for stdin)
        #[arg(short = 'f', long = "file")]
        file: Option<String>,
        /// force password prompt
        #[arg(long)]
        password: bool,
        /// database user name
        #[arg(short = 'U', long)]
        username: Option<String>,
        /// Auto update the screen every 2 seconds
        #[arg(short = 'W')]
        w: bool,
        /// Auto update the screen every X seconds
        #[arg(short = 'w', long)]
        watch: Option<f64>,
        /// The role of the query
        #[arg(short = 'r', long, value_parser = role)]
        role: Option<RoleFilter>,
        /// Query a specific member
        #[arg(short = 'm', long)]
        member: Option<String>,
        /// The column delimiter
        #[arg(long, default_value = "\t")]
        delimiter: String,
        /// The SQL commands to execute
        #[arg(short = 'c', long)]
        command: Option<String>,
        /// database name to connect to
        #[arg(short = 'd', long)]
        dbname: Option<String>,
    },
    /// Remove cluster from DCS
    Remove {
        cluster_name: String,
        /// Output format
        #[arg(short = 'f', long = "format", value_parser = format, default_value = "pretty")]
        format: Format,
    },
    /// Reload cluster member configuration
    Reload {
        cluster_name: String,
        member_names: Vec<String>,
        /// Reload only members with this role
        #[arg(short = 'r', long, value_parser = role)]
        role: Option<RoleFilter>,
        /// Do not ask for confirmation at any point
        #[arg(long)]
        force: bool,
    },
    /// Restart cluster member
    Restart {
        cluster_name: String,
        member_names: Vec<String>,
        /// Restart only members with this role
        #[arg(short = 'r', long, value_parser = role)]
        role: Option<RoleFilter>,
        /// Restart a single member only
        #[arg(long = "any")]
        any: bool,
        /// Timestamp of a scheduled restart in unambiguous format (e.g. ISO 8601)
        #[arg(long)]
        scheduled: Option<String>,
        /// Restart if the PostgreSQL version is less than provided (e.g. 9.5.2)
        #[arg(long = "pg-version")]
        pg_version: Option<String>,
        /// Restart if pending
        #[arg(long)]
        pending: bool,
        /// Return error and fail over if necessary when restarting takes longer than this.
        #[arg(long)]
        timeout: Option<String>,
        /// Do not ask for confirmation at any point
        #[arg(long)]
        force: bool,
    },
    /// Reinitialize cluster member
    Reinit {
        cluster_name: String,
        member_names: Vec<String>,
        /// Do not ask for confirmation at any point
        #[arg(long)]
        force: bool,
        /// Get basebackup from leader
        #[arg(long = "from-leader")]
        from_leader: bool,
        /// Wait until reinitialization completes
        #[arg(long)]
        wait: bool,
    },
    /// Failover to a replica
    Failover {
        cluster_name: Option<String>,
        /// The name of the candidate
        #[arg(long)]
        candidate: Option<String>,
        /// Do not ask for confirmation at any point
        #[arg(long)]
        force: bool,
    },
    /// Switchover to a replica
    Switchover {
        cluster_name: Option<String>,
        /// The name of the current leader
        #[arg(long, visible_alias = "primary")]
        leader: Option<String>,
        /// The name of the candidate
        #[arg(long)]
        candidate: Option<String>,
        /// Timestamp of a scheduled switchover in unambiguous format (e.g. ISO 8601)
        #[arg(long)]
        scheduled: Option<String>,
        /// Do not ask for confirmation at any point
        #[arg(long)]
        force: bool,
    },
    /// List the Patroni members for a given Patroni
    List {
        cluster_names: Vec<String>,
        /// Show some extra information
        #[arg(short = 'e', long)]
        extended: bool,
        /// Print timestamp
        #[arg(short = 't', long = "timestamp")]
        timestamp: bool,
        /// Output format
        #[arg(short = 'f', long = "format", value_parser = format, default_value = "pretty")]
        format: Format,
        /// Auto update the screen every 2 seconds
        #[arg(short = 'W')]
        w: bool,
        /// Auto update the screen every X seconds
        #[arg(short = 'w', long)]
        watch: Option<f64>,
    },
    /// Prints ASCII topology for given cluster
    Topology {
        cluster_names: Vec<String>,
        /// Auto update the screen every 2 seconds
        #[arg(short = 'W')]
        w: bool,
        /// Auto update the screen every X seconds
        #[arg(short = 'w', long)]
        watch: Option<f64>,
    },
    /// Discard scheduled events
    Flush {
        /// CLUSTER_NAME [MEMBER_NAMES]... {restart|switchover}
        #[arg(num_args = 2.., required = true, value_name = "CLUSTER_NAME [MEMBER_NAMES]... TARGET")]
        args: Vec<String>,
        /// Flush only members with this role
        #[arg(short = 'r', long, value_parser = role)]
        role: Option<RoleFilter>,
        /// Do not ask for confirmation at any point
        #[arg(long)]
        force: bool,
    },
    /// Disable auto failover
    Pause {
        cluster_name: Option<String>,
        /// Wait until pause is applied on all nodes
        #[arg(long)]
        wait: bool,
    },
    /// Resume auto failover
    Resume {
        cluster_name: Option<String>,
        /// Wait until pause is cleared on all nodes
        #[arg(long)]
        wait: bool,
    },
    /// Edit cluster configuration
    EditConfig {
        cluster_name: Option<String>,
        /// Do not show changes
        #[arg(short = 'q', long)]
        quiet: bool,
        /// Set specific configuration value. Can be specified multiple times
        #[arg(short = 's', long = "set")]
        set: Vec<String>,
        /// Set specific PostgreSQL parameter value. Shorthand for -s postgresql.parameters.
        #[arg(short = 'p', long = "pg")]
        pg: Vec<String>,
        /// Apply configuration from file. Use - for stdin.
        #[arg(long)]
        apply: Option<String>,
        /// Apply configuration from file, replacing existing configuration. Use - for stdin.
        #[arg(long)]
        replace: Option<String>,
        /// Do not ask for confirmation at any point
        #[arg(long)]
        force: bool,
    },
    /// Show cluster configuration
    ShowConfig { cluster_name: Option<String> },
    /// Output version of patronictl command or a running Patroni instance
    Version {
        cluster_name: Option<String>,
        member_names: Vec<String>,
    },
    /// Show the history of failovers/switchovers
    History {
        cluster_name: Option<String>,
        /// Output format
        #[arg(short = 'f', long = "format", value_parser = format, default_value = "pretty")]
        format: Format,
    },
}

/// The default file, as Python's `click.get_app_dir('patroni')`.
fn default_config_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("patroni").join("patronictl.yaml"))
}

/// Python's `parse_dcs`: `[etcd3://]host[:port][/namespace]` (etcd and etcd3 both speak v3 here).
fn apply_dcs_url(config: &mut Config, url: &str) -> Result<(), CtlError> {
    let (scheme, rest) = match url.split_once("://") {
        Some((s, r)) => (s, r),
        None => ("", url.trim_start_matches("//")),
    };
    match scheme {
        "" | "etcd" | "etcd3" => {}
        "zookeeper" | "exhibitor" | "consul" => {
            return Err(ctl::failed(format!(
                "DCS {scheme} is not supported by patroni-rs: use etcd3://host:port"
            )))
        }
        other => return Err(ctl::failed(format!("Unknown dcs scheme: {other}"))),
    }
    let (netloc, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let hosts = netloc.split(',').map(dcs_host).collect::<Result<_, _>>()?;
    config.etcd3.hosts = hosts;
    config.etcd3.url = None;
    config.etcd3.host = None;
    let ns = path.trim();
    if !ns.is_empty() && ns != "/" {
        config.namespace = ns.to_string();
    }
    Ok(())
}

/// One `host[:port]` of a DCS URL as `host:port`, read as Python's `urlparse` does: no host is
/// localhost, no port (or an empty one) etcd's 2379.
fn dcs_host(given: &str) -> Result<String, CtlError> {
    let h = given.trim();
    let h = h.strip_suffix(':').unwrap_or(h);
    let h = if h.is_empty() || h.starts_with(':') {
        format!("localhost{h}")
    } else {
        h.to_string()
    };
    match patroni_core::Endpoint::from_url(&format!("etcd3://{h}"), 2379) {
        // `fe80::1` would read as host `fe80:`, port 1.
        Ok(e) if e.host.contains(':') && !h.starts_with('[') => Err(ctl::failed(format!(
            "Invalid dcs host {given:?}: write an IPv6 address in brackets"
        ))),
        Ok(e) => Ok(e.to_string()),
        Err(e) => Err(ctl::failed(format!("Invalid dcs host: {e}"))),
    }
}

/// The configuration file (if any), the `ctl` section, and the command line's overrides.
fn load(args: &Args) -> Result<(Config, CtlSection), CtlError> {
    let explicit = args
        .config
        .clone()
        .or_else(|| std::env::var_os("PATRONICTL_CONFIG_FILE").map(PathBuf::from));
    let path = match explicit {
        Some(p) => {
            if std::fs::File::open(&p).is_err() {
                return Err(ctl::failed(format!(
                    "Provided config file {} not existing or no read rights. Check the -c/--config-file parameter",
                    p.display()
                )));
            }
            Some(p)
        }
        None => default_config_path().filter(|p| std::fs::File::open(p).is_ok()),
    };
    let (mut config, section) = match &path {
        Some(p) => {
            let loaded = Config::load_for_ctl(p).map_err(|e| ctl::failed(e.to_string()))?;
            for w in &loaded.warnings {
                eprintln!("warning: {w}");
            }
            let section = loaded.config.ctl.clone();
            (loaded.config, section)
        }
        None => (Config::default(), CtlSection::default()),
    };
    let url = args
        .dcs_url
        .clone()
        .or_else(|| std::env::var("DCS_URL").ok().filter(|v| !v.is_empty()));
    if let Some(url) = url {
        apply_dcs_url(&mut config, &url)?;
    }
    if let Some(s) = &args.scope {
        config.scope = s.clone();
    }
    if let Some(n) = &args.namespace {
        config.namespace = n.clone();
    }
    Ok((config, section))
}

async fn run(args: Args) -> Result<(), CtlError> {
    let (config, section) = load(&args)?;
    let mut s = Session::new(config, &section, Term::stdio())?;
    match args.command {
        Cmd::Dsn {
            cluster_name,
            role,
            member,
        } => {
            let name = s.cluster_name(cluster_name.as_deref())?;
            query::dsn(&mut s, &name, role, member.as_deref()).await
        }
        Cmd::Query {
            cluster_name,
            format,
            file,
            password,
            username,
            w,
            watch,
            role,
            member,
            delimiter,
            command,
            dbname,
        } => {
            let name = s.cluster_name(cluster_name.as_deref())?;
            let a = query::QueryArgs {
                role,
                member,
                command,
                file,
                username,
                password,
                dbname,
                delimiter,
                format,
                every: info::watch_interval(w, watch),
            };
            query::query(&mut s, &name, a).await
        }
        Cmd::Remove {
            cluster_name,
            format,
        } => remove::remove(&mut s, &cluster_name, format).await,
        Cmd::Reload {
            cluster_name,
            member_names,
            role,
            force,
        } => admin::reload(&mut s, &cluster_name, &member_names, role, force).await,
        Cmd::Restart {
            cluster_name,
            member_names,
            role,
            any,
            scheduled,
            pg_version,
            pending,
            timeout,
            force,
        } => {
            let a = admin::RestartArgs {
                members: member_names,
                role,
                any,
                scheduled,
                pg_version,
                pending,
                timeout,
                force,
            };
            admin::restart(&mut s, &cluster_name, a).await
        }
        Cmd::Reinit {
            cluster_name,
            member_names,
            force,
            from_leader,
            wait,
        } => {
            admin::reinit(
                &mut s,
                &cluster_name,
                &member_names,
                force,
                from_leader,
                wait,
            )
            .await
        }
        Cmd::Failover {
            cluster_name,
            candidate,
            force,
        } => {
            let name = s.cluster_name(cluster_name.as_deref())?;
            let a = switchover::Args {
                candidate,
                force,
                ..Default::default()
            };
            switchover::run(&mut s, &name, switchover::Action::Failover, a).await
        }
        Cmd::Switchover {
            cluster_name,
            leader,
            candidate,
            scheduled,
            force,
        } => {
            let name = s.cluster_name(cluster_name.as_deref())?;
            let a = switchover::Args {
                leader,
                candidate,
                scheduled,
                force,
            };
            switchover::run(&mut s, &name, switchover::Action::Switchover, a).await
        }
        Cmd::List {
            cluster_names,
            extended,
            timestamp,
            format,
            w,
            watch,
        } => {
            let every = info::watch_interval(w, watch);
            info::list(&mut s, &cluster_names, extended, timestamp, format, every).await
        }
        Cmd::Topology {
            cluster_names,
            w,
            watch,
        } => {
            let every = info::watch_interval(w, watch);
            info::list(
                &mut s,
                &cluster_names,
                false,
                false,
                Format::Topology,
                every,
            )
            .await
        }
        Cmd::Flush { args, role, force } => {
            let (cluster, rest) = args.split_first().expect("clap requires two values");
            let (target, members) = rest.split_last().expect("clap requires two values");
            if target != "restart" && target != "switchover" {
                return Err(ctl::failed(format!(
                    "Invalid value for '{{restart|switchover}}': '{target}' is not one of 'restart', 'switchover'"
                )));
            }
            admin::flush(&mut s, cluster, members, target, role, force).await
        }
        Cmd::Pause { cluster_name, wait } => {
            let name = s.cluster_name(cluster_name.as_deref())?;
            dynconf::toggle_pause(&mut s, &name, true, wait).await
        }
        Cmd::Resume { cluster_name, wait } => {
            let name = s.cluster_name(cluster_name.as_deref())?;
            dynconf::toggle_pause(&mut s, &name, false, wait).await
        }
        Cmd::EditConfig {
            cluster_name,
            quiet,
            set,
            pg,
            apply,
            replace,
            force,
        } => {
            let name = s.cluster_name(cluster_name.as_deref())?;
            let a = dynconf::EditArgs {
                set,
                pg,
                apply,
                replace,
                quiet,
                force,
            };
            dynconf::edit_config(&mut s, &name, a).await
        }
        Cmd::ShowConfig { cluster_name } => {
            let name = s.cluster_name(cluster_name.as_deref())?;
            info::show_config(&mut s, &name).await
        }
        Cmd::Version {
            cluster_name,
            member_names,
        } => info::version(&mut s, cluster_name.as_deref(), &member_names).await,
        Cmd::History {
            cluster_name,
            format,
        } => {
            let name = s.cluster_name(cluster_name.as_deref())?;
            info::history(&mut s, &name, format).await
        }
    }
}

/// Text on one line: a multi-line message would read as several errors.
fn one_line(text: &str) -> String {
    text.split('\n')
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

fn main() -> ExitCode {
    // Whatever RUST_BACKTRACE says: a bug is one line too.
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown".into());
        eprintln!("Error: internal error: {}", one_line(&msg));
        std::process::exit(1);
    }));
    let args = match Args::try_parse() {
        Ok(a) => a,
        Err(e) => {
            use clap::error::ErrorKind;
            match e.kind() {
                ErrorKind::DisplayHelp
                | ErrorKind::DisplayVersion
                | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
                    let _ = e.print();
                    return ExitCode::SUCCESS;
                }
                _ => {
                    let text = e.to_string();
                    let first = text.lines().next().unwrap_or("invalid command line");
                    eprintln!(
                        "Error: {}",
                        one_line(first.strip_prefix("error: ").unwrap_or(first))
                    );
                    return ExitCode::from(2);
                }
            }
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("Error: {}", one_line(&e.to_string()));
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {}", one_line(&e.to_string()));
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dcs_hosts_get_etcds_port_and_keep_ipv6_brackets() {
        let host = |h: &str| dcs_host(h).map_err(|e| e.to_string());
        assert_eq!(host("db1"), Ok("db1:2379".into()));
        assert_eq!(host(" db1:2380 "), Ok("db1:2380".into()));
        assert_eq!(host("db1:"), Ok("db1:2379".into()));
        assert_eq!(host(""), Ok("localhost:2379".into()));
        assert_eq!(host(":2380"), Ok("localhost:2380".into()));
        assert_eq!(host("[::1]"), Ok("[::1]:2379".into()));
        assert_eq!(host("[2001:db8::5:1]"), Ok("[2001:db8::5:1]:2379".into()));
        assert_eq!(
            host("[2001:db8::5:1]:2380"),
            Ok("[2001:db8::5:1]:2380".into())
        );
        assert!(host("fe80::1").is_err_and(|e| e.contains("brackets")));
        assert!(host("db1:x").is_err_and(|e| e.contains("db1:x")));
        let mut config = Config::default();
        apply_dcs_url(&mut config, "etcd3://a:1,[::1]/ns").unwrap();
        assert_eq!(config.etcd3.hosts, ["a:1", "[::1]:2379"]);
        assert_eq!(config.namespace, "/ns");
    }
}
