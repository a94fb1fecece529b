//! The server parameters this node runs with: the cluster's from `/config`, the node's own from
//! `postgresql.parameters`, and on a standby the floors its primary's control file demands.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use patroni_core::parameters::{effective, raise_to_floors, HOT_STANDBY_FLOORS};
use patroni_core::DbError;
use serde_json::{Map, Value};

use crate::adapter::Postgres;
use crate::conf::{self, ConfRole};
use crate::controldata::ControlData;
use crate::datadir::live_postmaster;

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
    /// The inputs last found already rendered on disk: while they stay the same, `refresh_conf`
    /// has nothing to write and skips reading and rendering the file (an idle agent's largest
    /// cost per loop).
    rendered: Option<Rendered>,
}

/// What a managed `postgresql.conf` was rendered from: the parameters' sources, and the files
/// that give the role, the upstream and the running server. Any change means a new render.
#[derive(Debug, Clone, PartialEq)]
struct Rendered {
    cluster: Map<String, Value>,
    floors: BTreeMap<String, u64>,
    primary_slot: Option<String>,
    /// `postgresql.conf`, `standby.signal`, `postmaster.pid` (a start or a restart), `PG_VERSION`.
    files: [Option<FileStamp>; 4],
}

/// A file's identity and last change, enough to tell that it was written (every write of ours
/// renames a new file into place) or removed.
#[derive(Debug, Clone, Copy, PartialEq)]
struct FileStamp {
    ino: u64,
    len: u64,
    mtime_ns: i128,
    ctime_ns: i128,
}

impl FileStamp {
    fn of(path: &Path) -> Option<FileStamp> {
        let m = fs::metadata(path).ok()?;
        let ns = |s: i64, n: i64| i128::from(s) * 1_000_000_000 + i128::from(n);
        Some(FileStamp {
            ino: m.ino(),
            len: m.len(),
            mtime_ns: ns(m.mtime(), m.mtime_nsec()),
            ctime_ns: ns(m.ctime(), m.ctime_nsec()),
        })
    }
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
        // Stamped before anything is read: a file changed meanwhile differs next time.
        let files = [
            FileStamp::of(&conf::conf_path(cfg)),
            FileStamp::of(&cfg.data_dir.join("standby.signal")),
            FileStamp::of(&cfg.data_dir.join("postmaster.pid")),
            FileStamp::of(&cfg.data_dir.join("PG_VERSION")),
        ];
        let inputs = {
            let s = self.settings.lock().expect("settings lock");
            let inputs = Rendered {
                cluster: s.cluster.clone(),
                floors: s.floors.clone(),
                primary_slot: s.primary_slot.clone(),
                files,
            };
            if s.rendered.as_ref() == Some(&inputs) {
                return Ok(false);
            }
            inputs
        };
        let unchanged = |this: &Self| -> Result<bool, DbError> {
            this.settings.lock().expect("settings lock").rendered = Some(inputs.clone());
            Ok(false)
        };
        let running = live_postmaster(&cfg.data_dir).is_some();
        let current = match conf::managed_text(cfg) {
            Some(text) => text,
            // A server running on a file we did not write (started by Python Patroni before a
            // migration, or by hand) is taken over now, not at its next restart: otherwise
            // `/config` changes would wait for one.
            None if running => String::new(),
            // No cluster yet, or a stopped one: the next start writes the file.
            None => return unchanged(self),
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
            return unchanged(self);
        }
        self.settings.lock().expect("settings lock").rendered = None;
        self.prepare(&role)?;
        if running {
            self.reload_impl().await?;
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::*;
    use crate::command::SystemRunner;
    use crate::config::PostgresConfig;

    fn params(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    fn text(path: &Path) -> String {
        fs::read_to_string(path).unwrap_or_default()
    }

    /// An unchanged `/config` is skipped without reading the file, but nothing that changes what
    /// we would write is missed: `/config` itself, the file rewritten by someone else, the role.
    #[tokio::test]
    async fn every_change_of_the_inputs_still_lands_after_unchanged_cycles() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        fs::create_dir(&data).unwrap();
        fs::write(data.join("PG_VERSION"), "15\n").unwrap();
        let cfg = PostgresConfig::new("127.0.0.1:5433", &data);
        let pg = Postgres::new("n1", cfg, Arc::new(SystemRunner)).unwrap();
        let conf = conf::conf_path(pg.config());
        // A stopped server on our own file, as after its last start.
        let role = ConfRole::Primary;
        conf::prepare(pg.config(), &pg.run_parameters(&role), &role).unwrap();

        let small = params(json!({"work_mem": "8MB"}));
        assert!(pg.apply_parameters_impl(&small).await.unwrap());
        assert!(text(&conf).contains("work_mem = '8MB'"));
        for _ in 0..3 {
            assert!(!pg.apply_parameters_impl(&small).await.unwrap());
        }
        let large = params(json!({"work_mem": "16MB"}));
        assert!(
            pg.apply_parameters_impl(&large).await.unwrap(),
            "a /config change lands"
        );
        assert!(text(&conf).contains("work_mem = '16MB'"));
        assert!(!pg.apply_parameters_impl(&large).await.unwrap());

        // Rewritten behind our back (by hand, or by an older agent): written again.
        fs::write(&conf, format!("{}\nwork_mem = '1MB'\n", conf::MARKER)).unwrap();
        assert!(pg.apply_parameters_impl(&large).await.unwrap());
        assert!(text(&conf).contains("work_mem = '16MB'"));
        assert!(!pg.apply_parameters_impl(&large).await.unwrap());

        // Now a standby (its signal file appeared): rendered with the standby's settings.
        fs::write(data.join("standby.signal"), "").unwrap();
        assert!(pg.apply_parameters_impl(&large).await.unwrap());
        assert!(text(&conf).contains("recovery_target_timeline = 'latest'"));
        assert!(!pg.apply_parameters_impl(&large).await.unwrap());

        // Back to the first value once more.
        assert!(pg.apply_parameters_impl(&small).await.unwrap());
        assert!(text(&conf).contains("work_mem = '8MB'"));
    }
}
