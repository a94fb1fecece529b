//! Notices the postmaster's exit the instant it happens, so a crashed primary is restarted without
//! waiting for a poll.
//!
//! On Linux 5.3 and later a pidfd on the postmaster becomes readable when it exits (whoever its
//! parent is, so an adopted server is covered too); where `pidfd_open` is unavailable the file
//! `postmaster.pid` is polled every 250 ms.

use std::os::fd::OwnedFd;
use std::path::Path;
use std::time::Duration;

use tokio::io::unix::AsyncFd;

/// The poll period where no pidfd can be had.
const POLL: Duration = Duration::from_millis(250);

/// The postmaster's PID from the first line of `postmaster.pid`.
fn postmaster_pid(pid_file: &Path) -> Option<i32> {
    let text = std::fs::read_to_string(pid_file).ok()?;
    text.lines().next()?.trim().parse().ok()
}

/// Whether the postmaster named in `postmaster.pid` is alive (zombies count as dead).
pub fn postmaster_alive(pid_file: &Path) -> bool {
    let Some(pid) = postmaster_pid(pid_file) else {
        return false;
    };
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next());
            !matches!(state, Some("Z") | Some("X"))
        }
        Err(_) => false,
    }
}

/// A pidfd for `pid` registered with the runtime, or the error that says this kernel (or
/// sandbox) has none.
fn pidfd(pid: i32) -> std::io::Result<AsyncFd<OwnedFd>> {
    let pid = rustix::process::Pid::from_raw(pid)
        .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    let fd = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty())?;
    // SAFETY: the registration owns the descriptor (an `OwnedFd` moved in) for as long as it is
    // registered, which is all `register` asks of its caller.
    #[allow(unsafe_code)]
    let registered = unsafe { AsyncFd::register(fd) };
    registered.map_err(|e| e.into_parts().1)
}

/// Returns once the postmaster named in `pid_file` has exited; if none runs, after one poll
/// period, so a caller that loops on it never spins.
pub async fn exited(pid_file: &Path) {
    let Some(pid) = postmaster_pid(pid_file).filter(|_| postmaster_alive(pid_file)) else {
        tokio::time::sleep(POLL).await;
        return;
    };
    match pidfd(pid) {
        // Checked again once the pidfd is held, so it names the live postmaster and not a
        // process that took over its PID in between.
        Ok(fd) if postmaster_pid(pid_file) == Some(pid) && postmaster_alive(pid_file) => {
            let _ = fd.readable().await;
        }
        Ok(_) => tokio::time::sleep(POLL).await,
        Err(e) => {
            tracing::debug!(error = %e, "no pidfd for the postmaster; polling postmaster.pid");
            while postmaster_alive(pid_file) {
                tokio::time::sleep(POLL).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pid_file_for(dir: &Path, pid: u32) -> std::path::PathBuf {
        let p = dir.join("postmaster.pid");
        std::fs::write(&p, format!("{pid}\n/data\n")).unwrap();
        p
    }

    #[tokio::test]
    async fn the_exit_of_a_watched_process_wakes_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id();
        let file = pid_file_for(dir.path(), pid);
        let waiting = tokio::spawn({
            let file = file.clone();
            async move { exited(&file).await }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!waiting.is_finished(), "returned while the process ran");
        // The child is ours: its PID cannot have been reused while it is unreaped.
        let started = std::time::Instant::now();
        child.kill().unwrap();
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("the exit was not noticed")
            .unwrap();
        let _ = child.wait();
        eprintln!("noticed the exit after {:?}", started.elapsed());
    }

    #[tokio::test]
    async fn no_server_means_already_exited() {
        let dir = tempfile::tempdir().unwrap();
        exited(&dir.path().join("postmaster.pid")).await;
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        exited(&pid_file_for(dir.path(), pid)).await;
    }
}
