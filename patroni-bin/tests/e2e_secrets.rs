//! Passwords stay secret on a real cluster: during bootstrap, clone and
//! rebuild no command line carries one, no file under a data directory and no log holds one;
//! replicas read theirs from a 0600 pgpass file owned by the database user.

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::TestCluster;
use patroni_postgres::testkit::{test_user, TEST_PASSWORD};
use serde_json::json;

/// The part of the test password that no unrelated text contains.
fn secret() -> &'static str {
    TEST_PASSWORD.split('\'').next().unwrap()
}

/// Watches every process's command line until stopped, keeping those that show the password.
struct PsWatch {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<String>>>,
    scans: Arc<Mutex<u64>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl PsWatch {
    fn start() -> PsWatch {
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let scans = Arc::new(Mutex::new(0));
        let thread = {
            let (stop, seen, scans) = (stop.clone(), seen.clone(), scans.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
                        let Ok(raw) = std::fs::read(e.path().join("cmdline")) else {
                            continue;
                        };
                        let line = String::from_utf8_lossy(&raw).replace('\0', " ");
                        if line.contains(secret()) {
                            seen.lock().unwrap().push(line);
                        }
                    }
                    *scans.lock().unwrap() += 1;
                    std::thread::sleep(Duration::from_millis(5));
                }
            })
        };
        PsWatch {
            stop,
            seen,
            scans,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> (Vec<String>, u64) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        let seen = self.seen.lock().unwrap().clone();
        let scans = *self.scans.lock().unwrap();
        (seen, scans)
    }
}

/// Every file under `dir` (recursively) whose bytes contain the password.
fn files_with_secret(dir: &Path, found: &mut Vec<String>) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        let Ok(meta) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if meta.is_dir() {
            files_with_secret(&p, found);
        } else if meta.is_file() {
            let bytes = std::fs::read(&p).unwrap_or_default();
            if bytes
                .windows(secret().len())
                .any(|w| w == secret().as_bytes())
            {
                found.push(p.display().to_string());
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_password_on_a_command_line_in_a_data_directory_or_in_a_log() {
    let watch = PsWatch::start();
    let c = TestCluster::start("secrets").await;
    let primary = c.primary().await.expect("one primary");
    let replica = c.other_than(&[&primary]);
    // A rebuild: the replica's data directory is copied again from the primary.
    let (code, body) = c
        .post(&replica, "/reinitialize", json!({"force": true}))
        .await
        .expect("reinitialize answered");
    assert_eq!(code, 200, "{body}");
    c.wait_streaming(
        &replica,
        "the rebuilt replica streaming",
        Duration::from_secs(90),
    )
    .await;
    let (seen, scans) = watch.finish();
    assert!(scans > 100, "the process watch barely ran ({scans} scans)");
    assert!(
        seen.is_empty(),
        "a command line showed the password:\n{}",
        seen.join("\n")
    );

    let mut found = Vec::new();
    for n in &c.nodes {
        files_with_secret(&n.data_dir(), &mut found);
        let pg_log = format!("{}.log", n.data_dir().display());
        for f in [n.log.clone(), pg_log.into()] {
            if let Ok(text) = std::fs::read_to_string(&f) {
                assert!(
                    !text.contains(secret()),
                    "{} holds the password",
                    f.display()
                );
            }
        }
        let conf = std::fs::read_to_string(n.data_dir().join("postgresql.conf")).unwrap();
        if n.name != primary {
            assert!(
                conf.contains("passfile="),
                "{}: primary_conninfo must name the pgpass file:\n{conf}",
                n.name
            );
        }
    }
    assert!(found.is_empty(), "files holding the password: {found:?}");

    // The pgpass file the replicas use: 0600 and the database user's.
    let (uid, _) = test_user();
    let pgpass = c.node(&replica).dir.join("data.pgpass");
    let meta = std::fs::metadata(&pgpass).unwrap_or_else(|e| panic!("{}: {e}", pgpass.display()));
    assert_eq!(meta.mode() & 0o777, 0o600);
    assert_eq!(meta.uid(), uid);
}
