//! Where the agent's log goes: stderr, through a writer that cannot fail, filtered by level and
//! target.
//!
//! A broken or closed stderr (a log pipe whose reader died, `2>&-`) must never stop an HA agent:
//! a failed write is dropped, not turned into a panic. The filter is parsed here rather than by
//! `tracing`'s `EnvFilter`, whose regular-expression engine would stay resident in every agent
//! for a syntax (span and field filters) the agent's logging never needed.

use std::io::Write;

use tracing_subscriber::filter::Targets;

/// Stderr that swallows write errors.
#[derive(Debug, Clone, Copy, Default)]
pub struct QuietStderr;

impl Write for QuietStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let _ = std::io::stderr().write_all(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let _ = std::io::stderr().flush();
        Ok(())
    }
}

/// The log filter for `filter`, in `RUST_LOG`'s syntax: comma-separated directives, each a level
/// (`info`), a target (`patroni_etcd`, everything it logs) or both (`patroni_etcd=debug`), a
/// target matching every module under it. Directives that do not parse are left out and
/// returned, to be warned about once logging runs; with none left nothing is logged, as
/// `tracing`'s `EnvFilter` does.
pub fn parse_filter(filter: &str) -> (Targets, Vec<String>) {
    let mut targets = Targets::new();
    let mut ignored = Vec::new();
    for directive in filter.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        match directive.parse::<Targets>() {
            Ok(one) => {
                if let Some(level) = one.default_level() {
                    targets = targets.with_default(level);
                }
                for (target, level) in &one {
                    targets = targets.with_target(target, level);
                }
            }
            Err(e) => ignored.push(format!(
                "ignoring the log filter directive {directive:?}: {e}"
            )),
        }
    }
    (targets, ignored)
}

/// Installs the agent's logger: plain lines on [`QuietStderr`], filtered by `filter` (see
/// `parse_filter`: `log.level`'s directive, or `RUST_LOG` when set).
pub fn init(filter: &str) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let (targets, ignored) = parse_filter(filter);
    tracing_subscriber::fmt()
        .with_target(false)
        .with_writer(|| QuietStderr)
        .finish()
        .with(targets)
        .init();
    for w in ignored {
        tracing::warn!("{w}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::Level;

    #[test]
    fn levels_targets_and_both_parse_as_rust_log_does() {
        let (t, ignored) = parse_filter("warn, patroni_etcd=debug,patroni_core");
        assert!(ignored.is_empty(), "{ignored:?}");
        assert!(t.would_enable("patroni_bin::agent", &Level::WARN));
        assert!(!t.would_enable("patroni_bin::agent", &Level::INFO));
        assert!(t.would_enable("patroni_etcd::watch", &Level::DEBUG));
        assert!(!t.would_enable("patroni_etcd::watch", &Level::TRACE));
        assert!(t.would_enable("patroni_core::ha", &Level::TRACE));
        let (info, _) = parse_filter("INFO");
        assert!(info.would_enable("anything", &Level::INFO));
        assert!(!info.would_enable("anything", &Level::DEBUG));
    }

    #[test]
    fn a_bad_directive_is_left_out_and_reported() {
        let (t, ignored) = parse_filter("info,patroni_etcd=loud");
        assert_eq!(ignored.len(), 1, "{ignored:?}");
        assert!(ignored[0].contains("patroni_etcd=loud"));
        assert!(t.would_enable("patroni_etcd", &Level::INFO));
        let (none, _) = parse_filter("");
        assert!(!none.would_enable("anything", &Level::ERROR));
    }
}
