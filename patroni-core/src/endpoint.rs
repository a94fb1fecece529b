//! Where a member's database listens, read from its published libpq `conn_url`.
//!
//! One parser for every crate: the state machine compares a standby's upstream with the leader's
//! endpoint, the adapters connect to it, the REST API shows it.

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
        let rest = url
            .strip_prefix("postgres://")
            .or_else(|| url.strip_prefix("postgresql://"))
            .ok_or_else(|| format!("{url:?} is not a postgres:// URL"))?;
        let authority = rest.split(['/', '?']).next().unwrap_or("");
        let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let (h, after) = v6
                .split_once(']')
                .ok_or_else(|| format!("{url:?}: unclosed [ in host"))?;
            (h.to_string(), after.strip_prefix(':'))
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), Some(p)),
                None => (hostport.to_string(), None),
            }
        };
        if host.is_empty() {
            return Err(format!("{url:?} has no host"));
        }
        let port = match port {
            None => DEFAULT_PORT,
            Some(p) => p
                .parse()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| format!("{url:?}: {p:?} is not a port"))?,
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
