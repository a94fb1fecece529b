//! The agent's local SQL session: one cached connection, every query bounded by a deadline.
//!
//! Shared plumbing: openGauss speaks PostgreSQL's protocol, so its adapter runs its queries
//! through the same [`Sql`] session and reports failures through the same [`SqlError`].

use std::path::Path;
use std::time::Duration;

use patroni_core::{DbError, SqlProblem};
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

use crate::config::PostgresConfig;

/// One result row as text columns, `None` for SQL NULL.
pub type Row = Vec<Option<String>>;

/// Why a connection or a query failed, by kind, so both adapters tell the operator the same
/// thing ([`SqlError::problem`]) and hand their callers the same [`DbError`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SqlError {
    /// The server refused our credentials (wrong password, no `pg_hba.conf` entry), or asked
    /// for a password method the client cannot do.
    #[error("{words}; {hint}")]
    Auth {
        /// The server's (or the client's) words.
        words: String,
        /// What to change, for the adapter's own settings.
        hint: String,
    },
    /// Nothing accepted the connection (connection refused, no socket file), naming where.
    #[error("{0}")]
    Unreachable(String),
    /// Connecting or querying did not finish within the session's deadline.
    #[error("{what} took longer than {} s", patroni_core::instant::seconds(*.limit))]
    Timeout {
        /// What did not finish.
        what: String,
        /// The deadline.
        limit: Duration,
    },
    /// The server is starting up or shutting down (SQLSTATE 57P03): no fault to report.
    #[error("{0}")]
    NotReady(String),
    /// Any other failure, in the server's or the client's words.
    #[error("{0}")]
    Other(String),
}

impl SqlError {
    /// What the failure tells the operator; `None` while the server is only not ready yet.
    ///
    /// The one mapping from a SQL failure to the core's [`SqlProblem`], for both adapters.
    pub fn problem(&self) -> Option<SqlProblem> {
        match self {
            SqlError::Auth { words, .. } => Some(SqlProblem::Auth(words.clone())),
            SqlError::Unreachable(m) => Some(SqlProblem::Refused(m.clone())),
            SqlError::Timeout { .. } => Some(SqlProblem::Timeout(self.to_string())),
            SqlError::NotReady(_) => None,
            SqlError::Other(m) => Some(SqlProblem::Other(m.clone())),
        }
    }
}

impl From<SqlError> for DbError {
    fn from(e: SqlError) -> DbError {
        match e {
            SqlError::Auth { .. } => DbError::Auth(e.to_string()),
            SqlError::Timeout { what, limit } => DbError::Timeout {
                command: what,
                limit,
            },
            SqlError::Unreachable(m) | SqlError::NotReady(m) | SqlError::Other(m) => {
                DbError::Query(m)
            }
        }
    }
}

/// A lazily (re)connected local session, so observing every loop costs one round trip, not a fork.
pub struct Sql {
    config: tokio_postgres::Config,
    /// Where the session connects (the socket file or `host:port`), for the operator.
    target: String,
    timeout: Duration,
    /// What to change when the server refuses us, in the adapter's own settings.
    auth_hint: String,
    client: tokio::sync::Mutex<Option<Client>>,
}

impl std::fmt::Debug for Sql {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sql")
            .field("target", &self.target)
            .field("timeout", &self.timeout)
            .finish()
    }
}

fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.severity(), db.message()),
        None => {
            let mut s = e.to_string();
            let mut src = std::error::Error::source(e);
            while let Some(inner) = src {
                s.push_str(": ");
                s.push_str(&inner.to_string());
                src = inner.source();
            }
            s
        }
    }
}

/// What tokio-postgres says (it has no typed kind for these) when the server asks for an
/// authentication method it cannot do, or for a password it was not given: openGauss's sha256
/// (code 10 is read as SASL, 11 cannot be parsed), a `scram` mechanism it lacks.
const CLIENT_AUTH_WORDS: [&str; 6] = [
    "sasl",
    "authentication",
    "invalid message length",
    "error parsing response",
    "unexpected message from server",
    "password",
];

impl Sql {
    /// A session as the configured superuser over the Unix socket (or TCP), with `pg_ctl_timeout` as deadline.
    pub fn new(cfg: &PostgresConfig) -> Self {
        let mut config = tokio_postgres::Config::new();
        let su = &cfg.authentication.superuser;
        let port = cfg.port().unwrap_or(5432);
        config.user(&su.username).port(port);
        if let Some(pw) = &su.password {
            config.password(pw);
        }
        let target = if cfg.use_unix_socket {
            config.host_path(cfg.socket_dir());
            format!("{}/.s.PGSQL.{port}", cfg.socket_dir().display())
        } else {
            config.host(cfg.local_tcp_host());
            format!("{}:{port}", cfg.local_tcp_host())
        };
        Sql::with(
            config,
            target,
            cfg.timeout(),
            "check postgresql.authentication.superuser and pg_hba.conf".into(),
        )
    }

    /// A session as `user` without a password over the Unix socket `socket_dir/.s.PGSQL.<port>`
    /// (openGauss's initial user, trusted there); `auth_hint` says what to change when refused.
    pub fn unix_socket(
        socket_dir: &Path,
        port: u16,
        user: &str,
        timeout: Duration,
        auth_hint: String,
    ) -> Self {
        let mut config = tokio_postgres::Config::new();
        config.user(user).port(port).host_path(socket_dir);
        let target = format!("{}/.s.PGSQL.{port}", socket_dir.display());
        Sql::with(config, target, timeout, auth_hint)
    }

    fn with(
        mut config: tokio_postgres::Config,
        target: String,
        timeout: Duration,
        auth_hint: String,
    ) -> Self {
        config
            .dbname("postgres")
            .application_name("patroni-rs")
            .connect_timeout(timeout);
        Sql {
            config,
            target,
            timeout,
            auth_hint,
            client: tokio::sync::Mutex::new(None),
        }
    }

    /// Runs one or more statements with the simple protocol and returns every row as text.
    pub async fn query(&self, sql: &str) -> Result<Vec<Row>, DbError> {
        self.query_diagnosed(sql).await.map_err(DbError::from)
    }

    /// [`query`](Self::query), keeping the kind of a failure (see [`SqlError::problem`]).
    pub async fn query_diagnosed(&self, sql: &str) -> Result<Vec<Row>, SqlError> {
        self.query_with_columns(sql).await.map(|(_, rows)| rows)
    }

    /// [`query_diagnosed`](Self::query_diagnosed) with the column names of the result.
    pub async fn query_with_columns(&self, sql: &str) -> Result<(Vec<String>, Vec<Row>), SqlError> {
        let mut guard = self.client.lock().await;
        if guard.as_ref().is_some_and(Client::is_closed) {
            *guard = None;
        }
        if guard.is_none() {
            let (client, connection) =
                tokio::time::timeout(self.timeout, self.config.connect(NoTls))
                    .await
                    .map_err(|_| self.timed_out(format!("connecting to {}", self.target)))?
                    .map_err(|e| self.classify(&e, true))?;
            tokio::spawn(async move {
                // Ends when the client is dropped or the server goes away; the next query reconnects.
                let _ = connection.await;
            });
            *guard = Some(client);
        }
        let client = guard.as_ref().expect("connected above");
        let result = tokio::time::timeout(self.timeout, client.simple_query(sql)).await;
        let messages = match result {
            Ok(Ok(m)) => m,
            Ok(Err(e)) => {
                if e.is_closed() || client.is_closed() {
                    *guard = None;
                }
                return Err(self.classify(&e, false));
            }
            Err(_) => {
                // A query past its deadline leaves the session in an unknown state: drop it.
                *guard = None;
                return Err(self.timed_out(crate::conninfo::redact(
                    &sql.chars().take(80).collect::<String>(),
                )));
            }
        };
        let mut columns = Vec::new();
        let mut rows = Vec::new();
        for m in messages {
            if let SimpleQueryMessage::Row(r) = m {
                if columns.is_empty() {
                    columns = r.columns().iter().map(|c| c.name().to_string()).collect();
                }
                rows.push((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect());
            }
        }
        Ok((columns, rows))
    }

    /// Forgets the cached session (after a restart), so the next query reconnects.
    pub async fn reset(&self) {
        *self.client.lock().await = None;
    }

    fn timed_out(&self, what: String) -> SqlError {
        SqlError::Timeout {
            what,
            limit: self.timeout,
        }
    }

    /// The kind of a failure, by SQLSTATE, by the socket's error, or (while connecting, where
    /// the client has no typed kind for it) by the client's words for an authentication it
    /// cannot do.
    fn classify(&self, e: &tokio_postgres::Error, connecting: bool) -> SqlError {
        if let Some(db) = e.as_db_error() {
            let code = db.code();
            return if *code == SqlState::CANNOT_CONNECT_NOW {
                SqlError::NotReady(describe(e))
            } else if *code == SqlState::INVALID_PASSWORD
                || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
            {
                SqlError::Auth {
                    words: db.message().to_string(),
                    hint: self.auth_hint.clone(),
                }
            } else {
                SqlError::Other(describe(e))
            };
        }
        let mut source = std::error::Error::source(e);
        while let Some(inner) = source {
            if let Some(io) = inner.downcast_ref::<std::io::Error>() {
                use std::io::ErrorKind;
                return match io.kind() {
                    ErrorKind::ConnectionRefused | ErrorKind::NotFound => {
                        SqlError::Unreachable(format!("{} ({})", describe(e), self.target))
                    }
                    ErrorKind::TimedOut => self.timed_out(format!("connecting to {}", self.target)),
                    _ => SqlError::Other(describe(e)),
                };
            }
            source = inner.source();
        }
        let words = describe(e);
        let lower = words.to_lowercase();
        if connecting && CLIENT_AUTH_WORDS.iter().any(|w| lower.contains(w)) {
            SqlError::Auth {
                words,
                hint: self.auth_hint.clone(),
            }
        } else {
            SqlError::Other(words)
        }
    }
}

/// A SQL string literal with single quotes doubled (standard_conforming_strings is on since 9.1).
pub fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// A SQL identifier in double quotes.
pub fn ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_literals_and_identifiers() {
        assert_eq!(literal("it's"), "'it''s'");
        assert_eq!(ident("a\"b"), "\"a\"\"b\"");
    }

    /// A session whose socket lives in `dir`, with a one-second deadline.
    fn session(dir: &std::path::Path) -> Sql {
        let mut cfg = PostgresConfig::new("127.0.0.1:6543", dir.join("data"));
        cfg.pg_ctl_timeout = 1;
        cfg.parameters.insert(
            "unix_socket_directories".into(),
            crate::ParamValue(dir.display().to_string()),
        );
        Sql::new(&cfg)
    }

    /// A server on `dir`'s socket that answers the startup packet with `answer` (an error
    /// with that SQLSTATE and message), or with nothing at all.
    async fn scripted(dir: &std::path::Path, answer: Option<(&str, &str)>) -> Option<SqlProblem> {
        scripted_error(dir, answer).await.problem()
    }

    async fn scripted_error(dir: &std::path::Path, answer: Option<(&str, &str)>) -> SqlError {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::UnixListener::bind(dir.join(".s.PGSQL.6543")).unwrap();
        let answer = answer.map(|(code, message)| {
            let mut body = Vec::new();
            for (field, value) in [(b'S', "FATAL"), (b'C', code), (b'M', message)] {
                body.push(field);
                body.extend_from_slice(value.as_bytes());
                body.push(0);
            }
            body.push(0);
            let mut msg = vec![b'E'];
            msg.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
            msg.extend_from_slice(&body);
            msg
        });
        let server = tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut len = [0u8; 4];
            sock.read_exact(&mut len).await.unwrap();
            let mut startup = vec![0u8; i32::from_be_bytes(len) as usize - 4];
            sock.read_exact(&mut startup).await.unwrap();
            if let Some(msg) = answer {
                sock.write_all(&msg).await.unwrap();
            }
            let mut rest = Vec::new();
            let _ = tokio::time::timeout(Duration::from_secs(3), sock.read_to_end(&mut rest)).await;
        });
        let failure = session(dir).query_diagnosed("SELECT 1").await.unwrap_err();
        server.abort();
        let _ = std::fs::remove_file(dir.join(".s.PGSQL.6543"));
        failure
    }

    #[tokio::test]
    async fn connection_failures_are_told_apart_by_sqlstate_and_socket_error() {
        let dir = tempfile::tempdir().unwrap();
        let wrong_password = "password authentication failed for user \"postgres\"";
        assert_eq!(
            scripted(dir.path(), Some(("28P01", wrong_password))).await,
            Some(SqlProblem::Auth(wrong_password.into()))
        );
        let no_entry = "no pg_hba.conf entry for host \"[local]\", user \"postgres\"";
        assert_eq!(
            scripted(dir.path(), Some(("28000", no_entry))).await,
            Some(SqlProblem::Auth(no_entry.into()))
        );
        // Genuinely starting up (or shutting down): no fault to report.
        let starting = "the database system is starting up";
        assert_eq!(scripted(dir.path(), Some(("57P03", starting))).await, None);
        assert!(matches!(
            scripted(dir.path(), Some(("53300", "sorry, too many clients already"))).await,
            Some(SqlProblem::Other(m)) if m.contains("too many clients")
        ));
        assert!(matches!(
            scripted(dir.path(), None).await,
            Some(SqlProblem::Timeout(m)) if m.contains("took longer than 1 s")
        ));
        // No socket at all: refused, naming where we looked.
        let socket = dir.path().join(".s.PGSQL.6543").display().to_string();
        let unreachable = session(dir.path())
            .query_diagnosed("SELECT 1")
            .await
            .unwrap_err();
        match unreachable.problem() {
            Some(SqlProblem::Refused(m)) => assert!(m.contains(&socket), "{m}"),
            other => panic!("expected a refused connection, got {other:?}"),
        }
        assert!(matches!(DbError::from(unreachable), DbError::Query(m) if m.contains(&socket)));
    }

    /// What the caller gets carries the adapter's hint; what the operator reads is the server's words.
    #[tokio::test]
    async fn refused_logins_carry_the_hint_to_the_caller() {
        let dir = tempfile::tempdir().unwrap();
        let wrong_password = "password authentication failed for user \"postgres\"";
        let err = scripted_error(dir.path(), Some(("28P01", wrong_password))).await;
        assert_eq!(err.problem(), Some(SqlProblem::Auth(wrong_password.into())));
        assert_eq!(
            DbError::from(err),
            DbError::Auth(format!(
                "{wrong_password}; check postgresql.authentication.superuser and pg_hba.conf"
            ))
        );
        let timeout = SqlError::Timeout {
            what: "`SELECT 1`".into(),
            limit: Duration::from_secs(10),
        };
        assert_eq!(
            timeout.problem(),
            Some(SqlProblem::Timeout(
                "`SELECT 1` took longer than 10 s".into()
            ))
        );
        assert_eq!(
            DbError::from(timeout),
            DbError::Timeout {
                command: "`SELECT 1`".into(),
                limit: Duration::from_secs(10)
            }
        );
    }

    /// A sub-second deadline reads as the fraction it is, in the session's words and in the
    /// caller's, not rounded down to "0 s".
    #[test]
    fn timeouts_name_their_limit_to_the_millisecond() {
        let timeout = SqlError::Timeout {
            what: "`SELECT 1`".into(),
            limit: Duration::from_millis(500),
        };
        assert_eq!(timeout.to_string(), "`SELECT 1` took longer than 0.5 s");
        assert_eq!(
            DbError::from(timeout).to_string(),
            "``SELECT 1`` did not finish within 0.5 s and was killed"
        );
        let whole = DbError::Timeout {
            command: "pg_ctl reload".into(),
            limit: Duration::from_secs(5),
        };
        assert_eq!(
            whole.to_string(),
            "`pg_ctl reload` did not finish within 5 s and was killed"
        );
    }
}
