//! Delivers recorded notifications through the sink, apart from the event stream: a slow or
//! failing sink delays notifications, never events. Each failure is recorded and retried with
//! back-off; after `max_attempts` the notification is marked FAILED with its reason (the dead
//! letter), and stays listed.

use std::sync::Arc;
use std::time::Duration;

use mesh_core::clock::now_ms;
use mesh_core::{Db, Shutdown, trace_context};
use tokio::sync::Notify;
use tracing::Instrument;

use crate::domain::{Delivery, Id, after_failure};
use crate::sink::Sink;
use crate::store::{self, StoreError};

/// The dispatcher task.
pub struct Dispatcher {
    db: Db,
    sink: Sink,
    wake: Arc<Notify>,
    max_attempts: i32,
}

/// Longest sleep between looks for due notifications.
const IDLE_POLL: Duration = Duration::from_secs(1);

impl Dispatcher {
    /// A dispatcher of `db`'s notifications through `sink`, woken by `wake`.
    pub fn new(db: Db, sink: Sink, wake: Arc<Notify>, max_attempts: i32) -> Self {
        Self {
            db,
            sink,
            wake,
            max_attempts,
        }
    }

    /// Delivers until shutdown.
    pub async fn run(self, shutdown: Shutdown) {
        loop {
            let pause = match self.pass().await {
                Ok(0) => self.until_next_due().await,
                Ok(_) => Duration::ZERO,
                Err(err) => {
                    tracing::warn!(%err, "notice dispatch failed; will retry");
                    IDLE_POLL
                }
            };
            if pause.is_zero() {
                continue;
            }
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(pause) => {}
                _ = shutdown.requested() => return,
            }
        }
    }

    async fn until_next_due(&self) -> Duration {
        match self.db.run(store::next_due_in_ms).await {
            Ok(Some(ms)) => Duration::from_millis(u64::try_from(ms).unwrap_or(0))
                .clamp(Duration::from_millis(10), IDLE_POLL),
            _ => IDLE_POLL,
        }
    }

    /// One pass over the due notifications; returns how many were attempted.
    pub async fn pass(&self) -> Result<usize, StoreError> {
        let due = self.db.run(|conn| store::due(conn, 100)).await?;
        let attempted = due.len();
        let mut outcomes: Vec<(Id, Delivery, Option<i64>, Option<String>)> =
            Vec::with_capacity(attempted);
        for (notice, traceparent) in due {
            let span = tracing::info_span!(
                "notice.deliver",
                otel.kind = "producer",
                reservation.id = notice.reservation_id.get(),
                notice.id = notice.id.get(),
                attempt = notice.attempts + 1,
            );
            trace_context::adopt(&span, traceparent.as_deref());
            let outcome = self.sink.deliver(&notice).instrument(span).await;
            let attempts = notice.attempts + 1;
            let (delivery, retry_at, error) = match &outcome {
                Ok(()) => (Delivery::Sent, None, None),
                Err(reason) => match after_failure(attempts, self.max_attempts) {
                    Some(backoff) => {
                        let at = now_ms() + i64::try_from(backoff.as_millis()).unwrap_or(i64::MAX);
                        tracing::warn!(notice = notice.id.get(), attempts, %reason, "notice delivery failed; will retry");
                        (Delivery::Pending, Some(at), Some(reason.clone()))
                    }
                    None => {
                        tracing::error!(notice = notice.id.get(), attempts, %reason, "notice delivery given up");
                        (Delivery::Failed, None, Some(reason.clone()))
                    }
                },
            };
            outcomes.push((notice.id, delivery, retry_at, error));
        }
        // One commit for the whole pass.
        self.db
            .transaction(move |conn| {
                for (id, delivery, retry_at, error) in &outcomes {
                    store::record_attempt(conn, *id, *delivery, *retry_at, error.as_deref())?;
                }
                Ok::<_, StoreError>(())
            })
            .await?;
        Ok(attempted)
    }
}
