//! Replication slots as the slot plan says: create the kept ones, drop the ones nobody streams
//! through any more, move permanent slots forward on a standby, and name ours in the standby's
//! `primary_slot_name`.

use patroni_core::slots::SlotPlan;
use patroni_core::{DbError, Lsn};

use crate::adapter::Postgres;
use crate::datadir::live_postmaster;
use crate::sql::literal;

/// One row of `pg_replication_slots`.
struct Slot {
    name: String,
    physical: bool,
    active: bool,
    restart_lsn: Option<Lsn>,
}

impl Postgres {
    /// Brings the slots and `primary_slot_name` in line with `plan`; true when anything changed.
    pub(crate) async fn sync_slots_impl(&self, plan: &SlotPlan) -> Result<bool, DbError> {
        let slot = plan.primary_slot_name.clone().filter(|_| plan.use_slots);
        let renamed = {
            let mut s = self.settings.lock().expect("settings lock");
            std::mem::replace(&mut s.primary_slot, slot.clone()) != slot
        };
        let mut changed = renamed && self.refresh_conf().await?;
        if !plan.use_slots || live_postmaster(&self.config().data_dir).is_none() {
            return Ok(changed);
        }
        let rows = self
            .query("SELECT slot_name, slot_type, active, restart_lsn FROM pg_replication_slots")
            .await?;
        let slots: Vec<Slot> = rows
            .iter()
            .filter_map(|r| {
                Some(Slot {
                    name: r.first()?.clone()?,
                    physical: r.get(1)?.as_deref() == Some("physical"),
                    active: r.get(2)?.as_deref() == Some("t"),
                    restart_lsn: r.get(3)?.as_deref().and_then(|v| v.parse().ok()),
                })
            })
            .collect();
        for name in &plan.keep {
            if !slots.iter().any(|s| &s.name == name) {
                self.query(&format!(
                    "SELECT pg_catalog.pg_create_physical_replication_slot({}, true)",
                    literal(name)
                ))
                .await?;
                tracing::info!(slot = %name, "created the physical replication slot");
                changed = true;
            }
        }
        for s in slots.iter().filter(|s| s.physical && !s.active) {
            if plan.may_drop(&s.name) {
                self.query(&format!(
                    "SELECT pg_catalog.pg_drop_replication_slot({})",
                    literal(&s.name)
                ))
                .await?;
                tracing::info!(slot = %s.name, "dropped the replication slot nobody streams through any more");
                changed = true;
            }
        }
        if !plan.advance.is_empty() && self.in_recovery().await == Some(true) {
            let replay: Option<Lsn> = self
                .query("SELECT pg_catalog.pg_last_wal_replay_lsn()")
                .await?
                .first()
                .and_then(|r| r.first()?.as_deref()?.parse().ok());
            for s in slots.iter().filter(|s| plan.advance.contains(&s.name)) {
                if let (Some(to), Some(at)) = (replay, s.restart_lsn) {
                    if at < to {
                        self.query(&format!(
                            "SELECT pg_catalog.pg_replication_slot_advance({}, {})",
                            literal(&s.name),
                            literal(&to.to_string())
                        ))
                        .await?;
                    }
                }
            }
        }
        Ok(changed)
    }
}
