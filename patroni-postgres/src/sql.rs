//! The agent's local SQL session: one cached connection, every query bounded by a deadline.

use std::time::Duration;

use patroni_core::DbError;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

use crate::config::PostgresConfig;

/// One result row as text columns, `None` for SQL NULL.
pub type Row = Vec<Option<String>>;

/// A lazily (re)connected local session, so observing every loop costs one round trip, not a fork.
pub struct Sql {
    config: tokio_postgres::Config,
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
        if cfg.use_unix_socket {
            config.host_path(cfg.socket_dir());
        } else {
            config.host(cfg.local_tcp_host());
        }
        Sql {
            config,
            timeout: cfg.timeout(),
            client: tokio::sync::Mutex::new(None),
        }
    }

    /// Runs one or more statements with the simple protocol and returns every row as text.
    pub async fn query(&self, sql: &str) -> Result<Vec<Row>, DbError> {
        let mut guard = self.client.lock().await;
        if guard.as_ref().is_some_and(Client::is_closed) {
            *guard = None;
        }
        if guard.is_none() {
            let (client, connection) =
                tokio::time::timeout(self.timeout, self.config.connect(NoTls))
                    .await
                    .map_err(|_| DbError::Timeout {
                        command: "connect to the local server".into(),
                        secs: self.timeout.as_secs(),
                    })?
                    .map_err(|e| classify(&e))?;
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
                return Err(classify(&e));
            }
            Err(_) => {
                // A query past its deadline leaves the session in an unknown state: drop it.
                *guard = None;
                return Err(DbError::Timeout {
                    command: crate::conninfo::redact(&sql.chars().take(80).collect::<String>()),
                    secs: self.timeout.as_secs(),
                });
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
}
