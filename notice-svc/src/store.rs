//! The only file that knows SQL: the `notices` table.

use diesel::prelude::*;
use mesh_core::clock::now_ms;
use mesh_core::{DbConnection, DbError, Migrations};

use crate::domain::{Delivery, Id, Notice, NoticeError};

/// Migrations embedded in the binary, one set per backend.
pub const MIGRATIONS: Migrations = Migrations {
    postgres: diesel_migrations::embed_migrations!("migrations/postgres"),
    sqlite: diesel_migrations::embed_migrations!("migrations/sqlite"),
};

/// The tables as diesel sees them. The macro generates modules and column types without
/// docs; they are used only through this file's queries.
#[allow(missing_docs, unreachable_pub)]
mod schema {
    diesel::table! {
        notices (id) {
            id -> BigInt,
            event_id -> Text,
            customer_id -> Text,
            event_type -> Text,
            reservation_id -> BigInt,
            message -> Text,
            created_at_ms -> BigInt,
            delivery -> Text,
            attempts -> Integer,
            next_attempt_at_ms -> BigInt,
            last_error -> Nullable<Text>,
            traceparent -> Nullable<Text>,
        }
    }
}
use schema::notices;

/// A refused event or a failure of the notice store.
pub type StoreError = mesh_core::StoreError<NoticeError>;

impl mesh_core::StoreDomain for NoticeError {
    const STORE: &'static str = "notice";
}

#[derive(Queryable)]
struct NoticeRow {
    id: i64,
    event_id: String,
    customer_id: String,
    event_type: String,
    reservation_id: i64,
    message: String,
    created_at_ms: i64,
    delivery: String,
    attempts: i32,
    last_error: Option<String>,
}

const COLUMNS: (
    notices::id,
    notices::event_id,
    notices::customer_id,
    notices::event_type,
    notices::reservation_id,
    notices::message,
    notices::created_at_ms,
    notices::delivery,
    notices::attempts,
    notices::last_error,
) = (
    notices::id,
    notices::event_id,
    notices::customer_id,
    notices::event_type,
    notices::reservation_id,
    notices::message,
    notices::created_at_ms,
    notices::delivery,
    notices::attempts,
    notices::last_error,
);

impl TryFrom<NoticeRow> for Notice {
    type Error = StoreError;

    /// Only this file writes the row: an unknown delivery state or a non-positive id is
    /// corruption.
    fn try_from(row: NoticeRow) -> Result<Self, StoreError> {
        let id = row.id;
        let corrupt = |detail: String| StoreError::Corrupt { id, detail };
        Ok(Notice {
            id: Id::parse(id, "notice id").map_err(|err| corrupt(err.to_string()))?,
            event_id: row.event_id,
            customer_id: row.customer_id,
            event_type: row.event_type,
            reservation_id: Id::parse(row.reservation_id, "reservation id")
                .map_err(|err| corrupt(err.to_string()))?,
            message: row.message,
            created_at_ms: row.created_at_ms,
            delivery: Delivery::from_stored(&row.delivery)
                .ok_or_else(|| corrupt(format!("unknown delivery {:?}", row.delivery)))?,
            attempts: row.attempts,
            last_error: row.last_error,
        })
    }
}

/// A notification to record.
pub struct NewNotice<'a> {
    /// The event that caused it (unique: one notification per change).
    pub event_id: &'a str,
    /// The buyer.
    pub customer_id: String,
    /// The event's type.
    pub event_type: &'static str,
    /// The reservation concerned.
    pub reservation_id: Id,
    /// The rendered text.
    pub message: String,
    /// The trace context of the change it announces (its delivery joins that trace).
    pub traceparent: Option<String>,
}

/// Records notifications as PENDING, due now, in one statement, but none whose event has one
/// already (a redelivery); returns the event ids of those recorded now.
pub fn record(conn: &mut DbConnection, notices: &[NewNotice<'_>]) -> Result<Vec<String>, DbError> {
    if notices.is_empty() {
        return Ok(Vec::new());
    }
    let now = now_ms();
    let rows: Vec<_> = notices
        .iter()
        .map(|notice| {
            (
                notices::traceparent.eq(notice.traceparent.as_deref()),
                notices::event_id.eq(notice.event_id),
                notices::customer_id.eq(notice.customer_id.as_str()),
                notices::event_type.eq(notice.event_type),
                notices::reservation_id.eq(notice.reservation_id.get()),
                notices::message.eq(notice.message.as_str()),
                notices::created_at_ms.eq(now),
                notices::delivery.eq(Delivery::Pending.as_str()),
                notices::next_attempt_at_ms.eq(now),
            )
        })
        .collect();
    let insert = diesel::insert_into(notices::table)
        .values(rows)
        .on_conflict(notices::event_id)
        .do_nothing()
        .returning(notices::event_id);
    // Both backends speak ON CONFLICT; diesel's multi-backend connection does not render it.
    Ok(mesh_core::on_backend!(conn, |c| insert.get_results(c))?)
}

/// PENDING notifications whose next attempt is due, longest due first, each with the trace
/// context it was recorded in.
pub fn due(
    conn: &mut DbConnection,
    limit: i64,
) -> Result<Vec<(Notice, Option<String>)>, StoreError> {
    let query = notices::table
        .filter(pending())
        .filter(notices::next_attempt_at_ms.le(now_ms()))
        .order((notices::next_attempt_at_ms, notices::id))
        .limit(limit)
        .select((COLUMNS, notices::traceparent));
    mesh_core::on_backend!(conn, |c| query.load::<(NoticeRow, Option<String>)>(c))?
        .into_iter()
        .map(|(row, traceparent)| Ok((Notice::try_from(row)?, traceparent)))
        .collect()
}

/// [`due`] on PostgreSQL, each row locked until the caller's transaction ends (`FOR UPDATE
/// SKIP LOCKED`: rows another transaction holds are passed over, not waited for). On SQLite,
/// which has no row locks, the same as [`due`].
pub fn due_locked(
    conn: &mut DbConnection,
    limit: i64,
) -> Result<Vec<(Notice, Option<String>)>, StoreError> {
    let DbConnection::Postgres(pg) = conn else {
        return due(conn, limit);
    };
    notices::table
        .filter(pending())
        .filter(notices::next_attempt_at_ms.le(now_ms()))
        .order((notices::next_attempt_at_ms, notices::id))
        .limit(limit)
        .select((COLUMNS, notices::traceparent))
        .for_update()
        .skip_locked()
        .load::<(NoticeRow, Option<String>)>(pg)?
        .into_iter()
        .map(|(row, traceparent)| Ok((Notice::try_from(row)?, traceparent)))
        .collect()
}

/// `delivery = 'PENDING'`, written as a literal: the `notices_due` index covers only PENDING
/// rows, and a prepared statement's generic plan can use such a partial index only when the
/// query itself names the value. With the value bound as a parameter the dispatcher's polls
/// walked the whole table by id, SENT rows included: milliseconds a poll under load, and
/// more with every notification ever recorded.
fn pending() -> diesel::expression::SqlLiteral<diesel::sql_types::Bool> {
    const _: () = assert!(matches!(Delivery::Pending.as_str().as_bytes(), b"PENDING"));
    diesel::dsl::sql("delivery = 'PENDING'")
}

/// Claims the `due` notifications for this replica's dispatcher until `until_ms` (their next
/// attempt moved there), returning those it got: a notification another replica's dispatcher
/// claimed in the meantime is no longer due and is left out. One conditional UPDATE: on
/// PostgreSQL a concurrent claim of the same row waits for the first, then finds it no longer
/// due; SQLite has one writer at a time. So each delivery attempt is made by one replica.
pub fn claim(
    conn: &mut DbConnection,
    due: Vec<(Notice, Option<String>)>,
    until_ms: i64,
) -> Result<Vec<(Notice, Option<String>)>, StoreError> {
    if due.is_empty() {
        return Ok(due);
    }
    let ids: Vec<i64> = due.iter().map(|(notice, _)| notice.id.get()).collect();
    let claimed: std::collections::HashSet<i64> = diesel::update(
        notices::table
            .filter(notices::id.eq_any(&ids))
            .filter(notices::delivery.eq(Delivery::Pending.as_str()))
            .filter(notices::next_attempt_at_ms.le(now_ms())),
    )
    .set(notices::next_attempt_at_ms.eq(until_ms))
    .returning(notices::id)
    .get_results::<i64>(conn)?
    .into_iter()
    .collect();
    Ok(due
        .into_iter()
        .filter(|(notice, _)| claimed.contains(&notice.id.get()))
        .collect())
}

/// Gives back the claim on a notification this dispatcher did not get to: due again now.
pub fn release(conn: &mut DbConnection, id: Id) -> Result<(), DbError> {
    diesel::update(
        notices::table
            .find(id.get())
            .filter(notices::delivery.eq(Delivery::Pending.as_str())),
    )
    .set(notices::next_attempt_at_ms.eq(now_ms()))
    .execute(conn)?;
    Ok(())
}

/// Milliseconds until the next PENDING notification is due, if any.
pub fn next_due_in_ms(conn: &mut DbConnection) -> Result<Option<i64>, DbError> {
    let next: Option<i64> = notices::table
        .filter(pending())
        .select(diesel::dsl::min(notices::next_attempt_at_ms))
        .first(conn)?;
    Ok(next.map(|at| (at - now_ms()).max(0)))
}

/// Records that the notifications `ids` were each sent by their latest attempt: one
/// statement for a pass's successes, the common outcome.
pub fn record_sent(conn: &mut DbConnection, ids: &[Id]) -> Result<(), DbError> {
    if ids.is_empty() {
        return Ok(());
    }
    let ids: Vec<i64> = ids.iter().map(|id| id.get()).collect();
    diesel::update(notices::table.filter(notices::id.eq_any(ids)))
        .set((
            notices::delivery.eq(Delivery::Sent.as_str()),
            notices::attempts.eq(notices::attempts + 1),
            notices::next_attempt_at_ms.eq(now_ms()),
            notices::last_error.eq(None::<String>),
        ))
        .execute(conn)?;
    Ok(())
}

/// Records an attempt's outcome: SENT, or still PENDING until `retry_at_ms`, or FAILED.
pub fn record_attempt(
    conn: &mut DbConnection,
    id: Id,
    delivery: Delivery,
    retry_at_ms: Option<i64>,
    error: Option<&str>,
) -> Result<(), DbError> {
    let update = diesel::update(notices::table.find(id.get())).set((
        notices::delivery.eq(delivery.as_str()),
        notices::attempts.eq(notices::attempts + 1),
        notices::next_attempt_at_ms.eq(retry_at_ms.unwrap_or_else(now_ms)),
        notices::last_error.eq(error),
    ));
    mesh_core::on_backend!(conn, |c| update.execute(c))?;
    Ok(())
}

/// Notifications (of one buyer, unless `customer` is empty) older than id `before`, newest
/// first, at most `limit`.
pub fn list(
    conn: &mut DbConnection,
    customer: &str,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<Notice>, StoreError> {
    let mut query = notices::table
        .filter(notices::id.lt(before.unwrap_or(i64::MAX)))
        .order(notices::id.desc())
        .limit(limit)
        .select(COLUMNS)
        .into_boxed();
    if !customer.is_empty() {
        query = query.filter(notices::customer_id.eq(customer.to_owned()));
    }
    query
        .load::<NoticeRow>(conn)?
        .into_iter()
        .map(Notice::try_from)
        .collect()
}
