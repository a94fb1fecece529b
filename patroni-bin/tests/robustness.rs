//! The agent process against a hostile environment: its stderr closed under it.

use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use patroni_postgres::testkit::{free_port, owned_temp_dir, pg_bin_dir, test_user};

/// A log pipe whose reader died must not kill the agent (it used to panic, exit 101).
#[test]
fn a_broken_stderr_does_not_stop_the_agent() {
    let dir = owned_temp_dir("patroni-stderr-");
    let config = dir.path().join("patroni.yml");
    std::fs::write(
        &config,
        format!(
            "scope: s\nname: n\netcd3: {{hosts: '127.0.0.1:{etcd}'}}\nrestapi: {{listen: '127.0.0.1:{api}'}}\n\
             postgresql: {{listen: '127.0.0.1:{pg}', data_dir: '{data}', bin_dir: '{bin}'}}\n\
             watchdog: {{mode: 'off'}}\nlog: {{level: DEBUG}}\n",
            etcd = free_port(),
            api = free_port(),
            pg = free_port(),
            data = dir.path().join("data").display(),
            bin = pg_bin_dir().display(),
        ),
    )
    .unwrap();
    let (uid, gid) = test_user();
    let mut child = Command::new(env!("CARGO_BIN_EXE_patroni"))
        .arg(&config)
        .env("RUST_LOG", "debug")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .uid(uid)
        .gid(gid)
        .spawn()
        .unwrap();
    // The reader goes away: every later log line meets a broken pipe.
    drop(child.stderr.take());
    let until = Instant::now() + Duration::from_secs(4);
    while Instant::now() < until {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the agent exited with {status} when its stderr broke");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    child.kill().unwrap();
    child.wait().unwrap();
}
