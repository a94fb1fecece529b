//! How to reach etcd (Patroni's `etcd3:` YAML section) and who we are in the cluster.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use patroni_core::Endpoint;
use serde::{Deserialize, Deserializer};

/// Why an [`EtcdDcs`](crate::EtcdDcs) could not be built: the settings themselves are wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EtcdError {
    /// A setting is missing, malformed or contradicts another; the message names it.
    #[error("etcd3 configuration: {0}")]
    Config(String),
    /// A TLS file could not be read or TLS support was not compiled in.
    #[error("etcd3 TLS: {0}")]
    Tls(String),
}

/// etcd's client port, which Patroni assumes for an endpoint written without one.
const DEFAULT_PORT: u16 = 2379;

/// Patroni's `etcd3:` section: where etcd listens and how to authenticate.
///
/// Unknown keys (`srv`, `proxy`, ...) are accepted and ignored so an existing Patroni file loads.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Etcd3Config {
    /// One endpoint as `host[:port]`, used when neither `hosts` nor `url` is given.
    pub host: Option<String>,
    /// The port of endpoints written without one; Patroni's default, etcd's client port 2379,
    /// when unset.
    pub port: Option<u16>,
    /// Several endpoints, as a YAML list or one comma-separated string (`"a:2379,b:2379"`); tried in rotation.
    #[serde(deserialize_with = "list_or_commas")]
    pub hosts: Vec<String>,
    /// One endpoint as a full URL (`http://host:2379`), used when `hosts` is empty.
    pub url: Option<String>,
    /// User for etcd authentication (Patroni also accepts `user`).
    #[serde(alias = "user")]
    pub username: Option<String>,
    /// Password for `username`.
    pub password: Option<String>,
    /// CA certificate (PEM) that signed the etcd servers' certificates; implies `https`.
    pub cacert: Option<PathBuf>,
    /// Client certificate (PEM) for mutual TLS; needs `key`.
    pub cert: Option<PathBuf>,
    /// Private key (PEM) of `cert`.
    pub key: Option<PathBuf>,
    /// `http` or `https`, applied to endpoints written without a scheme; default `http` (`https` with a `cacert`).
    pub protocol: Option<String>,
}

impl fmt::Debug for Etcd3Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Etcd3Config")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("hosts", &self.hosts)
            .field("url", &self.url)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("cacert", &self.cacert)
            .field("cert", &self.cert)
            .field("key", &self.key)
            .field("protocol", &self.protocol)
            .finish()
    }
}

fn list_or_commas<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        List(Vec<String>),
        Text(String),
    }
    Ok(match Option::<Raw>::deserialize(d)? {
        None => Vec::new(),
        Some(Raw::List(v)) => v,
        Some(Raw::Text(t)) => t.split(',').map(str::to_string).collect(),
    })
}

impl Etcd3Config {
    /// A configuration for the given `host:port` endpoints, without authentication or TLS.
    pub fn with_hosts<I: IntoIterator<Item = S>, S: Into<String>>(hosts: I) -> Self {
        Etcd3Config {
            hosts: hosts.into_iter().map(Into::into).collect(),
            ..Default::default()
        }
    }

    /// The port of an endpoint written without one.
    fn default_port(&self) -> Result<u16, EtcdError> {
        match self.port {
            Some(0) => Err(EtcdError::Config(
                "port 0: expected a port from 1 to 65535".into(),
            )),
            Some(p) => Ok(p),
            None => Ok(DEFAULT_PORT),
        }
    }

    fn protocol(&self) -> Result<&str, EtcdError> {
        match self.protocol.as_deref().map(str::trim) {
            Some(p) if p.eq_ignore_ascii_case("http") => Ok("http"),
            Some(p) if p.eq_ignore_ascii_case("https") => Ok("https"),
            Some(other) => Err(EtcdError::Config(format!(
                "protocol {other:?}: expected http or https"
            ))),
            None if self.cacert.is_some() || self.cert.is_some() => Ok("https"),
            None => Ok("http"),
        }
    }

    /// The endpoint URLs to rotate over: `hosts`, else `url`, else `host`.
    ///
    /// There is no default: an agent with no endpoint configured (a missing `etcd3` section, an
    /// empty `PATRONI_ETCD3_HOSTS`) must not join whatever etcd happens to listen on
    /// `127.0.0.1:2379`, which may be another cluster's.
    pub fn endpoints(&self) -> Result<Vec<String>, EtcdError> {
        let protocol = self.protocol()?;
        let raw: Vec<String> = if self.hosts.iter().any(|h| !h.trim().is_empty()) {
            self.hosts.clone()
        } else if let Some(u) = self.url.as_ref().filter(|u| !u.trim().is_empty()) {
            vec![u.clone()]
        } else if let Some(h) = self.host.as_ref().filter(|h| !h.trim().is_empty()) {
            vec![h.clone()]
        } else {
            return Err(EtcdError::Config(
                "no etcd endpoint configured: set etcd3.hosts (or etcd3.url, etcd3.host, PATRONI_ETCD3_HOSTS)"
                    .into(),
            ));
        };
        let mut out = Vec::new();
        for h in raw.iter().map(|h| h.trim()).filter(|h| !h.is_empty()) {
            let (scheme, rest) = h.split_once("://").unwrap_or((protocol, h));
            // `http://host:2379/` is how a URL is often written; any other path is refused.
            let rest = rest.strip_suffix('/').unwrap_or(rest);
            if scheme != "http" && scheme != "https" {
                return Err(EtcdError::Config(format!(
                    "endpoint {h:?}: scheme {scheme:?} is neither http nor https"
                )));
            }
            if rest.is_empty() {
                return Err(EtcdError::Config(format!("endpoint {h:?} has no host")));
            }
            if rest.contains(['/', '?']) || rest.contains(char::is_whitespace) {
                return Err(EtcdError::Config(format!(
                    "endpoint {h:?}: expected host:port without a path"
                )));
            }
            let url = format!("{scheme}://{rest}");
            // A default of 0, a port `Endpoint` never reads from a URL, marks a URL that names
            // none: it gets `port` (2379 unless set), as Patroni gives it.
            match Endpoint::from_url(&url, 0) {
                Ok(e) if e.port == 0 => out.push(format!("{url}:{}", self.default_port()?)),
                Ok(_) => out.push(url),
                Err(_) => {
                    return Err(EtcdError::Config(format!(
                    "endpoint {h:?}: expected [scheme://]host[:port] with a port from 1 to 65535"
                )))
                }
            }
        }
        if out.is_empty() {
            return Err(EtcdError::Config("no etcd endpoint given".into()));
        }
        Ok(out)
    }

    /// The username/password pair, if authentication is configured; a user without a password is an error.
    pub fn credentials(&self) -> Result<Option<(String, String)>, EtcdError> {
        match (&self.username, &self.password) {
            (Some(u), Some(p)) if !u.is_empty() => Ok(Some((u.clone(), p.clone()))),
            (Some(u), None) if !u.is_empty() => Err(EtcdError::Config(format!(
                "username {u:?} is set but password is not"
            ))),
            (None, Some(_)) => Err(EtcdError::Config(
                "password is set but username is not".into(),
            )),
            _ => Ok(None),
        }
    }
}

/// Who this client is in the cluster and the timing it must keep: Patroni's top-level settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdIdentity {
    /// Root of all clusters' keys; Patroni's default is `/service`.
    pub namespace: String,
    /// The cluster name (`scope`).
    pub scope: String,
    /// This member's unique name.
    pub name: String,
    /// Lease of the leader and member keys.
    pub ttl: Duration,
    /// Bound on every call, across all endpoints.
    pub retry_timeout: Duration,
    /// The HA loop period, used to keep a replica's lease alive no more often than needed.
    pub loop_wait: Duration,
}

impl EtcdIdentity {
    /// Member `name` of cluster `scope` with Patroni's defaults (`/service`, ttl 30 s, loop_wait 10 s, retry_timeout 10 s).
    pub fn new(scope: impl Into<String>, name: impl Into<String>) -> Self {
        EtcdIdentity {
            namespace: "/service".into(),
            scope: scope.into(),
            name: name.into(),
            ttl: Duration::from_secs(30),
            retry_timeout: Duration::from_secs(10),
            loop_wait: Duration::from_secs(10),
        }
    }

    /// The cluster prefix, `/<namespace>/<scope>/`, with slashes normalised.
    pub fn prefix(&self) -> String {
        let ns = self.namespace.trim_matches('/');
        if ns.is_empty() {
            format!("/{}/", self.scope)
        } else {
            format!("/{ns}/{}/", self.scope)
        }
    }

    pub(crate) fn validate(&self) -> Result<(), EtcdError> {
        for (what, v) in [("scope", &self.scope), ("name", &self.name)] {
            if v.is_empty() || v.contains('/') {
                return Err(EtcdError::Config(format!(
                    "{what} {v:?} must be non-empty and contain no '/'"
                )));
            }
        }
        if self.ttl < Duration::from_secs(1) || self.retry_timeout.is_zero() {
            return Err(EtcdError::Config(format!(
                "ttl ({:?}) must be at least 1 s and retry_timeout ({:?}) positive",
                self.ttl, self.retry_timeout
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Etcd3Config {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn hosts_as_list_or_commas() {
        let a = parse(r#"{"hosts":"10.0.0.1:2379, 10.0.0.2:2379"}"#);
        let b = parse(r#"{"hosts":["10.0.0.1:2379","10.0.0.2:2379"],"srv":"ignored"}"#);
        let want = ["http://10.0.0.1:2379", "http://10.0.0.2:2379"];
        assert_eq!(a.endpoints().unwrap(), want);
        assert_eq!(b.endpoints().unwrap(), want);
    }

    #[test]
    fn precedence_protocol_and_defaults() {
        for nothing in [
            "{}",
            r#"{"hosts":""}"#,
            r#"{"hosts":",,,"}"#,
            r#"{"url":" "}"#,
        ] {
            let e = parse(nothing).endpoints().unwrap_err();
            assert!(e.to_string().contains("etcd3.hosts"), "{nothing}: {e}");
        }
        assert_eq!(
            parse(r#"{"host":"h:1","url":"https://u:2"}"#)
                .endpoints()
                .unwrap(),
            ["https://u:2"]
        );
        assert_eq!(
            parse(r#"{"host":"h:1","protocol":"HTTPS"}"#)
                .endpoints()
                .unwrap(),
            ["https://h:1"]
        );
        assert_eq!(
            parse(r#"{"host":"h:1","cacert":"/ca.pem"}"#)
                .endpoints()
                .unwrap(),
            ["https://h:1"]
        );
    }

    #[test]
    fn bad_settings_are_named() {
        let e = parse(r#"{"protocol":"ftp"}"#).endpoints().unwrap_err();
        assert!(e.to_string().contains("ftp"), "{e}");
        let e = parse(r#"{"url":"gopher://x:1"}"#).endpoints().unwrap_err();
        assert!(e.to_string().contains("gopher"), "{e}");
        let e = parse(r#"{"host":"x:1/v3"}"#).endpoints().unwrap_err();
        assert!(e.to_string().contains("path"), "{e}");
        assert!(
            parse(r#"{"hosts":" , "}"#).endpoints().is_err(),
            "blank hosts do not fall back to 127.0.0.1:2379"
        );
        for bad in [
            "h:",
            "h:0",
            "h:99999",
            "h:port",
            ":2379",
            "h:2379?x",
            "h:2379/v3",
        ] {
            let e = parse(&format!(r#"{{"hosts":"{bad}"}}"#))
                .endpoints()
                .unwrap_err();
            assert!(e.to_string().contains("expected"), "{bad}: {e}");
        }
        assert_eq!(
            parse(r#"{"hosts":"[::1]:2379"}"#).endpoints().unwrap(),
            ["http://[::1]:2379"]
        );
        assert_eq!(
            parse(r#"{"url":"https://u:p@[::1]:2379"}"#)
                .endpoints()
                .unwrap(),
            ["https://u:p@[::1]:2379"]
        );
        let e = parse(r#"{"user":"u"}"#).credentials().unwrap_err();
        assert!(e.to_string().contains("password"), "{e}");
        assert_eq!(
            parse(r#"{"username":"u","password":"p"}"#)
                .credentials()
                .unwrap(),
            Some(("u".into(), "p".into()))
        );
        assert!(serde_json::from_str::<Etcd3Config>(r#"{"hosts":5}"#).is_err());
    }

    #[test]
    fn endpoints_without_a_port_get_etcds_as_in_patroni() {
        assert_eq!(
            parse(r#"{"hosts":"h, [::1], https://g, e:2380"}"#)
                .endpoints()
                .unwrap(),
            [
                "http://h:2379",
                "http://[::1]:2379",
                "https://g:2379",
                "http://e:2380"
            ]
        );
        assert_eq!(
            parse(r#"{"host":"h","port":2380}"#).endpoints().unwrap(),
            ["http://h:2380"]
        );
        assert_eq!(
            parse(r#"{"url":"https://u:p@h/"}"#).endpoints().unwrap(),
            ["https://u:p@h:2379"]
        );
    }

    #[test]
    fn password_is_not_printed() {
        let c = parse(r#"{"username":"u","password":"hunter2"}"#);
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    #[test]
    fn identity_prefix_and_validation() {
        let mut id = EtcdIdentity::new("pg", "node1");
        assert_eq!(id.prefix(), "/service/pg/");
        id.namespace = "custom/".into();
        assert_eq!(id.prefix(), "/custom/pg/");
        id.namespace = "/".into();
        assert_eq!(id.prefix(), "/pg/");
        id.validate().unwrap();
        id.name = "a/b".into();
        assert!(id.validate().is_err());
    }
}
