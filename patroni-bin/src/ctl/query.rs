//! `dsn` and `query`: a member's PostgreSQL address, and SQL run on it with rows printed as
//! Python's `patronictl` prints them (tab-separated with a header line by default).

use std::time::Duration;

use patroni_core::{Cluster, Endpoint, Member};
use serde_json::{json, Value};
use tokio_postgres::types::Type;
use tokio_postgres::{NoTls, SimpleQueryMessage};

use super::output::{Format, Rows};
use super::{failed, members_with_role, timestamp, CtlError, RoleFilter, Session};

/// Python's `get_any_member`: `--member` by name, else the first member with `--role`
/// (the leader by default).
pub fn any_member<'a>(
    cluster: &'a Cluster,
    role: Option<RoleFilter>,
    member: Option<&str>,
) -> Result<Option<&'a Member>, CtlError> {
    let role = match (role, member) {
        (Some(_), Some(_)) => {
            return Err(failed("--role and --member are mutually exclusive options"))
        }
        (_, Some(_)) => RoleFilter::Any,
        (Some(r), None) => r,
        (None, None) => RoleFilter::Leader,
    };
    Ok(members_with_role(cluster, role)
        .into_iter()
        .find(|m| member.is_none_or(|n| n == m.name)))
}

/// A member's database host and port, from its connection URL.
pub fn host_port(m: &Member) -> Option<(String, u16)> {
    Endpoint::from_conn_url(&m.data.conn_url)
        .ok()
        .map(|e| (e.host, e.port))
}

/// `dsn [CLUSTER] [-r ROLE] [-m MEMBER]`: `host=H port=P`.
pub async fn dsn(
    s: &mut Session,
    name: &str,
    role: Option<RoleFilter>,
    member: Option<&str>,
) -> Result<(), CtlError> {
    let (_, cluster) = s.load(name).await?;
    let m = any_member(&cluster, role, member)?
        .ok_or_else(|| failed("Can not find a suitable member"))?;
    let (host, port) = host_port(m).ok_or_else(|| failed("Can not find a suitable member"))?;
    s.term.say(format!("host={host} port={port}"));
    Ok(())
}

/// One field of a `~/.pgpass` line, with `\:` and `\\` unescaped.
fn pgpass_fields(line: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    if let Some(f) = out.last_mut() {
                        f.push(n);
                    }
                }
            }
            ':' if out.len() < 5 => out.push(String::new()),
            _ => {
                if let Some(f) = out.last_mut() {
                    f.push(c);
                }
            }
        }
    }
    out
}

/// The password libpq would take from a password file for this connection.
pub fn pgpass_lookup(text: &str, host: &str, port: u16, db: &str, user: &str) -> Option<String> {
    let port = port.to_string();
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#') && !l.trim().is_empty())
        .map(pgpass_fields)
        .filter(|f| f.len() == 5)
        .find(|f| {
            let ok = |pat: &str, v: &str| pat == "*" || pat == v;
            let host_ok = ok(&f[0], host)
                || (f[0] == "localhost" && (host.starts_with('/') || host.is_empty()));
            host_ok && ok(&f[1], &port) && ok(&f[2], db) && ok(&f[3], user)
        })
        .map(|f| f[4].clone())
}

fn pgpass_password(host: &str, port: u16, db: &str, user: &str) -> Option<String> {
    let path = std::env::var_os("PGPASSFILE")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".pgpass")))?;
    let meta = std::fs::metadata(&path).ok()?;
    // libpq ignores a password file others can read.
    if std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o077 != 0 {
        eprintln!(
            "WARNING: password file \"{}\" has group or world access; permissions should be u=rw (0600) or less",
            path.display()
        );
        return None;
    }
    pgpass_lookup(&std::fs::read_to_string(path).ok()?, host, port, db, user)
}

/// The options of `query`.
#[derive(Debug, Clone, Default)]
pub struct QueryArgs {
    /// `-r/--role`.
    pub role: Option<RoleFilter>,
    /// `-m/--member`.
    pub member: Option<String>,
    /// `-c/--command`.
    pub command: Option<String>,
    /// `-f/--file` (`-` is stdin).
    pub file: Option<String>,
    /// `-U/--username`.
    pub username: Option<String>,
    /// `--password`: ask for it.
    pub password: bool,
    /// `-d/--dbname`.
    pub dbname: Option<String>,
    /// `--delimiter`.
    pub delimiter: String,
    /// `--format`.
    pub format: Format,
    /// `-W` / `-w`: run again at this interval.
    pub every: Option<Duration>,
}

/// A value as Python's `str()` shows what psycopg returns for it (`True`, `None`, `1.0`).
fn cell(text: Option<&str>, ty: Option<&Type>, fmt: Format) -> Value {
    let Some(t) = text else {
        return if matches!(fmt, Format::Json | Format::Yaml) {
            Value::Null
        } else {
            json!("None")
        };
    };
    let structured = matches!(fmt, Format::Json | Format::Yaml);
    match ty {
        Some(&Type::BOOL) => {
            let b = t == "t";
            if structured {
                json!(b)
            } else {
                json!(if b { "True" } else { "False" })
            }
        }
        Some(&Type::INT2 | &Type::INT4 | &Type::INT8 | &Type::OID) => t
            .parse::<i64>()
            .map(|i| json!(i))
            .unwrap_or_else(|_| json!(t)),
        Some(&Type::FLOAT4 | &Type::FLOAT8) => match t {
            "Infinity" => json!("inf"),
            "-Infinity" => json!("-inf"),
            "NaN" => json!("nan"),
            _ => match t.parse::<f64>() {
                Ok(f) if structured => json!(f),
                Ok(f) => json!(super::yaml::python_float_repr(f)),
                Err(_) => json!(t),
            },
        },
        Some(&Type::TIMESTAMPTZ) => {
            // PostgreSQL prints `+00`, Python's datetime `+00:00`.
            let zone = t.rfind(['+', '-']).filter(|i| *i > 10);
            match zone {
                Some(i) if t.len() - i == 3 => json!(format!("{t}:00")),
                _ => json!(t),
            }
        }
        _ => json!(t),
    }
}

/// Runs `sql` on `m`; `Ok((header, rows))`, or the text of Python's `ERROR, SQLSTATE:` line.
async fn run_sql(
    m: &Member,
    a: &QueryArgs,
    password: Option<&str>,
    sql: &str,
) -> Result<(Option<Vec<String>>, Vec<Vec<Value>>), String> {
    let (host, port) = host_port(m).ok_or_else(|| format!("member {} has no conn_url", m.name))?;
    let user = a
        .username
        .clone()
        .or_else(|| std::env::var("PGUSER").ok())
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "postgres".into());
    let db = a
        .dbname
        .clone()
        .or_else(|| std::env::var("PGDATABASE").ok())
        .unwrap_or_else(|| user.clone());
    let mut cfg = tokio_postgres::Config::new();
    cfg.host(&host)
        .port(port)
        .user(&user)
        .dbname(&db)
        .application_name(std::env::var("PGAPPNAME").unwrap_or_else(|_| "Patroni ctl".into()))
        .connect_timeout(Duration::from_secs(5));
    let pw = password
        .map(String::from)
        .or_else(|| std::env::var("PGPASSWORD").ok())
        .or_else(|| pgpass_password(&host, port, &db, &user));
    if let Some(p) = pw {
        cfg.password(p);
    }
    let sqlstate = |e: tokio_postgres::Error| -> String {
        match e.code() {
            Some(c) => c.code().to_string(),
            None => one_line(&e),
        }
    };
    let (client, conn) = cfg.connect(NoTls).await.map_err(sqlstate)?;
    let task = tokio::spawn(async move {
        let _ = conn.await;
    });
    let role_ok = match a.role {
        Some(RoleFilter::Replica | RoleFilter::Standby | RoleFilter::StandbyLeader) => Some(true),
        Some(RoleFilter::Primary) => Some(false),
        _ => None,
    };
    if let Some(want_recovery) = role_ok {
        let rows = client
            .simple_query("SELECT pg_catalog.pg_is_in_recovery()")
            .await
            .map_err(sqlstate)?;
        let in_recovery = rows.iter().any(|r| match r {
            SimpleQueryMessage::Row(r) => r.get(0) != Some("f"),
            _ => false,
        });
        if in_recovery != want_recovery {
            task.abort();
            return Err(String::new());
        }
    }
    // The column types of a single statement, to print values as psycopg would.
    let types: Vec<Type> = match client.prepare(sql).await {
        Ok(st) => st.columns().iter().map(|c| c.type_().clone()).collect(),
        Err(_) => Vec::new(),
    };
    let messages = client.simple_query(sql).await.map_err(sqlstate)?;
    task.abort();
    let mut header: Option<Vec<String>> = None;
    let mut rows = Vec::new();
    for msg in messages {
        match msg {
            SimpleQueryMessage::RowDescription(cols) if header.is_none() => {
                header = Some(cols.iter().map(|c| c.name().to_string()).collect());
            }
            SimpleQueryMessage::Row(r) => {
                if header.is_none() {
                    header = Some(r.columns().iter().map(|c| c.name().to_string()).collect());
                }
                rows.push(
                    (0..r.len())
                        .map(|i| cell(r.get(i), types.get(i), a.format))
                        .collect(),
                );
            }
            // The first statement's result, as psycopg shows it.
            SimpleQueryMessage::CommandComplete(_) => break,
            _ => {}
        }
    }
    Ok((header, rows))
}

fn one_line(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        let t = s.to_string();
        if !text.contains(&t) {
            text.push_str(": ");
            text.push_str(&t);
        }
        src = s.source();
    }
    text.replace('\n', " ")
}

/// `query [CLUSTER] (-c SQL | -f FILE) [-r ROLE | -m MEMBER] [-U USER] [--password] [-d DB]`.
pub async fn query(s: &mut Session, name: &str, a: QueryArgs) -> Result<(), CtlError> {
    let sql = match (&a.file, &a.command) {
        (Some(_), Some(_)) => {
            return Err(failed(
                "--file and --command are mutually exclusive options",
            ))
        }
        (Some(f), None) => {
            if f == "-" {
                let mut t = String::new();
                std::io::Read::read_to_string(&mut std::io::stdin(), &mut t)
                    .map_err(|e| failed(format!("reading stdin: {e}")))?;
                t
            } else {
                std::fs::read_to_string(f).map_err(|e| failed(format!("{f}: {e}")))?
            }
        }
        (None, Some(c)) => c.clone(),
        (None, None) => return Err(failed("You need to specify either --command or --file")),
    };
    if a.role.is_some() && a.member.is_some() {
        return Err(failed("--role and --member are mutually exclusive options"));
    }
    let password = if a.password {
        Some(s.term.password("Password")?)
    } else {
        None
    };
    let (_, cluster) = s.load(name).await?;
    loop {
        let member = any_member(&cluster, a.role, a.member.as_deref())?;
        let outcome = match member {
            None => Err(String::new()),
            Some(m) => run_sql(m, &a, password.as_deref(), &sql).await,
        };
        match outcome {
            Ok((header, rows)) => {
                let r = Rows {
                    columns: header,
                    rows,
                    right: Vec::new(),
                    title: String::new(),
                };
                let text = r.render(a.format, &a.delimiter);
                s.term.write(&text);
            }
            Err(e) => {
                let message = if !e.is_empty() {
                    format!("ERROR, SQLSTATE: {e}")
                } else if let Some(m) = &a.member {
                    format!("No connection to member {m} is available")
                } else {
                    format!(
                        "No connection to role {} is available",
                        a.role.unwrap_or(RoleFilter::Leader).name()
                    )
                };
                let r = Rows {
                    columns: None,
                    rows: vec![vec![json!(timestamp(0)), json!(message)]],
                    right: Vec::new(),
                    title: String::new(),
                };
                let text = r.render(a.format, &a.delimiter);
                s.term.write(&text);
                if a.every.is_none() {
                    return Err(failed(message));
                }
            }
        }
        match a.every {
            Some(d) => tokio::time::sleep(d).await,
            None => return Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pgpass_matching() {
        let text = "# comment\n127.0.0.1:5433:*:postgres:first\n*:*:*:postgres:p\\:w\\\\d\n";
        assert_eq!(
            pgpass_lookup(text, "127.0.0.1", 5433, "postgres", "postgres").as_deref(),
            Some("first")
        );
        assert_eq!(
            pgpass_lookup(text, "10.0.0.1", 5432, "app", "postgres").as_deref(),
            Some("p:w\\d")
        );
        assert_eq!(pgpass_lookup(text, "10.0.0.1", 5432, "app", "bob"), None);
    }

    #[test]
    fn values_print_as_python_does() {
        let f = Format::Tsv;
        assert_eq!(cell(Some("t"), Some(&Type::BOOL), f), json!("True"));
        assert_eq!(cell(None, Some(&Type::INT4), f), json!("None"));
        assert_eq!(cell(Some("1"), Some(&Type::INT4), f), json!(1));
        assert_eq!(cell(Some("1"), Some(&Type::FLOAT8), f), json!("1.0"));
        assert_eq!(
            cell(Some("2026-11-26 10:00:00+00"), Some(&Type::TIMESTAMPTZ), f),
            json!("2026-11-26 10:00:00+00:00")
        );
        assert_eq!(
            cell(Some("t"), Some(&Type::BOOL), Format::Json),
            json!(true)
        );
        assert_eq!(cell(None, None, Format::Json), Value::Null);
    }
}
