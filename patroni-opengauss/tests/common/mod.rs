//! Shared test helpers: fixture loading, a scripted SQL source, a node configuration.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use patroni_core::{Member, MemberData};
use patroni_opengauss::sql_rows::{SqlRows, SqlSource};
use patroni_opengauss::{OpenGauss, OpenGaussConfig};
use patroni_postgres::command::RecordingRunner;
use patroni_postgres::sql::SqlError;

/// The fixture directory (a copy of shared/fixtures/opengauss kept with the crate).
pub fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// One fixture file with its MANIFEST line.
pub struct Fixture {
    pub name: String,
    pub text: String,
    pub command: String,
    /// `None` for SQL rows (`-` in the manifest).
    pub exit_code: Option<i32>,
}

/// `file -> (command, exit code)` from MANIFEST.tsv.
pub fn manifest() -> HashMap<String, (String, Option<i32>)> {
    let text = std::fs::read_to_string(fixture_dir().join("MANIFEST.tsv")).expect("MANIFEST.tsv");
    text.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (f[0].to_string(), (f[1].to_string(), f[2].parse().ok()))
        })
        .collect()
}

pub fn load(name: &str) -> Fixture {
    let text = std::fs::read_to_string(fixture_dir().join(name))
        .unwrap_or_else(|e| panic!("fixture {name}: {e}"));
    let (command, exit_code) = manifest()
        .remove(name)
        .unwrap_or_else(|| panic!("{name} is not in MANIFEST.tsv"));
    Fixture {
        name: name.to_string(),
        text,
        command,
        exit_code,
    }
}

/// Queues a gs_ctl fixture as the next reply, with its manifest exit code.
pub fn reply(runner: &RecordingRunner, name: &str) {
    let f = load(name);
    runner.reply_stdout(f.exit_code.expect("a command fixture"), f.text);
}

/// `gs_guc set` output: the reload fixture without its `server signaled` line (set only edits the file).
pub fn guc_set_output() -> String {
    load("gs_guc_reload_success.txt")
        .text
        .replace("gs_guc reload:", "gs_guc set:")
        .replace("server signaled\n", "")
}

/// SQL answers by statement; unscripted statements fail as a refused connection would.
#[derive(Default)]
pub struct ScriptedSql {
    answers: Mutex<HashMap<String, Result<SqlRows, SqlError>>>,
    pub asked: Mutex<Vec<String>>,
}

impl ScriptedSql {
    /// Answers `sql` with rows given inline (header line, then TAB-separated values).
    pub fn answer_rows(&self, sql: &str, tsv: &str) -> &Self {
        self.answers
            .lock()
            .unwrap()
            .insert(sql.to_string(), Ok(SqlRows::from_tsv(tsv)));
        self
    }

    pub fn answer(&self, sql: &str, fixture: &str) -> &Self {
        let rows = SqlRows::from_tsv(&load(fixture).text);
        self.answers
            .lock()
            .unwrap()
            .insert(sql.to_string(), Ok(rows));
        self
    }
}

#[async_trait]
impl SqlSource for ScriptedSql {
    async fn query(&self, sql: &str) -> Result<SqlRows, SqlError> {
        self.asked.lock().unwrap().push(sql.to_string());
        self.answers
            .lock()
            .unwrap()
            .get(sql)
            .cloned()
            .unwrap_or_else(|| Err(SqlError::Unreachable("connection refused".into())))
    }
}

/// Node dn_6001 of the fixture cluster, data directory under `root`.
pub fn config(root: &Path) -> OpenGaussConfig {
    let yaml = format!(
        r#"{{"name": "dn_6001", "flavour": "opengauss", "data_dir": "{}", "bin_dir": "/og/bin",
            "listen": "10.10.0.11:5432", "connect_address": "10.10.0.11:5432",
            "opengauss": {{"log_file": "/og/log/start.log", "peers": [
                {{"name": "dn_6002", "host": "10.10.0.12", "port": 5432}},
                {{"name": "dn_6003", "host": "10.10.0.13"}}]}}}}"#,
        root.join("data").display()
    );
    serde_json::from_str(&yaml).expect("test config")
}

/// Makes `root/data` look initialised (the `PG_VERSION` gs_initdb or a build would write).
pub fn init_data_dir(root: &Path) {
    std::fs::create_dir_all(root.join("data")).unwrap();
    std::fs::write(root.join("data/PG_VERSION"), "9.2\n").unwrap();
}

/// An adapter over a recording runner and scripted SQL, with an initialised (non-empty) data directory.
pub struct Rig {
    pub dir: tempfile::TempDir,
    pub runner: Arc<RecordingRunner>,
    pub sql: Arc<ScriptedSql>,
    pub db: OpenGauss,
}

impl Rig {
    pub fn new() -> Rig {
        Self::with(|_| {}, true)
    }

    pub fn with(edit: impl FnOnce(&mut OpenGaussConfig), initialised: bool) -> Rig {
        let dir = tempfile::tempdir().unwrap();
        if initialised {
            init_data_dir(dir.path());
        }
        let mut cfg = config(dir.path());
        edit(&mut cfg);
        let runner = Arc::new(RecordingRunner::new());
        let sql = Arc::new(ScriptedSql::default());
        let db = OpenGauss::new(cfg, runner.clone(), sql.clone()).expect("adapter");
        Rig {
            dir,
            runner,
            sql,
            db,
        }
    }

    pub fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    /// Issued commands as `program arg arg ...`, with the data directory shown as `D`.
    pub fn lines(&self) -> Vec<String> {
        let data = self.data();
        self.runner
            .calls()
            .iter()
            .map(|c| {
                std::iter::once(c.program.display().to_string())
                    .chain(c.args.iter().map(|a| {
                        if *a == data {
                            "D".to_string()
                        } else {
                            a.clone()
                        }
                    }))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect()
    }
}

/// A member as the DCS would show it.
pub fn member(name: &str, host: &str) -> Member {
    Member::new(
        name,
        MemberData {
            conn_url: format!("postgres://{host}:5432/postgres"),
            ..MemberData::default()
        },
    )
}
