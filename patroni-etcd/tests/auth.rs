//! etcd with authentication: the right password works, a wrong one is a refusal, not an outage.

mod common;

use common::{identity, unique_scope};
use patroni_core::{Dcs, DcsError, MemberData};
use patroni_etcd::{Etcd3Config, EtcdDcs};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn username_and_password() {
    let etcd = common::start_etcd().await;
    etcd.enable_auth("patroni", "s3cret").await.unwrap();
    let scope = unique_scope();
    let with = |user: Option<&str>, password: Option<&str>| Etcd3Config {
        username: user.map(String::from),
        password: password.map(String::from),
        ..etcd.config()
    };

    let good = EtcdDcs::new(
        &with(Some("patroni"), Some("s3cret")),
        identity(&scope, "a"),
    )
    .unwrap();
    good.publish_member(&MemberData::default()).await.unwrap();
    assert!(good.acquire_leader().await.unwrap());
    assert!(good.renew_leader().await.unwrap());
    let view = good.load().await.unwrap();
    assert!(view.is_leader("a") && view.member("a").is_some());

    let wrong = EtcdDcs::new(&with(Some("patroni"), Some("nope")), identity(&scope, "b")).unwrap();
    let r = wrong.load().await;
    assert!(
        matches!(r, Err(DcsError::Rejected(_))),
        "wrong password: {r:?}"
    );

    let anonymous = EtcdDcs::new(&with(None, None), identity(&scope, "c")).unwrap();
    let r = anonymous.acquire_leader().await;
    assert!(
        matches!(r, Err(DcsError::Rejected(_))),
        "no credentials: {r:?}"
    );
    assert!(
        good.load().await.unwrap().is_leader("a"),
        "refused clients changed nothing"
    );
}
