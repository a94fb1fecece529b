//! Our `patronictl` run as a program, as a script would: stdin fed (not a terminal),
//! `RUST_BACKTRACE=1`, and a deadline after which it is killed by its PID.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use patroni_postgres::testkit::TEST_PASSWORD;

use super::TestCluster;

/// What one run of the program printed.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Asserts success and returns stdout.
    pub fn ok(&self, what: &str) -> &str {
        assert_eq!(
            self.code, 0,
            "{what}: exit {}\nstdout:\n{}\nstderr:\n{}",
            self.code, self.stdout, self.stderr
        );
        &self.stdout
    }

    /// Asserts Python's error style: exit 1 and exactly one `Error: ...` line, no backtrace.
    pub fn error(&self, what: &str) -> &str {
        assert_eq!(
            self.code, 1,
            "{what}: expected exit 1\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(
            lines.len(),
            1,
            "{what}: stderr is not one line:\n{}",
            self.stderr
        );
        assert!(
            lines[0].starts_with("Error: ") && !self.stderr.contains("backtrace"),
            "{what}: {}",
            self.stderr
        );
        lines[0]
    }
}

/// Runs `patronictl -c <node1's file> ARGS` with `stdin` fed.
pub fn ctl(c: &TestCluster, args: &[&str], stdin: &str) -> Run {
    let mut all = vec!["-c", c.node("node1").config.to_str().unwrap()];
    all.extend_from_slice(args);
    run(&all, stdin)
}

/// Runs `patronictl ARGS` with `stdin` fed; killed (and the test failed) after two minutes.
pub fn run(args: &[&str], stdin: &str) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_patronictl"))
        .args(args)
        .env("RUST_BACKTRACE", "1")
        .env("PGPASSWORD", TEST_PASSWORD)
        .env_remove("PATRONICTL_CONFIG_FILE")
        .env_remove("DCS_URL")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run patronictl");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(Duration::from_secs(120)) {
        Ok(out) => {
            let out = out.expect("wait for patronictl");
            Run {
                code: out.status.code().unwrap_or(-1),
                stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            }
        }
        Err(_) => {
            // Not reaped yet, so the PID is still this child's.
            patroni_bin::testkit::signal_if_cmdline(pid, "patronictl", "KILL");
            panic!("patronictl {args:?} did not finish in 120 s");
        }
    }
}
