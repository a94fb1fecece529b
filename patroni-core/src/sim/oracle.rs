//! The client oracle: a writer that records which of its writes the cluster acknowledged.
//!
//! Each write goes to every database that accepts writes at that instant (a client behind a
//! load balancer could reach any of them). A write is acknowledged at once in asynchronous
//! replication, and in synchronous replication only once enough of the named synchronous
//! standbys, streaming from that primary, hold it — what `synchronous_commit` waits for.

use crate::Lsn;

/// A write the oracle sent: where it landed and whether the client was told "committed".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    /// Sequence number of the client's write.
    pub id: u64,
    /// The node that took it.
    pub node: usize,
    /// The WAL branch it was written on.
    pub branch: u64,
    /// The WAL position just past it.
    pub lsn: Lsn,
    /// Virtual time it was sent.
    pub sent_at: u64,
    /// Virtual time it was acknowledged, if it was.
    pub acked_at: Option<u64>,
}

/// The client's record of every write.
#[derive(Debug, Clone, Default)]
pub struct Oracle {
    next_id: u64,
    /// Writes still waiting for a synchronous acknowledgement.
    pub pending: Vec<Write>,
    /// Acknowledged writes, oldest first.
    pub acked: Vec<Write>,
    /// Writes that were never acknowledged because their primary stopped accepting them.
    pub abandoned: u64,
    /// Per WAL branch, the furthest acknowledged write: holding it means holding all acked writes there.
    pub acked_max: Vec<(u64, Lsn, u64)>,
}

impl Oracle {
    /// Records a write sent to `node` that ends at `lsn` on `branch`.
    pub fn send(&mut self, node: usize, branch: u64, lsn: Lsn, now: u64) {
        self.next_id += 1;
        self.pending.push(Write {
            id: self.next_id,
            node,
            branch,
            lsn,
            sent_at: now,
            acked_at: None,
        });
    }

    /// Acknowledges or abandons pending writes, given per node whether it is still the writable
    /// primary on that branch and whether its sync standbys hold a position.
    pub fn settle(
        &mut self,
        now: u64,
        mut still_primary: impl FnMut(usize, u64) -> bool,
        mut durable: impl FnMut(usize, Lsn) -> bool,
    ) {
        let mut keep = Vec::with_capacity(self.pending.len());
        for mut w in self.pending.drain(..) {
            if !still_primary(w.node, w.branch) {
                self.abandoned += 1;
            } else if durable(w.node, w.lsn) {
                w.acked_at = Some(now);
                match self.acked_max.iter_mut().find(|m| m.0 == w.branch) {
                    Some(m) if m.1 < w.lsn => *m = (w.branch, w.lsn, w.id),
                    Some(_) => {}
                    None => self.acked_max.push((w.branch, w.lsn, w.id)),
                }
                self.acked.push(w);
            } else {
                keep.push(w);
            }
        }
        self.pending = keep;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acks_only_durable_writes_and_abandons_on_role_loss() {
        let mut o = Oracle::default();
        o.send(0, 1, Lsn(10), 1);
        o.send(0, 1, Lsn(20), 2);
        o.send(1, 2, Lsn(5), 2);
        o.settle(3, |n, _| n == 0, |_, l| l <= Lsn(10));
        assert_eq!(o.acked.len(), 1);
        assert_eq!(o.acked[0].lsn, Lsn(10));
        assert_eq!((o.pending.len(), o.abandoned), (1, 1));
        o.settle(4, |_, _| true, |_, _| true);
        assert_eq!(o.acked.last().unwrap().acked_at, Some(4));
        assert!(o.pending.is_empty());
        assert_eq!(
            o.acked_max,
            vec![(1, Lsn(20), 2)],
            "the abandoned write on branch 2 counts for nothing"
        );
    }
}
