//! What a gs_ctl action (start, stop, restart, reload, failover, switchover, notify, build) and
//! gs_guc reported. These say what the tool *claims*; the adapter always re-observes, because
//! several of them exit 0 without doing anything.

use crate::text::messages;

/// The gs_ctl sub-commands the adapter runs, which decide how output is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    /// `gs_ctl start`.
    Start,
    /// `gs_ctl stop`.
    Stop,
    /// `gs_ctl restart`.
    Restart,
    /// `gs_ctl reload`.
    Reload,
    /// `gs_ctl failover`.
    Failover,
    /// `gs_ctl switchover`.
    Switchover,
    /// `gs_ctl notify`.
    Notify,
    /// `gs_ctl build`.
    Build,
}

/// How an action ended, as gs_ctl tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CtlOutcome {
    /// `server started (<dir>)`.
    Started,
    /// `another server might be running`: nothing was done although the exit code is 0.
    AlreadyRunning,
    /// `could not start server`: the postmaster exited during startup; its log says why.
    StartFailed,
    /// `server stopped`.
    Stopped,
    /// No `postmaster.pid`: nothing to stop or signal.
    NotRunning,
    /// `server signaled` (reload).
    Signaled,
    /// `failover completed` / `switchover completed`; `waited` is false when gs_ctl did not wait
    /// (already primary, or a switchover run on a primary: a no-op).
    Completed {
        /// Whether gs_ctl waited for a role change.
        waited: bool,
    },
    /// `notify server completed, mode change to <Mode>`.
    Notified {
        /// The new mode.
        mode: String,
    },
    /// `notify` refused: the server is not Pending (nor Normal asked to become primary).
    NotifyRejected,
    /// `... timeout after N seconds` (switchover still exits 0).
    Timeout,
    /// `failover failed` or another failure line.
    Failed,
    /// A build finished and the server was started as standby.
    BuildCompleted {
        /// Incremental (gs_rewind) attempts that failed before success.
        failed_incremental: u32,
        /// `inc build failed, change to full build.` appeared.
        fell_back_to_full: bool,
    },
    /// The build could not reach any primary in `replconninfoN`; the server is left stopped.
    BuildNoPrimary,
    /// `The local server run as <Role>,build cannot be executed.`
    BuildRefused {
        /// The role gs_ctl named.
        role: String,
    },
    /// `Another gs_ctl command is still running`: `pg_ctl.lock` is held.
    LockHeld,
    /// None of the known lines: the output is kept for the operator.
    Unrecognised,
}

/// gs_ctl's claim with the term it echoed and its messages (prefixes removed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CtlReport {
    /// The classified ending.
    pub outcome: CtlOutcome,
    /// `failover term (N)` / `switchover term (N)` / `notify primary term (N)`.
    pub term: Option<u64>,
    /// Every message, for logs and errors.
    pub messages: Vec<String>,
}

impl CtlReport {
    /// The messages worth showing an operator: without progress dots and the banner line.
    pub fn summary(&self) -> String {
        self.messages
            .iter()
            .filter(|m| !m.chars().all(|c| c == '.') && !m.contains(",datadir is"))
            .cloned()
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// Classifies the output of one gs_ctl action.
pub fn parse_ctl(verb: Verb, output: &str) -> CtlReport {
    let msgs = messages(output);
    let has = |needle: &str| msgs.iter().any(|m| m.contains(needle));
    let term = msgs.iter().find_map(|m| {
        let i = m.find("term (")?;
        m[i + 6..].split(')').next()?.trim().parse().ok()
    });
    let outcome = if has("Another gs_ctl command is still running") {
        CtlOutcome::LockHeld
    } else {
        match verb {
            Verb::Start | Verb::Restart => {
                if has("another server might be running") {
                    CtlOutcome::AlreadyRunning
                } else if has("could not start server") {
                    CtlOutcome::StartFailed
                } else if has("server started") {
                    CtlOutcome::Started
                } else {
                    CtlOutcome::Unrecognised
                }
            }
            Verb::Stop => {
                if msgs.iter().any(|m| m == "server stopped") {
                    CtlOutcome::Stopped
                } else if has("does not exist") || has("Is server running?") {
                    CtlOutcome::NotRunning
                } else {
                    CtlOutcome::Unrecognised
                }
            }
            Verb::Reload => {
                if has("server signaled") {
                    CtlOutcome::Signaled
                } else if has("does not exist") || has("Is server running?") {
                    CtlOutcome::NotRunning
                } else {
                    CtlOutcome::Unrecognised
                }
            }
            Verb::Failover | Verb::Switchover => {
                if has("timeout after") {
                    CtlOutcome::Timeout
                } else if has("failover failed") || has("switchover failed") {
                    CtlOutcome::Failed
                } else if has("failover completed") || has("switchover completed") {
                    CtlOutcome::Completed {
                        waited: has("waiting for server to"),
                    }
                } else if has("does not exist") || has("Is server running?") {
                    CtlOutcome::NotRunning
                } else {
                    CtlOutcome::Unrecognised
                }
            }
            Verb::Notify => {
                if let Some(mode) = msgs.iter().find_map(|m| m.split("mode change to ").nth(1)) {
                    CtlOutcome::Notified {
                        mode: mode.trim().to_string(),
                    }
                } else if has("only support notify server in pending mode") {
                    CtlOutcome::NotifyRejected
                } else if has("timeout") {
                    CtlOutcome::Timeout
                } else {
                    CtlOutcome::Unrecognised
                }
            }
            Verb::Build => classify_build(&msgs),
        }
    };
    CtlReport {
        outcome,
        term,
        messages: msgs,
    }
}

fn classify_build(msgs: &[String]) -> CtlOutcome {
    let has = |needle: &str| msgs.iter().any(|m| m.contains(needle));
    if let Some(role) = msgs.iter().find_map(|m| {
        m.strip_prefix("The local server run as")
            .and_then(|r| r.split(',').next())
    }) {
        return CtlOutcome::BuildRefused {
            role: role.trim().to_string(),
        };
    }
    if has("skip full build") || (has("could not connect to server") && !has("build completed")) {
        return CtlOutcome::BuildNoPrimary;
    }
    let completed = has("dn incremental build completed") || has("build completed(");
    if completed && has("server started") {
        return CtlOutcome::BuildCompleted {
            failed_incremental: msgs.iter().filter(|m| *m == "inc build failed.").count() as u32,
            fell_back_to_full: has("inc build failed, change to full build"),
        };
    }
    if has("build failed") || has("could not") {
        return CtlOutcome::Failed;
    }
    CtlOutcome::Unrecognised
}

/// What gs_guc reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GucReport {
    /// `Success to perform gs_guc!` was printed.
    pub success: bool,
    /// `Total instances: N.`
    pub total: Option<u32>,
    /// `Failed instances: N.`
    pub failed: Option<u32>,
    /// `server signaled` was printed (reload).
    pub signaled: bool,
    /// Every non-empty line.
    pub messages: Vec<String>,
}

/// Parses `gs_guc set|reload` output.
pub fn parse_guc(output: &str) -> GucReport {
    let msgs = messages(output);
    let number_after = |label: &str| {
        msgs.iter().find_map(|m| {
            let i = m.find(label)?;
            m[i + label.len()..]
                .trim_start()
                .split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()
        })
    };
    GucReport {
        success: msgs.iter().any(|m| m == "Success to perform gs_guc!"),
        total: number_after("Total instances:"),
        failed: number_after("Failed instances:"),
        signaled: msgs.iter().any(|m| m == "server signaled"),
        messages: msgs,
    }
}
