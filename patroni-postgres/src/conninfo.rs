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

/// Hides every password in `text`: conninfo `password=...` values (quoted or not) and SQL
/// `PASSWORD '...'` literals, so a command line, an error or a log line never carries one.
pub fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = find_password(rest) {
        let (before, from) = rest.split_at(at.start);
        out.push_str(before);
        out.push_str(&from[..at.value - at.start]);
        out.push_str("********");
        rest = &from[at.end - at.start..];
    }
    out.push_str(rest);
    out
}

/// Where a password value starts and ends, and where its keyword began.
struct Found {
    start: usize,
    value: usize,
    end: usize,
}

fn find_password(text: &str) -> Option<Found> {
    let lower = text.to_ascii_lowercase();
    let mut from = 0;
    while let Some(i) = lower[from..].find("password") {
        let start = from + i;
        let mut j = start + "password".len();
        let bytes = text.as_bytes();
        let mut equals = false;
        while j < bytes.len() && (bytes[j] == b' ' || bytes[j] == b'=') {
            equals |= bytes[j] == b'=';
            j += 1;
        }
        // `password=value`, or SQL's `PASSWORD 'value'`; "password authentication" is prose.
        let quoted = j < bytes.len() && bytes[j] == b'\'';
        if j >= bytes.len() || j == start + "password".len() || !(equals || quoted) {
            from = start + 1;
            continue;
        }
        let end = if bytes[j] == b'\'' {
            // A quoted value: '' (SQL) and \' (conninfo) do not end it.
            let mut k = j + 1;
            while k < bytes.len() {
                match bytes[k] {
                    b'\\' => k += 2,
                    b'\'' if bytes.get(k + 1) == Some(&b'\'') => k += 2,
                    b'\'' => {
                        k += 1;
                        break;
                    }
                    _ => k += 1,
                }
            }
            k.min(bytes.len())
        } else {
            let mut k = j;
            while k < bytes.len() && !bytes[k].is_ascii_whitespace() {
                k += 1;
            }
            k
        };
        return Some(Found {
            start,
            value: j,
            end,
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_conninfo_and_sql_passwords() {
        assert_eq!(
            redact(r"host=h password='it\'s x' user=r"),
            "host=h password=******** user=r"
        );
        assert_eq!(
            redact("host=h password=plain port=1"),
            "host=h password=******** port=1"
        );
        assert_eq!(
            redact("CREATE ROLE r WITH LOGIN PASSWORD 'a''b c' ;"),
            "CREATE ROLE r WITH LOGIN PASSWORD ******** ;"
        );
        assert_eq!(redact("no secret here"), "no secret here");
        assert_eq!(
            redact("password authentication failed"),
            "password authentication failed"
        );
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
