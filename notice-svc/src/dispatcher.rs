//! Delivers recorded notifications through the sink, apart from the event stream: a slow or
//! failing sink delays notifications, never events. Each failure is recorded and retried with
//! back-off; after `max_attempts` the notification is marked FAILED with its reason (the dead
//! letter), and stays listed. Replicas each run a dispatcher; a pass holds the row locks of
//! what it sends (PostgreSQL) or claims it ([`store::claim`], SQLite), so no two replicas
//! attempt the same notification at once.

use std::sync::Arc;
use std::time::Duration;

use mesh_core::clock::now_ms;
use mesh_core::{Db, DbConnection, Shutdown, trace_context};
use tokio::sync::Notify;
use tracing::Instrument;

use crate::domain::{Delivery, Id, Notice, after_failure};
use crate::sink::Sink;
use crate::store::{self, StoreError};

/// The dispatcher task.
pub struct Dispatcher {
    db: Db,
    sink: Sink,
    wake: Arc<Notify>,
    max_attempts: i32,
}

/// Most notifications one pass takes.
const PASS_SIZE: i64 = 100;

/// Longest sleep between looks for due notifications.
const IDLE_POLL: Duration = Duration::from_secs(1);

/// How long a pass holds the notifications it claimed ([`store::claim`]); a dispatcher that
/// dies mid-pass leaves them to the other replicas after this.
const CLAIM: Duration = Duration::from_secs(300);

/// A pass starts no delivery after this much of its claim is spent (the rest is given back),
/// so a delivery in flight (bounded by the webhook timeout) ends before the claim does and no
/// other replica sends the same notification meanwhile.
const SEND_WINDOW: Duration = Duration::from_secs(120);

/// A pass woken by new notifications starts at least this long after the one before began.
/// Under load the consumers commit notifications tens of times a second, and each wake used
/// to start a pass of its own for a handful of rows: on PostgreSQL five round trips (begin,
/// take the due rows, the update of what was sent, commit, the next due time) and an update
/// that writes every index of each row it marks. Spaced, one pass sends what this long
/// brought. A notification is delivered up to this much later; a full pass is followed at
/// once, so a backlog drains without pauses.
const WOKEN_PASS_SPACING: Duration = Duration::from_millis(100);

/// A pass holding row locks starts no delivery after this long, so its transaction (and the
/// connection it holds) ends within this plus one webhook timeout; the rest stay due.
const LOCKED_SEND_WINDOW: Duration = Duration::from_secs(10);

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
            let began = tokio::time::Instant::now();
            let pause = match self.pass().await {
                // A full pass: more may be due already.
                Ok(attempted) if usize::try_from(PASS_SIZE).is_ok_and(|full| attempted >= full) => {
                    Duration::ZERO
                }
                // Everything due was taken (new ones wake the dispatcher): sleep until the
                // next retry is due, or until woken.
                Ok(_) => self.until_next_due().await,
                Err(err) => {
                    tracing::warn!(%err, "notice dispatch failed; will retry");
                    IDLE_POLL
                }
            };
            if pause.is_zero() {
                continue;
            }
            tokio::select! {
                _ = self.wake.notified() => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(began + WOKEN_PASS_SPACING) => {}
                        _ = shutdown.requested() => return,
                    }
                }
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
        if self.db.is_postgres() {
            self.pass_holding_locks().await
        } else {
            self.pass_with_claims().await
        }
    }

    /// PostgreSQL: one transaction takes the due notifications with their row locks
    /// ([`store::due_locked`], `FOR UPDATE SKIP LOCKED`), delivers them while holding the
    /// locks, records the outcomes and commits. Another replica's pass skips locked rows, so
    /// each attempt is made once; should this replica die mid-pass, its locks go with its
    /// connection and the notifications are due again at once. Two statements a pass besides
    /// the transaction's own, where a claim (an update of every due row before sending, then
    /// one after) took three, the claim rewriting each row and its index entries once more.
    async fn pass_holding_locks(&self) -> Result<usize, StoreError> {
        self.db
            .transaction_around(
                "",
                |conn| store::due_locked(conn, PASS_SIZE),
                // What is not attempted within the window stays due: it is not touched.
                |due| self.deliver(due, LOCKED_SEND_WINDOW),
                |conn, (attempts, _)| {
                    record(conn, &attempts, &[])?;
                    Ok(attempts.len())
                },
            )
            .await
    }

    /// SQLite (one connection: a transaction held while delivering would stop the consumer):
    /// the due notifications are claimed for this replica ([`store::claim`]) and committed
    /// before they are delivered, and the outcomes recorded after.
    async fn pass_with_claims(&self) -> Result<usize, StoreError> {
        let until = now_ms() + i64::try_from(CLAIM.as_millis()).unwrap_or(i64::MAX);
        let claimed = self
            .db
            .run(move |conn| {
                let due = store::due(conn, PASS_SIZE)?;
                store::claim(conn, due, until)
            })
            .await?;
        let (attempts, unattempted) = self.deliver(claimed, SEND_WINDOW).await;
        let attempted = attempts.len();
        // One commit for the whole pass, one statement for all its successes.
        self.db
            .transaction(move |conn| record(conn, &attempts, &unattempted))
            .await?;
        Ok(attempted)
    }

    /// Delivers `due` in order, starting none after `window`; returns the attempts' outcomes
    /// and the notifications not attempted.
    async fn deliver(
        &self,
        due: Vec<(Notice, Option<String>)>,
        window: Duration,
    ) -> (Vec<Attempt>, Vec<Id>) {
        let started = std::time::Instant::now();
        let mut attempts = Vec::with_capacity(due.len());
        let mut unattempted = Vec::new();
        for (notice, traceparent) in due {
            if started.elapsed() > window {
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
            attempts.push(self.judge(&notice, outcome));
        }
        (attempts, unattempted)
    }

    /// What an attempt's outcome makes of the notification: SENT, PENDING until a retry, or
    /// FAILED once the attempts are spent.
    fn judge(&self, notice: &Notice, outcome: Result<(), String>) -> Attempt {
        let attempts = notice.attempts + 1;
        let (delivery, retry_at, error) = match outcome {
            Ok(()) => (Delivery::Sent, None, None),
            Err(reason) => match after_failure(attempts, self.max_attempts) {
                Some(backoff) => {
                    let at = now_ms() + i64::try_from(backoff.as_millis()).unwrap_or(i64::MAX);
                    tracing::warn!(notice = notice.id.get(), attempts, %reason, "notice delivery failed; will retry");
                    (Delivery::Pending, Some(at), Some(reason))
                }
                None => {
                    tracing::error!(notice = notice.id.get(), attempts, %reason, "notice delivery given up");
                    (Delivery::Failed, None, Some(reason))
                }
            },
        };
        Attempt {
            id: notice.id,
            delivery,
            retry_at,
            error,
        }
    }
}

/// One delivery attempt's outcome, to record.
struct Attempt {
    id: Id,
    delivery: Delivery,
    retry_at: Option<i64>,
    error: Option<String>,
}

/// Records a pass's outcomes: one statement for all its successes (the common outcome), one
/// per other outcome; gives back the claims of notifications not attempted.
fn record(
    conn: &mut DbConnection,
    attempts: &[Attempt],
    unattempted: &[Id],
) -> Result<(), StoreError> {
    let sent: Vec<Id> = attempts
        .iter()
        .filter(|attempt| attempt.delivery == Delivery::Sent)
        .map(|attempt| attempt.id)
        .collect();
    store::record_sent(conn, &sent)?;
    for attempt in attempts
        .iter()
        .filter(|attempt| attempt.delivery != Delivery::Sent)
    {
        store::record_attempt(
            conn,
            attempt.id,
            attempt.delivery,
            attempt.retry_at,
            attempt.error.as_deref(),
        )?;
    }
    for id in unattempted {
        store::release(conn, *id)?;
    }
    Ok(())
}
