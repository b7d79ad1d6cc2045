//! Waiting for a condition with a deadline: what a test does instead of sleeping a fixed time
//! and hoping the system got there.

use std::future::Future;
use std::time::{Duration, Instant};

/// How often a condition is checked again.
const POLL_EVERY: Duration = Duration::from_millis(20);

/// Polls `check` until it yields a value, at most `limit`; returns that value. Fails the test
/// naming `what` when time runs out.
pub async fn wait_until<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        tokio::time::sleep(POLL_EVERY).await;
    }
}
