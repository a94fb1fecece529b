//! Running external programs with a deadline, and a recording double for tests.
//!
//! Every database command goes through a [`CommandRunner`], so a hung `pg_ctl` or `gs_ctl` is
//! killed at its timeout and reported, and tests can assert the exact command lines an adapter issues.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;

/// One command to run: program, arguments, environment, deadline and OS user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandSpec {
    /// The program (absolute path, or a name looked up in `PATH`).
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
    /// Working directory, if not inherited.
    pub cwd: Option<PathBuf>,
    /// Deadline; the whole process group is killed when it passes.
    pub timeout: Duration,
    /// Run as this (uid, gid) — PostgreSQL and openGauss refuse to run as root.
    pub run_as: Option<(u32, u32)>,
    /// For copies: judged by progress instead of `timeout`, see [`Progress`].
    pub progress: Option<Progress>,
    /// Kill the whole process group when the caller stops waiting (the future is dropped), not
    /// only the program: a user script replaced by the next one must not leave its children.
    pub kill_group_on_cancel: bool,
}

/// A copy's deadline: a base backup of a large database can take hours and must not be killed
/// for being slow, but one that copies nothing (a hung primary, a dead link) must not hang the
/// node for ever. The command is killed once `dir` has not grown for `stall`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// The directory the command fills.
    pub dir: PathBuf,
    /// How long it may copy nothing.
    pub stall: Duration,
}

impl CommandSpec {
    /// A command with no extra environment, inheriting the working directory and user.
    pub fn new(
        program: impl Into<PathBuf>,
        args: impl IntoIterator<Item = impl Into<String>>,
        timeout: Duration,
    ) -> Self {
        CommandSpec {
            program: program.into(),
            args: args.into_iter().map(Into::into).collect(),
            env: Vec::new(),
            cwd: None,
            timeout,
            run_as: None,
            progress: None,
            kill_group_on_cancel: false,
        }
    }

    /// Judges this command by the growth of `dir` instead of its timeout (see [`Progress`]).
    pub fn with_progress(mut self, dir: impl Into<PathBuf>, stall: Duration) -> Self {
        self.progress = Some(Progress {
            dir: dir.into(),
            stall,
        });
        self
    }

    /// The command line as a shell would show it, for logs, errors and recorded-call assertions.
    pub fn command_line(&self) -> String {
        let quote = |s: &str| {
            if !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c))
            {
                s.to_string()
            } else {
                format!("'{}'", s.replace('\'', r"'\''"))
            }
        };
        let line = std::iter::once(self.program.to_string_lossy().into_owned())
            .chain(self.args.iter().cloned())
            .map(|a| quote(&a))
            .collect::<Vec<_>>()
            .join(" ");
        crate::conninfo::redact(&line)
    }
}

/// What a finished command printed and how it exited.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CommandOutput {
    /// Exit code; `None` when killed by a signal.
    pub code: Option<i32>,
    /// Standard output, lossily decoded.
    pub stdout: String,
    /// Standard error, lossily decoded.
    pub stderr: String,
}

impl CommandOutput {
    /// Whether it exited with code 0.
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// Both streams, stdout first: openGauss tools print everything on stdout, PostgreSQL's on stderr.
    pub fn combined(&self) -> String {
        match (self.stdout.is_empty(), self.stderr.is_empty()) {
            (_, true) => self.stdout.clone(),
            (true, false) => self.stderr.clone(),
            (false, false) => format!("{}\n{}", self.stdout.trim_end(), self.stderr),
        }
    }

    /// The exit status in words, for error messages.
    pub fn status_text(&self) -> String {
        match self.code {
            Some(c) => format!("exit code {c}"),
            None => "killed by a signal".to_string(),
        }
    }
}

/// Why a command could not run to completion.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CommandError {
    /// The program does not exist.
    #[error("{program} not found")]
    NotFound {
        /// The program.
        program: String,
    },
    /// It ran past its deadline and was killed.
    #[error(
        "`{command}` did not finish within {} s and was killed",
        patroni_core::instant::seconds(*.limit)
    )]
    Timeout {
        /// The command line.
        command: String,
        /// The deadline.
        limit: Duration,
    },
    /// A copy judged by progress wrote nothing for too long and was killed.
    #[error("`{command}` copied nothing for {secs} s and was killed")]
    Stalled {
        /// The command line.
        command: String,
        /// How long it copied nothing, in seconds.
        secs: u64,
    },
    /// It could not be started for another reason.
    #[error("cannot run `{command}`: {reason}")]
    Spawn {
        /// The command line.
        command: String,
        /// The OS error.
        reason: String,
    },
}

impl From<CommandError> for patroni_core::DbError {
    fn from(e: CommandError) -> Self {
        match e {
            CommandError::NotFound { program } => patroni_core::DbError::BinaryMissing {
                binary: program.clone(),
                detail: format!("no such file: {program}"),
            },
            CommandError::Timeout { command, limit } => {
                patroni_core::DbError::Timeout { command, limit }
            }
            CommandError::Stalled { command, secs } => patroni_core::DbError::CommandFailed {
                command,
                status: "killed".into(),
                output: format!("it copied nothing for {secs} s"),
            },
            CommandError::Spawn { command, reason } => patroni_core::DbError::CommandFailed {
                command,
                status: "not started".into(),
                output: reason,
            },
        }
    }
}

/// Runs commands; the seam between adapters and the operating system.
#[async_trait]
pub trait CommandRunner: Send + Sync {
    /// Runs `spec` to completion or its deadline.
    async fn run(&self, spec: &CommandSpec) -> Result<CommandOutput, CommandError>;

    /// Starts `spec` as a server that outlives this call, in its own process group, its output
    /// appended to `log`; returns its pid. The runner reaps it when it exits, so a killed server
    /// never lingers as a zombie that its data directory's lock file still names. Runners that
    /// cannot start servers refuse.
    async fn spawn_server(&self, spec: &CommandSpec, log: &Path) -> Result<u32, CommandError> {
        let _ = log;
        Err(CommandError::Spawn {
            command: spec.command_line(),
            reason: "this runner does not start servers".into(),
        })
    }
}

/// Runs commands as real processes, each in its own process group so a timeout kills its children too.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemRunner;

#[async_trait]
impl CommandRunner for SystemRunner {
    async fn spawn_server(&self, spec: &CommandSpec, log: &Path) -> Result<u32, CommandError> {
        self.spawn_server_impl(spec, log).await
    }

    async fn run(&self, spec: &CommandSpec) -> Result<CommandOutput, CommandError> {
        let command = spec.command_line();
        let child = prepared(spec)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| spawn_failed(spec, e))?;
        let pid = child.id();
        let mut cancel_guard = GroupKiller(pid.filter(|_| spec.kill_group_on_cancel));
        let wait = child.wait_with_output();
        let finished =
            match &spec.progress {
                None => tokio::time::timeout(spec.timeout, wait).await.map_err(|_| {
                    CommandError::Timeout {
                        command: command.clone(),
                        limit: spec.timeout,
                    }
                }),
                Some(p) => watch_progress(wait, p)
                    .await
                    .map_err(|secs| CommandError::Stalled {
                        command: command.clone(),
                        secs,
                    }),
            };
        // Finished or timed out: from here on the group is dealt with below, not on drop.
        cancel_guard.0 = None;
        match finished {
            Ok(Ok(out)) => Ok(CommandOutput {
                code: out.status.code(),
                stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            }),
            Ok(Err(e)) => Err(CommandError::Spawn {
                command,
                reason: e.to_string(),
            }),
            Err(e) => {
                if let Some(pid) = pid {
                    // The child was started as leader of its own group: kill the whole group.
                    kill_group(pid);
                }
                Err(e)
            }
        }
    }
}

/// Waits for `wait` while `p.dir` keeps growing; `Err(seconds)` once it stood still for `p.stall`.
async fn watch_progress<F: std::future::Future>(wait: F, p: &Progress) -> Result<F::Output, u64> {
    let tick = (p.stall / 8).clamp(Duration::from_millis(50), Duration::from_secs(5));
    let size = |dir: PathBuf| async move {
        tokio::task::spawn_blocking(move || dir_size(&dir))
            .await
            .unwrap_or(0)
    };
    let mut last = size(p.dir.clone()).await;
    let mut since = tokio::time::Instant::now();
    tokio::pin!(wait);
    loop {
        tokio::select! {
            out = &mut wait => return Ok(out),
            _ = tokio::time::sleep(tick) => {
                let now = size(p.dir.clone()).await;
                if now != last {
                    last = now;
                    since = tokio::time::Instant::now();
                } else if since.elapsed() >= p.stall {
                    return Err(p.stall.as_secs());
                }
            }
        }
    }
}

/// Bytes in the files under `dir`, recursively (unreadable entries count as nothing).
pub(crate) fn dir_size(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_size(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map(|m| m.len()).unwrap_or(0),
            _ => 0,
        })
        .sum()
}

/// `spec` as a process to start: arguments, environment, working directory and OS user, no
/// input, and its own process group (so a deadline can kill its children too).
fn prepared(spec: &CommandSpec) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(&spec.program);
    cmd.args(&spec.args)
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .process_group(0);
    if let Some(dir) = &spec.cwd {
        cmd.current_dir(dir);
    }
    if let Some((uid, gid)) = spec.run_as {
        cmd.uid(uid).gid(gid);
    }
    cmd
}

/// Why `spec` could not be started, typed: a missing program is not a failed command.
fn spawn_failed(spec: &CommandSpec, e: std::io::Error) -> CommandError {
    match e.kind() {
        std::io::ErrorKind::NotFound => CommandError::NotFound {
            program: spec.program.to_string_lossy().into(),
        },
        _ => CommandError::Spawn {
            command: spec.command_line(),
            reason: e.to_string(),
        },
    }
}

impl SystemRunner {
    async fn spawn_server_impl(&self, spec: &CommandSpec, log: &Path) -> Result<u32, CommandError> {
        let command = spec.command_line();
        let spawn_error = |e: std::io::Error| CommandError::Spawn {
            command: command.clone(),
            reason: e.to_string(),
        };
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(spawn_error)?;
        let child = prepared(spec)
            .stdout(out.try_clone().map_err(spawn_error)?)
            .stderr(out)
            .kill_on_drop(false)
            .spawn()
            .map_err(|e| spawn_failed(spec, e))?;
        let pid = child.id().ok_or_else(|| CommandError::Spawn {
            command: command.clone(),
            reason: "exited at once".into(),
        })?;
        // Dropped without waiting: tokio reaps it in the background when it exits.
        drop(child);
        Ok(pid)
    }
}

/// Kills the process group it names when dropped: a cancelled [`CommandRunner::run`] of a spec
/// with [`CommandSpec::kill_group_on_cancel`] takes the program's children with it.
struct GroupKiller(Option<u32>);

impl Drop for GroupKiller {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            kill_group(pid);
        }
    }
}

fn kill_group(pid: u32) {
    // A negative pid addresses the process group the child leads. The `--` is vital: procps-ng
    // 4.0.2 reads `kill -KILL -1234` as signal options and ends up calling kill(-1), which as root
    // kills every process on the machine.
    let _ = std::process::Command::new("kill")
        .args(kill_group_args(pid))
        .status();
}

/// The `kill` arguments that signal exactly the process group `pid` leads.
fn kill_group_args(pid: u32) -> [String; 4] {
    ["-s".into(), "KILL".into(), "--".into(), format!("-{pid}")]
}

/// A scripted runner for tests: records every command line and answers from a queue.
#[derive(Debug, Default)]
pub struct RecordingRunner {
    calls: Mutex<Vec<CommandSpec>>,
    replies: Mutex<VecDeque<Result<CommandOutput, CommandError>>>,
}

impl RecordingRunner {
    /// A runner with no scripted replies; unscripted calls answer exit 0 with no output.
    pub fn new() -> Self {
        Self::default()
    }

    /// Queues the reply to the next unanswered call.
    pub fn reply(&self, reply: Result<CommandOutput, CommandError>) -> &Self {
        self.replies.lock().expect("runner lock").push_back(reply);
        self
    }

    /// Queues a reply with this exit code and stdout (a fixture transcript).
    pub fn reply_stdout(&self, code: i32, stdout: impl Into<String>) -> &Self {
        self.reply(Ok(CommandOutput {
            code: Some(code),
            stdout: stdout.into(),
            stderr: String::new(),
        }))
    }

    /// Every command issued so far, in order.
    pub fn calls(&self) -> Vec<CommandSpec> {
        self.calls.lock().expect("runner lock").clone()
    }

    /// Every command line issued so far, in order.
    pub fn command_lines(&self) -> Vec<String> {
        self.calls().iter().map(CommandSpec::command_line).collect()
    }
}

#[async_trait]
impl CommandRunner for RecordingRunner {
    /// Recorded like any call; answered from the queue (exit code 0 gives pid 0).
    async fn spawn_server(&self, spec: &CommandSpec, _log: &Path) -> Result<u32, CommandError> {
        self.run(spec).await.map(|_| 0)
    }

    async fn run(&self, spec: &CommandSpec) -> Result<CommandOutput, CommandError> {
        self.calls.lock().expect("runner lock").push(spec.clone());
        self.replies
            .lock()
            .expect("runner lock")
            .pop_front()
            .unwrap_or_else(|| {
                Ok(CommandOutput {
                    code: Some(0),
                    ..Default::default()
                })
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn captures_output_and_exit_code() {
        let out = SystemRunner
            .run(&CommandSpec::new(
                "sh",
                ["-c", "echo out; echo err >&2; exit 3"],
                Duration::from_secs(5),
            ))
            .await
            .unwrap();
        assert_eq!(
            (out.code, out.stdout.as_str(), out.stderr.as_str()),
            (Some(3), "out\n", "err\n")
        );
        assert_eq!(out.combined(), "out\nerr\n");
    }

    #[tokio::test]
    async fn a_hung_command_is_killed_at_its_deadline() {
        let started = std::time::Instant::now();
        // The grandchild keeps the pipe open: only a group kill ends it.
        let spec = CommandSpec::new(
            "sh",
            ["-c", "sleep 30 & sleep 30"],
            Duration::from_millis(300),
        );
        let err = SystemRunner.run(&spec).await.unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(10));
        // The sub-second deadline is reported as given, not rounded down to "0 s".
        let reported = "`sh -c 'sleep 30 & sleep 30'` did not finish within 0.3 s and was killed";
        assert_eq!(err.to_string(), reported);
        assert_eq!(
            patroni_core::DbError::from(err).to_string(),
            reported,
            "the caller reads the runner's words"
        );
    }

    /// A copy that keeps writing runs past its timeout (judged by progress, not wall time); one
    /// that stops writing is killed once it has copied nothing for the stall window.
    #[tokio::test]
    async fn a_copy_is_judged_by_progress_not_by_wall_time() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().display().to_string();
        let slow = CommandSpec::new(
            "sh",
            [
                "-c",
                &format!("for i in 1 2 3 4 5 6 7 8; do echo data >> {target}/f; sleep 0.2; done"),
            ],
            Duration::from_millis(300),
        )
        .with_progress(dir.path(), Duration::from_millis(800));
        let started = std::time::Instant::now();
        let out = SystemRunner.run(&slow).await.unwrap();
        assert!(out.success());
        assert!(
            started.elapsed() > Duration::from_millis(1_200),
            "ran past its timeout"
        );

        let stalled = CommandSpec::new(
            "sh",
            [
                "-c",
                &format!("echo data >> {target}/g; sleep 30 & sleep 30"),
            ],
            Duration::from_secs(60),
        )
        .with_progress(dir.path(), Duration::from_millis(500));
        let started = std::time::Instant::now();
        let err = SystemRunner.run(&stalled).await.unwrap_err();
        assert!(matches!(err, CommandError::Stalled { .. }), "{err}");
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[tokio::test]
    async fn group_kill_targets_only_the_group() {
        // Signal 0 probes without harm: a group that does not exist must be an error, not kill(-1).
        let args = kill_group_args(999_999);
        let mut probe: Vec<String> = args.to_vec();
        probe[1] = "0".into();
        let status = std::process::Command::new("kill")
            .args(&probe)
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(
            !status.success(),
            "kill {probe:?} must address only group 999999"
        );
    }

    #[tokio::test]
    async fn missing_program_is_typed() {
        let err = SystemRunner
            .run(&CommandSpec::new(
                "/nonexistent/pg_ctl",
                ["status"],
                Duration::from_secs(1),
            ))
            .await
            .unwrap_err();
        assert_eq!(
            err,
            CommandError::NotFound {
                program: "/nonexistent/pg_ctl".into()
            }
        );
        assert!(matches!(
            patroni_core::DbError::from(err),
            patroni_core::DbError::BinaryMissing { .. }
        ));
    }

    #[tokio::test]
    async fn recording_runner_records_and_replies_in_order() {
        let r = RecordingRunner::new();
        r.reply_stdout(1, "no server running");
        let spec = CommandSpec::new(
            "/og/bin/gs_ctl",
            ["start", "-D", "/data dir", "-M", "standby"],
            Duration::from_secs(60),
        );
        let out = r.run(&spec).await.unwrap();
        assert_eq!(out.code, Some(1));
        assert_eq!(
            r.command_lines(),
            vec!["/og/bin/gs_ctl start -D '/data dir' -M standby"]
        );
        assert!(r.run(&spec).await.unwrap().success());
    }
}
