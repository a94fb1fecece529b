//! SQL over tokio-postgres on the Unix socket, as the initial user (trusted, no password exchange).

use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use patroni_core::DbError;
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
            .map_err(|_| DbError::Query(format!("connect timed out after {:?}", self.timeout)))?
            .map_err(|e| classify_connect_error(&error_chain(&e), &self.user))?;
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
                return Err(DbError::Query(format!(
                    "`{sql}` timed out after {:?}",
                    self.timeout
                )));
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
