//! Fencing without a hardware watchdog: a small process per node, outside the agent's runtime,
//! that stops the postmaster when the agent stops extending the deadline it was given.
//!
//! Patroni relies on `/dev/watchdog` to stop a primary whose agent stalls or dies, and most
//! containers and VMs have none. The fence is the same binary (`patroni fence ...`) started by the
//! agent in its own session, so it survives the agent's SIGKILL, SIGSTOP, a blocked runtime or hung
//! I/O. On every renewal of the leader lock the agent writes a state file: "armed, the lease lasts
//! N ms from now, minus `safety_margin`". The fence notes when it saw each new state on its own
//! clock; when the deadline passes without a newer one it SIGKILLs the postmaster (and its
//! backends), then runs `pg_ctl stop -m immediate` (`gs_ctl` on openGauss). A restarted agent
//! finds the running fence by its pid file and takes it over: the last deadline holds meanwhile.
//!
//! No shared clock is needed: the agent writes how much time is *left*; the fence subtracts its
//! poll interval, the most it can have seen the state late.

use std::fs;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use patroni_core::FenceOrder;
use patroni_postgres::datadir::{live_postmaster, ProcessId};
use serde::{Deserialize, Serialize};

/// Writes one line to stderr and ignores a failure: a closed or broken stderr must never stop
/// the fence (`eprintln!` would panic).
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

/// How often the fence looks at the state file and the clock.
pub const POLL: Duration = Duration::from_millis(50);

/// What the agent tells its fence: written whole, replaced atomically.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct FenceState {
    /// Grows with every write; a new value restarts the countdown.
    pub seq: u64,
    /// Whether the database may be a writable primary that must not outlive the deadline.
    pub armed: bool,
    /// How long from the write until the postmaster must be stopped, ms.
    pub remaining_ms: u64,
    /// The agent shut down cleanly and the fence may exit.
    pub exit: bool,
}

/// Where a node's fence keeps its files: beside the data directory, writable by the agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FencePaths {
    /// The state the agent writes.
    pub state: PathBuf,
    /// The running fence's pid, so a restarted agent finds it.
    pub pid: PathBuf,
}

impl FencePaths {
    /// `<parent>/.<data dir name>.patroni-fence` and `.pid` next to the data directory.
    pub fn beside(data_dir: &Path) -> FencePaths {
        let name = data_dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "data".into());
        let parent = data_dir.parent().unwrap_or(Path::new("/"));
        FencePaths {
            state: parent.join(format!(".{name}.patroni-fence")),
            pid: parent.join(format!(".{name}.patroni-fence.pid")),
        }
    }
}

/// Writes the state atomically (a temporary file renamed over the old one).
pub fn write_state(path: &Path, state: &FenceState) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(&serde_json::to_vec(state).map_err(std::io::Error::other)?)?;
    }
    fs::rename(&tmp, path)
}

/// Reads the state; `None` when missing or unreadable.
pub fn read_state(path: &Path) -> Option<FenceState> {
    serde_json::from_slice(&fs::read(path).ok()?).ok()
}

/// The live fence process recorded in `pid_file`, checked by its command line (pids wrap).
pub fn running_fence(pid_file: &Path) -> Option<u32> {
    let pid: u32 = fs::read_to_string(pid_file).ok()?.trim().parse().ok()?;
    let cmdline = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    let is_fence = args.iter().any(|a| *a == b"fence");
    (is_fence && patroni_postgres::datadir::process_alive(pid)).then_some(pid)
}

/// The environment variable naming the program to run as `PROGRAM fence ...`.
pub const PROGRAM_ENV: &str = "PATRONI_FENCE_PROGRAM";

/// The program that runs the fence: `PATRONI_FENCE_PROGRAM`, else this program when it is the
/// `patroni` daemon, else a `patroni` binary beside it. An embedding program is never started as
/// a fence by accident: it opts in with the variable (and [`run_if_invoked`] in its `main`).
pub fn program() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(PROGRAM_ENV).filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let me = std::env::current_exe().ok()?;
    if me.file_name().is_some_and(|n| n == "patroni") {
        return Some(me);
    }
    let beside = me.parent()?.join("patroni");
    beside.is_file().then_some(beside)
}

/// For programs that embed the agent: call first in `main`. When this process was started as
/// `PROGRAM fence --state ... --pid-file ... --data-dir ... --ctl ... [--run-as uid:gid]`, it
/// runs the fence and returns `Some(exit code)`; otherwise `None` and `main` goes on.
pub fn run_if_invoked() -> Option<i32> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) != Some("fence") {
        return None;
    }
    let value = |flag: &str| args.windows(2).find(|w| w[0] == flag).map(|w| w[1].clone());
    let run_as = value("--run-as").and_then(|s| {
        let (u, g) = s.split_once(':')?;
        Some((u.parse().ok()?, g.parse().ok()?))
    });
    let (Some(state), Some(pid), Some(data_dir), Some(ctl)) = (
        value("--state"),
        value("--pid-file"),
        value("--data-dir"),
        value("--ctl"),
    ) else {
        say!("fence: usage: fence --state F --pid-file F --data-dir D --ctl P [--run-as U:G]");
        return Some(2);
    };
    let settings = FenceSettings {
        paths: FencePaths {
            state: state.into(),
            pid: pid.into(),
        },
        data_dir: data_dir.into(),
        ctl: ctl.into(),
        run_as,
    };
    Some(match run(&settings) {
        Ok(()) => 0,
        Err(e) => {
            say!("fence: {e}");
            1
        }
    })
}

/// What the fence needs to stop this node's database.
#[derive(Debug, Clone)]
pub struct FenceSettings {
    /// The files it shares with the agent.
    pub paths: FencePaths,
    /// The data directory (its `postmaster.pid` names the postmaster).
    pub data_dir: PathBuf,
    /// `pg_ctl` or `gs_ctl`.
    pub ctl: PathBuf,
    /// Run `ctl` as this OS user (the agent may run as root).
    pub run_as: Option<(u32, u32)>,
}

/// Runs the fence until the agent writes `exit` (or another fence owns the pid file): the
/// `patroni fence` subcommand. Blocking and single-threaded on purpose: nothing it does may wait
/// on the agent's runtime.
pub fn run(settings: &FenceSettings) -> Result<(), String> {
    if let Some(other) = running_fence(&settings.paths.pid) {
        if other != std::process::id() {
            say!("fence: already running as pid {other}; exiting");
            return Ok(());
        }
    }
    fs::write(&settings.paths.pid, std::process::id().to_string())
        .map_err(|e| format!("cannot write {}: {e}", settings.paths.pid.display()))?;
    say!(
        "fence: watching {} for {}",
        settings.paths.state.display(),
        settings.data_dir.display()
    );
    let mut seen: Option<u64> = None;
    let mut deadline: Option<Instant> = None;
    let mut postmaster: Option<ProcessId> = None;
    let mut gone_since: Option<Instant> = None;
    loop {
        // The node's directory removed for good (a test or demo cleaned up, the node was
        // decommissioned): nothing is left to fence.
        if settings.paths.state.exists() || settings.data_dir.exists() {
            gone_since = None;
        } else if gone_since.get_or_insert_with(Instant::now).elapsed() > Duration::from_secs(2) {
            say!("fence: the node's files are gone; exiting");
            return Ok(());
        }
        if let Some(st) = read_state(&settings.paths.state) {
            if st.exit {
                say!("fence: the agent shut down; exiting");
                let _ = fs::remove_file(&settings.paths.pid);
                return Ok(());
            }
            if seen != Some(st.seq) {
                seen = Some(st.seq);
                deadline = st.armed.then(|| {
                    Instant::now() + Duration::from_millis(st.remaining_ms).saturating_sub(POLL)
                });
            }
        }
        if deadline.is_some() {
            // Remember the postmaster while its pid file can be read: it may not be later.
            if let Some(id) = live_postmaster(&settings.data_dir).and_then(|p| ProcessId::of(p.pid))
            {
                postmaster = Some(id);
            }
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            deadline = None;
            fire(settings, postmaster.take());
        }
        std::thread::sleep(POLL);
    }
}

/// The deadline passed: kill the postmaster and its backends, then an immediate stop.
fn fire(settings: &FenceSettings, postmaster: Option<ProcessId>) {
    say!("fence: the agent did not renew its deadline; stopping the database");
    if let Some(id) = postmaster.filter(ProcessId::is_alive) {
        let backends = id.children();
        kill(id.pid);
        for pid in backends {
            kill(pid);
        }
        say!("fence: killed postmaster {}", id.pid);
    }
    let mut stop = Command::new(&settings.ctl);
    stop.args(["stop", "-m", "immediate", "-w", "-t", "5", "-D"])
        .arg(&settings.data_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some((uid, gid)) = settings.run_as {
        stop.uid(uid).gid(gid);
    }
    match stop.spawn() {
        Ok(mut child) => {
            let until = Instant::now() + Duration::from_secs(10);
            while Instant::now() < until {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(POLL);
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        Err(e) => say!("fence: cannot run {}: {e}", settings.ctl.display()),
    }
}

fn kill(pid: u32) {
    let _ = Command::new("kill")
        .args(["-s", "KILL", "--", &pid.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// The agent's side: starts or adopts the fence and writes its orders.
#[derive(Debug)]
pub struct FenceClient {
    paths: FencePaths,
    seq: u64,
    last: Option<FenceOrder>,
}

impl FenceClient {
    /// Adopts the fence already running for this data directory, or starts one in its own
    /// session (`program fence ...`), so that it outlives the agent.
    pub fn start(settings: &FenceSettings, program: &Path) -> Result<FenceClient, String> {
        let seq = read_state(&settings.paths.state).map_or(0, |s| s.seq);
        let client = FenceClient {
            paths: settings.paths.clone(),
            seq,
            last: None,
        };
        if running_fence(&settings.paths.pid).is_some() {
            return Ok(client);
        }
        // A stale `exit` from a clean shutdown must not stop the new fence at once.
        if read_state(&settings.paths.state).is_some_and(|s| s.exit) {
            write_state(
                &settings.paths.state,
                &FenceState {
                    seq,
                    ..FenceState::default()
                },
            )
            .map_err(|e| format!("cannot write {}: {e}", settings.paths.state.display()))?;
        }
        let mut cmd = Command::new(program);
        cmd.arg("fence")
            .arg("--state")
            .arg(&settings.paths.state)
            .arg("--pid-file")
            .arg(&settings.paths.pid)
            .arg("--data-dir")
            .arg(&settings.data_dir)
            .arg("--ctl")
            .arg(&settings.ctl)
            .stdin(Stdio::null())
            .process_group(0);
        if let Some((uid, gid)) = settings.run_as {
            cmd.arg("--run-as").arg(format!("{uid}:{gid}"));
        }
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot start the fence {}: {e}", program.display()))?;
        let until = Instant::now() + Duration::from_secs(5);
        while running_fence(&settings.paths.pid) != Some(child.id()) {
            if Instant::now() > until {
                return Err("the fence did not come up within 5 s".into());
            }
            std::thread::sleep(POLL);
        }
        Ok(client)
    }

    /// Whether the fence process runs.
    pub fn is_running(&self) -> bool {
        running_fence(&self.paths.pid).is_some()
    }

    /// Passes this cycle's order on; `now` is the agent's clock (ms). Only a change is written,
    /// and every new deadline is a new write.
    pub fn update(&mut self, order: FenceOrder, now: u64) -> std::io::Result<()> {
        if order == FenceOrder::Keep || self.last == Some(order) {
            return Ok(());
        }
        self.seq += 1;
        let state = match order {
            FenceOrder::ArmUntil(at) => FenceState {
                seq: self.seq,
                armed: true,
                remaining_ms: at.saturating_sub(now),
                exit: false,
            },
            _ => FenceState {
                seq: self.seq,
                ..FenceState::default()
            },
        };
        write_state(&self.paths.state, &state)?;
        self.last = Some(order);
        Ok(())
    }

    /// A clean shutdown: the fence disarms and exits; waits up to a second for it to go.
    pub fn shut_down(&mut self) -> std::io::Result<()> {
        self.seq += 1;
        write_state(
            &self.paths.state,
            &FenceState {
                seq: self.seq,
                exit: true,
                ..FenceState::default()
            },
        )?;
        let until = Instant::now() + Duration::from_secs(1);
        while running_fence(&self.paths.pid).is_some() && Instant::now() < until {
            std::thread::sleep(POLL);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips_and_only_changes_are_written() {
        let dir = tempfile::tempdir().unwrap();
        let paths = FencePaths::beside(&dir.path().join("data"));
        assert_eq!(paths.state, dir.path().join(".data.patroni-fence"));
        let mut c = FenceClient {
            paths: paths.clone(),
            seq: 0,
            last: None,
        };
        c.update(FenceOrder::ArmUntil(5_000), 1_000).unwrap();
        let st = read_state(&paths.state).unwrap();
        assert_eq!((st.seq, st.armed, st.remaining_ms), (1, true, 4_000));
        c.update(FenceOrder::ArmUntil(5_000), 2_000).unwrap();
        c.update(FenceOrder::Keep, 3_000).unwrap();
        assert_eq!(read_state(&paths.state).unwrap().seq, 1);
        c.update(FenceOrder::Disarm, 3_000).unwrap();
        assert!(!read_state(&paths.state).unwrap().armed);
        c.shut_down().unwrap();
        assert!(read_state(&paths.state).unwrap().exit);
    }
}
