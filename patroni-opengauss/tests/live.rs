//! Against a real openGauss when `GAUSSHOME` points to an install; prints SKIPPED otherwise.
//!
//! No openGauss binaries can be installed on the project's machines, so this normally skips;
//! with an install it bootstraps a single node on loopback as a dedicated OS user, observes it,
//! stops it, and always cleans up by PID-file stop (Drop guard).

use std::os::unix::fs::chown;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

use patroni_core::{Database, DbRole, ProcessState, StopMode};
use patroni_opengauss::OpenGauss;

const OS_USER: &str = "patroniog";

fn install() -> Option<PathBuf> {
    let home = PathBuf::from(std::env::var_os("GAUSSHOME")?);
    home.join("bin/gs_ctl").is_file().then_some(home)
}

fn ensure_user() -> (u32, u32) {
    // Tolerate "already exists": other test binaries race on it.
    let _ = std::process::Command::new("useradd")
        .args(["--system", "--no-create-home", OS_USER])
        .status();
    patroni_postgres::datadir::lookup_user(OS_USER).expect("test user")
}

fn free_port_pair() -> u16 {
    loop {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        if port < u16::MAX && std::net::TcpListener::bind(("127.0.0.1", port + 1)).is_ok() {
            return port;
        }
    }
}

/// Stops the server (immediate) whatever the test did.
struct StopGuard {
    gs_ctl: PathBuf,
    data: PathBuf,
    ids: (u32, u32),
}

impl Drop for StopGuard {
    fn drop(&mut self) {
        if !self.data.join("postmaster.pid").exists() {
            return;
        }
        let _ = std::process::Command::new("timeout")
            .arg("60")
            .arg(&self.gs_ctl)
            .args(["stop", "-m", "immediate", "-D"])
            .arg(&self.data)
            .uid(self.ids.0)
            .gid(self.ids.1)
            .status();
    }
}

fn chown_all(path: &Path, ids: (u32, u32)) {
    chown(path, Some(ids.0), Some(ids.1)).unwrap();
}

#[tokio::test]
async fn live_single_node_bootstrap_observe_stop() {
    let Some(home) = install() else {
        eprintln!(
            "SKIPPED live openGauss test: GAUSSHOME is unset or has no bin/gs_ctl \
             (openGauss is not installable here; parsers and commands are tested against fixtures)"
        );
        return;
    };
    let ids = ensure_user();
    let tmp = tempfile::tempdir().unwrap();
    chown_all(tmp.path(), ids);
    let pwfile = tmp.path().join("pw");
    std::fs::write(&pwfile, "Patroni@2026\n").unwrap();
    chown_all(&pwfile, ids);
    let port = free_port_pair();
    let data = tmp.path().join("data");
    let cfg = serde_json::json!({
        "name": "og_live", "flavour": "opengauss",
        "data_dir": data, "bin_dir": home.join("bin"),
        "listen": format!("127.0.0.1:{port}"), "connect_address": format!("127.0.0.1:{port}"),
        "opengauss": {
            "os_user": OS_USER, "log_file": tmp.path().join("server.log"),
            "unix_socket_dir": tmp.path(), "initdb_pwfile": pwfile, "ctl_timeout": 60
        }
    });
    let cfg = serde_json::from_value(cfg).unwrap();
    let db = OpenGauss::system(cfg).unwrap();
    let _guard = StopGuard {
        gs_ctl: home.join("bin/gs_ctl"),
        data: data.clone(),
        ids,
    };
    db.bootstrap().await.expect("bootstrap");
    let seen = db.observe().await;
    eprintln!("live observation: {seen:?}");
    assert_eq!(seen.process, ProcessState::Running);
    assert_eq!(seen.role, DbRole::Primary);
    assert!(seen.system_id.is_some());
    db.stop(StopMode::Fast).await.expect("stop");
    assert_eq!(db.observe().await.process, ProcessState::Stopped);
}
