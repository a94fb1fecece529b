//! libpq connection strings: reading a member's `conn_url` and writing `primary_conninfo`.

use patroni_core::{DbError, Endpoint, Member};

/// The endpoint of a member the adapter must connect to, as a typed error when unusable.
pub fn member_endpoint(member: &Member) -> Result<Endpoint, DbError> {
    Endpoint::from_conn_url(&member.data.conn_url).map_err(|e| {
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
