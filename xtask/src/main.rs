//! `cargo xtask test`: install what the tests need on a fresh Debian machine, then run every check.
//! `cargo xtask demo`: install what is missing, then run the local 3-node failover drill.
//!
//! Plain std, so it builds before anything else is installed.

use std::path::{Path, PathBuf};
use std::process::{exit, Command};

/// Debian packages the tests and the demo need, each with a file that proves it is installed.
const PACKAGES: &[(&str, &str)] = &[
    ("protobuf-compiler", "/usr/bin/protoc"),
    ("etcd-server", "/usr/bin/etcd"),
    ("etcd-client", "/usr/bin/etcdctl"),
    ("postgresql", "/usr/lib/postgresql/15/bin/postgres"),
];

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("test") => install().and_then(|_| test(&args[1..])),
        Some("install") => install(),
        Some("demo") => install().and_then(|_| demo(&args[1..])),
        _ => {
            eprintln!("usage: cargo xtask <test|demo|install>");
            eprintln!("  test     install missing packages, then fmt, clippy and every test (real etcd and PostgreSQL)");
            eprintln!("  demo     install missing packages, then run a local 3-node cluster with a failover drill");
            eprintln!("  install  only install missing Debian packages");
            exit(2);
        }
    };
    if let Err(e) = result {
        eprintln!("xtask: {e}");
        exit(1);
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let shown = format!("{cmd:?}");
    eprintln!("xtask: running {shown}");
    let status = cmd
        .status()
        .map_err(|e| format!("cannot run {shown}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{shown} failed: {status}"))
    }
}

fn install() -> Result<(), String> {
    let missing: Vec<&str> = PACKAGES
        .iter()
        .filter(|(_, probe)| !Path::new(probe).exists())
        .map(|(pkg, _)| *pkg)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!(
        "xtask: installing missing Debian packages: {}",
        missing.join(" ")
    );
    let sudo: &[&str] = if is_root() { &[] } else { &["sudo"] };
    let apt = |extra: &[&str]| {
        let mut c = Command::new(sudo.first().copied().unwrap_or("apt-get"));
        if !sudo.is_empty() {
            c.arg("apt-get");
        }
        c.args(extra).env("DEBIAN_FRONTEND", "noninteractive");
        c
    };
    run(&mut apt(&["update", "-qq"]))?;
    let mut install = apt(&["install", "-y", "-qq", "--no-install-recommends"]);
    install.args(&missing);
    run(&mut install)?;
    // Debian starts the packaged services on install; the tests run their own instances.
    for unit in ["etcd", "postgresql"] {
        let _ = Command::new("sh").arg("-c").arg(format!("systemctl stop {unit} >/dev/null 2>&1 || service {unit} stop >/dev/null 2>&1 || true")).status();
    }
    Ok(())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root());
    c
}

fn test(extra: &[String]) -> Result<(), String> {
    run(cargo().args(["fmt", "--all", "--", "--check"]))?;
    run(cargo().args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--all-features",
        "--",
        "-D",
        "warnings",
    ]))?;
    run(cargo()
        .args(["test", "--workspace", "--all-features"])
        .args(extra))?;
    // The benches must at least build and run once (criterion's --test mode), so they never rot.
    run(cargo().args(["test", "--benches", "--all-features"]))?;
    Ok(())
}

fn demo(extra: &[String]) -> Result<(), String> {
    run(cargo()
        .args(["run", "--release", "--example", "local_cluster", "--"])
        .args(extra))
}
