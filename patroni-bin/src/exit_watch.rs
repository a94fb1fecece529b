//! Notices the postmaster's exit the instant it happens, so a crashed primary is restarted without
//! waiting for a poll.
//!
//! On Linux 5.3 and later a pidfd on the postmaster becomes readable when it exits (whoever its
//! parent is, so an adopted server is covered too); where `pidfd_open` is unavailable the file
//! `postmaster.pid` is polled every 250 ms.

use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use patroni_postgres::datadir::{is_postmaster, read_pid_file, PidFile};
use tokio::io::unix::AsyncFd;

/// The poll period where no pidfd can be had.
const POLL: Duration = Duration::from_millis(250);

/// What the data directory's `pid_file` (its `postmaster.pid`) names.
fn pid_file_of(pid_file: &Path) -> Option<PidFile> {
    read_pid_file(pid_file.parent()?)
}

/// Whether the postmaster named in `postmaster.pid` is alive (zombies count as dead).
pub fn postmaster_alive(pid_file: &Path) -> bool {
    pid_file_of(pid_file).is_some_and(|p| is_postmaster(p.pid))
}

/// A pidfd for `pid` registered with the runtime, or the error that says this kernel (or
/// sandbox) has none.
fn pidfd(pid: u32) -> std::io::Result<AsyncFd<OwnedFd>> {
    let pid = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
        .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    let fd = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty())?;
    // SAFETY: the registration owns the descriptor (an `OwnedFd` moved in) for as long as it is
    // registered, which is all `register` asks of its caller.
    #[allow(unsafe_code)]
    let registered = unsafe { AsyncFd::register(fd) };
    registered.map_err(|e| e.into_parts().1)
}

/// A pidfd on the postmaster, with the PID it was opened for.
type Held = (u32, Arc<AsyncFd<OwnedFd>>);

/// Waits for the postmaster's exit, keeping its pidfd from one wait to the next: while
/// `postmaster.pid` names the same process, a wait reads that file once and opens nothing.
///
/// A held pidfd that has not fired names a live process, the one it was opened for, so the
/// PID cannot have been reused meanwhile.
#[derive(Debug, Default)]
pub struct ExitWatch {
    held: Mutex<Option<Held>>,
}

impl ExitWatch {
    fn held(&self) -> std::sync::MutexGuard<'_, Option<Held>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Returns once the postmaster named in `pid_file` has exited; if none runs, after one poll
    /// period, so a caller that loops on it never spins.
    pub async fn exited(&self, pid_file: &Path) {
        let Some(PidFile { pid, .. }) = pid_file_of(pid_file) else {
            *self.held() = None;
            tokio::time::sleep(POLL).await;
            return;
        };
        let held = self
            .held()
            .as_ref()
            .filter(|(p, _)| *p == pid)
            .map(|(_, fd)| Arc::clone(fd));
        let fd = match held {
            Some(fd) => fd,
            None => match self.open(pid_file, pid).await {
                Some(fd) => fd,
                None => return,
            },
        };
        let _ = fd.readable().await;
        // It has exited: the next wait opens one for whichever postmaster runs then.
        let mut held = self.held();
        if held.as_ref().is_some_and(|(_, h)| Arc::ptr_eq(h, &fd)) {
            *held = None;
        }
    }

    /// Opens and keeps a pidfd for `pid`; `None` once it has waited (a poll period, or polled
    /// until the exit where this kernel has no pidfd) instead.
    async fn open(&self, pid_file: &Path, pid: u32) -> Option<Arc<AsyncFd<OwnedFd>>> {
        *self.held() = None;
        if !postmaster_alive(pid_file) {
            tokio::time::sleep(POLL).await;
            return None;
        }
        match pidfd(pid) {
            // Checked again once the pidfd is held, so it names the live postmaster and not a
            // process that took over its PID in between.
            Ok(fd) if pid_file_of(pid_file).is_some_and(|p| p.pid == pid && is_postmaster(pid)) => {
                let fd = Arc::new(fd);
                *self.held() = Some((pid, Arc::clone(&fd)));
                Some(fd)
            }
            Ok(_) => {
                tokio::time::sleep(POLL).await;
                None
            }
            Err(e) => {
                tracing::debug!(error = %e, "no pidfd for the postmaster; polling postmaster.pid");
                while postmaster_alive(pid_file) {
                    tokio::time::sleep(POLL).await;
                }
                None
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
        let mut child = fake_postmaster(dir.path());
        let pid = child.id();
        let file = pid_file_for(dir.path(), pid);
        let waiting = tokio::spawn({
            let file = file.clone();
            async move { ExitWatch::default().exited(&file).await }
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
        let watch = ExitWatch::default();
        watch.exited(&dir.path().join("postmaster.pid")).await;
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        watch.exited(&pid_file_for(dir.path(), pid)).await;
    }

    /// A process named `postgres` (a copy of `sleep`), as a stand-in postmaster.
    fn fake_postmaster(dir: &Path) -> std::process::Child {
        let bin = dir.join("postgres");
        std::fs::copy("/bin/sleep", &bin).unwrap();
        std::process::Command::new(&bin).arg("30").spawn().unwrap()
    }

    #[tokio::test]
    async fn waits_on_one_postmaster_share_its_pidfd_until_it_exits() {
        let dir = tempfile::tempdir().unwrap();
        let mut child = fake_postmaster(dir.path());
        let file = pid_file_for(dir.path(), child.id());
        let watch = ExitWatch::default();
        let wait = Duration::from_millis(100);
        let held = |w: &ExitWatch| w.held().as_ref().map(|(p, fd)| (*p, Arc::clone(fd)));
        assert!(tokio::time::timeout(wait, watch.exited(&file))
            .await
            .is_err());
        let (pid, first) = held(&watch).expect("the first wait keeps its pidfd");
        assert_eq!(pid, child.id());
        assert!(tokio::time::timeout(wait, watch.exited(&file))
            .await
            .is_err());
        let (_, second) = held(&watch).unwrap();
        assert!(
            Arc::ptr_eq(&first, &second),
            "the second wait opened another pidfd"
        );
        drop((first, second));
        // The child is ours: its PID cannot have been reused while it is unreaped.
        child.kill().unwrap();
        tokio::time::timeout(Duration::from_secs(5), watch.exited(&file))
            .await
            .expect("the exit was not noticed");
        assert!(held(&watch).is_none(), "a fired pidfd is let go");
        let _ = child.wait();
    }
}
