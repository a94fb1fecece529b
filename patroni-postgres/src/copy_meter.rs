//! How far a running copy (a clone, a rebuild, `patronictl reinit`) has got: the bytes in its
//! target directory and the rate, logged every 10 s and observed into `/patroni`, so an operator
//! watching an hour-long base backup sees it move.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use patroni_core::CopyProgress;
use tokio::task::JoinHandle;

use crate::command::dir_size;

/// How often the target directory is measured.
const SAMPLE: Duration = Duration::from_secs(1);
/// How often a line goes to the log.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// The adapter's meter: at most one copy runs at a time, and observation reads its last figure.
#[derive(Debug, Default, Clone)]
pub(crate) struct CopyMeter {
    last: Arc<Mutex<Option<CopyProgress>>>,
}

/// Measures while it lives; dropped when the copy ends, however it ends.
pub(crate) struct Measuring {
    task: JoinHandle<()>,
    last: Arc<Mutex<Option<CopyProgress>>>,
}

impl Drop for Measuring {
    fn drop(&mut self) {
        self.task.abort();
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

impl CopyMeter {
    /// The running copy's progress, `None` when none runs.
    pub(crate) fn current(&self) -> Option<CopyProgress> {
        *self.last.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts measuring `dir`, which `what` (e.g. `pg_basebackup`) fills.
    pub(crate) fn measure(&self, what: &str, dir: PathBuf) -> Measuring {
        let last = Arc::clone(&self.last);
        let what = what.to_string();
        let task = tokio::spawn({
            let last = Arc::clone(&last);
            async move {
                let started = tokio::time::Instant::now();
                let mut logged = started;
                loop {
                    tokio::time::sleep(SAMPLE).await;
                    let d = dir.clone();
                    let bytes = tokio::task::spawn_blocking(move || dir_size(&d))
                        .await
                        .unwrap_or(0);
                    let elapsed = started.elapsed();
                    let secs = elapsed.as_secs_f64().max(0.001);
                    let progress = CopyProgress {
                        bytes,
                        bytes_per_second: (bytes as f64 / secs) as u64,
                        seconds: elapsed.as_secs(),
                    };
                    *last.lock().unwrap_or_else(|e| e.into_inner()) = Some(progress);
                    if logged.elapsed() >= LOG_EVERY {
                        logged = tokio::time::Instant::now();
                        tracing::info!(
                            "{what}: {:.1} MiB copied in {} s ({:.1} MiB/s)",
                            mib(bytes),
                            progress.seconds,
                            mib(progress.bytes_per_second)
                        );
                    }
                }
            }
        });
        Measuring { task, last }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_growing_directory_is_measured_until_the_copy_ends() {
        let dir = tempfile::tempdir().unwrap();
        let meter = CopyMeter::default();
        assert_eq!(meter.current(), None);
        let measuring = meter.measure("test copy", dir.path().to_path_buf());
        std::fs::write(dir.path().join("a"), vec![0u8; 300_000]).unwrap();
        tokio::time::sleep(Duration::from_millis(1300)).await;
        std::fs::write(dir.path().join("b"), vec![0u8; 200_000]).unwrap();
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let p = meter.current().expect("measured");
        assert_eq!(p.bytes, 500_000);
        assert!(p.seconds >= 2 && p.bytes_per_second > 0, "{p:?}");
        drop(measuring);
        assert_eq!(meter.current(), None, "no progress once the copy ended");
    }
}
