//! The REST API secured as Patroni secures it, on a real cluster whose etcd also speaks TLS with
//! client certificates: HTTPS only, an encrypted server key, client certificates required,
//! the allowlist for unsafe verbs, extra headers, peer probes and `patronictl` over HTTPS.

mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use common::{ctl, Options, TestCluster};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_cluster_with_client_certificates_and_allowlist() {
    // Bootstrapping and the replicas' streaming already went through etcd over TLS with a client
    // certificate, and `start_opts` polled every member's /patroni over HTTPS.
    let mut c = TestCluster::start_opts(
        "tls",
        Options {
            tls: true,
            ..Options::default()
        },
    )
    .await;
    let leader = c.leader().await.expect("a leader");
    let view = c.view().await.unwrap();
    for m in &view.members {
        assert!(m.data.api_url.starts_with("https://"), "{}", m.data.api_url);
    }
    let tls = c.tls.as_ref().unwrap();
    let api = c.node(&leader).api();

    // /health over HTTPS, with both kinds of extra headers.
    let r = c
        .http
        .get(format!("{api}/health"))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-test-http"], "plain");
    assert_eq!(r.headers()["x-test-https"], "secure");

    // Plain HTTP gets no HTTP answer from the TLS port.
    let plain = reqwest::Client::new()
        .get(format!(
            "http://127.0.0.1:{}/health",
            c.node(&leader).api_port
        ))
        .timeout(Duration::from_secs(5))
        .send()
        .await;
    assert!(plain.is_err(), "{plain:?}");

    // verify_client: required — no certificate, no connection; with one, an answer.
    let anonymous = tls.client(false).build().unwrap();
    let r = anonymous
        .get(format!("{api}/health"))
        .timeout(Duration::from_secs(5))
        .send()
        .await;
    assert!(
        r.is_err(),
        "a client without a certificate was served: {r:?}"
    );

    // The allowlist holds 127.0.0.1 (and the members, all on 127.0.0.1): from 127.0.0.2 the
    // unsafe verbs get 403, reading still works.
    let outside = tls
        .client(true)
        .local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)))
        .build()
        .unwrap();
    let r = outside
        .get(format!("{api}/patroni"))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = outside
        .post(format!("{api}/reload"))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(r.headers()["x-test-https"], "secure");
    assert_eq!(r.text().await.unwrap(), "Access is denied");
    let (code, body) = c
        .post(&leader, "/reload", serde_json::json!({}))
        .await
        .unwrap();
    assert_eq!((code, body.as_str()), (202, "reload scheduled"));

    // Our patronictl with node1's file: the DCS over TLS, the APIs over HTTPS with `ctl.cacert`
    // and `ctl`'s client certificate and encrypted key.
    let list = ctl::ctl(&c, &["list"], "");
    let out = list.ok("patronictl list");
    for n in ["node1", "node2", "node3"] {
        assert!(out.contains(n), "{out}");
    }
    let reload = ctl::ctl(&c, &["reload", &c.scope, "--force"], "");
    let out = reload.ok("patronictl reload");
    assert!(out.contains("Reload request received"), "{out}");

    // Python Patroni's patronictl with the same file: etcd over TLS with its client
    // certificate, and our HTTPS API with `ctl`'s certificate and encrypted key.
    let bin = common::pyvenv::venv();
    let python = |args: &[&str]| {
        let out = std::process::Command::new("timeout")
            .arg("60")
            .arg(bin.join("patronictl"))
            .arg("-c")
            .arg(&c.node("node1").config)
            .args(args)
            .env_remove("PATRONICTL_CONFIG_FILE")
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run Python patronictl");
        assert!(
            out.status.success(),
            "patronictl {args:?}: {}",
            common::pyvenv::show(&out)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let rows: serde_json::Value = serde_json::from_str(&python(&["list", "-f", "json"])).unwrap();
    assert_eq!(rows.as_array().map(Vec::len), Some(3), "{rows}");
    let out = python(&["reload", &c.scope, "--force"]);
    assert_eq!(out.matches("Reload request received").count(), 3, "{out}");

    // A failover: the survivors probe each other over HTTPS before racing; only the dead
    // leader may go unanswered.
    c.node_mut(&leader).kill9_agent();
    c.node(&leader).kill9_postmaster();
    let new = c.wait_new_primary(&leader, Duration::from_secs(60)).await;
    assert_ne!(new, leader);
    for n in &c.nodes {
        if n.name == leader {
            continue;
        }
        let log = std::fs::read_to_string(&n.log).unwrap_or_default();
        for other in c
            .nodes
            .iter()
            .filter(|o| o.name != leader && o.name != n.name)
        {
            let failed = format!("Request failed to {}:", other.name);
            assert!(
                !log.contains(&failed),
                "{}: {failed}\n{}",
                n.name,
                n.log_tail(40)
            );
        }
    }
    let probed = c.nodes.iter().filter(|n| n.name != leader).any(|n| {
        std::fs::read_to_string(&n.log)
            .unwrap_or_default()
            .contains(&format!("Request failed to {leader}:"))
    });
    assert!(probed, "no survivor probed the dead leader");
}

/// A REST server (no database) over a real etcd, answering `client`'s `method path`.
async fn call(client: &reqwest::Client, method: reqwest::Method, url: &str) -> (u16, String) {
    let r = client
        .request(method, url)
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{url}: {e}"));
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn optional_client_certificates_networks_members_and_keys() {
    use patroni_bin::{RestApiConfig, RestLimits, RestServer, Shared, VerifyClient};
    use patroni_core::{Dcs, MemberData, Node};
    use patroni_etcd::testkit::{EtcdProcess, TlsFiles};
    use patroni_etcd::{EtcdDcs, EtcdIdentity};
    use reqwest::Method;
    use std::io::{Read, Write};
    use std::sync::Arc;

    let dir = tempfile::tempdir().unwrap();
    let files = TlsFiles::generate(dir.path()).unwrap();
    // Certificate and key in one file: `keyfile` defaults to `certfile`.
    let combined = dir.path().join("combined.pem");
    let mut pem = std::fs::read_to_string(&files.client_cert).unwrap();
    pem.push_str(&std::fs::read_to_string(&files.client_key).unwrap());
    std::fs::write(&combined, pem).unwrap();

    let etcd = EtcdProcess::start().await.expect("etcd");
    let scope = format!("rest-tls-{}", std::process::id());
    let dcs =
        Arc::new(EtcdDcs::new(&etcd.config(), EtcdIdentity::new(scope.clone(), "a")).unwrap());
    // A member whose REST API is on 127.0.0.3: `allowlist_include_members` lets that host in.
    dcs.publish_member(&MemberData {
        api_url: "https://127.0.0.3:8008/patroni".into(),
        ..MemberData::default()
    })
    .await
    .unwrap();
    let shared = Shared::new(scope, Node::new("a"), dcs.clone(), None);
    shared.snapshot.write().unwrap().cluster = Some(dcs.load().await.unwrap());

    let restapi = RestApiConfig {
        certfile: Some(combined.clone()),
        cafile: Some(files.ca.clone()),
        verify_client: Some(VerifyClient::Optional),
        allowlist: vec!["127.0.0.0/31".into(), "localhost".into()],
        allowlist_include_members: true,
        ..RestApiConfig::default()
    };
    let limits = RestLimits {
        header_timeout: Duration::from_secs(1),
        ..RestLimits::default()
    };
    let server = RestServer::bind("127.0.0.1:0", Arc::clone(&shared))
        .await
        .unwrap()
        .with_limits(limits)
        .with_security(&restapi)
        .await
        .unwrap();
    // A client that starts a TLS handshake and stalls holds up nobody, and is dropped after
    // the header timeout.
    let mut stalled = std::net::TcpStream::connect(server.local_addr()).unwrap();
    stalled.write_all(&[0x16, 0x03, 0x01]).unwrap();
    let url = |path: &str| format!("https://localhost:{}{path}", server.local_addr().port());
    let (health, reload) = (url("/patroni"), url("/reload"));
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.serve(async {
        let _ = rx.await;
    }));

    let tls = common::Tls {
        files: files.clone(),
        encrypted_key: files.client_key.clone(),
    };
    let from = |ip: [u8; 4], cert: bool| {
        tls.client(cert)
            .local_address(IpAddr::V4(Ipv4Addr::from(ip)))
            .build()
            .unwrap()
    };
    // optional: a client without a certificate is served, but not for the unsafe verbs.
    let (code, _) = call(&from([127, 0, 0, 1], false), Method::GET, &health).await;
    assert!(code == 200 || code == 503, "{code}");
    assert_eq!(
        call(&from([127, 0, 0, 1], false), Method::POST, &reload).await,
        (403, "client certificate required".into())
    );
    // Inside 127.0.0.0/31, a member's host, or neither.
    for (ip, allowed) in [
        ([127, 0, 0, 1], true),
        ([127, 0, 0, 2], false),
        ([127, 0, 0, 3], true),
        ([127, 0, 0, 4], false),
    ] {
        let (code, body) = call(&from(ip, true), Method::POST, &reload).await;
        if allowed {
            assert_eq!((code, body.as_str()), (202, "reload scheduled"), "{ip:?}");
        } else {
            assert_eq!((code, body.as_str()), (403, "Access is denied"), "{ip:?}");
            let (code, _) = call(&from(ip, true), Method::GET, &health).await;
            assert!(code == 200 || code == 503, "{ip:?}: GET answered {code}");
        }
    }
    stalled
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = [0u8; 64];
    match stalled.read(&mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("the stalled handshake was not closed: {other:?}"),
    }
    let _ = tx.send(());
    serving.await.unwrap().unwrap();

    // An encrypted key needs its password, and the right one.
    let enc = dir.path().join("key.enc.pem");
    common::encrypt_key(&files.client_key, &enc, "right");
    for (password, wanted) in [
        (None, Some("set keyfile_password")),
        (Some("wrong"), Some("wrong keyfile_password")),
        (Some("right"), None),
    ] {
        let restapi = RestApiConfig {
            certfile: Some(files.client_cert.clone()),
            keyfile: Some(enc.clone()),
            keyfile_password: password.map(str::to_string),
            ..RestApiConfig::default()
        };
        let r = RestServer::bind("127.0.0.1:0", Arc::clone(&shared))
            .await
            .unwrap()
            .with_security(&restapi)
            .await;
        match wanted {
            Some(text) => {
                let e = r.err().expect("a key error").to_string();
                assert!(e.contains(text) && e.contains("key.enc.pem"), "{e}");
            }
            None => assert!(r.is_ok()),
        }
    }
}
