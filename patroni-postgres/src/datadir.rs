//! The data directory and the files around it: what it holds, whether its postmaster lives,
//! the server's OS user and writing files it owns, and reading the server log.
//!
//! Shared plumbing: openGauss keeps PostgreSQL's layout (`PG_VERSION`, `postmaster.pid`), so
//! its adapter and the daemon use these checks too.

use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use patroni_core::{DataDirState, DbError};

/// What `postmaster.pid` says: the postmaster's pid and its readiness line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PidFile {
    /// The postmaster's process id (line 1).
    pub pid: u32,
    /// `starting`, `stopping`, `ready` or `standby` (line 8), empty when not written yet.
    pub status: String,
}

/// Reads `postmaster.pid`; `None` when it is missing or unreadable.
pub fn read_pid_file(data_dir: &Path) -> Option<PidFile> {
    let text = fs::read_to_string(data_dir.join("postmaster.pid")).ok()?;
    let mut lines = text.lines();
    let pid = lines.next()?.trim().parse().ok()?;
    let status = text.lines().nth(7).unwrap_or("").trim().to_string();
    Some(PidFile { pid, status })
}

/// `kill -0` without a signal: the process exists and is not a zombie (read from `/proc`).
pub fn process_alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state letter follows the parenthesised command name, which may itself hold spaces.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next())
            .is_some_and(|state| state != 'Z' && state != 'X'),
        Err(_) => false,
    }
}

/// One process, named by its pid *and* its start time, so a recycled pid is never mistaken for
/// it: what the adapter remembers of a postmaster whose `postmaster.pid` it may not read again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessId {
    /// The process id.
    pub pid: u32,
    /// Clock ticks after boot when it started (`/proc/<pid>/stat` field 22).
    pub start_time: u64,
}

impl ProcessId {
    /// The live process with this pid, as it is now.
    pub fn of(pid: u32) -> Option<ProcessId> {
        let (_, rest) = stat_fields(pid)?;
        // Fields after the command name start at field 3; the start time is field 22.
        let start_time = rest.split_whitespace().nth(19)?.parse().ok()?;
        Some(ProcessId { pid, start_time })
    }

    /// Whether this very process still runs (not a zombie, not a newer process with its pid).
    pub fn is_alive(&self) -> bool {
        process_alive(self.pid) && ProcessId::of(self.pid) == Some(*self)
    }

    /// The live children of this process (a postmaster's backends).
    pub fn children(&self) -> Vec<u32> {
        children_of(self.pid)
    }
}

/// The processes whose parent is `pid`, read from `/proc`.
pub fn children_of(pid: u32) -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| {
            stat_fields(*p)
                .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok())
                == Some(pid)
        })
        .collect()
}

/// `/proc/<pid>/stat` split at the command name: (name, the fields after it).
fn stat_fields(pid: u32) -> Option<(String, String)> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    Some((
        stat.get(open + 1..close)?.to_string(),
        stat.get(close + 1..)?.to_string(),
    ))
}

/// The command name of a process (`comm` in `/proc/<pid>/stat`).
fn process_name(pid: u32) -> Option<String> {
    stat_fields(pid).map(|(name, _)| name)
}

/// The command names a server's postmaster runs under: PostgreSQL's, and openGauss's `gaussdb`.
pub const SERVER_PROCESS_NAMES: [&str; 3] = ["postgres", "postmaster", "gaussdb"];

/// Whether `pid` is a live (not zombie) database server process, checked by its name too: after
/// a reboot the pid recorded in `postmaster.pid` may belong to something else, which must not
/// pass for a running server.
pub fn is_postmaster(pid: u32) -> bool {
    process_alive(pid)
        && process_name(pid).is_some_and(|n| SERVER_PROCESS_NAMES.contains(&n.as_str()))
}

/// The postmaster's pid when `postmaster.pid` names a live server process (see [`is_postmaster`]).
pub fn live_postmaster(data_dir: &Path) -> Option<PidFile> {
    read_pid_file(data_dir).filter(|p| is_postmaster(p.pid))
}

/// Classifies the data directory without opening anything but the directory and `PG_VERSION`.
pub fn data_dir_state(data_dir: &Path) -> DataDirState {
    match fs::read_dir(data_dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => DataDirState::Empty,
        Err(e) => DataDirState::Unreadable(format!("{}: {e}", data_dir.display())),
        Ok(mut entries) => {
            if entries.next().is_none() {
                DataDirState::Empty
            } else if data_dir.join("PG_VERSION").is_file() {
                DataDirState::Initialized
            } else {
                DataDirState::Unreadable(format!(
                    "{} is not empty but holds no PG_VERSION: not a PostgreSQL or openGauss data directory",
                    data_dir.display()
                ))
            }
        }
    }
}

/// Whether the directory is missing or empty.
pub fn is_empty_dir(path: &Path) -> bool {
    matches!(data_dir_state(path), DataDirState::Empty)
}

/// The uid of the agent's own process, from `/proc/self/status` (no unsafe `geteuid`).
pub fn current_euid() -> u32 {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(str::to_string))
        })
        .and_then(|u| u.parse().ok())
        .unwrap_or(u32::MAX)
}

/// The `(uid, gid)` of an OS user by name, through `id` so every account source the system
/// knows (`/etc/passwd`, LDAP, ...) counts: the agent started as root runs the server as it.
pub fn lookup_user(name: &str) -> Result<(u32, u32), String> {
    let id = |flag: &str| -> Result<u32, String> {
        let out = std::process::Command::new("id")
            .args([flag, "--", name])
            .output()
            .map_err(|e| format!("cannot run id: {e}"))?;
        if !out.status.success() {
            return Err(format!("no such OS user {name:?}"));
        }
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .map_err(|e| format!("id {flag} {name}: {e}"))
    };
    Ok((id("-u")?, id("-g")?))
}

/// Fails with [`DbError::NotOwner`] when an existing data directory belongs to another user than the server's.
pub fn check_owner(data_dir: &Path, run_as: Option<(u32, u32)>) -> Result<(), DbError> {
    let Ok(meta) = fs::metadata(data_dir) else {
        return Ok(());
    };
    let expected = run_as.map(|(u, _)| u).unwrap_or_else(current_euid);
    if meta.uid() != expected {
        return Err(DbError::NotOwner {
            path: data_dir.display().to_string(),
            owner: meta.uid(),
            running: expected,
        });
    }
    Ok(())
}

fn io_err(what: &str, path: &Path, e: std::io::Error) -> DbError {
    DbError::Io(format!("{what} {}: {e}", path.display()))
}

/// Hands a path to the server's OS user.
pub fn chown(path: &Path, run_as: Option<(u32, u32)>) -> Result<(), DbError> {
    if let Some((uid, gid)) = run_as {
        std::os::unix::fs::chown(path, Some(uid), Some(gid))
            .map_err(|e| io_err("cannot chown", path, e))?;
    }
    Ok(())
}

/// Creates a directory (mode 0700) owned by the server's OS user, if missing.
pub fn ensure_dir(path: &Path, run_as: Option<(u32, u32)>) -> Result<(), DbError> {
    if !path.exists() {
        fs::create_dir_all(path).map_err(|e| io_err("cannot create", path, e))?;
        fs::set_permissions(path, fs::Permissions::from_mode(0o700))
            .map_err(|e| io_err("cannot chmod", path, e))?;
    }
    chown(path, run_as)
}

/// Writes a whole file atomically (temp file + rename) with `mode`, owned by the server's OS user.
pub fn write_file(
    path: &Path,
    contents: &str,
    mode: u32,
    run_as: Option<(u32, u32)>,
) -> Result<(), DbError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".patroni-tmp");
    let tmp = std::path::PathBuf::from(tmp);
    let write = || -> std::io::Result<()> {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(contents.as_bytes())?;
        f.sync_all()?;
        fs::set_permissions(&tmp, fs::Permissions::from_mode(mode))
    };
    write().map_err(|e| io_err("cannot write", &tmp, e))?;
    chown(&tmp, run_as)?;
    fs::rename(&tmp, path).map_err(|e| io_err("cannot rename into", path, e))
}

/// Removes a file, tolerating its absence.
pub fn remove_file(path: &Path) -> Result<(), DbError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_err("cannot remove", path, e)),
        _ => Ok(()),
    }
}

/// Removes a directory tree on tokio's blocking pool: a data directory may hold many gigabytes,
/// and the agent's single-threaded runtime must go on renewing the lease and serving REST meanwhile.
pub async fn remove_tree(path: &Path) -> std::io::Result<()> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || fs::remove_dir_all(path))
        .await
        .map_err(std::io::Error::other)?
}

/// Removes everything inside a directory but keeps the directory (its owner and mode), on the
/// blocking pool as [`remove_tree`]; it removes what it can and returns the first error.
pub async fn empty_dir(path: &Path) -> std::io::Result<()> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let mut first = Ok(());
        for entry in fs::read_dir(&path)? {
            let removed = entry.and_then(|e| {
                let p = e.path();
                if p.is_dir() && !p.is_symlink() {
                    fs::remove_dir_all(&p)
                } else {
                    fs::remove_file(&p)
                }
            });
            if first.is_ok() {
                first = removed;
            }
        }
        first
    })
    .await
    .map_err(std::io::Error::other)?
}

/// The current length of a file, zero when it does not exist.
pub fn file_len(path: &Path) -> u64 {
    fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// What the log holds after byte `from`, at most the last `max` bytes of it (the start may cut a line).
pub fn read_log_since(path: &Path, from: u64, max: u64) -> String {
    let Ok(mut f) = fs::File::open(path) else {
        return String::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    // A log shorter than the mark was replaced: read it from the start.
    let from = if from > len { 0 } else { from };
    let start = from.max(len.saturating_sub(max));
    if f.seek(SeekFrom::Start(start)).is_err() {
        return String::new();
    }
    let mut buf = Vec::new();
    let _ = f.take(max).read_to_end(&mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}

/// The last `n` lines written to the log after byte `from`.
pub fn log_tail(path: &Path, from: u64, n: usize) -> String {
    let text = read_log_since(path, from, 64 * 1024);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_is_named_by_pid_and_start_time() {
        let me = ProcessId::of(std::process::id()).expect("our own stat");
        assert!(me.is_alive());
        let recycled = ProcessId {
            start_time: me.start_time + 1,
            ..me
        };
        assert!(!recycled.is_alive(), "same pid, other start time");
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        assert!(me.children().contains(&child.id()));
        child.kill().unwrap();
        child.wait().unwrap();
    }

    #[test]
    fn our_own_process_is_alive_and_a_reaped_one_is_not() {
        assert!(process_alive(std::process::id()));
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        assert!(!process_alive(pid));
    }

    #[test]
    fn os_users_are_looked_up_by_name() {
        assert_eq!(lookup_user("root"), Ok((0, 0)));
        assert!(lookup_user("no-such-user-here").is_err());
        assert!(lookup_user("-u").is_err(), "a name is never an option");
    }

    #[test]
    fn only_a_server_process_is_a_postmaster() {
        assert!(
            !is_postmaster(std::process::id()),
            "the test binary is no server"
        );
        let dir = tempfile::tempdir().unwrap();
        // openGauss's server too: the daemon and the fence watch its postmaster by this check.
        for name in ["postgres", "postmaster", "gaussdb"] {
            let exe = dir.path().join(name);
            fs::copy("/bin/sleep", &exe).unwrap();
            // A copy just written may be "busy" while a concurrent test forks: try again.
            let mut child = (0..50)
                .find_map(
                    |_| match std::process::Command::new(&exe).arg("5").spawn() {
                        Err(e) if e.raw_os_error() == Some(26) => {
                            std::thread::sleep(std::time::Duration::from_millis(20));
                            None
                        }
                        r => Some(r.unwrap()),
                    },
                )
                .expect("spawn the copy");
            let pid = child.id();
            assert!(is_postmaster(pid), "{name}");
            child.kill().unwrap();
            child.wait().unwrap();
            assert!(!is_postmaster(pid), "{name} after it exited");
        }
    }

    #[test]
    fn classifies_directories_and_reads_pid_files() {
        let base = std::env::temp_dir().join(format!("pgdd-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&base);
        assert_eq!(data_dir_state(&base), DataDirState::Empty);
        fs::create_dir_all(&base).unwrap();
        assert_eq!(data_dir_state(&base), DataDirState::Empty);
        fs::write(base.join("junk"), "x").unwrap();
        assert!(matches!(data_dir_state(&base), DataDirState::Unreadable(_)));
        fs::write(base.join("PG_VERSION"), "15\n").unwrap();
        assert_eq!(data_dir_state(&base), DataDirState::Initialized);
        let pid = std::process::id();
        fs::write(
            base.join("postmaster.pid"),
            format!("{pid}\n/data\n1700000000\n5432\n/data\n127.0.0.1\n  1234  5678\nready   \n"),
        )
        .unwrap();
        assert_eq!(
            read_pid_file(&base),
            Some(PidFile {
                pid,
                status: "ready".into()
            })
        );
        // Alive, but not a postgres process: a recycled pid is no running server.
        assert_eq!(live_postmaster(&base), None);
        fs::write(base.join("postmaster.pid"), "garbage\n").unwrap();
        assert_eq!(read_pid_file(&base), None);
        fs::write(base.join("log"), "a\nb\nc\nd\n").unwrap();
        assert_eq!(log_tail(&base.join("log"), 0, 2), "c\nd");
        assert_eq!(log_tail(&base.join("log"), 4, 10), "c\nd");
        assert_eq!(read_log_since(&base.join("log"), 100, 100), "a\nb\nc\nd\n");
        fs::remove_dir_all(&base).unwrap();
    }

    /// Removing a large tree leaves the (current-thread) runtime free: a task spawned before the
    /// removal gets to run while it lasts, which a removal on the runtime's own thread would not
    /// allow until it had finished.
    #[tokio::test(flavor = "current_thread")]
    async fn trees_are_removed_off_the_runtime() {
        use std::sync::atomic::{AtomicU64, Ordering};
        let dir = tempfile::tempdir().unwrap();
        let tree = dir.path().join("data");
        let fill = || {
            for d in 0..20 {
                let sub = tree.join(format!("base/{d}"));
                fs::create_dir_all(&sub).unwrap();
                for f in 0..100 {
                    fs::write(sub.join(f.to_string()), "x").unwrap();
                }
            }
            fs::write(tree.join("PG_VERSION"), "15\n").unwrap();
        };
        fill();
        let ticks = std::sync::Arc::new(AtomicU64::new(0));
        let counter = ticks.clone();
        let ticker = tokio::spawn(async move {
            loop {
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::task::yield_now().await;
            }
        });
        empty_dir(&tree).await.unwrap();
        assert!(ticks.load(Ordering::SeqCst) > 0, "the runtime was blocked");
        assert!(tree.is_dir() && is_empty_dir(&tree));
        let before = ticks.load(Ordering::SeqCst);
        fill();
        remove_tree(&tree).await.unwrap();
        assert!(
            ticks.load(Ordering::SeqCst) > before,
            "the runtime was blocked"
        );
        assert!(!tree.exists());
        ticker.abort();
    }
}
