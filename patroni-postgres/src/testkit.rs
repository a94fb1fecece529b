//! Test fixture for real PostgreSQL servers: the unprivileged OS user they run as, temp directories
//! it owns, free ports on 127.0.0.1, and a [`PgNode`] guard that stops its server by PID on drop.
//!
//! PostgreSQL refuses to run as root and tests run as root, so every server runs as [`TEST_USER`].

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use patroni_core::{Member, MemberData};

use crate::command::SystemRunner;
use crate::config::{Credentials, PostgresConfig};
use crate::datadir::{children_of, live_postmaster, process_alive};

use crate::Postgres;

/// The OS user test servers run as.
pub const TEST_USER: &str = "patroni-test";

/// Password of the test superuser and replication roles.
pub const TEST_PASSWORD: &str = "s3cret'pw";

/// Where PostgreSQL 15's programs are (override with `PATRONI_PG_BIN`).
pub fn pg_bin_dir() -> PathBuf {
    std::env::var_os("PATRONI_PG_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/lib/postgresql/15/bin"))
}

/// The (uid, gid) of [`TEST_USER`], creating the user if missing; tolerates other test binaries racing.
pub fn test_user() -> (u32, u32) {
    static USER: OnceLock<(u32, u32)> = OnceLock::new();
    *USER.get_or_init(|| {
        for _ in 0..50 {
            if let Ok(ids) = crate::datadir::lookup_user(TEST_USER) {
                return ids;
            }
            // "already exists" (9) and "cannot lock /etc/passwd" (10) both mean: look again.
            let _ = Command::new("useradd")
                .args(["--system", "--no-create-home", "--user-group", TEST_USER])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            if let Ok(ids) = crate::datadir::lookup_user(TEST_USER) {
                return ids;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("cannot create or find the OS user {TEST_USER}");
    })
}

/// Runs one SQL statement with psql as the `postgres` superuser over TCP on 127.0.0.1; `None` when it fails.
///
/// For tests and the demo, which check data the way an operator would; bounded by a 10 s `timeout`.
pub fn psql(port: u16, query: &str) -> Option<String> {
    let out = Command::new("timeout")
        .arg("10")
        .arg(pg_bin_dir().join("psql"))
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(["-U", "postgres", "-d", "postgres", "-XAtq", "-c", query])
        .env("PGPASSWORD", TEST_PASSWORD)
        .env("PGCONNECT_TIMEOUT", "3")
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// A port on 127.0.0.1 nobody listens on right now and that this process has not handed out before.
pub fn free_port() -> u16 {
    // A port is only reserved while something listens on it, and the nodes of a test cluster
    // bind theirs later: without this record, two picks in a row can return the same port.
    static HANDED_OUT: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|p| p.into_inner());
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("bind 127.0.0.1:0");
        if !handed_out.contains(&port) {
            handed_out.push(port);
            return port;
        }
    }
}

/// A fresh temp directory owned by the test user (removed on drop).
pub fn owned_temp_dir(prefix: &str) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .expect("create temp dir");
    let (uid, gid) = test_user();
    std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).expect("chown temp dir");
    dir
}

/// A test configuration: listen on a free 127.0.0.1 port, small and unsafe-but-fast settings.
pub fn test_config(dir: &Path) -> PostgresConfig {
    let port = free_port();
    let mut cfg = PostgresConfig::new(format!("127.0.0.1:{port}"), dir.join("data"));
    cfg.bin_dir = Some(pg_bin_dir());
    cfg.pg_ctl_timeout = 30;
    cfg.run_as = Some(test_user());
    cfg.use_pg_rewind = Some(true);
    cfg.authentication.superuser = Credentials {
        username: "postgres".into(),
        password: Some(TEST_PASSWORD.into()),
    };
    cfg.authentication.replication = Some(Credentials {
        username: "replicator".into(),
        password: Some(TEST_PASSWORD.into()),
    });
    for (k, v) in [
        ("shared_buffers", "16MB"),
        ("fsync", "off"),
        ("synchronous_commit", "local"),
        ("max_wal_size", "256MB"),
        ("log_line_prefix", "%m [%p] "),
        ("wal_retrieve_retry_interval", "500ms"),
    ] {
        cfg.parameters.insert(k.into(), v.into());
    }
    cfg
}

/// One test server: its directory, its adapter, and a guard that stops it by PID when dropped.
pub struct PgNode {
    /// The adapter under test.
    pub pg: Postgres,
    dir: tempfile::TempDir,
}

impl PgNode {
    /// A node named `name` with [`test_config`], adjusted by `customize`; nothing is started.
    pub fn new(name: &str, customize: impl FnOnce(&mut PostgresConfig)) -> PgNode {
        let dir = owned_temp_dir(&format!("patroni-pg-{name}-"));
        let mut cfg = test_config(dir.path());
        customize(&mut cfg);
        let pg = Postgres::new(name, cfg, Arc::new(SystemRunner)).expect("valid test config");
        PgNode { pg, dir }
    }

    /// The node's directory (the data directory is `data` inside it).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// This node as a cluster member, as other nodes would read it from the DCS.
    pub fn member(&self) -> Member {
        Member::new(
            self.pg.name(),
            MemberData {
                conn_url: self.pg.config().conn_url(),
                ..MemberData::default()
            },
        )
    }

    /// Kills the postmaster with SIGKILL and waits until it and its children are gone.
    pub fn kill9(&self) {
        let Some(pid) = self.pg.postmaster_pid() else {
            return;
        };
        let children = children_of(pid);
        let _ = Command::new("kill")
            .args(["-s", "KILL", "--", &pid.to_string()])
            .status();
        wait_gone(
            std::iter::once(pid).chain(children),
            Duration::from_secs(10),
        );
    }
}

/// Waits until the processes are reaped, not only dead: PostgreSQL treats a zombie's pid in
/// `postmaster.pid` as a live postmaster and refuses to start.
fn wait_gone(pids: impl Iterator<Item = u32>, limit: Duration) {
    let pids: Vec<u32> = pids.collect();
    let deadline = Instant::now() + limit;
    let exists = |p: &u32| Path::new(&format!("/proc/{p}")).exists();
    while pids.iter().any(exists) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Stops whatever postmaster runs in a data directory when dropped, by the PID in its
/// `postmaster.pid`: for tests where something else (an agent process) started the server.
#[derive(Debug, Clone)]
pub struct ServerGuard {
    /// The data directory whose server to stop.
    pub data_dir: PathBuf,
    /// The `pg_ctl` to try an immediate stop with before SIGKILL.
    pub pg_ctl: PathBuf,
}

impl ServerGuard {
    /// A guard for the server of `data_dir`, using PostgreSQL 15's `pg_ctl`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        ServerGuard {
            data_dir: data_dir.into(),
            pg_ctl: pg_bin_dir().join("pg_ctl"),
        }
    }

    /// Stops the server now: `pg_ctl stop -m immediate` (frees shared memory), then SIGKILL by PID,
    /// then waits until the postmaster and its children are reaped.
    pub fn stop_now(&self) {
        let Some(pm) = live_postmaster(&self.data_dir) else {
            return;
        };
        let children = children_of(pm.pid);
        let (uid, gid) = test_user();
        let _ = Command::new("timeout")
            .arg("10")
            .arg(&self.pg_ctl)
            .args(["stop", "-m", "immediate", "-w", "-t", "8", "-D"])
            .arg(&self.data_dir)
            .uid(uid)
            .gid(gid)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if process_alive(pm.pid) {
            let _ = Command::new("kill")
                .args(["-s", "KILL", "--", &pm.pid.to_string()])
                .status();
        }
        wait_gone(
            std::iter::once(pm.pid).chain(children),
            Duration::from_secs(10),
        );
    }
}

impl Drop for ServerGuard {
    fn drop(&mut self) {
        self.stop_now();
    }
}

impl Drop for PgNode {
    fn drop(&mut self) {
        let cfg = self.pg.config();
        ServerGuard {
            data_dir: cfg.data_dir.clone(),
            pg_ctl: cfg.binary("pg_ctl"),
        }
        .stop_now();
    }
}
