//! The one "this future, or the harness's timer" race both conformance suites bound their
//! waits with, so a case that hangs fails instead of stalling the test run.

use std::future::Future;
use std::pin::{pin, Pin};
use std::task::Poll;

/// Polls `fut` until it finishes (`Some`) or `timer` fires first (`None`).
pub(crate) async fn before<F: Future + Unpin>(
    fut: &mut F,
    timer: impl Future<Output = ()>,
) -> Option<F::Output> {
    let mut timer = pin!(timer);
    std::future::poll_fn(move |cx| {
        if let Poll::Ready(v) = Pin::new(&mut *fut).poll(cx) {
            return Poll::Ready(Some(v));
        }
        timer.as_mut().poll(cx).map(|()| None)
    })
    .await
}
