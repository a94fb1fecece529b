//! A virtualenv with Python Patroni (its `patroni` daemon and `patronictl`) and `check_patroni`,
//! installed from PyPI at pinned versions under the target directory, created once and reused:
//! the tools Patroni users already run, driven against (and beside) our agents.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// What the virtualenv holds; a change of pins makes a new one.
pub const PINS: &[&str] = &[
    "patroni[etcd3]==4.1.5",
    "psycopg[binary]==3.3.9",
    "check_patroni==2.2.0",
];

/// The Python interpreter: Debian's (`python3`, `python3-venv`) when present.
pub fn python() -> PathBuf {
    let debian = Path::new("/usr/bin/python3");
    if debian.exists() {
        debian.to_path_buf()
    } else {
        PathBuf::from("python3")
    }
}

pub fn show(o: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The virtualenv's `bin` directory, creating and filling the virtualenv when it is missing.
pub fn venv() -> PathBuf {
    let tag: u64 = PINS
        .join(" ")
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("pyvenv-{tag:016x}"));
    let bin = dir.join("bin");
    // Written last: an interrupted install is never reused.
    let done = dir.join(".installed");
    if done.exists() {
        return bin;
    }
    let _ = std::fs::remove_dir_all(&dir);
    let out = Command::new(python())
        .args(["-m", "venv"])
        .arg(&dir)
        .output()
        .expect("run python3 (Debian packages python3 and python3-venv)");
    assert!(
        out.status.success(),
        "creating the virtualenv failed (install python3-venv):\n{}",
        show(&out)
    );
    let out = Command::new(bin.join("pip"))
        .args([
            "install",
            "--disable-pip-version-check",
            "--no-input",
            "--quiet",
        ])
        .args(PINS)
        .output()
        .expect("run pip");
    assert!(
        out.status.success(),
        "pip install {} failed (PyPI must be reachable):\n{}",
        PINS.join(" "),
        show(&out)
    );
    assert!(
        bin.join("patronictl").exists() && bin.join("check_patroni").exists(),
        "the virtualenv at {} lacks patronictl or check_patroni",
        dir.display()
    );
    std::fs::write(&done, PINS.join("\n")).unwrap();
    bin
}
