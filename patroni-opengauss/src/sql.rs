//! SQL over the shared session ([`patroni_postgres::sql::Sql`]) on the Unix socket, as the
//! initial user (trusted there, no password exchange).

use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use patroni_postgres::sql::Sql;

pub(crate) use patroni_postgres::sql::SqlError;

use crate::sql_rows::{SqlRows, SqlSource};

/// A lazily (re)connected client; one connection reused across observations.
pub struct PgSql {
    session: Sql,
}

impl PgSql {
    /// A client for the server listening on `socket_dir/.s.PGSQL.<port>`, as `user`.
    pub fn new(socket_dir: PathBuf, port: u16, user: String, timeout: Duration) -> Self {
        PgSql {
            session: Sql::unix_socket(&socket_dir, port, &user, timeout, auth_hint(&user)),
        }
    }
}

/// What to change when the server refuses the agent: openGauss stores passwords as sha256 by
/// default (auth codes 10/11), which tokio-postgres cannot answer, so the agent must be trusted
/// on the Unix socket or the password stored as md5.
fn auth_hint(user: &str) -> String {
    format!(
        "if the server asked {user} for a password method this client cannot do (openGauss's \
         sha256), either add `local all {user} trust` as the first line of pg_hba.conf (the agent \
         connects over the Unix socket as the initial user), or set password_encryption_type to \
         0 or 1 (gs_guc reload -c \"password_encryption_type=1\") and then reset the password \
         of {user} so it is stored as md5"
    )
}

#[async_trait]
impl SqlSource for PgSql {
    async fn query(&self, sql: &str) -> Result<SqlRows, SqlError> {
        let (columns, rows) = self.session.query_with_columns(sql).await?;
        Ok(SqlRows { columns, rows })
    }
}
