//! The server parameters this node runs with: the cluster's from `/config`, the node's own from
//! `postgresql.parameters`, and on a standby the floors its primary's control file demands.

use std::collections::BTreeMap;
use std::fs;

use patroni_core::parameters::{effective, raise_to_floors, HOT_STANDBY_FLOORS};
use patroni_core::DbError;
use serde_json::{Map, Value};

use crate::conf::{self, ConfRole};
use crate::controldata::ControlData;
use crate::datadir::live_postmaster;
use crate::postgres::Postgres;

/// What the cluster last asked for and what the control file last said, kept between cycles.
#[derive(Debug, Default)]
pub(crate) struct Settings {
    /// `/config`'s `postgresql.parameters`, as last handed over.
    cluster: Map<String, Value>,
    /// The hot-standby floors from the last `pg_controldata` read (the primary's settings).
    floors: BTreeMap<String, u64>,
    /// The warnings last logged, so each is logged once per change, not every cycle.
    warned: Vec<String>,
    /// The slot our standby streams through (`primary_slot_name`), from the slot plan.
    pub(crate) primary_slot: Option<String>,
}

/// `pg_controldata`'s label for each floor parameter.
fn control_label(name: &str) -> &'static str {
    match name {
        "max_connections" => "max_connections setting",
        "max_worker_processes" => "max_worker_processes setting",
        "max_wal_senders" => "max_wal_senders setting",
        "max_prepared_transactions" => "max_prepared_xacts setting",
        _ => "max_locks_per_xact setting",
    }
}

impl Settings {
    /// Remembers the floors a stopped standby's control file records.
    pub(crate) fn observe_control(&mut self, cd: &ControlData) {
        self.floors = HOT_STANDBY_FLOORS
            .iter()
            .filter_map(|n| {
                let v = cd.get(control_label(n))?.parse().ok()?;
                Some((n.to_string(), v))
            })
            .collect();
    }
}

impl Postgres {
    /// The parameters for a start (or a rewrite) in `role`.
    pub(crate) fn run_parameters(&self, role: &ConfRole) -> BTreeMap<String, String> {
        let local: BTreeMap<String, String> = self
            .config()
            .parameters
            .iter()
            .map(|(k, v)| (k.clone(), v.0.clone()))
            .collect();
        let major = fs::read_to_string(self.config().data_dir.join("PG_VERSION"))
            .ok()
            .and_then(|v| v.trim().parse().ok());
        let mut s = self.settings.lock().expect("settings lock");
        let mut e = effective(&s.cluster, &local, major);
        if let ConfRole::Standby { primary_conninfo } = role {
            raise_to_floors(&mut e.values, &s.floors);
            let streams = primary_conninfo.as_deref().is_some_and(|c| !c.is_empty());
            if let (true, Some(slot)) = (streams, &s.primary_slot) {
                e.values.insert("primary_slot_name".into(), slot.clone());
            }
        }
        if e.warnings != s.warned {
            for w in &e.warnings {
                tracing::warn!("{w}");
            }
            s.warned = e.warnings;
        }
        e.values
    }

    /// Records the floors from a control file read while the server was down.
    pub(crate) fn observe_control(&self, cd: &ControlData) {
        self.settings
            .lock()
            .expect("settings lock")
            .observe_control(cd);
    }

    /// Takes `/config`'s parameters; rewrites `postgresql.conf` for the role the files already
    /// give (a standby keeps its upstream) and reloads a running server when the text changed.
    pub(crate) async fn apply_parameters_impl(
        &self,
        cluster: &Map<String, Value>,
    ) -> Result<bool, DbError> {
        self.settings.lock().expect("settings lock").cluster = cluster.clone();
        self.refresh_conf().await
    }

    /// Rewrites `postgresql.conf` for the role the files already give (a standby keeps its
    /// upstream) when what we would write differs, and reloads a running server.
    pub(crate) async fn refresh_conf(&self) -> Result<bool, DbError> {
        let cfg = self.config();
        let running = live_postmaster(&cfg.data_dir).is_some();
        let current = match conf::managed_text(cfg) {
            Some(text) => text,
            // A server running on a file we did not write (started by Python Patroni before a
            // migration, or by hand) is taken over now, not at its next restart: otherwise
            // `/config` changes would wait for one.
            None if running => String::new(),
            // No cluster yet, or a stopped one: the next start writes the file.
            None => return Ok(false),
        };
        let role = if cfg.data_dir.join("standby.signal").exists() {
            ConfRole::Standby {
                primary_conninfo: conf::current_primary_conninfo(cfg),
            }
        } else {
            ConfRole::Primary
        };
        let params = self.run_parameters(&role);
        if conf::render(cfg, &params, &role) == current {
            return Ok(false);
        }
        self.prepare(&role)?;
        if running {
            self.reload_impl().await?;
        }
        Ok(true)
    }
}
