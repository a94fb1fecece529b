//! REST tests over real HTTP on 127.0.0.1 port 0, with the in-memory DCS from patroni-core.

use std::sync::Arc;
use std::time::{Duration, Instant};

use patroni_core::{
    Dcs, DynamicConfig, LocalDb, Lsn, MemberData, MemberRole, MemberState, MemoryDcs, MemoryStore,
    Node, ProcessState, SharedStore,
};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use super::{RestLimits, RestServer};
use crate::config::Credentials;
use crate::state::Shared;
use crate::status::fixtures;

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
    api_with(me, auth, RestLimits::default()).await.0
}

/// As [`api`], under `limits`, with the server's connection registry.
async fn api_with(
    me: &str,
    auth: Option<Credentials>,
    limits: RestLimits,
) -> (Api, Arc<super::limits::Registry>) {
    let store = SharedStore::new(MemoryStore::new(Duration::from_secs(30)));
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
        .unwrap()
        .with_limits(limits);
    let registry = server.connections();
    let base = format!("http://{}", server.local_addr());
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(server.serve(async {
        let _ = rx.await;
    }));
    (
        Api {
            base,
            shared,
            store,
            http: reqwest::Client::new(),
            stop: Some(tx),
        },
        registry,
    )
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
            s.local = fixtures::primary();
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
            s.local = fixtures::streaming_standby(replay);
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

#[tokio::test]
async fn cluster_document_has_patronis_positions_and_order() {
    let a = api("n3", None).await;
    // n2 publishes its receive and replay positions; n3 published only `xlog_location`.
    let n2 = MemoryDcs::new(a.store.clone(), "n2", clock());
    n2.publish_member(&MemberData {
        receive_lsn: Some(Lsn(900)),
        replay_lsn: Some(Lsn(890)),
        ..member("n2", MemberRole::Replica, 900)
    })
    .await
    .unwrap();
    let (code, body) = a.get("/cluster").await;
    assert_eq!(code, StatusCode::OK);
    let doc: Value = serde_json::from_str(&body).unwrap();
    assert!(doc.get("pause").is_none(), "pause only when paused: {doc}");
    let names: Vec<&str> = doc["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["n1", "n2", "n3"], "sorted by name");
    let m = |i: usize| doc["members"][i].clone();
    assert_eq!(m(0)["role"], "leader");
    assert!(m(0).get("lsn").is_none() && m(0).get("lag").is_none());
    // 1000 on the leader: n2 has 900 (0x384) received, 890 (0x37A) replayed.
    assert_eq!(m(1)["lsn"], "0/384");
    assert_eq!(m(1)["lag"], 100);
    assert_eq!(m(1)["receive_lsn"], "0/384");
    assert_eq!(m(1)["receive_lag"], 100);
    assert_eq!(m(1)["replay_lsn"], "0/37A");
    assert_eq!(m(1)["replay_lag"], 110);
    assert_eq!(m(2)["lsn"], "0/320");
    assert_eq!(m(2)["lag"], 200);
    assert_eq!(m(2)["receive_lsn"], "unknown");
    assert_eq!(m(2)["receive_lag"], "unknown");
    assert_eq!(m(2)["replay_lag"], "unknown");
    // Paused: `pause: true` appears.
    assert_eq!(
        a.req(Method::PATCH, "/config", Some(r#"{"pause": true}"#))
            .await
            .0,
        StatusCode::OK
    );
    let doc: Value = serde_json::from_str(&a.get("/cluster").await.1).unwrap();
    assert_eq!(doc["pause"], true);
}

#[tokio::test]
async fn status_document_and_metrics_carry_patronis_fields() {
    use patroni_core::Timestamp;
    let a = api("n1", None).await;
    a.as_primary().await;
    a.shared
        .update(|s| s.local = fixtures::primary_with_replica());
    let doc: Value = serde_json::from_str(&a.get("/patroni").await.1).unwrap();
    assert_eq!(
        doc["postmaster_start_time"],
        "2023-11-14 22:13:20.123000+00:00"
    );
    let row = &doc["replication"][0];
    assert_eq!(row["usename"], "replicator");
    assert_eq!(row["application_name"], "n2");
    assert_eq!(row["client_addr"], "10.0.0.2");
    assert_eq!(row["sync_priority"], 0);
    assert_eq!(row["sync_state"], "async");
    let metrics = a.get("/metrics").await.1;
    let value = |name: &str| -> String {
        let prefix = format!("{name}{{scope=\"demo\",name=\"n1\"}} ");
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("{name} missing:\n{metrics}"))
            .to_string()
    };
    assert_eq!(value("patroni_postgres_state"), "5");
    assert_eq!(value("patroni_postgres_server_version"), "150004");
    assert_eq!(value("patroni_postmaster_start_time"), "1700000000.123");
    assert_eq!(value("patroni_postgres_streaming"), "0");
    assert_eq!(value("patroni_postgres_in_archive_recovery"), "0");
    assert_eq!(value("patroni_xlog_paused"), "0");
    assert_eq!(value("patroni_xlog_replayed_timestamp"), "0");
    assert_eq!(value("patroni_sync_standby"), "0");
    assert_eq!(value("patroni_quorum_standby"), "0");
    assert_eq!(value("patroni_standby_leader"), "0");
    assert_eq!(value("patroni_failsafe_mode_is_active"), "0");
    assert_eq!(value("patroni_primary"), "1");
    assert!(metrics.contains("# Values: 0=initdb, 1=initdb_failed,"));
    assert!(metrics.contains("# TYPE patroni_xlog_location counter"));
    // Every sample line is `name{labels} value`.
    for l in metrics.lines().filter(|l| !l.starts_with('#')) {
        let (name, rest) = l.split_once('{').unwrap_or_else(|| panic!("{l}"));
        assert!(
            name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "{l}"
        );
        let (_, v) = rest.rsplit_once("} ").unwrap_or_else(|| panic!("{l}"));
        assert!(v.parse::<f64>().is_ok(), "{l}");
    }

    // A standby replaying with replay paused, fed from the archive.
    a.as_standby(900).await;
    a.shared.update(|s| {
        s.local.receiver = None;
        s.local.version = Some("15.4".into());
        s.local.report.restore_command = true;
        s.local.report.replay_paused = true;
        s.local.report.replayed_timestamp = Some(Timestamp(1_700_000_100_000));
    });
    let doc: Value = serde_json::from_str(&a.get("/patroni").await.1).unwrap();
    assert_eq!(doc["replication_state"], "in archive recovery");
    assert_eq!(doc["xlog"]["paused"], true);
    assert_eq!(
        doc["xlog"]["replayed_timestamp"],
        "2023-11-14 22:15:00+00:00"
    );
    let metrics = a.get("/metrics").await.1;
    let line = |name: &str| format!("{name}{{scope=\"demo\",name=\"n1\"}} ");
    for (name, want) in [
        ("patroni_postgres_in_archive_recovery", "1"),
        ("patroni_postgres_streaming", "0"),
        ("patroni_xlog_paused", "1"),
        ("patroni_xlog_replayed_timestamp", "1700000100.0"),
        ("patroni_replica", "1"),
        ("patroni_primary", "0"),
    ] {
        assert!(
            metrics.contains(&format!("{}{want}\n", line(name))),
            "{name} {want}:\n{metrics}"
        );
    }
    assert_eq!(
        a.get("/replica?replication_state=in%20archive%20recovery")
            .await
            .0,
        StatusCode::OK
    );
    // Stopped: the observation of a server that is down has no version, so no streaming metrics.
    a.shared.update(|s| {
        s.local.process = ProcessState::Stopped;
        s.local.version = None;
    });
    let metrics = a.get("/metrics").await.1;
    assert!(
        !metrics.contains("patroni_postgres_streaming{"),
        "{metrics}"
    );
    assert!(metrics.contains(&format!("{}0\n", line("patroni_postgres_server_version"))));
    assert!(metrics.contains(&format!("{}12\n", line("patroni_postgres_state"))));
}

/// Patroni's `/metrics` samples computed from a `/patroni` document as its `api.py` does from
/// the one status dict, written here independently of the renderer.
fn metrics_of_document(doc: &Value) -> Vec<(&'static str, f64)> {
    let flag = |k: &str| f64::from(u8::from(doc[k] == true));
    let num = |v: &Value| v.as_f64().unwrap_or(0.0);
    let seconds = |v: &Value| {
        v.as_str()
            .and_then(|t| t.parse::<patroni_core::Timestamp>().ok())
            .map_or(0.0, |t| t.0 as f64 / 1000.0)
    };
    let role = doc["role"].as_str().unwrap_or("");
    let xlog = &doc["xlog"];
    let version = num(&doc["server_version"]);
    // `2.0.2` is `020002`.
    let semver: String = doc["patroni"]["version"]
        .as_str()
        .unwrap_or("")
        .split('.')
        .map(|p| format!("{p:0>2}"))
        .collect();
    let mut m = vec![
        ("patroni_version", semver.parse().unwrap_or(0.0)),
        (
            "patroni_postgres_running",
            f64::from(u8::from(doc["state"] == "running")),
        ),
        (
            "patroni_postmaster_start_time",
            seconds(&doc["postmaster_start_time"]),
        ),
        (
            "patroni_primary",
            f64::from(u8::from(role == "primary" || role == "master")),
        ),
        ("patroni_xlog_location", num(&xlog["location"])),
        (
            "patroni_standby_leader",
            f64::from(u8::from(role == "standby_leader")),
        ),
        ("patroni_replica", f64::from(u8::from(role == "replica"))),
        ("patroni_sync_standby", flag("sync_standby")),
        ("patroni_quorum_standby", flag("quorum_standby")),
        (
            "patroni_xlog_received_location",
            num(&xlog["received_location"]),
        ),
        (
            "patroni_xlog_replayed_location",
            num(&xlog["replayed_location"]),
        ),
        (
            "patroni_xlog_replayed_timestamp",
            seconds(&xlog["replayed_timestamp"]),
        ),
        (
            "patroni_xlog_paused",
            f64::from(u8::from(xlog["paused"] == true)),
        ),
    ];
    if version >= 90600.0 {
        let state = &doc["replication_state"];
        m.push((
            "patroni_postgres_streaming",
            f64::from(u8::from(state == "streaming")),
        ));
        m.push((
            "patroni_postgres_in_archive_recovery",
            f64::from(u8::from(state == "in archive recovery")),
        ));
    }
    m.extend([
        ("patroni_postgres_server_version", version),
        ("patroni_cluster_unlocked", flag("cluster_unlocked")),
        (
            "patroni_failsafe_mode_is_active",
            flag("failsafe_mode_is_active"),
        ),
        ("patroni_postgres_timeline", num(&doc["timeline"])),
        ("patroni_dcs_last_seen", num(&doc["dcs_last_seen"])),
        ("patroni_pending_restart", flag("pending_restart")),
        ("patroni_is_paused", flag("pause")),
    ]);
    m
}

/// Asserts that every Patroni sample of `/metrics` is what [`metrics_of_document`] computes from
/// `/patroni`, in Patroni's order and with none missing or extra; returns the samples by name.
async fn assert_metrics_follow_document(a: &Api, what: &str) -> Vec<(String, f64)> {
    let doc: Value = serde_json::from_str(&a.get("/patroni").await.1).unwrap();
    let metrics = a.get("/metrics").await.1;
    let labels = format!(
        "{{scope=\"demo\",name=\"{}\"}} ",
        doc["patroni"]["name"].as_str().unwrap()
    );
    let samples: Vec<(String, f64)> = metrics
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| !l.starts_with("patroni_postgres_state") && !l.starts_with("patroni_rs_"))
        .map(|l| {
            let (name, value) = l
                .split_once(&labels)
                .unwrap_or_else(|| panic!("{what}: {l}"));
            (name.to_string(), value.parse().unwrap())
        })
        .collect();
    let want: Vec<(String, f64)> = metrics_of_document(&doc)
        .into_iter()
        .map(|(n, v)| (n.to_string(), v))
        .collect();
    assert_eq!(samples, want, "{what}: {doc}\n{metrics}");
    samples
}

#[tokio::test]
async fn metrics_follow_the_status_document() {
    use patroni_core::{SyncState, Timestamp};
    let value = |samples: &[(String, f64)], name: &str| {
        samples
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| *v)
            .unwrap_or_else(|| panic!("{name} missing"))
    };
    let a = api("n2", None).await;
    a.as_primary().await;
    a.shared.update(|s| {
        s.local = fixtures::primary_with_replica();
        s.dcs_last_seen = Some(Timestamp(1_700_000_005_999));
    });
    let m = assert_metrics_follow_document(&a, "primary").await;
    assert_eq!(value(&m, "patroni_primary"), 1.0);
    assert_eq!(value(&m, "patroni_xlog_location"), 1000.0);
    assert_eq!(value(&m, "patroni_dcs_last_seen"), 1_700_000_005.0);

    // A synchronous standby, replay paused, with a restart pending, in a paused cluster.
    let n1 = MemoryDcs::new(a.store.clone(), "n1", clock());
    let sync = SyncState {
        leader: Some("n1".into()),
        sync_standbys: vec!["n2".into()],
        quorum: None,
    };
    assert!(n1.write_sync_state(&sync, None).await.unwrap());
    let patch = r#"{"synchronous_mode": true, "pause": true}"#;
    assert_eq!(
        a.req(Method::PATCH, "/config", Some(patch)).await.0,
        StatusCode::OK
    );
    a.as_standby(900).await;
    a.shared.update(|s| {
        s.local.version = Some("16.1".into());
        s.local.pending_restart = true;
        s.local.report.replay_paused = true;
        s.local.report.replayed_timestamp = Some(Timestamp(1_700_000_100_120));
    });
    let m = assert_metrics_follow_document(&a, "sync standby").await;
    for name in [
        "patroni_replica",
        "patroni_sync_standby",
        "patroni_xlog_paused",
        "patroni_postgres_streaming",
        "patroni_pending_restart",
        "patroni_is_paused",
        "patroni_postgres_running",
    ] {
        assert_eq!(value(&m, name), 1.0, "{name}");
    }
    let metrics = a.get("/metrics").await.1;
    assert!(
        metrics.contains(
            "patroni_xlog_replayed_timestamp{scope=\"demo\",name=\"n2\"} 1700000100.12\n"
        ),
        "Python's float form: {metrics}"
    );

    // The server is down; the member key still says replica, and the timeline comes from the
    // control file. Patroni keeps reporting the role it last had, and the metrics say so too.
    a.shared.update(|s| {
        s.local = LocalDb {
            process: ProcessState::Stopped,
            timeline: Some(3),
            ..Default::default()
        };
        s.member = Some(MemberData {
            state: MemberState::Stopped,
            ..member("n2", MemberRole::Replica, 900)
        });
    });
    let m = assert_metrics_follow_document(&a, "stopped replica").await;
    assert_eq!(value(&m, "patroni_replica"), 1.0);
    assert_eq!(value(&m, "patroni_postgres_running"), 0.0);
    assert_eq!(value(&m, "patroni_postgres_timeline"), 3.0);

    // The published state leads `patroni_postgres_running`, as it leads the document's `state`.
    a.shared.update(|s| {
        s.local = fixtures::streaming_standby(900);
        s.local.process = ProcessState::Starting;
        s.member = Some(member("n2", MemberRole::StandbyLeader, 900));
    });
    let m = assert_metrics_follow_document(&a, "standby leader starting").await;
    assert_eq!(value(&m, "patroni_standby_leader"), 1.0);
    assert_eq!(value(&m, "patroni_postgres_running"), 1.0);
}

#[tokio::test]
async fn sync_quorum_and_read_only_variants() {
    use patroni_core::SyncState;
    let a = api("n2", None).await;
    let n1 = MemoryDcs::new(a.store.clone(), "n1", clock());
    let sync = SyncState {
        leader: Some("n1".into()),
        sync_standbys: vec!["n2".into()],
        quorum: None,
    };
    assert!(n1.write_sync_state(&sync, None).await.unwrap());
    // Synchronous mode off: the `/sync` key names nobody.
    a.as_standby(900).await;
    for (p, want) in [
        ("/sync", StatusCode::SERVICE_UNAVAILABLE),
        ("/async", StatusCode::OK),
        ("/read-only-sync", StatusCode::SERVICE_UNAVAILABLE),
        ("/quorum", StatusCode::SERVICE_UNAVAILABLE),
        ("/read-only-quorum", StatusCode::SERVICE_UNAVAILABLE),
    ] {
        assert_eq!(a.get(p).await.0, want, "off: {p}");
    }
    for (mode, sync_ok, quorum_ok) in [("true", true, false), ("\"quorum\"", false, true)] {
        let patch = format!(r#"{{"synchronous_mode": {mode}}}"#);
        assert_eq!(
            a.req(Method::PATCH, "/config", Some(&patch)).await.0,
            StatusCode::OK
        );
        a.as_standby(900).await;
        let code = |ok: bool| {
            if ok {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            }
        };
        for (p, want) in [
            ("/sync", code(sync_ok)),
            ("/synchronous", code(sync_ok)),
            ("/read-only-sync", code(sync_ok)),
            ("/read-only-synchronous", code(sync_ok)),
            ("/quorum", code(quorum_ok)),
            ("/read-only-quorum", code(quorum_ok)),
            ("/async", StatusCode::SERVICE_UNAVAILABLE),
            ("/replica", StatusCode::OK),
        ] {
            assert_eq!(a.get(p).await.0, want, "{mode}: {p}");
        }
        let doc: Value = serde_json::from_str(&a.get("/patroni").await.1).unwrap();
        assert_eq!(doc.get("sync_standby").is_some(), sync_ok, "{doc}");
        assert_eq!(doc.get("quorum_standby").is_some(), quorum_ok, "{doc}");
        let cluster: Value = serde_json::from_str(&a.get("/cluster").await.1).unwrap();
        assert_eq!(
            cluster["members"][1]["role"],
            if quorum_ok {
                "quorum_standby"
            } else {
                "sync_standby"
            }
        );
    }
    // The primary answers the read-only variants whatever the mode.
    let p = api("n1", None).await;
    p.as_primary().await;
    for path in ["/read-only-sync", "/read-only-quorum", "/read-only"] {
        assert_eq!(p.get(path).await.0, StatusCode::OK, "{path}");
    }
    for path in ["/quorum", "/sync", "/async"] {
        assert_eq!(
            p.get(path).await.0,
            StatusCode::SERVICE_UNAVAILABLE,
            "{path}"
        );
    }
    // Tag filters apply to the replica answers, not to the lock holder's.
    assert_eq!(p.get("/primary?tag_site=dc9").await.0, StatusCode::OK);
    assert_eq!(
        p.get("/read-only?tag_site=dc9").await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
}

#[tokio::test]
async fn delete_restart_answers_that_nothing_is_scheduled() {
    let a = api(
        "n1",
        Some(Credentials {
            username: "u".into(),
            password: "p".into(),
        }),
    )
    .await;
    assert_eq!(
        a.req(Method::DELETE, "/restart", None).await.0,
        StatusCode::UNAUTHORIZED
    );
    let resp = a
        .http
        .delete(format!("{}/restart", a.base))
        .basic_auth("u", Some("p"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert_eq!(resp.text().await.unwrap(), "no restarts are scheduled");
}

#[tokio::test]
async fn scheduled_restart_is_kept_shown_and_cancelled() {
    let a = api("n1", None).await;
    a.as_primary().await;
    a.shared.update(|s| {
        s.local.report.postmaster_start_time = Some(patroni_core::Timestamp(1_700_000_000_000))
    });
    let at = patroni_core::Timestamp(a.shared.clock.wall().0 + 3_600_000);
    let at_text = crate::ctl::listing::python_isoformat(at);
    let body =
        json!({"schedule": at_text, "postgres_version": "99.1", "timeout": "2min"}).to_string();
    assert_eq!(
        a.post("/restart", &body).await,
        (StatusCode::ACCEPTED, "Restart scheduled".to_string())
    );
    assert_eq!(
        a.post("/restart", &json!({"schedule": at_text}).to_string())
            .await,
        (
            StatusCode::CONFLICT,
            "Another restart is already scheduled".to_string()
        )
    );
    // `/patroni` shows it without the postmaster start time; the member key carries that too.
    let (_, doc) = a.get("/patroni").await;
    let doc: Value = serde_json::from_str(&doc).unwrap();
    assert_eq!(
        doc["scheduled_restart"],
        json!({"schedule": at_text, "postgres_version": "99.1", "timeout": 120})
    );
    let kept = a.shared.snapshot().scheduled_restart.unwrap();
    assert_eq!(kept.at, at);
    assert_eq!(
        kept.to_json(true)["postmaster_start_time"],
        "2023-11-14 22:13:20+00:00"
    );
    assert_eq!(
        a.req(Method::DELETE, "/restart", None).await,
        (StatusCode::OK, "scheduled restart deleted".to_string())
    );
    assert!(a.shared.snapshot().scheduled_restart.is_none());
    let (_, doc) = a.get("/patroni").await;
    assert!(!doc.contains("scheduled_restart"), "{doc}");
    assert_eq!(
        a.req(Method::DELETE, "/restart", None).await.0,
        StatusCode::NOT_FOUND
    );
    // Patroni's refusals, word for word.
    let past = crate::ctl::listing::python_isoformat(patroni_core::Timestamp(
        a.shared.clock.wall().0 - 60_000,
    ));
    for (body, code, msg) in [
        (
            json!({"schedule": past}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "Cannot schedule restart in the past",
        ),
        (
            json!({"schedule": "2099-01-01T10:00:00"}),
            StatusCode::BAD_REQUEST,
            "Timezone information is mandatory for the scheduled restart",
        ),
        (
            json!({"schedule": "tomorrow"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "Unable to parse scheduled timestamp. It should be in an unambiguous format, e.g. ISO 8601",
        ),
        (
            json!({"role": "master"}),
            StatusCode::BAD_REQUEST,
            "PostgreSQL role should be either primary, standby_leader, or replica",
        ),
        (
            json!({"postgres_version": "15"}),
            StatusCode::BAD_REQUEST,
            "Invalid PostgreSQL version format: X.Y or X.Y.Z is accepted: 15",
        ),
        (
            json!({"timeout": -1}),
            StatusCode::BAD_REQUEST,
            "Timeout should be a positive number of seconds",
        ),
        (
            json!({"when": "now"}),
            StatusCode::BAD_REQUEST,
            "Unknown filter for the scheduled restart: when",
        ),
        (
            json!({"restart_pending": true}),
            StatusCode::SERVICE_UNAVAILABLE,
            "restart conditions are not satisfied",
        ),
        (
            json!({"postgres_version": "15.4"}),
            StatusCode::SERVICE_UNAVAILABLE,
            "restart conditions are not satisfied",
        ),
    ] {
        assert_eq!(
            a.post("/restart", &body.to_string()).await,
            (code, msg.to_string()),
            "{body}"
        );
    }
    assert!(a.shared.snapshot().scheduled_restart.is_none());
    // Paused: a schedule is refused with Patroni's 500.
    a.shared.node.write().unwrap().bootstrap_config.pause = true;
    a.shared.update(|s| s.cluster = None);
    assert_eq!(
        a.post("/restart", &json!({"schedule": at_text}).to_string())
            .await,
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            "Can't schedule restart in the paused state".to_string()
        )
    );
}

/// Reads from `s` until the server closes it; how long that took, `None` if still open at `limit`.
async fn closed_within(s: &mut tokio::net::TcpStream, limit: Duration) -> Option<Duration> {
    use tokio::io::AsyncReadExt;
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        let left = limit.checked_sub(start.elapsed())?;
        match tokio::time::timeout(left, s.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(start.elapsed()),
            Ok(Ok(_)) => continue,
        }
    }
}

fn limits(header: u64, idle: u64, max: usize) -> RestLimits {
    RestLimits {
        header_timeout: Duration::from_secs(header),
        idle_timeout: Duration::from_secs(idle),
        max_connections: max,
    }
}

#[tokio::test]
async fn health_checks_answer_past_the_connection_cap() {
    let (a, registry) = api_with("n1", None, limits(30, 30, 8)).await;
    a.as_primary().await;
    let addr = a.base.trim_start_matches("http://").to_string();
    // Twice the cap of idle connections, each having sent nothing.
    let mut idle = Vec::new();
    for _ in 0..16 {
        idle.push(tokio::net::TcpStream::connect(&addr).await.unwrap());
    }
    // A health check still answers, on a fresh connection, while the idle ones sit there.
    let started = Instant::now();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let resp = http
        .get(format!("{}/primary", a.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    println!(
        "MEASURED /primary past the cap answered in {} ms",
        started.elapsed().as_millis()
    );
    drop(resp);
    // The oldest idle connections were closed to make room, and the cap holds.
    let mut closed = 0;
    for s in &mut idle {
        if closed_within(s, Duration::from_millis(500)).await.is_some() {
            closed += 1;
        }
    }
    assert!(closed >= 9, "only {closed} of 16 idle connections closed");
    assert!(registry.open() <= 8, "{} open", registry.open());
    // Endpoints that wait may fill at most half the connections.
    assert_eq!(RestLimits::default().max_waiting_requests(), 128);
    assert_eq!(limits(1, 1, 8).max_waiting_requests(), 4);
}

#[tokio::test]
async fn idle_connections_are_closed_after_the_idle_timeout() {
    use tokio::io::AsyncWriteExt;
    let (a, registry) = api_with("n1", None, limits(30, 1, 64)).await;
    let addr = a.base.trim_start_matches("http://").to_string();
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    // The answer, then the keep-alive connection idles until the server closes it.
    let took = closed_within(&mut s, Duration::from_secs(10)).await;
    let took = took.expect("an idle keep-alive connection stayed open 10 s");
    println!(
        "MEASURED idle connection closed after {} ms",
        took.as_millis()
    );
    assert!(
        took >= Duration::from_millis(900),
        "closed too early: {took:?}"
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(registry.open(), 0);
}

#[tokio::test]
async fn half_a_header_is_disconnected_after_the_header_timeout() {
    use tokio::io::AsyncWriteExt;
    let (a, _) = api_with("n1", None, limits(1, 60, 64)).await;
    let addr = a.base.trim_start_matches("http://").to_string();
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let took = closed_within(&mut s, Duration::from_secs(10)).await;
    let took = took.expect("half a header held the connection 10 s");
    println!(
        "MEASURED half a header disconnected after {} ms",
        took.as_millis()
    );
    // A body announced but not sent is cut off too, with 408.
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    s.write_all(b"POST /switchover HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"leader\":")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        use tokio::io::AsyncReadExt;
        let mut buf = [0u8; 1024];
        while let Ok(n) = s.read(&mut buf).await {
            if n == 0 {
                break;
            }
            answer.extend_from_slice(&buf[..n]);
            if answer.windows(4).any(|w| w == b"\r\n\r\n") {
                break;
            }
        }
    })
    .await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    // A client that sends its request whole is served as before.
    assert_eq!(a.get("/health").await.0, StatusCode::SERVICE_UNAVAILABLE);
}

#[test]
fn limits_come_from_the_restapi_section() {
    let text = "scope: s\nname: n\netcd3: {hosts: 127.0.0.1:2379}\nrestapi:\n  listen: 127.0.0.1:8008\n  header_timeout: 3\n  idle_timeout: 30\n  max_connections: 50\n";
    let loaded = crate::config::Config::parse(text, "t.yml", Vec::new()).unwrap();
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    assert_eq!(loaded.config.restapi.limits(), limits(3, 30, 50));
    let plain = "scope: s\nname: n\netcd3: {hosts: 127.0.0.1:2379}\n";
    let loaded = crate::config::Config::parse(plain, "t.yml", Vec::new()).unwrap();
    assert_eq!(loaded.config.restapi.limits(), RestLimits::default());
}

#[tokio::test]
async fn a_standby_leader_answers_standby_leader_and_leader_only() {
    let a = api("n1", None).await;
    let (code, body) = a
        .req(
            Method::PATCH,
            "/config",
            Some(r#"{"standby_cluster": {"host": "10.0.0.9", "port": "x"}}"#),
        )
        .await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert!(
        body.contains("standby_cluster") && body.contains("port"),
        "{body}"
    );
    let (code, _) = a
        .req(
            Method::PATCH,
            "/config",
            Some(r#"{"standby_cluster": {"host": "10.0.0.9", "port": 5433}}"#),
        )
        .await;
    assert_eq!(code, StatusCode::OK);
    a.as_standby(900).await;
    let now = a.shared.clock.now();
    a.shared.update(|s| {
        s.leader_expiry = Some(now + 60_000);
        s.member = Some(member("n1", MemberRole::StandbyLeader, 900));
    });
    for p in ["/standby-leader", "/standby_leader", "/leader"] {
        assert_eq!(a.get(p).await.0, StatusCode::OK, "{p}");
    }
    for p in ["/primary", "/", "/replica", "/read-write"] {
        assert_eq!(a.get(p).await.0, StatusCode::SERVICE_UNAVAILABLE, "{p}");
    }
    let (_, body) = a.get("/patroni").await;
    let doc: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(doc["role"], "standby_leader");
    // Promoted: the same lock holder is no standby leader any more.
    let (code, _) = a
        .req(
            Method::PATCH,
            "/config",
            Some(r#"{"standby_cluster": null}"#),
        )
        .await;
    assert_eq!(code, StatusCode::OK);
    a.as_standby(900).await;
    a.shared.update(|s| s.leader_expiry = Some(now + 60_000));
    assert_eq!(
        a.get("/standby-leader").await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
}

#[tokio::test]
async fn failsafe_posts_are_accepted_only_for_the_known_leader() {
    let a = api("n2", None).await;
    a.as_standby(900).await;
    let post = r#"{"name":"n1","conn_url":"postgres://n1","api_url":"http://n1:8008/patroni"}"#;
    // Failsafe mode off: Patroni's 502.
    assert_eq!(a.post("/failsafe", post).await.0, StatusCode::BAD_GATEWAY);
    assert_eq!(a.get("/failsafe").await.0, StatusCode::BAD_GATEWAY);
    a.shared.update(|s| {
        let c = s.cluster.as_mut().unwrap();
        c.config.as_mut().unwrap().value.failsafe_mode = true;
        c.failsafe = Some(
            [("n1".to_string(), "http://n1:8008/patroni".to_string())]
                .into_iter()
                .collect(),
        );
    });
    let (code, body) = a.get("/failsafe").await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({"n1": "http://n1:8008/patroni"})
    );
    // Another member claiming to lead is refused; the lock holder is accepted and remembered.
    let other = r#"{"name":"n3","conn_url":"postgres://n3","api_url":"http://n3:8008/patroni"}"#;
    assert_eq!(
        a.post("/failsafe", other).await.0,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert!(a.shared.snapshot().failsafe_leader.is_none());
    assert_eq!(
        a.post("/failsafe", post).await,
        (StatusCode::OK, "Accepted".into())
    );
    assert_eq!(
        a.shared.snapshot().failsafe_leader.map(|l| l.name),
        Some("n1".to_string())
    );
    let (_, body) = a.get("/patroni").await;
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["failsafe_mode_is_active"],
        true
    );
    // A running primary never accepts another leader.
    a.as_primary().await;
    a.shared.update(|s| {
        s.cluster
            .as_mut()
            .unwrap()
            .config
            .as_mut()
            .unwrap()
            .value
            .failsafe_mode = true;
    });
    let (code, body) = a.post("/failsafe", post).await;
    assert_eq!(
        (code, body.as_str()),
        (StatusCode::INTERNAL_SERVER_ERROR, "Running as a leader")
    );
}

/// `POST /restart` hands its `timeout` to the HA loop with the request, and answers Patroni's
/// "postgres is still starting" once the restart's start has outlasted that timeout; a restart
/// that ends in time is a success.
#[tokio::test]
async fn restart_timeout_reaches_the_request_and_bounds_the_answer() {
    use patroni_core::{ActionKind, LocalRequest, Outcome, OutcomeResult, RunningTask};
    let a = api("n1", None).await;
    for (body, finishes, want) in [
        (
            r#"{"timeout": 1}"#,
            false,
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "postgres is still starting",
            ),
        ),
        (
            r#"{"timeout": "30s"}"#,
            true,
            (StatusCode::OK, "restarted successfully"),
        ),
    ] {
        a.as_primary().await;
        let shared = Arc::clone(&a.shared);
        // Stands in for the HA loop: takes the request and starts the restart, whose server
        // then starts (and, when `finishes`, comes up).
        let ha_loop = tokio::spawn(async move {
            let requests = loop {
                let r = shared.take_requests();
                if !r.is_empty() {
                    break r;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            };
            let since = shared.clock.now();
            shared.update(|s| {
                s.task = Some(RunningTask {
                    kind: ActionKind::Restart,
                    since,
                });
                s.local.process = ProcessState::Starting;
            });
            if finishes {
                tokio::time::sleep(Duration::from_millis(300)).await;
                shared.update(|s| {
                    s.task = None;
                    s.local.process = ProcessState::Running;
                    s.finished.push(Outcome {
                        kind: ActionKind::Restart,
                        result: OutcomeResult::Done,
                        started_at: since,
                    });
                });
            }
            requests
        });
        let (code, text) = a.post("/restart", body).await;
        let requests = ha_loop.await.unwrap();
        assert_eq!((code, text.as_str()), want, "{body}");
        let timeout = if finishes { 30 } else { 1 };
        assert_eq!(
            requests,
            [LocalRequest::Restart {
                timeout: Some(Duration::from_secs(timeout))
            }],
            "{body}"
        );
        a.shared.update(|s| s.task = None);
    }
}
