//! `patroni`: the agent daemon. Reads the YAML file, then runs until SIGTERM or SIGINT.
//! `patroni fence ...` is the node's fence process, which the agent starts itself.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use patroni_bin::Config;
use tokio::signal::unix::{signal, SignalKind};

/// High-availability agent for one PostgreSQL or openGauss node.
///
/// `patroni fence ...` runs the node's fence process, which the agent starts itself.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// Only check the configuration file and exit.
    #[arg(long)]
    validate_config: bool,
    /// The YAML configuration file (Patroni's layout).
    config: PathBuf,
}

fn main() {
    if let Some(code) = patroni_bin::run_fence_if_invoked() {
        std::process::exit(code);
    }
    let args = Args::parse();
    let result = patroni_bin::daemon_runtime()
        .context("starting the runtime")
        .and_then(|rt| rt.block_on(agent(args.config, args.validate_config)));
    if let Err(e) = result {
        // One line, no backtrace, and no panic if stderr is gone.
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), "patroni: {e:#}");
        std::process::exit(1);
    }
}

async fn agent(config: PathBuf, validate_only: bool) -> anyhow::Result<()> {
    let loaded = Config::load(&config)?;
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| loaded.config.log.filter());
    patroni_bin::init_logging(&filter);
    for w in &loaded.warnings {
        tracing::warn!("{w}");
    }
    if validate_only {
        loaded
            .config
            .require_agent_keys(&config.display().to_string())?;
        println!("{}: configuration is valid", config.display());
        return Ok(());
    }
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let shutdown = async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received, shutting down"),
            _ = int.recv() => tracing::info!("SIGINT received, shutting down"),
        }
    };
    patroni_bin::run(loaded.config, shutdown).await?;
    Ok(())
}
