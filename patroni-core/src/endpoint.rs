//! Where a member's database listens, read from its published libpq `conn_url`.
//!
//! One parser for every crate: the state machine compares a standby's upstream with the leader's
//! endpoint, the adapters connect to it, the REST API shows it. The `host:port` settings
//! (`listen`, `connect_address`) and other URLs (`api_url`) are read by the same code.

use std::fmt;

/// Host and port of a member's database.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Endpoint {
    /// Host name or address (IPv6 without brackets).
    pub host: String,
    /// Port.
    pub port: u16,
}

/// The port libpq uses when a URL names none.
pub const DEFAULT_PORT: u16 = 5432;

impl Endpoint {
    /// Reads `postgres[ql]://[user[:pw]@]host[:port][/db][?...]`; the port defaults to 5432.
    pub fn from_conn_url(url: &str) -> Result<Endpoint, String> {
        if !url.starts_with("postgres://") && !url.starts_with("postgresql://") {
            return Err(format!("{url:?} is not a postgres:// URL"));
        }
        Self::from_url(url, DEFAULT_PORT)
    }

    /// Reads the host and port of any `scheme://[user[:pw]@]host[:port][/...][?...]` URL (a
    /// member's `api_url` too); a URL without a port gets `default`.
    pub fn from_url(url: &str, default: u16) -> Result<Endpoint, String> {
        let (_, rest) = url
            .split_once("://")
            .ok_or_else(|| format!("{url:?} is not a URL"))?;
        let authority = rest.split(['/', '?']).next().unwrap_or("");
        let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        Self::parse(url, hostport, Some(default))
    }

    /// Reads `host:port`, the form of `listen` and `connect_address` (an IPv6 host in brackets;
    /// PostgreSQL's `listen` may name several hosts, `a,b:port`); the port is required.
    pub fn from_host_port(addr: &str) -> Result<Endpoint, String> {
        if addr.contains(['/', '?', '@']) {
            return Err(format!("{addr:?} is not host:port"));
        }
        Self::parse(addr, addr, None)
    }

    /// `host[:port]` or `[v6][:port]` out of `whole` (named in errors); a missing port is
    /// `default`, or an error without one. Port 0 is refused: nothing can be reached there.
    fn parse(whole: &str, hostport: &str, default: Option<u16>) -> Result<Endpoint, String> {
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let (h, after) = v6
                .split_once(']')
                .ok_or_else(|| format!("{whole:?}: unclosed [ in host"))?;
            (h.to_string(), after.strip_prefix(':'))
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), Some(p)),
                None => (hostport.to_string(), None),
            }
        };
        if host.is_empty() {
            return Err(format!("{whole:?} has no host"));
        }
        let port = match (port, default) {
            (None, Some(d)) => d,
            (None, None) => return Err(format!("{whole:?} is not host:port")),
            (Some(p), _) => p
                .parse()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| format!("{whole:?}: {p:?} is not a port"))?,
        };
        Ok(Endpoint { host, port })
    }

    /// Whether a WAL receiver that reports `host` and `port` streams from this endpoint.
    ///
    /// Both must match: several members often share a host (containers with mapped ports, test
    /// clusters), and a receiver still attached to a deposed primary on the same host must not
    /// pass for one that follows the new leader. Host names compare without case.
    pub fn is(&self, host: &str, port: u16) -> bool {
        self.port == port && self.host.eq_ignore_ascii_case(host)
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Endpoint;

    fn ep(url: &str) -> Result<(String, u16), String> {
        Endpoint::from_conn_url(url).map(|e| (e.host, e.port))
    }

    #[test]
    fn reads_libpq_urls() {
        assert_eq!(
            ep("postgres://10.0.0.2:5433/postgres"),
            Ok(("10.0.0.2".into(), 5433))
        );
        assert_eq!(
            ep("postgresql://rep:pw@db1/postgres"),
            Ok(("db1".into(), 5432))
        );
        assert_eq!(ep("postgres://[::1]:5434/x"), Ok(("::1".into(), 5434)));
        assert_eq!(ep("postgres://h:6000?sslmode=off"), Ok(("h".into(), 6000)));
        assert!(ep("garbage").is_err());
        assert!(ep("postgres:///x").is_err());
        assert!(ep("postgres://h:0/x").is_err());
        assert!(ep("postgres://h:port/x").is_err());
        assert!(ep("postgres://[::1/x").is_err());
    }

    #[test]
    fn reads_listen_addresses() {
        let hp = |s: &str| Endpoint::from_host_port(s).map(|e| (e.host, e.port));
        assert_eq!(hp("10.0.0.2:5433"), Ok(("10.0.0.2".into(), 5433)));
        assert_eq!(hp("[::1]:5434"), Ok(("::1".into(), 5434)));
        assert_eq!(hp("a,b:5432"), Ok(("a,b".into(), 5432)));
        assert_eq!(hp("*:5432"), Ok(("*".into(), 5432)));
        assert!(hp("10.0.0.2").is_err(), "the port is required");
        assert!(hp(":5432").is_err());
        assert!(hp("h:0").is_err());
        assert!(hp("h:99999").is_err());
        assert!(hp("h:x").is_err());
        assert!(hp("h:5432/db").is_err());
        let url = |s: &str, d| Endpoint::from_url(s, d).map(|e| (e.host, e.port));
        assert_eq!(url("https://u:p@h/patroni", 443), Ok(("h".into(), 443)));
        assert_eq!(url("http://[::1]:8008/", 80), Ok(("::1".into(), 8008)));
        assert!(url("h:8008", 80).is_err());
    }

    #[test]
    fn same_host_other_port_is_another_member() {
        let leader = Endpoint::from_conn_url("postgres://127.0.0.1:5433/postgres").unwrap();
        assert!(leader.is("127.0.0.1", 5433));
        assert!(!leader.is("127.0.0.1", 5432));
        assert!(Endpoint::from_conn_url("postgres://DB1:5432/x")
            .unwrap()
            .is("db1", 5432));
        assert_eq!(leader.to_string(), "127.0.0.1:5433");
        assert_eq!(
            Endpoint::from_conn_url("postgres://[::1]:5/x")
                .unwrap()
                .to_string(),
            "[::1]:5"
        );
    }
}
