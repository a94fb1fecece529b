//! Patroni's custom methods on real PostgreSQL: replicas created by a user's command (falling
//! through to `pg_basebackup` when it fails), and a new cluster bootstrapped from a base backup of
//! another server by `bootstrap.method`, finished by `post_bootstrap`.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{Options, TestCluster};
use patroni_core::Database;
use patroni_postgres::testkit::{owned_temp_dir, pg_bin_dir, psql, test_user, PgNode};

/// Writes an executable script owned by the test user (the agents run as it).
fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    let (uid, gid) = test_user();
    std::os::unix::fs::chown(&path, Some(uid), Some(gid)).unwrap();
    path
}

/// The value of `--key=` among a script's recorded arguments (one per line).
fn arg<'a>(record: &'a str, key: &str) -> Option<&'a str> {
    let prefix = format!("--{key}=");
    record.lines().find_map(|l| l.strip_prefix(prefix.as_str()))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_are_created_by_the_users_command_and_fall_through_to_basebackup() {
    let work = owned_temp_dir("patroni-e2e-replica-methods-");
    let records = work.path();
    // Records its arguments, then copies the source as the built-in method would; fails when
    // a `fail-<member>` file exists.
    let clone = script(
        records,
        "clone.sh",
        &format!(
            r#"member=""; datadir=""; connstring=""
for a in "$@"; do
  case "$a" in
    --member=*) member="${{a#--member=}}";;
    --datadir=*) datadir="${{a#--datadir=}}";;
    --connstring=*) connstring="${{a#--connstring=}}";;
  esac
done
printf '%s\n' "$@" > "{rec}/$member.args"
if [ -e "{rec}/fail-$member" ]; then echo failed >> "{rec}/$member.args"; exit 3; fi
exec {bin}/pg_basebackup --pgdata="$datadir" -X stream -c fast --dbname="$connstring"
"#,
            rec = records.display(),
            bin = pg_bin_dir().display()
        ),
    );
    let opts = Options {
        extra_postgresql: format!(
            "  create_replica_methods: [scripted, basebackup]\n  scripted:\n    command: {}\n    member: '{{name}}'\n",
            clone.display()
        ),
        ..Options::default()
    };
    let mut c = TestCluster::start_opts("replica-methods", opts).await;
    let leader = c.primary().await.expect("a primary");
    let leader_port = c.node(&leader).pg_port;
    let replicas: Vec<String> = c
        .nodes
        .iter()
        .map(|n| n.name.clone())
        .filter(|n| *n != leader)
        .collect();
    assert_eq!(replicas.len(), 2);
    for r in &replicas {
        assert!(c.is_streaming(r).await, "{r} streams");
        let record = read(&records.join(format!("{r}.args")));
        assert_eq!(arg(&record, "member"), Some(r.as_str()), "{record}");
        assert_eq!(arg(&record, "scope"), Some(c.scope.as_str()), "{record}");
        assert_eq!(arg(&record, "role"), Some("replica"), "{record}");
        let data_dir = c.node(r).data_dir().display().to_string();
        assert_eq!(arg(&record, "datadir"), Some(data_dir.as_str()), "{record}");
        let connstring =
            format!("dbname=postgres user=replicator host=127.0.0.1 port={leader_port}");
        assert_eq!(
            arg(&record, "connstring"),
            Some(connstring.as_str()),
            "{record}"
        );
        // The section's own key comes first, the defaults after it, as Patroni orders them.
        assert!(
            record.starts_with(&format!("--member={r}\n--scope=")),
            "{record}"
        );
    }

    // The same replica again from an empty data directory, with its command failing this time.
    let again = replicas[0].clone();
    c.node_mut(&again).stop_agent(30);
    c.node(&again).kill9_postmaster();
    wipe(&c.node(&again).data_dir());
    std::fs::write(records.join(format!("fail-{again}")), "").unwrap();
    std::fs::remove_file(records.join(format!("{again}.args"))).unwrap();
    c.node_mut(&again).start_agent();
    c.wait_streaming(
        &again,
        "the replica copied again, by pg_basebackup",
        Duration::from_secs(90),
    )
    .await;
    let record = read(&records.join(format!("{again}.args")));
    assert!(
        record.ends_with("failed\n"),
        "the command ran and failed: {record}"
    );
    let log = read(&c.node(&again).log);
    assert!(
        log.lines()
            .any(|l| l.contains("replica has been created") && l.contains("basebackup")),
        "basebackup created the replica after the command failed"
    );
    let primary = c.primary().await.expect("a primary");
    assert_eq!(c.write_rows(&primary, "t_methods", 100), "100");
    c.wait(
        "rows on the re-created replica",
        Duration::from_secs(20),
        || async {
            (c.node(&again)
                .sql("SELECT count(*) FROM t_methods")
                .as_deref()
                == Some("100"))
            .then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_cluster_is_bootstrapped_by_the_users_command_and_post_bootstrap() {
    // The server the new cluster is restored from: a standalone one with a table of its own.
    let source = PgNode::new("bootstrap-source", |_| {});
    source.pg.bootstrap().await.expect("source server");
    let source_port = source.pg.config().port().unwrap();
    assert_eq!(
        psql(
            source_port,
            "CREATE TABLE from_backup AS SELECT generate_series(1, 42) AS i; SELECT count(*) FROM from_backup"
        )
        .as_deref(),
        Some("42")
    );
    let source_sysid = psql(
        source_port,
        "SELECT system_identifier FROM pg_control_system()",
    );

    let work = owned_temp_dir("patroni-e2e-bootstrap-method-");
    let records = work.path();
    let bin = pg_bin_dir().display().to_string();
    let restore = script(
        records,
        "restore.sh",
        &format!(
            r#"datadir=""; port=""
for a in "$@"; do
  case "$a" in
    --datadir=*) datadir="${{a#--datadir=}}";;
    --source_port=*) port="${{a#--source_port=}}";;
  esac
done
printf '%s\n' "$@" > "{rec}/restore.args"
exec {bin}/pg_basebackup --pgdata="$datadir" -X stream -c fast -h 127.0.0.1 -p "$port" -U replicator --no-password
"#,
            rec = records.display()
        ),
    );
    let post = script(
        records,
        "post.sh",
        &format!(
            r#"printf '%s\n' "$@" > "{rec}/post.args"
exec {bin}/psql -X -v ON_ERROR_STOP=1 -d "$1" -c "CREATE TABLE made_by_post_bootstrap AS SELECT 7 AS seven"
"#,
            rec = records.display()
        ),
    );
    let opts = Options {
        extra_bootstrap: format!(
            "  method: restore\n  restore:\n    command: {}\n    source_port: {source_port}\n    recovery_conf:\n      restore_command: /bin/false\n  post_bootstrap: {}\n",
            restore.display(),
            post.display()
        ),
        ..Options::default()
    };
    let c = TestCluster::start_opts("bootstrap-method", opts).await;
    let leader = c.primary().await.expect("a primary");
    let node = c.node(&leader);
    assert_eq!(
        node.sql("SELECT count(*) FROM from_backup").as_deref(),
        Some("42"),
        "the leader holds the restored data"
    );
    assert_eq!(
        node.sql("SELECT system_identifier FROM pg_control_system()"),
        source_sysid,
        "the cluster is the source's copy"
    );
    assert_eq!(
        node.sql("SELECT seven FROM made_by_post_bootstrap")
            .as_deref(),
        Some("7"),
        "post_bootstrap ran on the new leader"
    );
    let record = read(&records.join("restore.args"));
    let data_dir = node.data_dir().display().to_string();
    assert_eq!(
        record,
        format!(
            "--scope={}\n--datadir={data_dir}\n--source_port={source_port}\n",
            c.scope
        )
    );
    let post_record = read(&records.join("post.args"));
    assert_eq!(
        post_record,
        format!(
            "dbname=postgres user=postgres host={data_dir}.sock port={}\n",
            node.pg_port
        ),
        "post_bootstrap gets the superuser's local connection string"
    );
    // The replicas were copied from the restored leader and see its data.
    for r in c.nodes.iter().filter(|n| n.name != leader) {
        assert!(c.is_streaming(&r.name).await, "{} streams", r.name);
        c.wait(
            "post_bootstrap's table on a replica",
            Duration::from_secs(20),
            || async {
                (r.sql("SELECT seven FROM made_by_post_bootstrap").as_deref() == Some("7"))
                    .then_some(())
            },
        )
        .await;
    }
}

/// Empties a data directory, keeping the directory itself (owned by the test user).
fn wipe(data: &Path) {
    for e in std::fs::read_dir(data).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            std::fs::remove_dir_all(&p).unwrap();
        } else {
            std::fs::remove_file(&p).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_leader_a_member_restores_itself_by_a_no_leader_method() {
    let work = owned_temp_dir("patroni-e2e-no-leader-");
    let records = work.path();
    let backup = records.join("backup");
    let restore = script(
        records,
        "restore.sh",
        &format!(
            r#"datadir=""
for a in "$@"; do
  case "$a" in --datadir=*) datadir="${{a#--datadir=}}";; esac
done
printf '%s\n' "$@" > "{rec}/restore.args"
exec cp -a "{backup}/." "$datadir/"
"#,
            rec = records.display(),
            backup = backup.display()
        ),
    );
    let opts = Options {
        extra_postgresql: format!(
            "  create_replica_methods: [basebackup, restore]\n  restore:\n    command: {}\n    no_leader: true\n",
            restore.display()
        ),
        ..Options::default()
    };
    let mut c = TestCluster::start_opts("no-leader", opts).await;
    let leader = c.primary().await.expect("a primary");
    assert!(
        !records.join("restore.args").exists(),
        "with a leader, pg_basebackup made the replicas"
    );
    assert_eq!(c.write_rows(&leader, "t_before_backup", 10), "10");
    // The "backup": a base backup of the leader, owned by the agents' user.
    let (uid, gid) = test_user();
    let status = std::process::Command::new("timeout")
        .arg("60")
        .arg(pg_bin_dir().join("pg_basebackup"))
        .arg(format!("--pgdata={}", backup.display()))
        .args([
            "-X",
            "stream",
            "-c",
            "fast",
            "-h",
            "127.0.0.1",
            "-U",
            "replicator",
        ])
        .args(["-p", &c.node(&leader).pg_port.to_string()])
        .env("PGPASSWORD", patroni_postgres::testkit::TEST_PASSWORD)
        .uid(uid)
        .gid(gid)
        .status()
        .unwrap();
    assert!(status.success(), "base backup of the leader");

    // Everyone down; one member comes back with an empty data directory and no leader to copy.
    let names: Vec<String> = c.nodes.iter().map(|n| n.name.clone()).collect();
    for n in &names {
        c.node_mut(n).stop_agent(30);
        c.node(n).kill9_postmaster();
    }
    let lone = names.iter().find(|n| **n != leader).unwrap().clone();
    wipe(&c.node(&lone).data_dir());
    c.wait("the leader key gone", Duration::from_secs(30), || async {
        c.view().await.filter(|v| v.leader.is_none()).map(|_| ())
    })
    .await;
    c.node_mut(&lone).start_agent();
    c.wait(
        "the lone member restored and running",
        Duration::from_secs(60),
        || async {
            (c.node(&lone)
                .sql("SELECT count(*) FROM t_before_backup")
                .as_deref()
                == Some("10"))
            .then_some(())
        },
    )
    .await;
    let record = read(&records.join("restore.args"));
    let data_dir = c.node(&lone).data_dir().display().to_string();
    assert_eq!(
        record,
        format!(
            "--no_leader=True\n--scope={}\n--role=replica\n--datadir={data_dir}\n--connstring=\n",
            c.scope
        ),
        "the no_leader method ran with no source to connect to"
    );
    for n in names.iter().filter(|n| **n != lone) {
        c.node_mut(n).start_agent();
    }
    c.wait_healthy(Duration::from_secs(90)).await;
}
