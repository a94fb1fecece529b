//! SQL over tokio-postgres on the Unix socket, as the initial user (trusted, no password exchange).

use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use patroni_core::{DbError, SqlProblem};
use tokio::sync::Mutex;
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

use crate::sql_rows::{SqlRows, SqlSource};

/// A lazily (re)connected client; one connection reused across observations.
pub struct PgSql {
    socket_dir: PathBuf,
    port: u16,
    user: String,
    timeout: Duration,
    client: Mutex<Option<Client>>,
}

impl PgSql {
    /// A client for the server listening on `socket_dir/.s.PGSQL.<port>`, as `user`.
    pub fn new(socket_dir: PathBuf, port: u16, user: String, timeout: Duration) -> Self {
        PgSql {
            socket_dir,
            port,
            user,
            timeout,
            client: Mutex::new(None),
        }
    }

    async fn connect(&self) -> Result<Client, DbError> {
        let mut cfg = tokio_postgres::Config::new();
        cfg.host_path(&self.socket_dir)
            .port(self.port)
            .user(&self.user)
            .dbname("postgres")
            .application_name("patroni")
            .connect_timeout(self.timeout);
        let connecting = cfg.connect(NoTls);
        let (client, conn) = tokio::time::timeout(self.timeout, connecting)
            .await
            .map_err(|_| DbError::Timeout {
                command: format!("connecting to {}", self.socket_dir.display()),
                secs: self.timeout.as_secs(),
            })?
            .map_err(|e| match patroni_postgres::sql::sql_problem(&e) {
                // The server itself refused us (a wrong password): its words say it all.
                Some(SqlProblem::Auth(m)) => DbError::Auth(m),
                _ => classify_connect_error(&error_chain(&e), &self.user),
            })?;
        tokio::spawn(async move {
            // Ends when the client is dropped or the server goes away; the next query reconnects.
            let _ = conn.await;
        });
        Ok(client)
    }
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Turns a connect failure into a typed error; the sha256 family (auth codes 10/11) gets the fix spelled out.
///
/// tokio-postgres reads openGauss's code 10 as SASL and cannot parse 11, so both surface as
/// SASL/unknown-authentication/parse errors rather than a clear "unsupported method".
pub fn classify_connect_error(text: &str, user: &str) -> DbError {
    let lower = text.to_lowercase();
    let auth = [
        "sasl",
        "authentication",
        "invalid message length",
        "error parsing response",
        // What tokio-postgres says when the first answer to the startup packet is an auth code it does not know (11).
        "unexpected message from server",
        "password",
    ]
    .iter()
    .any(|n| lower.contains(n));
    if auth {
        DbError::Auth(format!(
            "the server asked {user} for a password method this client cannot do ({text}). Either add \
             `local all {user} trust` as the first line of pg_hba.conf (the agent connects over the Unix \
             socket as the initial user), or set password_encryption_type to 0 or 1 \
             (gs_guc reload -c \"password_encryption_type=1\") and then reset the password of {user} \
             so it is stored as md5"
        ))
    } else {
        DbError::Query(text.to_string())
    }
}

/// What a failed SQL call tells the operator; `None` while the server only says it is starting
/// up or shutting down, which is no fault. [`SqlSource`] errors are [`DbError`]s, so a refused
/// connection is recognised by the client's words for it.
pub fn sql_problem(e: &DbError) -> Option<SqlProblem> {
    let text = e.to_string();
    let lower = text.to_lowercase();
    let has = |needles: &[&str]| needles.iter().any(|n| lower.contains(n));
    match e {
        DbError::Auth(m) => Some(SqlProblem::Auth(m.clone())),
        DbError::Timeout { command, secs } => Some(SqlProblem::Timeout(format!(
            "{command} took longer than {secs} s"
        ))),
        _ if has(&[
            "is starting up",
            "is shutting down",
            "not yet accepting connections",
        ]) =>
        {
            None
        }
        DbError::Query(m) if has(&["connection refused", "no such file or directory"]) => {
            Some(SqlProblem::Refused(m.clone()))
        }
        DbError::Query(m) => Some(SqlProblem::Other(m.clone())),
        _ => Some(SqlProblem::Other(text)),
    }
}

#[async_trait]
impl SqlSource for PgSql {
    async fn query(&self, sql: &str) -> Result<SqlRows, DbError> {
        let mut guard = self.client.lock().await;
        if guard.as_ref().is_none_or(|c| c.is_closed()) {
            *guard = Some(self.connect().await?);
        }
        let client = guard.as_ref().expect("connected above");
        let result = tokio::time::timeout(self.timeout, client.simple_query(sql)).await;
        let messages = match result {
            Ok(Ok(m)) => m,
            Ok(Err(e)) => {
                if client.is_closed() {
                    *guard = None;
                }
                return Err(DbError::Query(error_chain(&e)));
            }
            Err(_) => {
                *guard = None;
                return Err(DbError::Timeout {
                    command: format!("`{sql}`"),
                    secs: self.timeout.as_secs(),
                });
            }
        };
        let mut rows = SqlRows::default();
        for m in messages {
            if let SimpleQueryMessage::Row(row) = m {
                if rows.columns.is_empty() {
                    rows.columns = row.columns().iter().map(|c| c.name().to_string()).collect();
                }
                rows.rows.push(
                    (0..row.len())
                        .map(|i| row.get(i).map(str::to_string))
                        .collect(),
                );
            }
        }
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sql_failures_map_to_what_the_operator_is_told() {
        let q = |m: &str| sql_problem(&DbError::Query(m.into()));
        assert_eq!(q("FATAL:  the database system is starting up"), None);
        assert_eq!(q("FATAL:  the database system is shutting down"), None);
        let refused = "error connecting to server: Connection refused (os error 111)";
        assert_eq!(q(refused), Some(SqlProblem::Refused(refused.into())));
        let missing = "db error: ERROR: function pg_last_xlog_replay_location() does not exist";
        assert_eq!(q(missing), Some(SqlProblem::Other(missing.into())));
        assert_eq!(
            sql_problem(&DbError::Auth("use md5".into())),
            Some(SqlProblem::Auth("use md5".into()))
        );
        assert_eq!(
            sql_problem(&DbError::Timeout {
                command: "`SELECT 1`".into(),
                secs: 10
            }),
            Some(SqlProblem::Timeout(
                "`SELECT 1` took longer than 10 s".into()
            ))
        );
    }
}
