//! The agent's local SQL session: one cached connection, every query bounded by a deadline.

use std::time::Duration;

use patroni_core::{DbError, SqlProblem};
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

use crate::config::PostgresConfig;

/// One result row as text columns, `None` for SQL NULL.
pub type Row = Vec<Option<String>>;

/// A lazily (re)connected local session, so observing every loop costs one round trip, not a fork.
pub struct Sql {
    config: tokio_postgres::Config,
    /// Where the session connects (the socket file or `host:port`), for the operator.
    target: String,
    timeout: Duration,
    client: tokio::sync::Mutex<Option<Client>>,
}

impl std::fmt::Debug for Sql {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sql")
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

fn classify(e: &tokio_postgres::Error) -> DbError {
    match e.code() {
        Some(c)
            if *c == SqlState::INVALID_PASSWORD
                || *c == SqlState::INVALID_AUTHORIZATION_SPECIFICATION =>
        {
            DbError::Auth(format!(
                "{}; check postgresql.authentication.superuser and pg_hba.conf",
                describe(e)
            ))
        }
        _ => DbError::Query(describe(e)),
    }
}

/// What a failed connection or query tells the operator, by SQLSTATE or by the socket's error;
/// `None` when the server only says it is not ready yet (57P03: starting up, shutting down, not
/// yet consistent), which is no fault to report.
pub fn sql_problem(e: &tokio_postgres::Error) -> Option<SqlProblem> {
    if let Some(db) = e.as_db_error() {
        let code = db.code();
        return if *code == SqlState::CANNOT_CONNECT_NOW {
            None
        } else if *code == SqlState::INVALID_PASSWORD
            || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
        {
            Some(SqlProblem::Auth(db.message().to_string()))
        } else {
            Some(SqlProblem::Other(describe(e)))
        };
    }
    let mut source = std::error::Error::source(e);
    while let Some(inner) = source {
        if let Some(io) = inner.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind;
            return Some(match io.kind() {
                ErrorKind::ConnectionRefused | ErrorKind::NotFound => {
                    SqlProblem::Refused(describe(e))
                }
                ErrorKind::TimedOut => SqlProblem::Timeout(describe(e)),
                _ => SqlProblem::Other(describe(e)),
            });
        }
        source = inner.source();
    }
    Some(SqlProblem::Other(describe(e)))
}

/// A failed query: the error its caller handles, and what it tells the operator.
#[derive(Debug)]
pub struct QueryFailure {
    /// The typed error.
    pub error: DbError,
    /// Why the server answered no SQL; `None` while it is only starting up.
    pub problem: Option<SqlProblem>,
}

impl QueryFailure {
    /// A failure whose cause is no connection problem (an unexpected answer, say).
    pub fn other(message: impl Into<String>) -> Self {
        let message = message.into();
        QueryFailure {
            error: DbError::Query(message.clone()),
            problem: Some(SqlProblem::Other(message)),
        }
    }
}

impl Sql {
    /// A session as the configured superuser over the Unix socket (or TCP), with `pg_ctl_timeout` as deadline.
    pub fn new(cfg: &PostgresConfig) -> Self {
        let mut config = tokio_postgres::Config::new();
        let su = &cfg.authentication.superuser;
        config
            .user(&su.username)
            .dbname("postgres")
            .application_name("patroni-rs")
            .port(cfg.port().unwrap_or(5432))
            .connect_timeout(cfg.timeout());
        if let Some(pw) = &su.password {
            config.password(pw);
        }
        let port = cfg.port().unwrap_or(5432);
        let target = if cfg.use_unix_socket {
            config.host_path(cfg.socket_dir());
            format!("{}/.s.PGSQL.{port}", cfg.socket_dir().display())
        } else {
            config.host(cfg.local_tcp_host());
            format!("{}:{port}", cfg.local_tcp_host())
        };
        Sql {
            config,
            target,
            timeout: cfg.timeout(),
            client: tokio::sync::Mutex::new(None),
        }
    }

    /// Runs one or more statements with the simple protocol and returns every row as text.
    pub async fn query(&self, sql: &str) -> Result<Vec<Row>, DbError> {
        self.query_diagnosed(sql).await.map_err(|f| f.error)
    }

    fn failure(&self, e: &tokio_postgres::Error) -> QueryFailure {
        let problem = match sql_problem(e) {
            Some(SqlProblem::Refused(m)) => {
                Some(SqlProblem::Refused(format!("{m} ({})", self.target)))
            }
            p => p,
        };
        QueryFailure {
            error: classify(e),
            problem,
        }
    }

    fn timed_out(&self, what: String) -> QueryFailure {
        let secs = self.timeout.as_secs();
        QueryFailure {
            problem: Some(SqlProblem::Timeout(format!(
                "{what} took longer than {secs} s"
            ))),
            error: DbError::Timeout {
                command: what,
                secs,
            },
        }
    }

    /// [`query`](Self::query), keeping what a failure tells the operator (see [`sql_problem`]).
    pub async fn query_diagnosed(&self, sql: &str) -> Result<Vec<Row>, QueryFailure> {
        let mut guard = self.client.lock().await;
        if guard.as_ref().is_some_and(Client::is_closed) {
            *guard = None;
        }
        if guard.is_none() {
            let (client, connection) =
                tokio::time::timeout(self.timeout, self.config.connect(NoTls))
                    .await
                    .map_err(|_| self.timed_out(format!("connecting to {}", self.target)))?
                    .map_err(|e| self.failure(&e))?;
            tokio::spawn(async move {
                let _ = connection.await;
            });
            *guard = Some(client);
        }
        let client = guard.as_ref().expect("connected above");
        let result = tokio::time::timeout(self.timeout, client.simple_query(sql)).await;
        let messages = match result {
            Ok(Ok(m)) => m,
            Ok(Err(e)) => {
                if e.is_closed() {
                    *guard = None;
                }
                return Err(self.failure(&e));
            }
            Err(_) => {
                // A query past its deadline leaves the session in an unknown state: drop it.
                *guard = None;
                return Err(self.timed_out(crate::conninfo::redact(
                    &sql.chars().take(80).collect::<String>(),
                )));
            }
        };
        Ok(messages
            .into_iter()
            .filter_map(|m| match m {
                SimpleQueryMessage::Row(r) => {
                    Some((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect())
                }
                _ => None,
            })
            .collect())
    }

    /// Forgets the cached session (after a restart), so the next query reconnects.
    pub async fn reset(&self) {
        *self.client.lock().await = None;
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
        failure.problem
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
        match session(dir.path()).query_diagnosed("SELECT 1").await {
            Err(QueryFailure {
                problem: Some(SqlProblem::Refused(m)),
                ..
            }) => assert!(m.contains(&socket), "{m}"),
            other => panic!("expected a refused connection, got {other:?}"),
        }
    }
}
