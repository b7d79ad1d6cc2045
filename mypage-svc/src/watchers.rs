//! The live my-page watchers of this process: how many may run at once, and how many do.
//!
//! Each `WatchMyPage` call holds a [`WatcherPermit`] for as long as its task lives; the task
//! ends as soon as its client goes away, so the `mypage_watchers` gauge falls back when
//! clients leave, and a flood of streams meets RESOURCE_EXHAUSTED ("try again shortly")
//! instead of growing the process without bound.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::Status;

/// Live my-page watchers in this process.
pub const WATCHERS_GAUGE: &str = "mypage_watchers";

/// The default of `MYPAGE_MAX_WATCHERS`.
pub const DEFAULT_MAX_WATCHERS: usize = 1000;

/// Admits watchers up to a cap; cheap to clone.
#[derive(Clone, Debug)]
pub struct Watchers {
    slots: Arc<Semaphore>,
    max: usize,
}

/// One admitted watcher; dropping it frees its slot.
#[derive(Debug)]
pub struct WatcherPermit {
    _slot: OwnedSemaphorePermit,
}

impl Watchers {
    /// At most `max` watchers at once.
    pub fn new(max: usize) -> Self {
        metrics::describe_gauge!(WATCHERS_GAUGE, "Live my-page watchers in this process.");
        metrics::gauge!(WATCHERS_GAUGE).set(0.0);
        Self {
            slots: Arc::new(Semaphore::new(max)),
            max,
        }
    }

    /// A slot for one more watcher, or RESOURCE_EXHAUSTED when all are taken.
    pub fn admit(&self) -> Result<WatcherPermit, Status> {
        let slot = Arc::clone(&self.slots).try_acquire_owned().map_err(|_| {
            Status::resource_exhausted(format!(
                "{} live my-page watchers already; try again shortly",
                self.max
            ))
        })?;
        metrics::gauge!(WATCHERS_GAUGE).increment(1.0);
        Ok(WatcherPermit { _slot: slot })
    }
}

impl Drop for WatcherPermit {
    fn drop(&mut self) {
        metrics::gauge!(WATCHERS_GAUGE).decrement(1.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_capped_and_come_back_when_a_watcher_ends() {
        let watchers = Watchers::new(2);
        let first = watchers.admit().expect("first");
        let _second = watchers.admit().expect("second");
        let refused = watchers.admit().expect_err("full");
        assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
        drop(first);
        assert!(watchers.admit().is_ok(), "a slot came back");
    }
}
