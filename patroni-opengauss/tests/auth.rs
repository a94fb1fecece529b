//! The real tokio-postgres client against a scripted server that answers the startup packet the
//! way openGauss does when it wants sha256 (auth code 10) or md5_sha256 (11): the adapter must
//! fail with an authentication error naming the settings to change, never hang or report a
//! vague error.

use std::time::Duration;

use patroni_core::DbError;
use patroni_core::SqlProblem;
use patroni_opengauss::sql::PgSql;
use patroni_opengauss::sql_rows::SqlSource;
use patroni_postgres::sql::SqlError;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixListener;

/// An `R` message with openGauss's payload after the code: stored method, 64-char salt, 8-byte token, iterations.
fn auth_request(code: i32) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&code.to_be_bytes());
    body.extend_from_slice(&2i32.to_be_bytes());
    body.extend_from_slice(&[b'a'; 64]);
    body.extend_from_slice(&[b'b'; 8]);
    body.extend_from_slice(&10000i32.to_be_bytes());
    let mut msg = vec![b'R'];
    msg.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
    msg.extend_from_slice(&body);
    msg
}

async fn connect_against(code: i32) -> SqlError {
    let dir = tempfile::tempdir().unwrap();
    let port = 6543u16;
    let listener = UnixListener::bind(dir.path().join(format!(".s.PGSQL.{port}"))).unwrap();
    let server = tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.unwrap();
        let mut len = [0u8; 4];
        sock.read_exact(&mut len).await.unwrap();
        let mut startup = vec![0u8; i32::from_be_bytes(len) as usize - 4];
        sock.read_exact(&mut startup).await.unwrap();
        sock.write_all(&auth_request(code)).await.unwrap();
        // Hold the connection open: the client must fail on the message, not on EOF.
        let mut rest = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), sock.read_to_end(&mut rest)).await;
    });
    let sql = PgSql::new(
        dir.path().to_path_buf(),
        port,
        "omm".into(),
        Duration::from_secs(5),
    );
    let err = sql.query("SELECT 1").await.unwrap_err();
    server.abort();
    err
}

#[tokio::test]
async fn sha256_request_is_an_auth_error_with_the_fix() {
    for code in [10, 11] {
        let err = connect_against(code).await;
        assert!(
            matches!(err.problem(), Some(SqlProblem::Auth(_))),
            "code {code}: expected Auth, got {err:?}"
        );
        match DbError::from(err) {
            DbError::Auth(msg) => {
                eprintln!("code {code}: {msg}");
                assert!(msg.contains("password_encryption_type to 0 or 1"), "{msg}");
                assert!(msg.contains("local all omm trust"), "{msg}");
            }
            other => panic!("code {code}: expected Auth, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn no_server_is_a_query_error_not_auth() {
    let dir = tempfile::tempdir().unwrap();
    let sql = PgSql::new(
        dir.path().to_path_buf(),
        6544,
        "omm".into(),
        Duration::from_secs(2),
    );
    let err = sql.query("SELECT 1").await.unwrap_err();
    assert!(matches!(err, SqlError::Unreachable(_)), "{err:?}");
    // The operator is told nothing accepts the connection, in the client's words.
    assert!(
        matches!(err.problem(), Some(SqlProblem::Refused(m)) if m.contains("No such file")),
        "{err:?}"
    );
    assert!(matches!(DbError::from(err), DbError::Query(_)));
}
