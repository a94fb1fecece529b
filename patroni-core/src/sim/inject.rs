//! Applying faults and operator requests to the world, and healing it when the schedule ends.

use crate::instant;
use crate::keyspace;
use crate::sim::db::Process;
use crate::sim::fault::Fault;
use crate::sim::world::World;
use crate::{DynamicConfig, FailoverRequest};

impl World {
    pub(crate) fn apply_fault(&mut self, fault: &Fault) {
        let now = self.now;
        self.log("world", format!("FAULT {fault}"));
        match *fault {
            Fault::CrashDb { node, restartable } => {
                let db = &mut self.dbs[node];
                if db.initialized {
                    db.process = Process::Crashed;
                    db.streaming = false;
                }
                if !restartable {
                    db.cannot_start = true;
                    self.broken[node] = true;
                }
            }
            Fault::UnreadableDataDir { node } => {
                let db = &mut self.dbs[node];
                db.data_dir_unreadable = true;
                db.cannot_start = true;
                self.broken[node] = true;
            }
            Fault::LoseNode { node } => {
                self.alive[node] = false;
                self.broken[node] = true;
                self.dbs[node].process = Process::Crashed;
                self.dbs[node].streaming = false;
                self.agents[node].task = None;
                self.agents[node].pending = None;
            }
            Fault::CutDcs { node, lasting } => {
                self.dcs_cut_until[node] =
                    self.dcs_cut_until[node].max(instant::after(now, lasting));
            }
            Fault::CutPeers { a, b, lasting } => {
                let until = self.peer_cut_until[a][b].max(instant::after(now, lasting));
                self.peer_cut_until[a][b] = until;
                self.peer_cut_until[b][a] = until;
            }
            Fault::DcsOutage { lasting } => {
                self.dcs_down_until = self.dcs_down_until.max(instant::after(now, lasting));
            }
            Fault::Stall { node, lasting } => {
                let a = &mut self.agents[node];
                a.stalled_until = a.stalled_until.max(instant::after(now, lasting));
            }
            Fault::KillAgent { node, lasting } => {
                let a = &mut self.agents[node];
                a.stalled_until = a.stalled_until.max(instant::after(now, lasting));
                // Started again afterwards with nothing remembered; what it was running died.
                a.reset = true;
                a.task = None;
                a.pending = None;
                a.read_times_out_at = None;
                let db = &mut self.dbs[node];
                if db.process == Process::Busy {
                    db.process = Process::Crashed;
                }
            }
            Fault::LoseReplies { node, lasting } => {
                self.reply_lost_until[node] =
                    self.reply_lost_until[node].max(instant::after(now, lasting));
            }
            Fault::Lag { node, bytes } => self.dbs[node].lag_bytes = bytes,
            Fault::Switchover { .. }
            | Fault::Failover { .. }
            | Fault::Pause
            | Fault::Resume
            | Fault::SetTtl { .. }
            | Fault::SetSyncCount { .. }
                if now < self.dcs_down_until =>
            {
                self.log("world", "operator request failed: DCS unreachable".into());
            }
            Fault::Switchover { candidate } => {
                let Some(leader) = self.lock_holder() else {
                    self.log("world", "switchover refused: no leader".into());
                    return;
                };
                let candidate = candidate.map(|c| self.names[c].clone());
                if let Err(why) = self.api_precheck(Some(&leader), candidate.as_deref()) {
                    self.log("world", format!("switchover refused (412): {why}"));
                    return;
                }
                let request = FailoverRequest {
                    leader: Some(leader),
                    candidate,
                    scheduled_at: None,
                };
                self.write_failover(&request);
            }
            Fault::Failover { candidate } => {
                let candidate = self.names[candidate].clone();
                let leader = self.lock_holder();
                if let Err(why) = self.api_precheck(leader.as_deref(), Some(&candidate)) {
                    self.log("world", format!("failover refused (412): {why}"));
                    return;
                }
                let request = FailoverRequest {
                    leader: None,
                    candidate: Some(candidate),
                    scheduled_at: None,
                };
                self.write_failover(&request);
            }
            Fault::SetTtl { ttl } => self.edit_config(|c| {
                // Keep Patroni's timing rule: loop_wait + 2 * retry_timeout <= ttl.
                c.ttl = ttl;
                c.loop_wait = c.loop_wait.min(ttl / 3).max(1);
                c.retry_timeout = ((ttl - c.loop_wait) / 2).clamp(1, 10);
            }),
            Fault::SetSyncCount { count } => self.edit_config(|c| c.synchronous_node_count = count),
            Fault::Pause => self.set_pause(true),
            Fault::Resume => self.set_pause(false),
        }
    }

    /// The checks Patroni's REST API makes before it writes `/failover` (412 when they fail).
    fn api_precheck(
        &mut self,
        leader: Option<&str>,
        candidate: Option<&str>,
    ) -> Result<(), String> {
        let cluster = self.store.load(self.now);
        let sync = cluster.sync_state().cloned().unwrap_or_default();
        let synchronous = cluster.config_or(&self.dynamic).synchronous();
        let fit = |m: &crate::Member| {
            Some(m.name.as_str()) != leader
                && m.unreadable.is_none()
                && m.data.tags.allows_failover()
                && (!synchronous || sync.is_sync(&m.name))
        };
        match candidate {
            Some(c) => {
                let m = cluster
                    .member(c)
                    .ok_or_else(|| format!("candidate {c} does not exist"))?;
                if Some(c) == leader {
                    return Err("candidate is the current leader".into());
                }
                if synchronous && !sync.is_sync(c) {
                    return Err("candidate name does not match with sync_standby".into());
                }
                if !fit(m) {
                    return Err(format!("{c} is not allowed to promote"));
                }
                Ok(())
            }
            None if cluster.members.iter().any(fit) => Ok(()),
            None => Err("switchover is not possible: no good candidates have been found".into()),
        }
    }

    fn write_failover(&mut self, request: &FailoverRequest) {
        let version = self
            .store
            .get(keyspace::FAILOVER, self.now)
            .map(|kv| kv.mod_revision);
        self.store.set_failover(request, version, self.now);
    }

    fn set_pause(&mut self, pause: bool) {
        self.edit_config(|c| c.pause = pause);
    }

    /// `PATCH /config` as an operator would: compare-and-swap on the version read.
    pub(crate) fn edit_config(&mut self, edit: impl FnOnce(&mut DynamicConfig)) {
        let now = self.now;
        let Some(kv) = self.store.get(keyspace::CONFIG, now) else {
            self.log("world", "config edit skipped: no /config yet".into());
            return;
        };
        let Ok(mut config) = serde_json::from_slice::<DynamicConfig>(&kv.value) else {
            return;
        };
        edit(&mut config);
        if self.store.write_config(&config, Some(kv.mod_revision), now) {
            self.dynamic = config;
        }
    }

    /// Refreshes the world's copy of `/config` after an agent wrote it.
    pub(crate) fn reload_dynamic(&mut self) {
        if let Some(kv) = self.store.get(keyspace::CONFIG, self.now) {
            if let Ok(c) = serde_json::from_slice::<DynamicConfig>(&kv.value) {
                self.dynamic = c;
            }
        }
    }

    pub(crate) fn heal(&mut self) {
        self.healed_at = Some(self.now);
        self.log("world", "faults stopped; all links healed".into());
        if self.dynamic.pause {
            self.set_pause(false);
        }
    }
}
