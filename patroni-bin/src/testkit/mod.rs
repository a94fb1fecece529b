//! One local cluster for tests, examples and benches: a real etcd and N agents, each running
//! PostgreSQL 15, on loopback (cargo feature `testkit`).
//!
//! [`LocalCluster::start`] builds it from [`Options`] (timing [`Profile`], synchronous mode, tags,
//! extra YAML, proxies, TLS, several etcd members) and stops everything it started, by PID after
//! checking the process's command line, on drop. Agents run as separate processes as the
//! unprivileged test user: the `patroni` binary, or the calling program itself
//! ([`AgentCommand::this_program`] with [`serve_agent_if_invoked`] first in its `main`).
//! [`writer`] records acknowledged inserts; [`proxy`] injects network faults.

pub mod proxy;
pub mod writer;

use std::fs::File;
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use patroni_core::{Cluster, Dcs};
use patroni_etcd::testkit::{EtcdCluster, EtcdProcess, TlsFiles};
use patroni_etcd::{EtcdDcs, EtcdIdentity};
use patroni_postgres::datadir::process_alive;
use patroni_postgres::testkit::{
    free_port, owned_temp_dir, pg_bin_dir, psql, test_user, TEST_PASSWORD,
};
use serde_json::Value;

/// Timing of the cluster's leader lease: `ttl`, `loop_wait` and `retry_timeout` in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Profile {
    /// A label for reports.
    pub name: &'static str,
    /// `bootstrap.dcs.ttl`.
    pub ttl: u64,
    /// `bootstrap.dcs.loop_wait`.
    pub loop_wait: u64,
    /// `bootstrap.dcs.retry_timeout`.
    pub retry_timeout: u64,
}

impl Profile {
    /// Short timings so a scenario runs in seconds; the kit's default.
    pub const FAST: Profile = Profile {
        name: "ttl 10 / loop 2",
        ttl: 10,
        loop_wait: 2,
        retry_timeout: 4,
    };
    /// Patroni's own defaults.
    pub const DEFAULT: Profile = Profile {
        name: "ttl 30 / loop 10",
        ttl: 30,
        loop_wait: 10,
        retry_timeout: 10,
    };
}

impl Default for Profile {
    fn default() -> Self {
        Profile::FAST
    }
}

/// [`Profile::FAST`]'s `ttl` in milliseconds.
pub const TTL_MS: u64 = Profile::FAST.ttl * 1000;

/// How a node's agent is started: a program and the arguments before its configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentCommand {
    /// The program.
    pub program: PathBuf,
    /// Arguments before the configuration file's path.
    pub args: Vec<String>,
}

impl AgentCommand {
    /// A `patroni` binary: `PROGRAM CONFIG`.
    pub fn binary(program: impl Into<PathBuf>) -> AgentCommand {
        AgentCommand {
            program: program.into(),
            args: Vec::new(),
        }
    }

    /// This program as `PROGRAM agent CONFIG`, served by [`serve_agent_if_invoked`].
    pub fn this_program() -> AgentCommand {
        AgentCommand {
            program: std::env::current_exe().expect("this program's path"),
            args: vec!["agent".into()],
        }
    }
}

/// For a program that is its own cluster's agents (an example, a bench): call first in `main`.
/// Started as `PROGRAM fence ...` it runs the fence, as `PROGRAM agent CONFIG` the agent until
/// SIGTERM or SIGINT, and exits; otherwise it returns and `main` goes on.
pub fn serve_agent_if_invoked() {
    if let Some(code) = crate::fence::run_if_invoked() {
        std::process::exit(code);
    }
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) != Some("agent") {
        return;
    }
    std::env::set_var(
        crate::fence::PROGRAM_ENV,
        std::env::current_exe().expect("this program's path"),
    );
    let config = args.get(2).expect("usage: PROGRAM agent CONFIG");
    let loaded = crate::Config::load(Path::new(config)).expect("agent configuration");
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| loaded.config.log.filter());
    crate::logging::init(&filter);
    let rt = crate::runtime::daemon_runtime().expect("agent runtime");
    let r = rt.block_on(crate::runtime::run(loaded.config, async {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    }));
    if let Err(e) = &r {
        eprintln!("agent stopped: {e}");
    }
    std::process::exit(i32::from(r.is_err()));
}

/// One member: its directory, ports and agent process.
pub struct Node {
    /// The member name (`node1`, ...).
    pub name: String,
    /// Its directory: configuration, data directory (`data`), fence files.
    pub dir: PathBuf,
    /// Its agent's YAML file.
    pub config: PathBuf,
    /// Its REST API port.
    pub api_port: u16,
    /// Its PostgreSQL port.
    pub pg_port: u16,
    /// Its agent's log file.
    pub log: PathBuf,
    /// The proxies on this node's links, when the cluster was started with [`Options::proxies`].
    pub links: Option<Links>,
    /// Whether the REST API speaks HTTPS ([`Options::tls`]).
    pub tls: bool,
    /// Tagged `nostream` ([`Options::tags`]): a standby that streams from nobody.
    pub nostream: bool,
    agent: AgentCommand,
    child: Option<Child>,
}

/// The proxies on one node's links (see [`Options::proxies`]).
pub struct Links {
    /// This agent's connections to each etcd member, in member order.
    pub etcd: Vec<proxy::Proxy>,
    /// In front of this node's PostgreSQL: its `connect_address`, so every replication,
    /// `pg_basebackup` and `pg_rewind` connection from another member passes here; sources are
    /// told apart by `application_name` (the member name).
    pub pg: proxy::Proxy,
    /// In front of this node's REST API: its `restapi.connect_address`, which other agents probe.
    pub api: proxy::Proxy,
}

impl Links {
    /// Cuts (or with `None` heals) this agent's links to every etcd member.
    pub fn set_etcd(&self, cut: Option<proxy::Cut>) {
        for p in &self.etcd {
            match cut {
                Some(how) => p.link().cut(how),
                None => p.link().heal(),
            }
        }
    }

    /// Cuts (or with `None` heals) every other member's connections to this node (PostgreSQL and REST).
    pub fn set_peers(&self, cut: Option<proxy::Cut>) {
        for p in [&self.pg, &self.api] {
            match cut {
                Some(how) => p.link().cut(how),
                None => p.link().heal(),
            }
        }
    }

    /// Every proxy of this node: its etcd links, then PostgreSQL and REST.
    pub fn all(&self) -> impl Iterator<Item = &proxy::Proxy> {
        self.etcd.iter().chain([&self.pg, &self.api])
    }

    /// Removes every fault on every link of this node.
    pub fn heal(&self) {
        for p in self.all() {
            p.heal_all();
        }
    }
}

impl Node {
    /// The data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// The REST API's base URL.
    pub fn api(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.api_port)
    }

    /// The proxies on this node's links; panics when the cluster runs without them.
    pub fn links(&self) -> &Links {
        self.links
            .as_ref()
            .expect("the cluster was started without proxies (Options::proxies)")
    }

    /// The live postmaster's pid from `postmaster.pid`, checked by its process name (the
    /// agent's own check).
    pub fn postmaster_pid(&self) -> Option<u32> {
        patroni_postgres::datadir::live_postmaster(&self.data_dir()).map(|p| p.pid)
    }

    /// The agent process's pid, while this kit runs one.
    pub fn agent_pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Starts the agent process as the test user.
    pub fn start_agent(&mut self) {
        assert!(self.child.is_none(), "{} already runs", self.name);
        let (uid, gid) = test_user();
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("agent log");
        let child = Command::new(&self.agent.program)
            .args(&self.agent.args)
            .arg(&self.config)
            .env("RUST_LOG", "info")
            .env_remove("PATRONI_NAME")
            // Test switches (tests/partition.rs), not agent settings.
            .env_remove("PATRONI_PARTITION_LOGS")
            .env_remove("PATRONI_PARTITION_SEED")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("agent log"))
            .stderr(log)
            .uid(uid)
            .gid(gid)
            .process_group(0)
            .spawn()
            .expect("start the agent");
        self.child = Some(child);
    }

    /// Sends `sig` to the agent this kit started, if its command line still names its configuration.
    fn signal_child(&self, c: &Child, sig: &str) {
        signal_if_cmdline(c.id(), &self.config.to_string_lossy(), sig);
    }

    /// SIGKILL to the agent only (its database keeps running).
    pub fn kill9_agent(&mut self) {
        if let Some(mut c) = self.child.take() {
            self.signal_child(&c, "KILL");
            let _ = c.wait();
        }
    }

    /// SIGTERM to the agent, waiting up to `secs` for a clean exit.
    pub fn stop_agent(&mut self, secs: u64) {
        if let Some(mut c) = self.child.take() {
            self.signal_child(&c, "TERM");
            let deadline = Instant::now() + Duration::from_secs(secs);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            self.signal_child(&c, "KILL");
            let _ = c.wait();
        }
    }

    /// SIGKILL to the agent and a new one started.
    pub fn restart_agent(&mut self) {
        self.kill9_agent();
        self.start_agent();
    }

    /// The node's fence process (started by its agent), checked by its command line.
    pub fn fence_pid(&self) -> Option<u32> {
        let paths = crate::fence::FencePaths::beside(&self.data_dir());
        crate::fence::running_fence(&paths.pid)
    }

    /// SIGKILL to the node's fence process, if one runs; returns once it is gone.
    pub fn kill9_fence(&self) {
        if let Some(pid) = self.fence_pid() {
            signal(pid, "KILL");
            wait_gone(pid);
        }
    }

    /// Sends `sig` (`STOP`, `CONT`) to the agent process this kit started.
    pub fn signal_agent(&self, sig: &str) {
        if let Some(c) = &self.child {
            self.signal_child(c, sig);
        }
    }

    /// SIGTERM to the agent; how long it took to exit by itself (`None`: killed after 30 s).
    pub fn terminate_agent(&mut self) -> Option<Duration> {
        let mut c = self.child.take()?;
        let t = Instant::now();
        self.signal_child(&c, "TERM");
        while t.elapsed() < Duration::from_secs(30) {
            if let Ok(Some(_)) = c.try_wait() {
                return Some(t.elapsed());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.signal_child(&c, "KILL");
        let _ = c.wait();
        None
    }

    /// SIGKILL to the postmaster; returns once it is gone.
    pub fn kill9_postmaster(&self) {
        if let Some(pid) = self.postmaster_pid() {
            signal(pid, "KILL");
            wait_gone(pid);
        }
    }

    /// The last `lines` lines of the agent's log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Runs SQL through psql on this node; `None` when it fails.
    pub fn sql(&self, query: &str) -> Option<String> {
        psql(self.pg_port, query)
    }
}

/// The command line of `pid`, arguments joined by spaces; empty when it is gone.
pub fn cmdline(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        .unwrap_or_default()
}

/// Sends `sig` (`KILL`, `TERM`, `STOP`, ...) to `pid`; callers check the pid is theirs first.
pub fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .stderr(Stdio::null())
        .status();
}

/// Sends `sig` to `pid` only while its command line contains `needle`: a test signals the
/// process it started, never one that took over the number after it exited. Returns whether the
/// signal was sent.
pub fn signal_if_cmdline(pid: u32, needle: &str, sig: &str) -> bool {
    let ours = cmdline(pid).contains(needle);
    if ours {
        signal(pid, sig);
    }
    ours
}

fn wait_gone(pid: u32) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while process_alive(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The whole cluster; everything it started is stopped on drop.
pub struct LocalCluster {
    /// The cluster's `scope`.
    pub scope: String,
    /// The members, `node1` first.
    pub nodes: Vec<Node>,
    /// The (first) etcd member.
    pub etcd: EtcdProcess,
    /// The other members of a multi-member etcd ([`Options::etcd_members`]); empty for one.
    pub etcd_peers: Vec<EtcdProcess>,
    /// An observer's view of the cluster's keys.
    pub dcs: Arc<dyn Dcs>,
    /// The REST client (with the client certificate under [`Options::tls`]).
    pub http: reqwest::Client,
    /// The certificates of a cluster started with [`Options::tls`].
    pub tls: Option<Tls>,
    root: tempfile::TempDir,
}

/// Key password of [`Tls::encrypted_key`].
pub const TLS_KEY_PASSWORD: &str = "test-key-password";

/// A cluster's certificates ([`Options::tls`]): one CA; `files.client_cert` serves every REST API
/// and is the client certificate of agents, tests and patronictl.
pub struct Tls {
    /// The CA, server and client certificates and keys.
    pub files: TlsFiles,
    /// `files.client_key` as encrypted PKCS#8 (by the `openssl` program), password [`TLS_KEY_PASSWORD`].
    pub encrypted_key: PathBuf,
}

/// Encrypts a PEM key with `password` as operators do (`openssl pkcs8 -topk8`), for
/// `restapi.keyfile_password`.
pub fn encrypt_key(key: &Path, out: &Path, password: &str) {
    let done = Command::new("timeout")
        .args([
            "30",
            "openssl",
            "pkcs8",
            "-topk8",
            "-v2",
            "aes-256-cbc",
            "-in",
        ])
        .arg(key)
        .arg("-out")
        .arg(out)
        .arg("-passout")
        .arg(format!("pass:{password}"))
        .output()
        .expect("run openssl");
    assert!(
        done.status.success(),
        "openssl pkcs8: {}",
        String::from_utf8_lossy(&done.stderr)
    );
}

impl Tls {
    /// Generates the certificates in `dir`, readable by the agents' OS user.
    fn generate(dir: &Path) -> Tls {
        std::fs::create_dir_all(dir).expect("tls directory");
        let files = TlsFiles::generate(dir).expect("test certificates");
        let encrypted_key = dir.join("client-key.enc.pem");
        encrypt_key(&files.client_key, &encrypted_key, TLS_KEY_PASSWORD);
        let (uid, gid) = test_user();
        for entry in std::fs::read_dir(dir).expect("tls directory") {
            let path = entry.expect("tls file").path();
            std::os::unix::fs::chown(path, Some(uid), Some(gid)).expect("chown");
        }
        std::os::unix::fs::chown(dir, Some(uid), Some(gid)).expect("chown");
        Tls {
            files,
            encrypted_key,
        }
    }

    /// An HTTPS client trusting the CA, showing the client certificate (`cert`) or none.
    pub fn client(&self, cert: bool) -> reqwest::ClientBuilder {
        let ca = std::fs::read(&self.files.ca).expect("CA file");
        let mut b = reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(&ca).expect("CA"));
        if cert {
            let mut pem = std::fs::read(&self.files.client_cert).expect("client certificate");
            pem.extend(std::fs::read(&self.files.client_key).expect("client key"));
            b = b.identity(reqwest::Identity::from_pem(&pem).expect("client identity"));
        }
        b
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        // `PATRONI_TESTKIT_KEEP=1` keeps the directory (configurations, logs, data) for a post-mortem.
        if std::env::var_os("PATRONI_TESTKIT_KEEP").is_some_and(|v| v == "1") {
            self.root.disable_cleanup(true);
            eprintln!("kept {}", self.root.path().display());
        }
        for n in &mut self.nodes {
            n.kill9_agent();
        }
        for n in &self.nodes {
            n.kill9_fence();
            n.kill9_postmaster();
        }
    }
}

/// How [`LocalCluster::start`] builds a cluster; the default is three nodes, [`Profile::FAST`],
/// asynchronous replication, agents started as [`AgentCommand::this_program`].
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The cluster's `scope`; by default `e2e-TAG-PID`.
    pub scope: Option<String>,
    /// How agents are started; by default [`AgentCommand::this_program`].
    pub agent: Option<AgentCommand>,
    /// Lease timing.
    pub profile: Profile,
    /// `bootstrap.dcs.synchronous_mode: true`.
    pub synchronous_mode: bool,
    /// Extra `bootstrap.dcs` lines (indented four spaces).
    pub extra_dcs: String,
    /// Extra lines of the `bootstrap` section (indented two spaces), e.g. `method` and its section.
    pub extra_bootstrap: String,
    /// Extra local `postgresql.parameters` lines (indented four spaces); `{name}` and `{dir}`
    /// become each node's name and directory.
    pub extra_pg: String,
    /// How many etcd members to run (0 and 1 both mean one); every agent lists them all.
    pub etcd_members: usize,
    /// Extra lines of the local `postgresql` section (indented two spaces); `{name}` and `{dir}`
    /// become each node's name and directory.
    pub extra_postgresql: String,
    /// Put a [`proxy::Proxy`] on every link (see [`Links`]): each agent to each etcd member, and in
    /// front of each node's PostgreSQL and REST API at the addresses it publishes. Callers and the
    /// observer DCS still reach every server directly.
    pub proxies: bool,
    /// TLS everywhere: etcd serves `https` and wants client certificates; every REST API serves
    /// HTTPS only (encrypted key, `verify_client: required`, `allowlist: [127.0.0.1]`, extra
    /// headers `X-Test-Http` and `X-Test-Https`), and agents probe each other with certificates.
    pub tls: bool,
    /// Lines of the `tags` section (indented two spaces) for the named nodes.
    pub tags: Vec<(String, String)>,
    /// How many members to run; 0 means three.
    pub nodes: usize,
    /// Return once the agents run, without waiting for a primary (a standby cluster has none).
    pub no_wait: bool,
}

/// The addresses one node's configuration names.
struct Addresses<'a> {
    /// `host:port` of every etcd member, comma-separated (through proxies if any).
    etcd: &'a str,
    api: u16,
    api_connect: u16,
    pg: u16,
    pg_connect: u16,
}

/// The `restapi` and `etcd3` lines a cluster with [`Options::tls`] adds, and its `ctl` section.
fn tls_yaml(tls: Option<&Tls>) -> (String, String, String) {
    let Some(t) = tls else {
        return Default::default();
    };
    let f = &t.files;
    let restapi = format!(
        r#"  certfile: {cert}
  keyfile: {key}
  keyfile_password: {TLS_KEY_PASSWORD}
  cafile: {ca}
  verify_client: required
  allowlist: [127.0.0.1]
  allowlist_include_members: true
  http_extra_headers: {{X-Test-Http: plain}}
  https_extra_headers: {{X-Test-Https: secure}}
"#,
        cert = f.client_cert.display(),
        key = t.encrypted_key.display(),
        ca = f.ca.display(),
    );
    let etcd = format!(
        "  protocol: https\n  cacert: {}\n  cert: {}\n  key: {}\n",
        f.ca.display(),
        f.client_cert.display(),
        f.client_key.display()
    );
    // What patronictl and the agents' peer probes show and trust.
    let ctl = format!(
        "ctl:\n  cacert: {}\n  certfile: {}\n  keyfile: {}\n  keyfile_password: {TLS_KEY_PASSWORD}\n",
        f.ca.display(),
        f.client_cert.display(),
        t.encrypted_key.display()
    );
    (restapi, etcd, ctl)
}

/// One node's agent configuration.
fn yaml(
    scope: &str,
    name: &str,
    a: &Addresses<'_>,
    dir: &Path,
    opts: &Options,
    tls: Option<&Tls>,
) -> String {
    let (etcd, api, api_connect, pg, pg_connect) =
        (a.etcd, a.api, a.api_connect, a.pg, a.pg_connect);
    let Profile {
        ttl,
        loop_wait,
        retry_timeout,
        ..
    } = opts.profile;
    let sync = if opts.synchronous_mode {
        "    synchronous_mode: true\n"
    } else {
        ""
    };
    let extra_dcs = &opts.extra_dcs;
    let extra_pg = opts
        .extra_pg
        .replace("{name}", name)
        .replace("{dir}", &dir.display().to_string());
    let extra_bootstrap = &opts.extra_bootstrap;
    let extra_postgresql = opts
        .extra_postgresql
        .replace("{name}", name)
        .replace("{dir}", &dir.display().to_string());
    let (tls_restapi, tls_etcd, tls_ctl) = tls_yaml(tls);
    let tags: String = opts
        .tags
        .iter()
        .filter(|(node, _)| node == name)
        .map(|(_, lines)| format!("tags:\n{lines}"))
        .collect();
    format!(
        r#"scope: {scope}
name: {name}
restapi:
  listen: 127.0.0.1:{api}
  connect_address: 127.0.0.1:{api_connect}
{tls_restapi}etcd3:
  hosts: {etcd}
{tls_etcd}{tls_ctl}bootstrap:
  dcs:
    ttl: {ttl}
    loop_wait: {loop_wait}
    retry_timeout: {retry_timeout}
    maximum_lag_on_failover: 16777216
{sync}{extra_dcs}    postgresql:
      use_pg_rewind: true
      parameters:
        wal_keep_size: 64MB
        max_wal_senders: 10
        max_replication_slots: 10
        wal_log_hints: "on"
{extra_bootstrap}postgresql:
  listen: 127.0.0.1:{pg}
  connect_address: 127.0.0.1:{pg_connect}
  data_dir: {data}
  bin_dir: {bin}
  pg_ctl_timeout: 30
  authentication:
    superuser: {{username: postgres, password: "{pw}"}}
    replication: {{username: replicator, password: "{pw}"}}
  parameters:
    shared_buffers: 16MB
    fsync: "off"
    max_connections: 30
    max_wal_size: 256MB
    wal_retrieve_retry_interval: 500ms
{extra_pg}{extra_postgresql}log:
  level: INFO
{tags}"#,
        data = dir.join("data").display(),
        bin = pg_bin_dir().display(),
        pw = TEST_PASSWORD,
    )
}

impl LocalCluster {
    /// Starts etcd and the agents (`node1`, `node2`, ...) as `opts` says and, unless
    /// [`Options::no_wait`], waits for a primary and every other node streaming. `tag` names
    /// the temporary directory (and the default scope).
    pub async fn start(tag: &str, opts: Options) -> LocalCluster {
        let root = owned_temp_dir(&format!("patroni-e2e-{tag}-"));
        let tls = opts.tls.then(|| Tls::generate(&root.path().join("tls")));
        let (etcd, etcd_peers) = if let Some(t) = &tls {
            assert!(
                opts.etcd_members <= 1 && !opts.proxies,
                "TLS runs one etcd, no proxies"
            );
            let etcd = EtcdProcess::start_tls(t.files.clone())
                .await
                .expect("etcd over https");
            (etcd, Vec::new())
        } else if opts.etcd_members > 1 {
            let mut members = EtcdCluster::start(opts.etcd_members)
                .await
                .expect("etcd cluster")
                .members;
            let first = members.remove(0);
            (first, members)
        } else {
            (EtcdProcess::start().await.expect("etcd"), Vec::new())
        };
        let etcd_endpoints: Vec<String> = std::iter::once(&etcd)
            .chain(&etcd_peers)
            .map(EtcdProcess::endpoint)
            .collect();
        let scope = opts
            .scope
            .clone()
            .unwrap_or_else(|| format!("e2e-{tag}-{}", std::process::id()));
        let agent = opts
            .agent
            .clone()
            .unwrap_or_else(AgentCommand::this_program);
        let mut nodes = Vec::new();
        let count = if opts.nodes == 0 { 3 } else { opts.nodes };
        for i in 1..=count {
            let name = format!("node{i}");
            let dir = root.path().join(&name);
            std::fs::create_dir_all(&dir).expect("node directory");
            let (uid, gid) = test_user();
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).expect("chown");
            let api_port = free_port();
            let pg_port = free_port();
            let links = opts.proxies.then(|| {
                let local = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
                Links {
                    etcd: etcd_endpoints
                        .iter()
                        .map(|e| {
                            let addr = e.trim_start_matches("http://");
                            proxy::Proxy::tcp(addr.parse().expect("etcd address"))
                        })
                        .collect(),
                    pg: proxy::Proxy::postgres(local(pg_port)),
                    api: proxy::Proxy::tcp(local(api_port)),
                }
            });
            let etcd_hosts: Vec<String> = match &links {
                Some(l) => l.etcd.iter().map(proxy::Proxy::host_port).collect(),
                None => etcd_endpoints
                    .iter()
                    .map(|e| {
                        e.split_once("://")
                            .map_or(e.as_str(), |(_, a)| a)
                            .to_string()
                    })
                    .collect(),
            };
            let etcd_hosts = etcd_hosts.join(",");
            let addresses = Addresses {
                etcd: &etcd_hosts,
                api: api_port,
                api_connect: links.as_ref().map_or(api_port, |l| l.api.port()),
                pg: pg_port,
                pg_connect: links.as_ref().map_or(pg_port, |l| l.pg.port()),
            };
            let config = dir.join("patroni.yml");
            std::fs::write(
                &config,
                yaml(&scope, &name, &addresses, &dir, &opts, tls.as_ref()),
            )
            .expect("agent configuration");
            nodes.push(Node {
                log: root.path().join(format!("node{i}.log")),
                dir,
                config,
                api_port,
                pg_port,
                nostream: opts
                    .tags
                    .iter()
                    .any(|(node, lines)| *node == name && lines.contains("nostream: true")),
                name,
                links,
                tls: tls.is_some(),
                agent: agent.clone(),
                child: None,
            });
        }
        let etcd_config = if tls.is_some() {
            etcd.config()
        } else {
            patroni_etcd::Etcd3Config::with_hosts(etcd_endpoints)
        };
        let dcs = EtcdDcs::new(
            &etcd_config,
            EtcdIdentity::new(scope.clone(), "e2e-observer"),
        )
        .expect("observer DCS");
        let mut c = LocalCluster {
            scope,
            nodes,
            etcd,
            etcd_peers,
            dcs: Arc::new(dcs),
            http: match &tls {
                Some(t) => t.client(true).build().expect("HTTPS client"),
                None => reqwest::Client::new(),
            },
            tls,
            root,
        };
        for n in &mut c.nodes {
            n.start_agent();
        }
        if !opts.no_wait {
            c.wait_healthy(Duration::from_secs(90)).await;
        }
        c
    }

    /// The cluster's temporary directory (removed on drop).
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// The node named `name`; panics when there is none.
    pub fn node(&self, name: &str) -> &Node {
        self.nodes
            .iter()
            .find(|n| n.name == name)
            .expect("a node of that name")
    }

    /// The name of the one member that is none of `names`.
    pub fn other_than(&self, names: &[&str]) -> String {
        self.nodes
            .iter()
            .find(|n| !names.contains(&n.name.as_str()))
            .expect("a member outside the names")
            .name
            .clone()
    }

    /// The node named `name`, to start or stop its processes; panics when there is none.
    pub fn node_mut(&mut self, name: &str) -> &mut Node {
        self.nodes
            .iter_mut()
            .find(|n| n.name == name)
            .expect("a node of that name")
    }

    /// The cluster as the DCS holds it now.
    pub async fn view(&self) -> Option<Cluster> {
        self.dcs.load().await.ok()
    }

    /// The holder of the leader key.
    pub async fn leader(&self) -> Option<String> {
        self.view().await?.leader.map(|l| l.name)
    }

    /// GET a REST path: status code and JSON body (Null when not JSON).
    pub async fn get(&self, node: &str, path: &str) -> Option<(u16, Value)> {
        let r = self
            .http
            .get(format!("{}{path}", self.node(node).api()))
            .timeout(Duration::from_secs(3))
            .send()
            .await
            .ok()?;
        let code = r.status().as_u16();
        Some((code, r.json().await.unwrap_or(Value::Null)))
    }

    /// POST a JSON body to a REST path: status code and response text.
    pub async fn post(&self, node: &str, path: &str, body: Value) -> Option<(u16, String)> {
        let r = self
            .http
            .post(format!("{}{path}", self.node(node).api()))
            .timeout(Duration::from_secs(60))
            .json(&body)
            .send()
            .await
            .ok()?;
        let code = r.status().as_u16();
        Some((code, r.text().await.unwrap_or_default()))
    }

    /// PATCH `/config` with `body`: the status code.
    pub async fn patch_config(&self, node: &str, body: Value) -> Option<u16> {
        let r = self
            .http
            .patch(format!("{}/config", self.node(node).api()))
            .timeout(Duration::from_secs(10))
            .json(&body)
            .send()
            .await
            .ok()?;
        Some(r.status().as_u16())
    }

    /// Whether `node` answers `/primary` with 200.
    pub async fn is_primary(&self, node: &str) -> bool {
        matches!(self.get(node, "/primary").await, Some((200, _)))
    }

    /// Whether `node` is a running standby streaming from someone.
    pub async fn is_streaming(&self, node: &str) -> bool {
        match self.get(node, "/patroni").await {
            Some((200, doc)) => doc["role"] == "replica" && doc["replication_state"] == "streaming",
            _ => false,
        }
    }

    /// Whether `node` is a running standby, streaming or not.
    pub async fn is_running_replica(&self, node: &str) -> bool {
        match self.get(node, "/patroni").await {
            Some((200, doc)) => doc["role"] == "replica" && doc["state"] == "running",
            _ => false,
        }
    }

    /// Waits until `node` is a running standby streaming from someone; panics with the logs.
    pub async fn wait_streaming(&self, node: &str, what: &str, timeout: Duration) {
        self.wait(what, timeout, || async {
            self.is_streaming(node).await.then_some(())
        })
        .await
    }

    /// The node that answers `/primary` with 200, if exactly one does.
    pub async fn primary(&self) -> Option<String> {
        let mut found = Vec::new();
        for n in &self.nodes {
            if self.is_primary(&n.name).await {
                found.push(n.name.clone());
            }
        }
        (found.len() == 1).then(|| found.remove(0))
    }

    /// Polls `f` every 100 ms until it yields a value or `timeout` passes; panics with the agents' logs.
    pub async fn wait<T, F, Fut>(&self, what: &str, timeout: Duration, mut f: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(v) = f().await {
                return v;
            }
            if Instant::now() > deadline {
                self.dump();
                panic!("timed out after {timeout:?} waiting for {what}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Prints each agent's recent log, for failed assertions.
    pub fn dump(&self) {
        for n in &self.nodes {
            eprintln!(
                "===== {} (api {}, pg {}) =====\n{}",
                n.name,
                n.api_port,
                n.pg_port,
                n.log_tail(40)
            );
            let pg_log = std::fs::read_to_string(n.dir.join("data.log")).unwrap_or_default();
            let lines: Vec<&str> = pg_log.lines().collect();
            eprintln!(
                "----- {} server log -----\n{}",
                n.name,
                lines[lines.len().saturating_sub(15)..].join("\n")
            );
        }
    }

    /// Whether there is one primary and every other node whose agent runs streams (a `nostream`
    /// one runs as a standby): the primary's name.
    pub async fn healthy(&self) -> Option<String> {
        let p = self.primary().await?;
        for n in &self.nodes {
            if n.name == p || n.agent_pid().is_none() {
                continue;
            }
            let ok = if n.nostream {
                self.is_running_replica(&n.name).await
            } else {
                self.is_streaming(&n.name).await
            };
            if !ok {
                return None;
            }
        }
        Some(p)
    }

    /// Waits for [`healthy`](Self::healthy); returns the primary.
    pub async fn wait_healthy(&self, timeout: Duration) -> String {
        self.wait("a primary and streaming replicas", timeout, || {
            self.healthy()
        })
        .await
    }

    /// Waits until some node other than `old` is the primary; returns it.
    pub async fn wait_new_primary(&self, old: &str, timeout: Duration) -> String {
        self.wait("a new primary", timeout, || async {
            self.primary().await.filter(|p| p != old)
        })
        .await
    }

    /// Creates a table and writes `n` rows through the primary; returns the count it reports.
    pub fn write_rows(&self, primary: &str, table: &str, n: u32) -> String {
        let node = self.node(primary);
        node.sql(&format!("CREATE TABLE IF NOT EXISTS {table}(i int)"))
            .expect("create table");
        node.sql(&format!(
            "INSERT INTO {table} SELECT generate_series(1, {n})"
        ))
        .expect("insert");
        node.sql(&format!("SELECT count(*) FROM {table}"))
            .expect("count")
    }

    /// Every node's name and PostgreSQL port, for [`writer::Writer::per_node`].
    pub fn pg_ports(&self) -> Vec<(String, u16)> {
        self.nodes
            .iter()
            .map(|n| (n.name.clone(), n.pg_port))
            .collect()
    }
}

/// Prints a measured figure in one greppable format.
pub fn report(scenario: &str, what: &str, ms: u128) {
    println!("MEASURED {scenario}: {what} in {ms} ms");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_process_whose_command_line_matches_is_signalled() {
        /// Stops the child on every path out of the test, a failed assertion included.
        struct Reaped(Child);
        impl Drop for Reaped {
            fn drop(&mut self) {
                let _ = self.0.kill();
                let _ = self.0.wait();
            }
        }
        let mut child = Reaped(
            Command::new("sleep")
                .arg("30")
                .spawn()
                .expect("start sleep"),
        );
        let pid = child.0.id();
        assert!(!signal_if_cmdline(pid, "no-such-program", "KILL"));
        assert!(
            process_alive(pid),
            "a mismatched command line must not be signalled"
        );
        // The new command line shows only once exec has set it up, a moment after spawn returns.
        let deadline = Instant::now() + Duration::from_secs(5);
        while !cmdline(pid).contains("sleep") && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(
            signal_if_cmdline(pid, "sleep", "KILL"),
            "{:?}",
            cmdline(pid)
        );
        let status = child.0.wait().expect("wait for sleep");
        assert!(!status.success(), "killed, not exited");
    }
}
