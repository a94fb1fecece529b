//! The DCS conformance suite from patroni-core, against a real etcd.

mod common;

use common::EtcdHarness;
use patroni_core::conformance;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_exclusivity() {
    conformance::lock_exclusivity(&EtcdHarness::start().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_expiry_removes_keys() {
    conformance::lease_expiry_removes_keys(&EtcdHarness::start().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_only_own_key() {
    conformance::release_only_own_key(&EtcdHarness::start().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compare_and_swap() {
    conformance::compare_and_swap(&EtcdHarness::start().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_for_change_on_leader_change() {
    conformance::wait_for_change_on_leader_change(&EtcdHarness::start().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn initialize_race() {
    conformance::initialize_race(&EtcdHarness::start().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_round_trip() {
    conformance::values_round_trip(&EtcdHarness::start().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_is_reported() {
    conformance::garbage_is_reported(&EtcdHarness::start().await).await;
}
