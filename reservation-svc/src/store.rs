//! The only file that knows SQL: the reservations table and its queries.
//!
//! Every transition is a conditional `UPDATE … WHERE status = …` (or a conditional DELETE),
//! so the request path and the reconciler can race on one intent and exactly one of them wins.

use diesel::prelude::*;
use mesh_core::auth::Caller;
use mesh_core::events::OutgoingEvent;
use mesh_core::{DbConnection, Migrations};

use crate::domain::{CustomerId, Id, Reservation, ReservationError, ReservationState};

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
        reservations (id) {
            id -> BigInt,
            product_id -> BigInt,
            customer_id -> Text,
            status -> Text,
            version -> BigInt,
            updated_at_ms -> BigInt,
            seller_id -> Text,
        }
    }
}
use schema::reservations;

/// A refused operation or a failure of the reservation store.
pub type StoreError = mesh_core::StoreError<ReservationError>;

impl mesh_core::StoreDomain for ReservationError {
    const STORE: &'static str = "reservation";
}

/// The columns of a [`ReservationRow`], in order: a plain tuple because diesel's multi-backend
/// connection cannot render `as_returning()` inside a RETURNING clause.
const RESERVATION_COLUMNS: (
    reservations::id,
    reservations::product_id,
    reservations::customer_id,
    reservations::status,
    reservations::version,
    reservations::seller_id,
) = (
    reservations::id,
    reservations::product_id,
    reservations::customer_id,
    reservations::status,
    reservations::version,
    reservations::seller_id,
);

#[derive(Queryable)]
struct ReservationRow {
    id: i64,
    product_id: i64,
    customer_id: String,
    status: String,
    version: i64,
    seller_id: String,
}

impl TryFrom<ReservationRow> for Reservation {
    type Error = StoreError;

    fn try_from(row: ReservationRow) -> Result<Self, StoreError> {
        let corrupt = StoreError::Corrupt {
            id: row.id,
            detail: format!("status {:?}, ids must be positive", row.status),
        };
        let (Ok(id), Ok(product_id), Some(state)) = (
            Id::parse(row.id, "reservation id"),
            Id::parse(row.product_id, "product id"),
            ReservationState::from_stored(&row.status),
        ) else {
            return Err(corrupt);
        };
        Ok(Reservation {
            id,
            product_id,
            customer_id: row.customer_id,
            state,
            version: row.version,
            seller_id: row.seller_id,
        })
    }
}

fn visible_states() -> [&'static str; 3] {
    [
        ReservationState::Reserved.as_str(),
        ReservationState::Cancelled.as_str(),
        ReservationState::Confirmed.as_str(),
    ]
}

fn intent_states() -> [&'static str; 2] {
    [
        ReservationState::Placing.as_str(),
        ReservationState::Abandoned.as_str(),
    ]
}

/// Records the intent to reserve `product`, before asking product-svc for the lock, so the
/// lock request can carry the reservation's id and a crash leaves a trace to reconcile.
pub fn record_intent(
    conn: &mut DbConnection,
    product: Id,
    customer: &CustomerId,
    now_ms: i64,
) -> Result<Reservation, StoreError> {
    let insert = diesel::insert_into(reservations::table)
        .values((
            reservations::product_id.eq(product.get()),
            reservations::customer_id.eq(customer.as_str()),
            reservations::status.eq(ReservationState::Placing.as_str()),
            reservations::updated_at_ms.eq(now_ms),
        ))
        .returning(RESERVATION_COLUMNS);
    let row: ReservationRow = mesh_core::on_backend!(conn, |c| insert.get_result(c))?;
    row.try_into()
}

/// [`record_intent`] for many intents in one statement, one reservation per intent in their
/// order. The rows come back matched to the intents by product and buyer (two identical
/// intents get identical rows, so which gets which does not matter), not by the order of
/// RETURNING, which PostgreSQL does not promise.
pub fn record_intents(
    conn: &mut DbConnection,
    intents: &[(Id, &CustomerId)],
    now_ms: i64,
) -> Result<Vec<Reservation>, StoreError> {
    if intents.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<_> = intents
        .iter()
        .map(|(product, customer)| {
            (
                reservations::product_id.eq(product.get()),
                reservations::customer_id.eq(customer.as_str()),
                reservations::status.eq(ReservationState::Placing.as_str()),
                reservations::updated_at_ms.eq(now_ms),
            )
        })
        .collect();
    let insert = diesel::insert_into(reservations::table)
        .values(rows)
        .returning(RESERVATION_COLUMNS);
    let rows: Vec<ReservationRow> = mesh_core::on_backend!(conn, |c| insert.get_results(c))?;
    let mut recorded: std::collections::HashMap<(i64, String), Vec<ReservationRow>> =
        std::collections::HashMap::with_capacity(rows.len());
    for row in rows.into_iter().rev() {
        recorded
            .entry((row.product_id, row.customer_id.clone()))
            .or_default()
            .push(row);
    }
    intents
        .iter()
        .map(|(product, customer)| {
            recorded
                .get_mut(&(product.get(), customer.as_str().to_owned()))
                .and_then(Vec::pop)
                .ok_or_else(|| StoreError::Corrupt {
                    id: product.get(),
                    detail: "an intent's row did not come back from its insert".into(),
                })?
                .try_into()
        })
        .collect()
}

/// [`settle_intent`] to RESERVED for many intents, each with its product's seller, and the
/// event of each intent this call moved into the outbox ([`mesh_core::outbox`]); returns the
/// ids it moved (an intent the reconciler abandoned first is not among them, and its event is
/// not queued). On PostgreSQL one statement ([`RESERVE_INTENTS`]): alone, it commits on its
/// own; on SQLite (in process) one update per intent, then one outbox insert.
pub fn reserve_intents(
    conn: &mut DbConnection,
    intents: &[(Id, &str, &OutgoingEvent)],
    now_ms: i64,
) -> Result<std::collections::HashSet<i64>, StoreError> {
    use diesel::sql_types::{Array, BigInt, Binary, Nullable, Text};

    #[derive(QueryableByName)]
    struct Moved {
        #[diesel(sql_type = BigInt)]
        id: i64,
    }

    match conn {
        DbConnection::Postgres(pg) => {
            if intents.is_empty() {
                return Ok(Default::default());
            }
            let ids: Vec<i64> = intents.iter().map(|(id, _, _)| id.get()).collect();
            let sellers: Vec<&str> = intents.iter().map(|(_, seller, _)| *seller).collect();
            let event_ids: Vec<&str> = intents.iter().map(|i| i.2.event_id.as_str()).collect();
            let subjects: Vec<&str> = intents.iter().map(|i| i.2.subject.as_str()).collect();
            let payloads: Vec<&[u8]> = intents.iter().map(|i| i.2.payload.as_slice()).collect();
            let traceparents: Vec<Option<&str>> =
                intents.iter().map(|i| i.2.traceparent.as_deref()).collect();
            Ok(diesel::sql_query(RESERVE_INTENTS)
                .bind::<Array<BigInt>, _>(ids)
                .bind::<Array<Text>, _>(sellers)
                .bind::<Text, _>(ReservationState::Placing.as_str())
                .bind::<Text, _>(ReservationState::Reserved.as_str())
                .bind::<BigInt, _>(now_ms)
                .bind::<Array<Text>, _>(event_ids)
                .bind::<Array<Text>, _>(subjects)
                .bind::<Array<Binary>, _>(payloads)
                .bind::<Array<Nullable<Text>>, _>(traceparents)
                .load::<Moved>(pg)?
                .into_iter()
                .map(|moved| moved.id)
                .collect())
        }
        sqlite => {
            let mut moved = std::collections::HashSet::with_capacity(intents.len());
            for (id, seller, _) in intents {
                if settle_intent(sqlite, *id, ReservationState::Reserved, seller, now_ms)? {
                    moved.insert(id.get());
                }
            }
            let events = intents
                .iter()
                .filter(|(id, _, _)| moved.contains(&id.get()))
                .map(|(_, _, event)| *event);
            mesh_core::outbox::enqueue_all(sqlite, events)?;
            Ok(moved)
        }
    }
}

/// PLACING → RESERVED for every intent of the arrays (version 1, the seller filled in), and
/// the events of the intents it moved into the outbox (the columns `mesh_core::outbox`
/// writes, in the arrays' order), in one statement.
const RESERVE_INTENTS: &str = "WITH moved AS ( \
       UPDATE reservations AS r \
       SET status = $4, version = 1, updated_at_ms = $5, seller_id = settled.seller_id \
       FROM unnest($1::int8[], $2::text[]) AS settled(id, seller_id) \
       WHERE r.id = settled.id AND r.status = $3 \
       RETURNING r.id \
     ), queued AS ( \
       INSERT INTO outbox (event_id, subject, payload, traceparent, created_at_ms) \
       SELECT e.event_id, e.subject, e.payload, e.traceparent, $5 \
       FROM unnest($1::int8[], $6::text[], $7::text[], $8::bytea[], $9::text[]) \
         WITH ORDINALITY AS e(id, event_id, subject, payload, traceparent, n) \
       WHERE e.id IN (SELECT id FROM moved) \
       ORDER BY e.n \
     ) \
     SELECT id FROM moved";

/// PLACING → `to`, if the intent is still PLACING. Returns whether this call moved it (false
/// when the reconciler abandoned it first). Becoming visible counts as the first version.
/// `seller` is the product's seller, once the lock told it.
pub fn settle_intent(
    conn: &mut DbConnection,
    id: Id,
    to: ReservationState,
    seller: &str,
    now_ms: i64,
) -> Result<bool, StoreError> {
    let version = i64::from(to.is_visible());
    let moved = diesel::update(
        reservations::table
            .find(id.get())
            .filter(reservations::status.eq(ReservationState::Placing.as_str())),
    )
    .set((
        reservations::status.eq(to.as_str()),
        reservations::version.eq(version),
        reservations::updated_at_ms.eq(now_ms),
        reservations::seller_id.eq(seller),
    ));
    let moved = mesh_core::on_backend!(conn, |c| moved.execute(c))?;
    Ok(moved == 1)
}

/// Moves a visible reservation from one of `from` to `to` (version + 1) and returns it as it
/// is now; `None` when it was in none of `from` (the caller explains why from the domain).
pub fn transition(
    conn: &mut DbConnection,
    id: Id,
    from: &[ReservationState],
    to: ReservationState,
    now_ms: i64,
) -> Result<Option<Reservation>, StoreError> {
    let from: Vec<&str> = from.iter().map(|state| state.as_str()).collect();
    let moved = diesel::update(
        reservations::table
            .find(id.get())
            .filter(reservations::status.eq_any(from)),
    )
    .set((
        reservations::status.eq(to.as_str()),
        reservations::version.eq(reservations::version + 1),
        reservations::updated_at_ms.eq(now_ms),
    ));
    let moved = mesh_core::on_backend!(conn, |c| moved.execute(c))?;
    if moved == 0 {
        return Ok(None);
    }
    find_any(conn, id).map(Some)
}

/// A reservation in any state, intents included, or `NotFound`.
pub fn find_any(conn: &mut DbConnection, id: Id) -> Result<Reservation, StoreError> {
    let query = reservations::table
        .find(id.get())
        .select(RESERVATION_COLUMNS);
    mesh_core::on_backend!(conn, |c| query.first::<ReservationRow>(c))
        .optional()?
        .ok_or(ReservationError::NotFound(id))?
        .try_into()
}

/// Deletes an intent still in `state`; a no-op otherwise.
pub fn delete_intent(
    conn: &mut DbConnection,
    id: Id,
    state: ReservationState,
) -> Result<bool, StoreError> {
    let deleted = diesel::delete(
        reservations::table
            .find(id.get())
            .filter(reservations::status.eq(state.as_str())),
    )
    .execute(conn)?;
    Ok(deleted == 1)
}

/// Intents untouched since `older_than_ms`, oldest first, at most `limit`.
pub fn stale_intents(
    conn: &mut DbConnection,
    older_than_ms: i64,
    limit: i64,
) -> Result<Vec<Reservation>, StoreError> {
    reservations::table
        .filter(reservations::status.eq_any(intent_states()))
        .filter(reservations::updated_at_ms.lt(older_than_ms))
        .order(reservations::updated_at_ms)
        .limit(limit)
        .select(RESERVATION_COLUMNS)
        .load::<ReservationRow>(conn)?
        .into_iter()
        .map(Reservation::try_from)
        .collect()
}

/// Claims a stale intent for the reconciler: PLACING or ABANDONED → ABANDONED, only while it
/// is still older than `stale_before_ms`. False when the request path settled it in the
/// meantime, or when another replica's reconciler claimed it first (a claim stamps the
/// intent with `now_ms`, so it is no longer stale for anyone else until the grace period
/// passes again): reconcilers of several replicas never handle the same intent at once.
pub fn claim_intent(
    conn: &mut DbConnection,
    id: Id,
    stale_before_ms: i64,
    now_ms: i64,
) -> Result<bool, StoreError> {
    let claimed = diesel::update(
        reservations::table
            .find(id.get())
            .filter(reservations::status.eq_any(intent_states()))
            .filter(reservations::updated_at_ms.lt(stale_before_ms)),
    )
    .set((
        reservations::status.eq(ReservationState::Abandoned.as_str()),
        reservations::updated_at_ms.eq(now_ms),
    ))
    .execute(conn)?;
    Ok(claimed == 1)
}

/// One visible reservation, or `NotFound`.
pub fn find(conn: &mut DbConnection, id: Id) -> Result<Reservation, StoreError> {
    reservations::table
        .find(id.get())
        .filter(reservations::status.eq_any(visible_states()))
        .select(RESERVATION_COLUMNS)
        .first::<ReservationRow>(conn)
        .optional()?
        .ok_or(ReservationError::NotFound(id))?
        .try_into()
}

/// The visible reservations `caller` may see, oldest first: every one for an admin, else those
/// they bought or whose product they sell.
pub fn list_visible_to(
    conn: &mut DbConnection,
    caller: &Caller,
    after: Option<i64>,
    limit: i64,
) -> Result<Vec<Reservation>, StoreError> {
    let mut query = reservations::table
        .filter(reservations::status.eq_any(visible_states()))
        .filter(reservations::id.gt(after.unwrap_or(0)))
        .limit(limit)
        .into_boxed();
    if !caller.is_admin() {
        query = query.filter(
            reservations::customer_id
                .eq(caller.subject().to_owned())
                .or(reservations::seller_id.eq(caller.subject().to_owned())),
        );
    }
    query
        .order(reservations::id)
        .select(RESERVATION_COLUMNS)
        .load::<ReservationRow>(conn)?
        .into_iter()
        .map(Reservation::try_from)
        .collect()
}
