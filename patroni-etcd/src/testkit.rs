//! Real etcd servers for tests: one member or a three-member cluster on free loopback ports.
//!
//! Each server runs `/usr/bin/etcd` with its own temporary data directory and is stopped by PID
//! when its [`EtcdProcess`] is dropped, also when a test panics. Outages are real: [`EtcdProcess::pause`]
//! freezes the process with SIGSTOP, [`EtcdProcess::kill`] ends it with SIGKILL.

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use etcd_client::{Client, ConnectOptions};

use crate::Etcd3Config;

/// The etcd binary the fixture runs.
pub const ETCD_BIN: &str = "/usr/bin/etcd";

/// How long a fresh or restarted server may take to serve a linearizable read.
const HEALTHY_WITHIN: Duration = Duration::from_secs(30);

static TOKEN: AtomicU64 = AtomicU64::new(0);

/// Why an etcd fixture could not be set up; the message includes the server log's tail.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("etcd test fixture: {0}")]
pub struct FixtureError(pub String);

fn free_ports(n: usize) -> Result<Vec<u16>, FixtureError> {
    // Hold every listener until all are chosen so the ports are distinct.
    let listeners = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| FixtureError(format!("no free loopback port: {e}")))?;
    listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect::<Result<_, _>>()
        .map_err(|e| FixtureError(format!("no free loopback port: {e}")))
}

/// The port pair of one member.
#[derive(Debug, Clone)]
struct Spec {
    name: String,
    client_port: u16,
    peer_port: u16,
    initial_cluster: String,
    token: String,
    tls: Option<TlsFiles>,
}

/// PEM files for an etcd that serves `https` and requires client certificates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The CA that signed both certificates below.
    pub ca: PathBuf,
    /// The server certificate, valid for `127.0.0.1`.
    pub server_cert: PathBuf,
    /// The server certificate's key.
    pub server_key: PathBuf,
    /// A client certificate signed by `ca`.
    pub client_cert: PathBuf,
    /// The client certificate's key.
    pub client_key: PathBuf,
}

impl TlsFiles {
    /// Writes a throwaway CA into `dir` with a server and a client certificate, each for
    /// `127.0.0.1` and `localhost` and good for both TLS ends (so one can also serve a REST API).
    pub fn generate(dir: &Path) -> Result<TlsFiles, FixtureError> {
        use rcgen::{
            BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose,
            IsCa, KeyPair, SanType,
        };
        let err = |e: &dyn std::fmt::Display| FixtureError(format!("test certificates: {e}"));
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(|e| err(&e))?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "patroni-rs test CA");
        let ca_key = KeyPair::generate().map_err(|e| err(&e))?;
        let ca = CertifiedIssuer::self_signed(ca_params, ca_key).map_err(|e| err(&e))?;
        let leaf = |name: &str| -> Result<(String, String), FixtureError> {
            let mut p =
                CertificateParams::new(vec!["localhost".to_string()]).map_err(|e| err(&e))?;
            p.subject_alt_names
                .push(SanType::IpAddress([127, 0, 0, 1].into()));
            p.distinguished_name.push(DnType::CommonName, name);
            p.extended_key_usages = vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ];
            let key = KeyPair::generate().map_err(|e| err(&e))?;
            let cert = p.signed_by(&key, &ca).map_err(|e| err(&e))?;
            Ok((cert.pem(), key.serialize_pem()))
        };
        let (server_cert, server_key) = leaf("etcd")?;
        let (client_cert, client_key) = leaf("patroni")?;
        let files = TlsFiles {
            ca: dir.join("ca.pem"),
            server_cert: dir.join("server.pem"),
            server_key: dir.join("server-key.pem"),
            client_cert: dir.join("client.pem"),
            client_key: dir.join("client-key.pem"),
        };
        for (path, pem) in [
            (&files.ca, ca.pem()),
            (&files.server_cert, server_cert),
            (&files.server_key, server_key),
            (&files.client_cert, client_cert),
            (&files.client_key, client_key),
        ] {
            std::fs::write(path, pem)
                .map_err(|e| FixtureError(format!("cannot write {}: {e}", path.display())))?;
        }
        Ok(files)
    }
}

/// One running etcd server, stopped by PID on drop.
pub struct EtcdProcess {
    spec: Spec,
    data_dir: PathBuf,
    log: PathBuf,
    child: Option<Child>,
    // Declared last: removed after the process is gone.
    _dir: tempfile::TempDir,
}

impl EtcdProcess {
    /// Starts a single-member etcd on free loopback ports and waits until it serves reads.
    pub async fn start() -> Result<Self, FixtureError> {
        let mut last = FixtureError("not attempted".into());
        // A port chosen free may be taken by a parallel test before etcd binds it: try again.
        for _ in 0..3 {
            match Self::try_start_single(None).await {
                Ok(p) => return Ok(p),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// Starts a single-member etcd serving `https` with client-certificate authentication.
    #[cfg(feature = "tls")]
    pub async fn start_tls(files: TlsFiles) -> Result<Self, FixtureError> {
        let mut last = FixtureError("not attempted".into());
        for _ in 0..3 {
            match Self::try_start_single(Some(files.clone())).await {
                Ok(p) => return Ok(p),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    async fn try_start_single(tls: Option<TlsFiles>) -> Result<Self, FixtureError> {
        let ports = free_ports(2)?;
        // A unique member name lets the health check tell our server from another test's that
        // grabbed the same port first.
        let token = unique_token();
        let name = format!("{token}-0");
        let spec = Spec {
            initial_cluster: format!("{name}=http://127.0.0.1:{}", ports[1]),
            name,
            client_port: ports[0],
            peer_port: ports[1],
            token,
            tls,
        };
        let mut p = Self::spawn(spec)?;
        p.wait_healthy(&[p.endpoint()]).await?;
        Ok(p)
    }

    fn spawn(spec: Spec) -> Result<Self, FixtureError> {
        let dir = tempfile::Builder::new()
            .prefix("patroni-etcd-test-")
            .tempdir()
            .map_err(|e| FixtureError(format!("cannot create a temp dir: {e}")))?;
        let mut p = EtcdProcess {
            data_dir: dir.path().join("data"),
            log: dir.path().join("etcd.log"),
            spec,
            child: None,
            _dir: dir,
        };
        p.launch()?;
        Ok(p)
    }

    fn launch(&mut self) -> Result<(), FixtureError> {
        if !Path::new(ETCD_BIN).exists() {
            return Err(FixtureError(format!(
                "{ETCD_BIN} is not installed (apt-get install etcd-server)"
            )));
        }
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|e| FixtureError(format!("cannot open {}: {e}", self.log.display())))?;
        let err = log
            .try_clone()
            .map_err(|e| FixtureError(format!("cannot clone log handle: {e}")))?;
        let s = &self.spec;
        let client = self.endpoint();
        let peer = format!("http://127.0.0.1:{}", s.peer_port);
        let mut cmd = Command::new(ETCD_BIN);
        if let Some(t) = &s.tls {
            cmd.arg("--cert-file")
                .arg(&t.server_cert)
                .arg("--key-file")
                .arg(&t.server_key)
                .arg("--trusted-ca-file")
                .arg(&t.ca)
                .arg("--client-cert-auth");
        }
        let child = cmd
            .args(["--name", &s.name])
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &s.initial_cluster])
            .args(["--initial-cluster-token", &s.token])
            .args(["--initial-cluster-state", "new"])
            .args(["--log-level", "warn"])
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .map_err(|e| FixtureError(format!("cannot run {ETCD_BIN}: {e}")))?;
        self.child = Some(child);
        Ok(())
    }

    async fn wait_healthy(&mut self, endpoints: &[String]) -> Result<(), FixtureError> {
        let deadline = Instant::now() + HEALTHY_WITHIN;
        let mut last = String::from("not tried");
        while Instant::now() < deadline {
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    self.child = None;
                    return Err(FixtureError(format!(
                        "etcd {} exited ({status}) while starting:\n{}",
                        self.spec.name,
                        self.log_tail()
                    )));
                }
            }
            let probe = read_once(endpoints, self.spec.tls.as_ref(), &self.spec.name);
            match tokio::time::timeout(Duration::from_secs(2), probe).await {
                Ok(Ok(())) => return Ok(()),
                Ok(Err(e)) => last = e.to_string(),
                Err(_) => last = "no answer within 2 s".into(),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(FixtureError(format!(
            "etcd {} not healthy within {HEALTHY_WITHIN:?} ({last}):\n{}",
            self.spec.name,
            self.log_tail()
        )))
    }

    /// The last lines of the server's log, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// The client URL, `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        let scheme = if self.spec.tls.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://127.0.0.1:{}", self.spec.client_port)
    }

    /// An `etcd3:` configuration pointing at this server (with the client certificate for `https`).
    pub fn config(&self) -> Etcd3Config {
        let mut c = Etcd3Config::with_hosts([self.endpoint()]);
        if let Some(t) = &self.spec.tls {
            c.cacert = Some(t.ca.clone());
            c.cert = Some(t.client_cert.clone());
            c.key = Some(t.client_key.clone());
        }
        c
    }

    /// The server's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    fn signal(&self, sig: i32) -> Result<(), FixtureError> {
        let pid = self
            .pid()
            .ok_or_else(|| FixtureError(format!("etcd {} is not running", self.spec.name)))?;
        // SAFETY: kill(2) with the PID of a child we have not reaped yet: it cannot hit another process.
        let rc = unsafe { libc::kill(pid as libc::pid_t, sig) };
        if rc != 0 {
            return Err(FixtureError(format!(
                "kill({pid}, {sig}) failed: {}",
                std::io::Error::last_os_error()
            )));
        }
        Ok(())
    }

    /// Freezes the server (SIGSTOP): connections stay open but nothing answers, like a hung node.
    pub fn pause(&self) -> Result<(), FixtureError> {
        self.signal(libc::SIGSTOP)
    }

    /// Lets a paused server run again (SIGCONT).
    pub fn resume(&self) -> Result<(), FixtureError> {
        self.signal(libc::SIGCONT)
    }

    /// Ends the server at once (SIGKILL) and reaps it; its data directory is kept for [`restart`](Self::restart).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Kills the server if it runs, starts it again on the same ports and data, and waits until it serves reads.
    ///
    /// For a member of an [`EtcdCluster`] the wait needs a quorum, so restart it while the others run.
    pub async fn restart(&mut self) -> Result<(), FixtureError> {
        self.kill();
        self.launch()?;
        let ep = self.endpoint();
        self.wait_healthy(&[ep]).await
    }

    /// Turns on authentication with a `root` user and `user` (granted the root role), both with `password`.
    pub async fn enable_auth(&self, user: &str, password: &str) -> Result<(), FixtureError> {
        enable_auth(&[self.endpoint()], user, password).await
    }
}

impl Drop for EtcdProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

fn unique_token() -> String {
    format!(
        "patroni-test-{}-{}",
        std::process::id(),
        TOKEN.fetch_add(1, Ordering::Relaxed)
    )
}

/// A plain etcd client for tests that write or inspect keys directly, bypassing the adapter.
pub async fn raw_client(
    endpoints: &[String],
    auth: Option<(&str, &str)>,
) -> Result<Client, etcd_client::Error> {
    let mut opts = ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(2))
        .with_timeout(Duration::from_secs(5));
    if let Some((u, p)) = auth {
        opts = opts.with_user(u, p);
    }
    Client::connect(endpoints, Some(opts)).await
}

/// A linearizable read succeeds, and the cluster that answered has a member named `ours`.
async fn read_once(
    endpoints: &[String],
    tls: Option<&TlsFiles>,
    ours: &str,
) -> Result<(), etcd_client::Error> {
    let mut c = match tls {
        None => raw_client(endpoints, None).await?,
        Some(t) => tls_client(endpoints, t).await?,
    };
    c.get("/patroni-testkit-health", None).await?;
    let members = c.member_list().await?;
    if members.members().iter().any(|m| m.name() == ours) {
        Ok(())
    } else {
        Err(etcd_client::Error::InvalidArgs(format!(
            "the server on this port is another test's etcd, not {ours}"
        )))
    }
}

#[cfg(feature = "tls")]
async fn tls_client(endpoints: &[String], t: &TlsFiles) -> Result<Client, etcd_client::Error> {
    use etcd_client::{Certificate, Identity, TlsOptions};
    let read = |p: &Path| std::fs::read(p).map_err(etcd_client::Error::IoError);
    let tls = TlsOptions::new()
        .ca_certificate(Certificate::from_pem(read(&t.ca)?))
        .identity(Identity::from_pem(
            read(&t.client_cert)?,
            read(&t.client_key)?,
        ));
    let opts = ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(2))
        .with_timeout(Duration::from_secs(5))
        .with_tls(tls);
    Client::connect(endpoints, Some(opts)).await
}

#[cfg(not(feature = "tls"))]
async fn tls_client(_: &[String], _: &TlsFiles) -> Result<Client, etcd_client::Error> {
    Err(etcd_client::Error::InvalidArgs(
        "https needs the `tls` feature".into(),
    ))
}

async fn enable_auth(endpoints: &[String], user: &str, password: &str) -> Result<(), FixtureError> {
    let fail = |what: &str, e: etcd_client::Error| FixtureError(format!("{what}: {e}"));
    let mut c = raw_client(endpoints, None)
        .await
        .map_err(|e| fail("connect", e))?;
    c.user_add("root", password, None)
        .await
        .map_err(|e| fail("add user root", e))?;
    c.user_grant_role("root", "root")
        .await
        .map_err(|e| fail("grant root", e))?;
    if user != "root" {
        c.user_add(user, password, None)
            .await
            .map_err(|e| fail("add user", e))?;
        c.user_grant_role(user, "root")
            .await
            .map_err(|e| fail("grant role", e))?;
    }
    c.auth_enable().await.map_err(|e| fail("enable auth", e))?;
    Ok(())
}

/// A three-member (or `n`-member) etcd cluster on loopback, each member stopped by PID on drop.
pub struct EtcdCluster {
    /// The members, in start order.
    pub members: Vec<EtcdProcess>,
}

impl EtcdCluster {
    /// Starts `n` members that form one cluster, and waits until it serves linearizable reads.
    pub async fn start(n: usize) -> Result<Self, FixtureError> {
        let mut last = FixtureError("not attempted".into());
        for _ in 0..3 {
            match Self::try_start(n).await {
                Ok(c) => return Ok(c),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    async fn try_start(n: usize) -> Result<Self, FixtureError> {
        let ports = free_ports(2 * n)?;
        let token = unique_token();
        let initial_cluster = (0..n)
            .map(|i| format!("{token}-{i}=http://127.0.0.1:{}", ports[2 * i + 1]))
            .collect::<Vec<_>>()
            .join(",");
        let mut members = Vec::new();
        for i in 0..n {
            members.push(EtcdProcess::spawn(Spec {
                name: format!("{token}-{i}"),
                client_port: ports[2 * i],
                peer_port: ports[2 * i + 1],
                initial_cluster: initial_cluster.clone(),
                token: token.clone(),
                tls: None,
            })?);
        }
        let mut cluster = EtcdCluster { members };
        let eps = cluster.endpoints();
        for m in &mut cluster.members {
            m.wait_healthy(&eps).await?;
        }
        Ok(cluster)
    }

    /// Every member's client URL.
    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(EtcdProcess::endpoint).collect()
    }

    /// An `etcd3:` configuration listing every member.
    pub fn config(&self) -> Etcd3Config {
        Etcd3Config::with_hosts(self.endpoints())
    }

    /// Turns on authentication cluster-wide (see [`EtcdProcess::enable_auth`]).
    pub async fn enable_auth(&self, user: &str, password: &str) -> Result<(), FixtureError> {
        enable_auth(&self.endpoints(), user, password).await
    }
}
