//! The readable timeline of a run: who held the lock, who was writable, what each agent decided.

use std::fmt;

/// One line of the timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceLine {
    /// Virtual time, ms since the start of the run.
    pub at: u64,
    /// The leader key's holder at that moment.
    pub lock: Option<String>,
    /// The writable databases at that moment.
    pub writable: Vec<String>,
    /// The node concerned, or `world` for faults and the client.
    pub who: String,
    /// What happened.
    pub what: String,
}

/// The whole timeline; two runs with the same seed and schedule produce equal traces.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Trace {
    /// Whether lines are kept (off in benches, where only the figures matter).
    pub enabled: bool,
    /// The lines, in order.
    pub lines: Vec<TraceLine>,
}

impl Trace {
    /// An empty trace that records when `enabled`.
    pub fn new(enabled: bool) -> Self {
        Trace {
            enabled,
            lines: Vec::new(),
        }
    }

    /// Renders the last `n` lines, the part that usually explains a failure.
    pub fn tail(&self, n: usize) -> String {
        let skip = self.lines.len().saturating_sub(n);
        let mut out = String::new();
        if skip > 0 {
            out.push_str(&format!("  ... {skip} earlier lines\n"));
        }
        for l in &self.lines[skip..] {
            out.push_str(&format!("{l}\n"));
        }
        out
    }
}

impl fmt::Display for TraceLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:>9.3}s lock={:<6} rw=[{}] {:<6} {}",
            self.at as f64 / 1000.0,
            self.lock.as_deref().unwrap_or("-"),
            self.writable.join(","),
            self.who,
            self.what
        )
    }
}

impl fmt::Display for Trace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for l in &self.lines {
            writeln!(f, "{l}")?;
        }
        Ok(())
    }
}
