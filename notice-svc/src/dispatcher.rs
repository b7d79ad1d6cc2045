//! Delivers recorded notifications through the sink, apart from the event stream: a slow or
//! failing sink delays notifications, never events. Each failure is recorded and retried with
//! back-off; after `max_attempts` the notification is marked FAILED with its reason (the dead
//! letter), and stays listed. Replicas each run a dispatcher; a pass claims what it sends
//! ([`store::claim`]), so no two replicas attempt the same notification at once.

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

/// How long a pass holds the notifications it claimed ([`store::claim`]); a dispatcher that
/// dies mid-pass leaves them to the other replicas after this.
const CLAIM: Duration = Duration::from_secs(300);

/// A pass starts no delivery after this much of its claim is spent (the rest is given back),
/// so a delivery in flight (bounded by the webhook timeout) ends before the claim does and no
/// other replica sends the same notification meanwhile.
const SEND_WINDOW: Duration = Duration::from_secs(120);

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

    /// One pass over the due notifications this replica claimed; returns how many were
    /// attempted.
    pub async fn pass(&self) -> Result<usize, StoreError> {
        let until = now_ms() + i64::try_from(CLAIM.as_millis()).unwrap_or(i64::MAX);
        let claimed = self
            .db
            .run(move |conn| {
                let due = store::due(conn, 100)?;
                store::claim(conn, due, until)
            })
            .await?;
        let started = std::time::Instant::now();
        let mut outcomes: Vec<(Id, Delivery, Option<i64>, Option<String>)> =
            Vec::with_capacity(claimed.len());
        let mut unattempted = Vec::new();
        for (notice, traceparent) in claimed {
            if started.elapsed() > SEND_WINDOW {
                unattempted.push(notice.id);
                continue;
            }
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
        let attempted = outcomes.len();
        let (sent, failed): (Vec<_>, Vec<_>) = outcomes
            .into_iter()
            .partition(|(_, delivery, _, _)| *delivery == Delivery::Sent);
        let sent: Vec<Id> = sent.into_iter().map(|(id, ..)| id).collect();
        // One commit for the whole pass, one statement for all its successes.
        self.db
            .transaction(move |conn| {
                store::record_sent(conn, &sent)?;
                for (id, delivery, retry_at, error) in &failed {
                    store::record_attempt(conn, *id, *delivery, *retry_at, error.as_deref())?;
                }
                for id in &unattempted {
                    store::release(conn, *id)?;
                }
                Ok::<_, StoreError>(())
            })
            .await?;
        Ok(attempted)
    }
}
