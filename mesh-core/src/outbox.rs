//! The transactional outbox: no committed state change loses its event, and no rolled-back
//! one publishes a phantom.
//!
//! A service calls [`enqueue`] inside the same database transaction as the change the event
//! announces. The [`OutboxRelay`] then publishes pending rows in id order to JetStream with
//! the event id as `Nats-Msg-Id`, waits for JetStream's ack, and only then stamps the rows as
//! published. NATS down: rows wait, and publishing resumes when the client reconnects. A crash
//! between publish and stamp: the row is published again and JetStream's duplicate window (or
//! the consumer's inbox) drops the copy.
//!
//! **Several replicas.** Each replica runs a relay over the one outbox of its service. On
//! PostgreSQL a relay's pass locks a batch (the oldest rows no other relay holds, `FOR UPDATE
//! SKIP LOCKED`), publishes it while holding the locks, stamps what JetStream acked and
//! commits; on SQLite it [`claim`]s the batch for `CLAIM_MS` first. So relays take disjoint
//! batches and never publish the same row twice while alive, and a crashed relay's batch is
//! free as soon as its connection goes (a claim: once it runs out). The price is order: two relays
//! publish their batches side by side, so a consumer may receive a later row before an
//! earlier one (it could already, on a redelivery). Consumers are built for that: each effect
//! is idempotent (the inbox) and ordered by the aggregate's version, not by arrival (an older
//! status never overwrites a newer one; my page fills in whichever half arrives first).
//!
//! Every wait on NATS is bounded ([`events::bounded`]): a publish or ack that gets no answer
//! (a server restarting under load) fails the pass, and the relay provisions the streams
//! again before the next one, so a server that came back with an empty store is usable
//! too. A stalled relay shows as a growing `outbox_backlog` and `outbox_publish_failures_total`.

use std::future::IntoFuture;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use async_nats::jetstream::context::PublishAckFuture;
use async_nats::jetstream::message::PublishMessage;
use diesel::prelude::*;
use diesel::sql_types::BigInt;
use tokio::sync::Notify;

use crate::db::{Db, DbConnection, DbError};
use crate::events::OutgoingEvent;
use crate::telemetry::catalog;
use crate::{Shutdown, event_observability, events, trace_context};

/// The tables as diesel sees them. The macro generates modules and column types without
/// docs; they are used only through this file's queries.
#[allow(missing_docs, unreachable_pub)]
mod schema {
    diesel::table! {
        outbox (id) {
            id -> BigInt,
            event_id -> Text,
            subject -> Text,
            payload -> Binary,
            traceparent -> Nullable<Text>,
            created_at_ms -> BigInt,
            published_at_ms -> Nullable<BigInt>,
            claimed_until_ms -> Nullable<BigInt>,
        }
    }
}
use schema::outbox;

/// Adds `event` to the outbox; call it inside the transaction of the change it announces.
pub fn enqueue(
    conn: &mut DbConnection,
    event: &OutgoingEvent,
) -> Result<(), diesel::result::Error> {
    let insert = diesel::insert_into(outbox::table).values(row_of(event, crate::clock::now_ms()));
    crate::on_backend!(conn, |c| insert.execute(c))?;
    Ok(())
}

/// [`enqueue`] for many events in one statement (nothing for none), in their order.
pub fn enqueue_all<'a>(
    conn: &mut DbConnection,
    events: impl IntoIterator<Item = &'a OutgoingEvent>,
) -> Result<(), diesel::result::Error> {
    let now = crate::clock::now_ms();
    let rows: Vec<OutboxRow<'_>> = events.into_iter().map(|event| row_of(event, now)).collect();
    if rows.is_empty() {
        return Ok(());
    }
    let insert = diesel::insert_into(outbox::table).values(rows);
    crate::on_backend!(conn, |c| insert.execute(c))?;
    Ok(())
}

/// The values of an event's outbox row, as both inserts write them.
type OutboxRow<'a> = (
    diesel::dsl::Eq<outbox::event_id, &'a String>,
    diesel::dsl::Eq<outbox::subject, &'a String>,
    diesel::dsl::Eq<outbox::payload, &'a Vec<u8>>,
    diesel::dsl::Eq<outbox::traceparent, &'a Option<String>>,
    diesel::dsl::Eq<outbox::created_at_ms, i64>,
);

fn row_of(event: &OutgoingEvent, now_ms: i64) -> OutboxRow<'_> {
    (
        outbox::event_id.eq(&event.event_id),
        outbox::subject.eq(&event.subject),
        outbox::payload.eq(&event.payload),
        outbox::traceparent.eq(&event.traceparent),
        outbox::created_at_ms.eq(now_ms),
    )
}

/// Rows not yet published, oldest first (for inspection and tests; the relay [`claim`]s).
pub fn pending(
    conn: &mut DbConnection,
    limit: i64,
) -> Result<Vec<PendingRow>, diesel::result::Error> {
    outbox::table
        .filter(outbox::published_at_ms.is_null())
        .order(outbox::id)
        .limit(limit)
        .select((
            outbox::id,
            outbox::event_id,
            outbox::subject,
            outbox::payload,
            outbox::traceparent,
            outbox::created_at_ms,
        ))
        .load(conn)
}

/// The setting a pass over pending rows begins its transaction with (see [`claim`]).
const WALK_BY_INDEX: &str = "SET LOCAL enable_bitmapscan = off";

/// Claims up to `limit` unpublished rows that no relay holds (or whose holder's claim ran
/// out), oldest first, until `until_ms`. On PostgreSQL the rows another relay is claiming
/// at this instant are skipped, not waited for (`FOR UPDATE SKIP LOCKED`), so relays of
/// several replicas take disjoint batches; SQLite has one writer at a time and needs no
/// such clause.
///
/// On PostgreSQL the pending rows are walked in the order of the `outbox_pending` index
/// (bitmap scans are turned off for this one transaction: [`WALK_BY_INDEX`]). Every claim
/// and stamp leaves a dead entry in that index until autovacuum comes by (a minute or more);
/// a bitmap scan, the
/// planner's usual pick, visits each of them on every pass, so under load a claim grew to
/// milliseconds and kept growing. An index scan marks the dead entries it meets as dead in
/// the index itself, so the next pass skips them: a claim costs what is pending, not what
/// was published since the last vacuum.
pub fn claim(
    conn: &mut DbConnection,
    now_ms: i64,
    until_ms: i64,
    limit: i64,
) -> Result<Vec<PendingRow>, diesel::result::Error> {
    let claim = |conn: &mut DbConnection, locking: &str| {
        diesel::sql_query(format!(
            "UPDATE outbox SET claimed_until_ms = $1 WHERE id IN ( \
               SELECT id FROM outbox \
               WHERE published_at_ms IS NULL AND (claimed_until_ms IS NULL OR claimed_until_ms < $2) \
               ORDER BY id LIMIT $3 {locking}) \
             RETURNING id, event_id, subject, payload, traceparent, created_at_ms"
        ))
        .bind::<BigInt, _>(until_ms)
        .bind::<BigInt, _>(now_ms)
        .bind::<BigInt, _>(limit)
        .load::<PendingRow>(conn)
    };
    let mut rows = match conn {
        DbConnection::Postgres(_) => crate::db::transaction_with(conn, WALK_BY_INDEX, |conn| {
            claim(conn, "FOR UPDATE SKIP LOCKED")
        })?,
        DbConnection::Sqlite(_) => claim(conn, "")?,
    };
    // RETURNING promises no order.
    rows.sort_unstable_by_key(|row| row.id);
    Ok(rows)
}

/// PostgreSQL, inside the caller's transaction (begun with [`WALK_BY_INDEX`]): up to `limit`
/// unpublished rows, oldest first, each locked until the transaction ends; rows another relay
/// holds are passed over (`FOR UPDATE SKIP LOCKED`), and so are rows an older relay claimed
/// until after `now_ms`.
fn lock_pending(
    conn: &mut DbConnection,
    now_ms: i64,
    limit: i64,
) -> Result<Vec<PendingRow>, diesel::result::Error> {
    diesel::sql_query(
        "SELECT id, event_id, subject, payload, traceparent, created_at_ms FROM outbox \
         WHERE published_at_ms IS NULL AND (claimed_until_ms IS NULL OR claimed_until_ms < $1) \
         ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED",
    )
    .bind::<BigInt, _>(now_ms)
    .bind::<BigInt, _>(limit)
    .load::<PendingRow>(conn)
}

/// How many rows wait to be published (the backlog a dashboard shows).
pub fn backlog(conn: &mut DbConnection) -> Result<i64, diesel::result::Error> {
    outbox::table
        .filter(outbox::published_at_ms.is_null())
        .count()
        .get_result(conn)
}

/// Stamps the `published` rows and gives back the claim on the `unpublished` ones, so the
/// next pass of any relay takes them again at once.
fn settle(
    conn: &mut DbConnection,
    published: &[i64],
    unpublished: &[i64],
) -> Result<(), diesel::result::Error> {
    if !published.is_empty() {
        diesel::update(outbox::table.filter(outbox::id.eq_any(published)))
            .set(outbox::published_at_ms.eq(crate::clock::now_ms()))
            .execute(conn)?;
    }
    if !unpublished.is_empty() {
        diesel::update(outbox::table.filter(outbox::id.eq_any(unpublished)))
            .set(outbox::claimed_until_ms.eq(None::<i64>))
            .execute(conn)?;
    }
    Ok(())
}

fn purge_published(
    conn: &mut DbConnection,
    before_ms: i64,
) -> Result<usize, diesel::result::Error> {
    diesel::delete(outbox::table.filter(outbox::published_at_ms.lt(before_ms))).execute(conn)
}

/// An outbox row waiting for the relay.
#[derive(Queryable, QueryableByName, Debug)]
#[diesel(table_name = outbox)]
pub struct PendingRow {
    /// Row id (publishing order).
    pub id: i64,
    /// The event id, sent as `Nats-Msg-Id`.
    pub event_id: String,
    /// The subject.
    pub subject: String,
    /// The encoded envelope.
    pub payload: Vec<u8>,
    /// The trace context of the change that enqueued it.
    pub traceparent: Option<String>,
    /// When it was enqueued (ms since the epoch).
    pub created_at_ms: i64,
}

/// Wakes the relay right after a commit that enqueued events, so events leave within
/// milliseconds instead of at the next poll. Cheap to clone.
#[derive(Clone, Default, Debug)]
pub struct OutboxSignal(Arc<Notify>);

impl OutboxSignal {
    /// Tells the relay there is something to publish.
    pub fn wake(&self) {
        self.0.notify_one();
    }
}

/// A published event waiting for JetStream's ack; its span ends with the ack.
struct InFlight {
    id: i64,
    created_at_ms: i64,
    ack: PublishAckFuture,
    _span: tracing::Span,
}

/// Publishes the outbox to JetStream; one per service process.
pub struct OutboxRelay {
    db: Db,
    js: jetstream::Context,
    signal: OutboxSignal,
    /// Poll period when not woken (catches rows written by other replicas or before a crash).
    poll: Duration,
    batch: i64,
}

/// How long a relay holds the rows it claimed: longer than a batch can take to publish
/// (each publish and the batch's acks are bounded by [`events::NATS_TIMEOUT`]), short enough
/// that a crashed replica's rows are published by another soon after.
const CLAIM_MS: i64 = 30_000;

/// A pass woken by a commit starts at least this long after the previous pass began. Under
/// load every consumer batch and every group of confirmations wakes the relay, and each pass
/// is a transaction of four round trips: unspaced, a service's relay ran 140-180 passes a
/// second at 600 reservations/s, more statements than any other part of the service. Spaced,
/// one pass publishes what this long committed; an event leaves up to this much later. A full
/// pass is followed at once, so a backlog drains without pauses.
const WOKEN_PASS_SPACING: Duration = Duration::from_millis(10);

/// How often the relay counts its backlog.
const BACKLOG_EVERY: Duration = Duration::from_secs(1);

/// How long published rows are kept (for inspection) before they are purged.
const KEEP_PUBLISHED: Duration = Duration::from_secs(3600);

impl OutboxRelay {
    /// A relay for `db`'s outbox, woken by `signal`.
    pub fn new(db: Db, js: jetstream::Context, signal: OutboxSignal) -> Self {
        Self {
            db,
            js,
            signal,
            poll: Duration::from_millis(500),
            batch: 256,
        }
    }

    /// Publishes until shutdown, then makes one last pass so a graceful stop leaves nothing
    /// behind that NATS could have taken.
    pub async fn run(self, shutdown: Shutdown) {
        // The counters exist from the start (at zero), so a dashboard shows 0, not "no data".
        metrics::counter!(catalog::OUTBOX_PUBLISHED).increment(0);
        metrics::counter!(catalog::OUTBOX_PUBLISH_FAILURES).increment(0);
        let mut provisioned = false;
        let mut backoff = Duration::from_millis(100);
        let mut last_purge = std::time::Instant::now();
        let mut last_backlog: Option<std::time::Instant> = None;
        loop {
            if last_backlog.is_none_or(|at| at.elapsed() >= BACKLOG_EVERY) {
                self.report_backlog().await;
                last_backlog = Some(std::time::Instant::now());
            }
            if !provisioned {
                provisioned =
                    match events::bounded("provisioning", events::provision(&self.js)).await {
                        Ok(()) => true,
                        Err(err) => {
                            tracing::warn!(%err, "JetStream not reachable yet; outbox waits");
                            false
                        }
                    };
            }
            let began = tokio::time::Instant::now();
            let outcome = if provisioned {
                self.publish_batch().await
            } else {
                Err(RelayError::Nats("streams not provisioned".into()))
            };
            match outcome {
                // A full batch: more may be waiting. A batch that took less took everything
                // committed before it began; what was committed since woke the signal (it
                // keeps one wake for the next wait), so looking again at once would find
                // nothing, an empty pass (a transaction and a query) per batch published.
                Ok(published) if i64::try_from(published).unwrap_or(i64::MAX) >= self.batch => {
                    backoff = Duration::from_millis(100);
                    continue;
                }
                Ok(_) => {
                    backoff = Duration::from_millis(100);
                    if last_purge.elapsed() > Duration::from_secs(60) {
                        self.purge().await;
                        last_purge = std::time::Instant::now();
                    }
                    tokio::select! {
                        _ = self.signal.0.notified() => {
                            tokio::select! {
                                _ = tokio::time::sleep_until(began + WOKEN_PASS_SPACING) => {}
                                _ = shutdown.requested() => break,
                            }
                        }
                        _ = tokio::time::sleep(self.poll) => {}
                        _ = shutdown.requested() => break,
                    }
                }
                Err(err) => {
                    if matches!(err, RelayError::Nats(_)) {
                        // The server may have come back without our streams: make sure of
                        // them before the next pass.
                        provisioned = false;
                    }
                    tracing::warn!(%err, retry_in_ms = backoff.as_millis() as u64, "outbox relay failed; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = shutdown.requested() => break,
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
        }
        match tokio::time::timeout(Duration::from_secs(5), self.publish_batch()).await {
            Ok(Ok(published)) => tracing::info!(published, "outbox flushed at shutdown"),
            Ok(Err(err)) => {
                tracing::warn!(%err, "outbox not flushed at shutdown; rows wait for the next start");
            }
            Err(_) => {
                tracing::warn!("outbox flush timed out at shutdown; rows wait for the next start");
            }
        }
    }

    /// Publishes one batch: every publish is sent, then every ack awaited (pipelined), then the
    /// acked rows are stamped. Returns how many were published.
    pub async fn publish_batch(&self) -> Result<usize, RelayError> {
        let (published, failure) = if self.db.is_postgres() {
            self.publish_holding_locks().await?
        } else {
            self.publish_claimed().await?
        };
        metrics::counter!(catalog::OUTBOX_PUBLISHED).increment(published as u64);
        match failure {
            Some(err) if published == 0 => Err(err),
            Some(err) => {
                tracing::warn!(%err, published, "part of an outbox batch failed; the rest is retried");
                Ok(published)
            }
            None => Ok(published),
        }
    }

    /// PostgreSQL: one transaction locks a batch of pending rows ([`lock_pending`]: rows
    /// another relay holds are passed over), publishes them while holding the locks, stamps
    /// what JetStream acked and commits. A relay that dies mid-pass frees its rows at once
    /// (the locks go with its connection; JetStream drops a repeat by its message id), and a
    /// pass writes each row once, where a claim wrote it before publishing too.
    async fn publish_holding_locks(&self) -> Result<(usize, Option<RelayError>), RelayError> {
        let batch = self.batch;
        let now = crate::clock::now_ms();
        let outcome = self
            .db
            .transaction_around(
                WALK_BY_INDEX,
                move |conn| lock_pending(conn, now, batch).map_err(DbError::from),
                |rows| self.publish(rows),
                |conn, (acked, failure): (Vec<i64>, Option<RelayError>)| {
                    settle(conn, &acked, &[])?;
                    Ok::<_, DbError>((acked.len(), failure))
                },
            )
            .await?;
        Ok(outcome)
    }

    /// SQLite (one connection: a transaction held while publishing would stop every other
    /// write): the rows are claimed for [`CLAIM_MS`] and committed before they are published,
    /// then stamped, the claim of what was not acked given back.
    async fn publish_claimed(&self) -> Result<(usize, Option<RelayError>), RelayError> {
        let batch = self.batch;
        let now = crate::clock::now_ms();
        let until = now.saturating_add(CLAIM_MS);
        let rows = self
            .db
            .run(move |conn| claim(conn, now, until, batch).map_err(DbError::from))
            .await?;
        if rows.is_empty() {
            return Ok((0, None));
        }
        let claimed: Vec<i64> = rows.iter().map(|row| row.id).collect();
        let (acked, failure) = self.publish(rows).await;
        let published = acked.len();
        let unpublished: Vec<i64> = claimed
            .into_iter()
            .filter(|id| !acked.contains(id))
            .collect();
        self.db
            .run(move |conn| settle(conn, &acked, &unpublished).map_err(DbError::from))
            .await?;
        Ok((published, failure))
    }

    /// Publishes `rows` in order (stopping at the first refused publish) and awaits their
    /// acks; returns the ids JetStream acked and the first failure, if any.
    async fn publish(&self, rows: Vec<PendingRow>) -> (Vec<i64>, Option<RelayError>) {
        let mut in_flight: Vec<InFlight> = Vec::with_capacity(rows.len());
        let mut failure = None;
        for row in rows {
            // The publish span, child of the change that enqueued the row, is what the
            // consumers' spans hang under: its context is the message's `traceparent`.
            let span = event_observability::publish_span(
                &row.subject,
                &row.event_id,
                row.traceparent.as_deref(),
            );
            let mut message = PublishMessage::build()
                .payload(row.payload.into())
                .message_id(&row.event_id);
            if let Some(traceparent) = trace_context::traceparent_of(&span) {
                message = message.header(trace_context::TRACEPARENT, traceparent.as_str());
            }
            match events::bounded("publish", self.js.send_publish(row.subject, message)).await {
                Ok(ack) => in_flight.push(InFlight {
                    id: row.id,
                    created_at_ms: row.created_at_ms,
                    ack,
                    _span: span,
                }),
                Err(err) => {
                    failure = Some(RelayError::Nats(err.to_string()));
                    break;
                }
            }
        }
        let mut acked = Vec::with_capacity(in_flight.len());
        // One deadline for the whole batch's acks: a server that went away must cost one
        // timeout, not one per message.
        let deadline = tokio::time::Instant::now() + events::NATS_TIMEOUT;
        for flight in in_flight {
            let ack = match tokio::time::timeout_at(deadline, flight.ack.into_future()).await {
                Ok(ack) => ack.map_err(|err| err.to_string()),
                Err(_) => Err("no publish ack from NATS in time".to_owned()),
            };
            match ack {
                Ok(_) => {
                    acked.push(flight.id);
                    let lag_ms = crate::clock::now_ms().saturating_sub(flight.created_at_ms);
                    metrics::histogram!(catalog::OUTBOX_RELAY_LAG_SECONDS)
                        .record(lag_ms.max(0) as f64 / 1000.0);
                }
                Err(err) => {
                    metrics::counter!(catalog::OUTBOX_PUBLISH_FAILURES).increment(1);
                    failure.get_or_insert(RelayError::Nats(err.to_string()));
                }
            }
        }
        (acked, failure)
    }

    /// Sets the backlog gauge (a count over the pending rows' partial index).
    async fn report_backlog(&self) {
        match self
            .db
            .run(|conn| backlog(conn).map_err(DbError::from))
            .await
        {
            Ok(rows) => metrics::gauge!(catalog::OUTBOX_BACKLOG).set(rows as f64),
            Err(err) => tracing::debug!(%err, "cannot count the outbox backlog"),
        }
    }

    async fn purge(&self) {
        let keep_ms = i64::try_from(KEEP_PUBLISHED.as_millis()).unwrap_or(i64::MAX);
        let before = crate::clock::now_ms().saturating_sub(keep_ms);
        let purged = self
            .db
            .run(move |conn| purge_published(conn, before).map_err(DbError::from))
            .await;
        if let Err(err) = purged {
            tracing::warn!(%err, "purging published outbox rows failed");
        }
    }
}

/// Why a relay pass failed.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// NATS refused or did not ack.
    #[error("NATS: {0}")]
    Nats(String),
}
