//! (a) At no instant do two databases accept writes (Raft's election safety).

use super::{Invariant, Snapshot};

/// Counts writable databases after every event.
#[derive(Debug, Clone, Copy, Default)]
pub struct SinglePrimary;

impl Invariant for SinglePrimary {
    fn name(&self) -> &'static str {
        "single_primary"
    }

    fn check(&mut self, s: &Snapshot<'_>) -> Result<(), String> {
        let w = s.writable();
        if w.len() > 1 {
            let names: Vec<&str> = w.iter().map(|&i| s.names[i].as_str()).collect();
            return Err(format!(
                "{} databases accept writes at once: {}",
                w.len(),
                names.join(", ")
            ));
        }
        Ok(())
    }
}
