//! libpq connection strings: reading a member's `conn_url` and writing `primary_conninfo`.

use patroni_core::{DbError, Member};

/// Host and port of a member's database, from its published `conn_url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Host name or address.
    pub host: String,
    /// Port.
    pub port: u16,
}

/// Reads `postgres[ql]://[user[:pw]@]host[:port][/db][?...]`; the port defaults to 5432.
pub fn parse_conn_url(url: &str) -> Result<Endpoint, String> {
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
        None => 5432,
        Some(p) => p
            .parse()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("{url:?}: {p:?} is not a port"))?,
    };
    Ok(Endpoint { host, port })
}

/// The endpoint of a member the adapter must connect to, as a typed error when unusable.
pub fn member_endpoint(member: &Member) -> Result<Endpoint, DbError> {
    parse_conn_url(&member.data.conn_url).map_err(|e| {
        DbError::Unsupported(format!(
            "member {} has no usable conn_url: {e}",
            member.name
        ))
    })
}

/// Quotes one conninfo value (`'...'` with `\\` and `\'` escapes) when it needs it.
pub fn quote_value(v: &str) -> String {
    if !v.is_empty()
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-/:".contains(c))
    {
        v.to_string()
    } else {
        format!("'{}'", v.replace('\\', "\\\\").replace('\'', "\\'"))
    }
}

/// Builds `key=value ...` from pairs, skipping empty values.
pub fn conninfo(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}={}", quote_value(v)))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_member_urls() {
        let ep = |h: &str, p| Endpoint {
            host: h.into(),
            port: p,
        };
        assert_eq!(
            parse_conn_url("postgres://10.0.0.2:5433/postgres"),
            Ok(ep("10.0.0.2", 5433))
        );
        assert_eq!(
            parse_conn_url("postgresql://u:pw@db1/postgres?sslmode=off"),
            Ok(ep("db1", 5432))
        );
        assert_eq!(
            parse_conn_url("postgres://[::1]:6000/x"),
            Ok(ep("::1", 6000))
        );
        for bad in [
            "",
            "http://x:1",
            "postgres://:5432/",
            "postgres://h:zz/",
            "postgres://h:0/",
        ] {
            assert!(parse_conn_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn quotes_what_libpq_would_misread() {
        assert_eq!(
            conninfo(&[
                ("host", "127.0.0.1"),
                ("port", "5432"),
                ("user", "rep user"),
                ("password", "it's"),
                ("sslmode", "")
            ]),
            r"host=127.0.0.1 port=5432 user='rep user' password='it\'s'"
        );
    }
}
