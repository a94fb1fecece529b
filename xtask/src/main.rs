//! `cargo xtask test`: install what the tests need on a fresh Debian machine, then run every check.
//! `cargo xtask demo`: install what is missing, then run the local 3-node failover drill.
//!
//! Plain std, so it builds before anything else is installed.

use std::path::{Path, PathBuf};
use std::process::{exit, Command};

/// One thing the build, the tests or the demo need from the system, the file that proves it is
/// there, and the Debian package that provides it.
///
/// Every package is named here explicitly and installed with `--no-install-recommends`, so nothing
/// depends on what a package merely recommends (`protobuf-compiler` only recommends the
/// well-known `.proto` files that `etcd-client`'s build script imports).
struct Prerequisite {
    what: &'static str,
    probe: &'static str,
    package: &'static str,
}

const PREREQUISITES: &[Prerequisite] = &[
    Prerequisite {
        what: "C compiler and linker (build scripts, ring)",
        probe: "/usr/bin/cc",
        package: "gcc",
    },
    Prerequisite {
        what: "C library headers (build scripts)",
        probe: "/usr/include/stdio.h",
        package: "libc6-dev",
    },
    Prerequisite {
        what: "protoc (etcd-client's build script)",
        probe: "/usr/bin/protoc",
        package: "protobuf-compiler",
    },
    Prerequisite {
        what: "well-known .proto files (google/protobuf/descriptor.proto, imported by etcd's API)",
        probe: "/usr/include/google/protobuf/descriptor.proto",
        package: "libprotobuf-dev",
    },
    Prerequisite {
        what: "etcd server (tests and demo start their own)",
        probe: "/usr/bin/etcd",
        package: "etcd-server",
    },
    Prerequisite {
        what: "etcdctl (tests inspect leases and keys)",
        probe: "/usr/bin/etcdctl",
        package: "etcd-client",
    },
    Prerequisite {
        what: "PostgreSQL 15 server programs (postgres, initdb, pg_ctl, pg_rewind, pg_basebackup)",
        probe: "/usr/lib/postgresql/15/bin/pg_rewind",
        package: "postgresql-15",
    },
    Prerequisite {
        what: "psql (tests and demo check data as an operator would)",
        probe: "/usr/lib/postgresql/15/bin/psql",
        package: "postgresql-client-15",
    },
    Prerequisite {
        what: "useradd (creates the unprivileged patroni-test OS user)",
        probe: "/usr/sbin/useradd",
        package: "passwd",
    },
    Prerequisite {
        what: "timeout (bounds every psql call in tests)",
        probe: "/usr/bin/timeout",
        package: "coreutils",
    },
    Prerequisite {
        what: "python3 (tests run Patroni's patronictl and check_patroni against our cluster)",
        probe: "/usr/bin/python3",
        package: "python3",
    },
    Prerequisite {
        what: "python3 -m venv with pip (the tests' virtualenv for those tools; dpkg's record)",
        probe: "/var/lib/dpkg/info/python3-venv.list",
        package: "python3-venv",
    },
    Prerequisite {
        what: "openssl (tests encrypt a REST API key as operators do)",
        probe: "/usr/bin/openssl",
        package: "openssl",
    },
];

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("test") => install()
            .and_then(|_| doctor())
            .and_then(|_| test(&args[1..])),
        Some("install") => install().and_then(|_| doctor()),
        Some("demo") => install()
            .and_then(|_| doctor())
            .and_then(|_| demo(&args[1..])),
        Some("doctor") => doctor(),
        _ => {
            eprintln!("usage: cargo xtask <test|demo|install|doctor>");
            eprintln!("  test     install missing packages, then fmt, clippy and every test (real etcd and PostgreSQL)");
            eprintln!("  demo     install missing packages, then run a local 3-node cluster with a failover drill");
            eprintln!("  install  only install missing Debian packages");
            eprintln!("  doctor   only check the prerequisites: one line per missing item, with its package");
            exit(2);
        }
    };
    if let Err(e) = result {
        eprintln!("xtask: {e}");
        exit(1);
    }
}

/// The workspace this xtask was run in. `cargo run` says where the package is at run time; the
/// path compiled in is only a fallback, since a build copied from another checkout would
/// otherwise test that checkout instead of this one.
fn root() -> PathBuf {
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| env!("CARGO_MANIFEST_DIR").into(), PathBuf::from);
    manifest_dir
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

fn missing() -> Vec<&'static Prerequisite> {
    PREREQUISITES
        .iter()
        .filter(|p| !Path::new(p.probe).exists())
        .collect()
}

/// Checks every prerequisite before anything compiles, so a missing one is named with its
/// package instead of surfacing as a build-script or test failure minutes later.
fn doctor() -> Result<(), String> {
    let missing = missing();
    for p in &missing {
        eprintln!(
            "xtask doctor: missing {} ({}): install Debian package {}",
            p.what, p.probe, p.package
        );
    }
    if !missing.is_empty() {
        return Err(format!(
            "{} prerequisite(s) missing; `apt-get install --no-install-recommends {}` (or `cargo xtask install`)",
            missing.len(),
            packages(&missing).join(" ")
        ));
    }
    if !is_root() {
        // Tests create the patroni-test user with useradd, which needs root unless it exists.
        let exists = Command::new("id")
            .arg("patroni-test")
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if !exists {
            return Err(
                "the OS user patroni-test is missing and only root can create it: \
                 `sudo useradd --system --no-create-home --user-group patroni-test`"
                    .into(),
            );
        }
    }
    eprintln!(
        "xtask doctor: all {} prerequisites present",
        PREREQUISITES.len()
    );
    Ok(())
}

/// The distinct packages behind a list of prerequisites, in table order.
fn packages(list: &[&Prerequisite]) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for p in list {
        if !out.contains(&p.package) {
            out.push(p.package);
        }
    }
    out
}

fn install() -> Result<(), String> {
    let missing = packages(&missing());
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
    // Embedding: three agents built in code with a custom policy decide a real failover.
    run(cargo().args(["run", "--quiet", "--example", "custom_orchestrator"]))?;
    Ok(())
}

fn demo(extra: &[String]) -> Result<(), String> {
    run(cargo()
        .args(["run", "--release", "--example", "local_cluster", "--"])
        .args(extra))
}
