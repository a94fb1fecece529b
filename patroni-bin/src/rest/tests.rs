//! REST tests over real HTTP on 127.0.0.1 port 0, with the in-memory DCS from patroni-core.

use std::sync::Arc;
use std::time::{Duration, Instant};

use patroni_core::{
    DbRole, Dcs, DynamicConfig, LocalDb, Lsn, MemberData, MemberRole, MemberState, MemoryDcs,
    MemoryStore, Node, ProcessState, ReceiverStatus, SharedStore,
};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use super::RestServer;
use crate::config::Credentials;
use crate::state::Shared;

struct Api {
    base: String,
    shared: Arc<Shared>,
    store: SharedStore,
    http: reqwest::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Api {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

fn clock() -> Arc<dyn Fn() -> u64 + Send + Sync> {
    let start = Instant::now();
    Arc::new(move || start.elapsed().as_millis() as u64 + 1)
}

fn member(name: &str, role: MemberRole, pos: u64) -> MemberData {
    MemberData {
        conn_url: format!("postgres://postgres@127.0.0.1:5432/{name}"),
        api_url: format!("http://127.0.0.1:1/{name}/patroni"),
        state: MemberState::Running,
        role,
        xlog_location: Some(Lsn(pos)),
        timeline: Some(1),
        ..Default::default()
    }
}

/// A three-member cluster in the store (n1 leader), and the API of `me`.
async fn api(me: &str, auth: Option<Credentials>) -> Api {
    let store = SharedStore::new(MemoryStore::new(30_000));
    let clk = clock();
    let cfg = DynamicConfig {
        ttl: 10,
        loop_wait: 2,
        retry_timeout: 4,
        ..Default::default()
    };
    for (name, role, pos) in [
        ("n1", MemberRole::Primary, 1000),
        ("n2", MemberRole::Replica, 900),
        ("n3", MemberRole::Replica, 800),
    ] {
        let d = MemoryDcs::new(store.clone(), name, clk.clone());
        if name == "n1" {
            assert!(d.write_config(&cfg, None).await.unwrap());
            assert!(d.acquire_leader().await.unwrap());
        }
        d.publish_member(&member(name, role, pos)).await.unwrap();
    }
    let dcs: Arc<dyn Dcs> = Arc::new(MemoryDcs::new(store.clone(), me, clk));
    let mut node = Node::new(me);
    node.bootstrap_config = cfg;
    node.tags.custom.insert("site".into(), json!("dc1"));
    let shared = Shared::new("demo", node, dcs, auth);
    let server = RestServer::bind("127.0.0.1:0", Arc::clone(&shared))
        .await
        .unwrap();
    let base = format!("http://{}", server.local_addr());
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(server.serve(async {
        let _ = rx.await;
    }));
    Api {
        base,
        shared,
        store,
        http: reqwest::Client::new(),
        stop: Some(tx),
    }
}

impl Api {
    async fn req(&self, m: Method, path: &str, body: Option<&str>) -> (StatusCode, String) {
        let mut r = self
            .http
            .request(m, format!("{}{path}", self.base))
            .timeout(Duration::from_secs(30));
        if let Some(b) = body {
            r = r
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let resp = r.send().await.unwrap();
        let code = resp.status();
        (code, resp.text().await.unwrap())
    }

    async fn get(&self, path: &str) -> (StatusCode, String) {
        self.req(Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: &str) -> (StatusCode, String) {
        self.req(Method::POST, path, Some(body)).await
    }

    /// Makes the snapshot say: running primary holding the lock.
    async fn as_primary(&self) {
        let cluster = self.shared.dcs.load().await.unwrap();
        let now = self.shared.clock.now();
        self.shared.update(|s| {
            s.local = LocalDb {
                process: ProcessState::Running,
                role: DbRole::Primary,
                write_lsn: Some(Lsn(1000)),
                timeline: Some(1),
                version: Some("15.4".into()),
                ..Default::default()
            };
            s.cluster = Some(cluster);
            s.leader_expiry = Some(now + 60_000);
            s.last_cycle = Some(now);
        });
    }

    /// Makes the snapshot say: streaming standby replayed up to `replay`.
    async fn as_standby(&self, replay: u64) {
        let cluster = self.shared.dcs.load().await.unwrap();
        let now = self.shared.clock.now();
        self.shared.update(|s| {
            s.local = LocalDb {
                process: ProcessState::Running,
                role: DbRole::Standby,
                receive_lsn: Some(Lsn(replay)),
                replay_lsn: Some(Lsn(replay)),
                timeline: Some(1),
                receiver: Some(ReceiverStatus {
                    streaming: true,
                    upstream_host: Some("127.0.0.1".into()),
                    upstream_port: Some(5432),
                }),
                ..Default::default()
            };
            s.cluster = Some(cluster);
            s.leader_expiry = None;
            s.last_cycle = Some(now);
        });
    }
}

#[tokio::test]
async fn primary_health_codes_follow_lock_and_database() {
    let a = api("n1", None).await;
    a.as_primary().await;
    for p in [
        "/",
        "/primary",
        "/read-write",
        "/leader",
        "/health",
        "/read-only",
        "/liveness",
        "/readiness",
    ] {
        assert_eq!(a.get(p).await.0, StatusCode::OK, "{p}");
    }
    for p in ["/replica", "/sync", "/async", "/standby-leader"] {
        assert_eq!(a.get(p).await.0, StatusCode::SERVICE_UNAVAILABLE, "{p}");
    }
    let (code, body) = a.req(Method::OPTIONS, "/primary", None).await;
    assert_eq!((code, body.as_str()), (StatusCode::OK, ""));
    let (code, body) = a.req(Method::HEAD, "/replica", None).await;
    assert_eq!((code, body.as_str()), (StatusCode::SERVICE_UNAVAILABLE, ""));
    let (_, body) = a.get("/primary").await;
    let doc: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(doc["role"], "primary");
    assert_eq!(doc["server_version"], 150004);
    assert_eq!(doc["xlog"]["location"], 1000);
    assert_eq!(doc["patroni"]["scope"], "demo");
    // The database goes down: the lock alone does not make a primary.
    a.shared.update(|s| s.local.process = ProcessState::Stopped);
    assert_eq!(a.get("/primary").await.0, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(a.get("/health").await.0, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(a.get("/leader").await.0, StatusCode::OK);
    // The lease runs out.
    a.shared.update(|s| s.leader_expiry = Some(1));
    assert_eq!(a.get("/leader").await.0, StatusCode::SERVICE_UNAVAILABLE);
    let (code, body) = a.get("/patroni").await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["state"],
        "stopped"
    );
}

#[tokio::test]
async fn replica_checks_lag_and_tags() {
    let a = api("n2", None).await;
    a.as_standby(900).await;
    assert_eq!(a.get("/replica").await.0, StatusCode::OK);
    assert_eq!(a.get("/async").await.0, StatusCode::OK);
    assert_eq!(a.get("/primary").await.0, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(a.get("/replica?lag=100").await.0, StatusCode::OK);
    assert_eq!(
        a.get("/replica?lag=99").await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(a.get("/replica?lag=1MB").await.0, StatusCode::OK);
    assert_eq!(
        a.get("/replica?lag=garbage").await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(a.get("/replica?tag_site=dc1").await.0, StatusCode::OK);
    assert_eq!(
        a.get("/replica?tag_site=dc2").await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        a.get("/replica?replication_state=streaming").await.0,
        StatusCode::OK
    );
    assert_eq!(a.get("/readiness").await.0, StatusCode::OK);
    assert_eq!(
        a.get("/readiness?lag=10").await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    let (_, body) = a.get("/patroni").await;
    let doc: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(doc["role"], "replica");
    assert_eq!(doc["xlog"]["replayed_location"], 900);
    assert_eq!(doc["tags"]["site"], "dc1");
}

#[tokio::test]
async fn config_get_patch_put() {
    let a = api("n1", None).await;
    let (code, body) = a.get("/config").await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["ttl"], 10);
    let (code, body) = a
        .req(
            Method::PATCH,
            "/config",
            Some(
                r#"{"ttl": 12, "loop_wait": 3, "postgresql": {"parameters": {"work_mem": "8MB"}}}"#,
            ),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{body}");
    let c = a.shared.dcs.load().await.unwrap().config.unwrap().value;
    assert_eq!(c.loop_wait, 3);
    assert_eq!(c.postgresql.parameters["work_mem"], "8MB");
    let (code, _) = a
        .req(
            Method::PATCH,
            "/config",
            Some(r#"{"postgresql": {"parameters": {"work_mem": null}}, "pause": true}"#),
        )
        .await;
    assert_eq!(code, StatusCode::OK);
    let c = a.shared.dcs.load().await.unwrap().config.unwrap().value;
    assert!(c.pause && c.postgresql.parameters.is_empty());
    // A timing that breaks the rule is stored as written (Patroni accepts it) and adjusted by
    // every reader, so it never blocks a later, unrelated change such as a pause.
    let (code, _) = a
        .req(Method::PATCH, "/config", Some(r#"{"loop_wait": 9}"#))
        .await;
    assert_eq!(code, StatusCode::OK);
    let view = a.shared.dcs.load().await.unwrap();
    let c = view.config.unwrap().value;
    assert!(c.loop_wait + 2 * c.retry_timeout <= c.ttl, "{c:?}");
    assert!(view.warnings.iter().any(|w| w.contains("exceeds ttl")));
    let (code, _) = a
        .req(Method::PATCH, "/config", Some(r#"{"pause": false}"#))
        .await;
    assert_eq!(code, StatusCode::OK);
    let (code, body) = a.req(Method::PATCH, "/config", Some("{not json")).await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert!(body.contains("invalid JSON"), "{body}");
    let (code, _) = a
        .req(
            Method::PUT,
            "/config",
            Some(r#"{"ttl": 20, "loop_wait": 5, "retry_timeout": 5}"#),
        )
        .await;
    assert_eq!(code, StatusCode::OK);
    let c = a.shared.dcs.load().await.unwrap().config.unwrap().value;
    assert_eq!((c.ttl, c.loop_wait, c.pause), (20, 5, false));
    // A write in between the read and the CAS loses: 409.
    let cur = a.shared.dcs.load().await.unwrap().config.unwrap();
    assert!(a
        .shared
        .dcs
        .write_config(&cur.value, Some(cur.version))
        .await
        .unwrap());
    assert!(!a
        .shared
        .dcs
        .write_config(&cur.value, Some(cur.version))
        .await
        .unwrap());
}

#[tokio::test]
async fn unsafe_verbs_need_basic_auth() {
    let auth = Credentials {
        username: "admin".into(),
        password: "pw".into(),
    };
    let a = api("n1", Some(auth)).await;
    let (code, body) = a.post("/reload", "").await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
    assert_eq!(body, "no auth header received");
    let bad = a
        .http
        .post(format!("{}/reload", a.base))
        .basic_auth("admin", Some("nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(bad.text().await.unwrap(), "wrong credentials");
    let good = a
        .http
        .post(format!("{}/reload", a.base))
        .basic_auth("admin", Some("pw"))
        .send()
        .await
        .unwrap();
    assert_eq!(good.status(), StatusCode::ACCEPTED);
    assert_eq!(
        a.req(Method::PATCH, "/config", Some("{}")).await.0,
        StatusCode::UNAUTHORIZED
    );
    // Safe verbs stay open.
    assert_eq!(a.get("/patroni").await.0, StatusCode::OK);
}

#[tokio::test]
async fn hostile_bodies_are_refused_not_fatal() {
    let a = api("n1", None).await;
    let huge = "x".repeat(super::MAX_BODY + 10);
    assert_eq!(
        a.post("/switchover", &huge).await.0,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    assert_eq!(
        a.post("/switchover", "[1,2").await.0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        a.post("/switchover", r#"{"leader": 5}"#).await.0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        a.post("/restart", r#"{"role": "king"}"#).await.0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        a.post("/restart", r#"{"bogus": 1}"#).await.0,
        StatusCode::BAD_REQUEST
    );
    // A request without a body at all.
    let r = a
        .http
        .post(format!("{}/reload", a.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert_eq!(
        a.get("/replica?lag=%ZZ").await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    // Still serving.
    assert_eq!(a.get("/patroni").await.0, StatusCode::OK);
}

#[tokio::test]
async fn switchover_validation_and_scheduling() {
    let a = api("n1", None).await;
    a.as_primary().await;
    let (code, body) = a.post("/switchover", r#"{"candidate": "n2"}"#).await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert!(body.contains("only from a specific leader"));
    let (code, body) = a.post("/switchover", r#"{"leader": "n2"}"#).await;
    assert_eq!(
        (code, body.as_str()),
        (
            StatusCode::PRECONDITION_FAILED,
            "leader name does not match"
        )
    );
    let (code, body) = a
        .post("/switchover", r#"{"leader": "n1", "candidate": "zz"}"#)
        .await;
    assert_eq!(
        (code, body.as_str()),
        (StatusCode::PRECONDITION_FAILED, "candidate does not exists")
    );
    let (code, _) = a
        .post(
            "/switchover",
            r#"{"leader": "n1", "candidate": "n2", "scheduled_at": "2001-01-01T00:00:00+00:00"}"#,
        )
        .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
    let (code, body) = a
        .post(
            "/switchover",
            r#"{"leader": "n1", "candidate": "n2", "scheduled_at": "2099-01-01T00:00:00"}"#,
        )
        .await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert!(body.contains("Timezone"), "{body}");
    let (code, body) = a
        .post(
            "/switchover",
            r#"{"leader": "n1", "candidate": "n2", "scheduled_at": "2099-01-01T00:00:00+00:00"}"#,
        )
        .await;
    assert_eq!(
        (code, body.as_str()),
        (StatusCode::ACCEPTED, "Switchover scheduled")
    );
    let f = a.shared.dcs.load().await.unwrap().failover.unwrap().value;
    assert_eq!(
        (f.leader.as_deref(), f.candidate.as_deref()),
        (Some("n1"), Some("n2"))
    );
    let (code, body) = a.get("/cluster").await;
    assert_eq!(code, StatusCode::OK);
    let doc: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(doc["members"][0]["name"], "n1");
    assert_eq!(doc["members"][0]["role"], "leader");
    assert_eq!(doc["members"][1]["lag"], 100);
    assert!(doc["scheduled_switchover"].is_object());
    assert_eq!(
        a.req(Method::DELETE, "/switchover", None).await.0,
        StatusCode::OK
    );
    assert_eq!(
        a.req(Method::DELETE, "/switchover", None).await.0,
        StatusCode::NOT_FOUND
    );
    let (code, body) = a.post("/failover", "{}").await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert!(body.contains("specific candidate"));
    // Nobody acts on the key here, so an immediate switchover times out as "unknown"... unless the
    // leader changes: move the lock by hand while the handler polls.
    let store = a.store.clone();
    let mover = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(600)).await;
        let clk = clock();
        let n1 = MemoryDcs::new(store.clone(), "n1", clk.clone());
        let n3 = MemoryDcs::new(store.clone(), "n3", clk);
        let f = n1.load().await.unwrap().failover.unwrap();
        assert!(n1.release_leader().await.unwrap());
        assert!(n3.acquire_leader().await.unwrap());
        assert!(n1.clear_failover(f.version).await.unwrap());
    });
    let (code, body) = a
        .post("/switchover", r#"{"leader": "n1", "candidate": "n2"}"#)
        .await;
    mover.await.unwrap();
    assert_eq!(code, StatusCode::OK);
    assert_eq!(body, "Switched over to \"n3\" instead of \"n2\"");
}

#[tokio::test]
async fn metrics_restart_reinit_and_missing_config() {
    let a = api("n1", None).await;
    a.as_primary().await;
    let (code, body) = a.get("/metrics").await;
    assert_eq!(code, StatusCode::OK);
    assert!(
        body.contains("patroni_primary{scope=\"demo\",name=\"n1\"} 1"),
        "{body}"
    );
    assert!(body.contains("# TYPE patroni_postgres_running gauge"));
    let (code, body) = a.post("/restart", r#"{"role": "replica"}"#).await;
    assert_eq!(
        (code, body.as_str()),
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "restart conditions are not satisfied"
        )
    );
    let (code, body) = a.post("/reinitialize", "{}").await;
    assert_eq!(
        (code, body.as_str()),
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "I am the leader, can not reinitialize"
        )
    );
    assert_eq!(a.get("/history").await, (StatusCode::OK, "[]".to_string()));
    // Wipe /config: GET answers 502, PATCH 503.
    let now = a.shared.clock.now();
    a.store
        .with(|s| assert!(s.delete(patroni_core::keyspace::CONFIG, now)));
    assert_eq!(a.get("/config").await.0, StatusCode::BAD_GATEWAY);
    assert_eq!(
        a.req(Method::PATCH, "/config", Some("{}")).await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
}
