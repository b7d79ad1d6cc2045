//! The only file that knows SQL: the payments table and its queries. Every change is a
//! conditional `UPDATE … WHERE status IN (…)`.

use diesel::prelude::*;
use mesh_core::auth::Caller;
use mesh_core::clock::now_ms;
use mesh_core::{DbConnection, Migrations};

use crate::domain::{Id, Payment, PaymentError, PaymentStatus};

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
        payments (id) {
            id -> BigInt,
            reservation_id -> BigInt,
            product_id -> BigInt,
            customer_id -> Text,
            status -> Text,
            version -> BigInt,
            updated_at_ms -> BigInt,
            origin_traceparent -> Nullable<Text>,
            seller_id -> Text,
        }
    }
}
use schema::payments;

/// A refused operation or a failure of the payment store.
pub type StoreError = mesh_core::StoreError<PaymentError>;

impl mesh_core::StoreDomain for PaymentError {
    const STORE: &'static str = "payment";
}

/// The columns of a [`PaymentRow`], in order (a tuple: the multi-backend connection cannot
/// render `as_returning()`).
const PAYMENT_COLUMNS: (
    payments::id,
    payments::reservation_id,
    payments::product_id,
    payments::customer_id,
    payments::status,
    payments::version,
    payments::seller_id,
) = (
    payments::id,
    payments::reservation_id,
    payments::product_id,
    payments::customer_id,
    payments::status,
    payments::version,
    payments::seller_id,
);

#[derive(Queryable)]
struct PaymentRow {
    id: i64,
    reservation_id: i64,
    product_id: i64,
    customer_id: String,
    status: String,
    version: i64,
    seller_id: String,
}

impl TryFrom<PaymentRow> for Payment {
    type Error = StoreError;

    fn try_from(row: PaymentRow) -> Result<Self, StoreError> {
        let (Ok(id), Ok(reservation_id), Ok(product_id), Some(status)) = (
            Id::parse(row.id, "payment id"),
            Id::parse(row.reservation_id, "reservation id"),
            Id::parse(row.product_id, "product id"),
            PaymentStatus::from_stored(&row.status),
        ) else {
            return Err(StoreError::Corrupt {
                id: row.id,
                detail: format!("status {:?}, ids must be positive", row.status),
            });
        };
        Ok(Payment {
            id,
            reservation_id,
            product_id,
            customer_id: row.customer_id,
            status,
            version: row.version,
            seller_id: row.seller_id,
        })
    }
}

/// What a new payment is for.
#[derive(Clone, Debug)]
pub struct NewPayment<'a> {
    /// The reservation.
    pub reservation_id: Id,
    /// Its product.
    pub product_id: Id,
    /// Its buyer.
    pub customer_id: &'a str,
    /// Its product's seller ('' when unknown).
    pub seller_id: &'a str,
    /// The first status (UNPAID, or VOIDED for a reservation known only as cancelled).
    pub status: PaymentStatus,
}

/// Inserts the payment of a reservation, remembering the trace it was created in (the
/// reservation's), which paying links back to.
pub fn create(conn: &mut DbConnection, new: &NewPayment<'_>) -> Result<Payment, StoreError> {
    let row = diesel::insert_into(payments::table)
        .values(new_row(new))
        .returning(PAYMENT_COLUMNS);
    let row: PaymentRow = mesh_core::on_backend!(conn, |c| row.get_result(c))?;
    row.try_into()
}

/// [`create`], unless the reservation already has a payment (then `None`, nothing written):
/// one statement where a look-up and an insert were two.
pub fn create_unless_exists(
    conn: &mut DbConnection,
    new: &NewPayment<'_>,
) -> Result<Option<Payment>, StoreError> {
    let insert = diesel::insert_into(payments::table)
        .values(new_row(new))
        .on_conflict(payments::reservation_id)
        .do_nothing()
        .returning(PAYMENT_COLUMNS);
    // Both backends speak ON CONFLICT; diesel's multi-backend connection does not render it.
    let row: Option<PaymentRow> =
        mesh_core::on_backend!(conn, |c| insert.get_result(c)).optional()?;
    row.map(Payment::try_from).transpose()
}

/// [`create_unless_exists`] for many placements, each with the trace context it was made
/// in; returns the payments created (a reservation that has one already gets none). One
/// statement on PostgreSQL; a row at a time on SQLite, for which diesel writes no multi-row
/// upsert and where an embedded database has no round trips to save.
pub fn create_all_unless_exist(
    conn: &mut DbConnection,
    new: &[(NewPayment<'_>, Option<String>)],
) -> Result<Vec<Payment>, StoreError> {
    if new.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<NewRow<'_>> = new
        .iter()
        .map(|(payment, traceparent)| row_of(payment, traceparent.clone()))
        .collect();
    let created: Vec<PaymentRow> = match conn {
        DbConnection::Postgres(pg) => diesel::insert_into(payments::table)
            .values(rows)
            .on_conflict(payments::reservation_id)
            .do_nothing()
            .returning(PAYMENT_COLUMNS)
            .get_results(pg)?,
        DbConnection::Sqlite(lite) => {
            let mut created = Vec::with_capacity(rows.len());
            for row in rows {
                created.extend(
                    diesel::insert_into(payments::table)
                        .values(row)
                        .on_conflict(payments::reservation_id)
                        .do_nothing()
                        .returning(PAYMENT_COLUMNS)
                        .get_result::<PaymentRow>(lite)
                        .optional()?,
                );
            }
            created
        }
    };
    created.into_iter().map(Payment::try_from).collect()
}

/// The values of a new payment's row, as both inserts write them.
type NewRow<'a> = (
    diesel::dsl::Eq<payments::origin_traceparent, Option<String>>,
    diesel::dsl::Eq<payments::reservation_id, i64>,
    diesel::dsl::Eq<payments::product_id, i64>,
    diesel::dsl::Eq<payments::customer_id, &'a str>,
    diesel::dsl::Eq<payments::seller_id, &'a str>,
    diesel::dsl::Eq<payments::status, &'static str>,
    diesel::dsl::Eq<payments::version, i64>,
    diesel::dsl::Eq<payments::updated_at_ms, i64>,
);

/// The row of `new`, made in the trace context current now.
fn new_row<'a>(new: &NewPayment<'a>) -> NewRow<'a> {
    row_of(new, mesh_core::trace_context::current_traceparent())
}

fn row_of<'a>(new: &NewPayment<'a>, traceparent: Option<String>) -> NewRow<'a> {
    (
        payments::origin_traceparent.eq(traceparent),
        payments::reservation_id.eq(new.reservation_id.get()),
        payments::product_id.eq(new.product_id.get()),
        payments::customer_id.eq(new.customer_id),
        payments::seller_id.eq(new.seller_id),
        payments::status.eq(new.status.as_str()),
        payments::version.eq(1),
        payments::updated_at_ms.eq(now_ms()),
    )
}

/// The trace context payment `id` was created in, if it was traced.
pub fn origin_trace(conn: &mut DbConnection, id: Id) -> Result<Option<String>, StoreError> {
    Ok(payments::table
        .find(id.get())
        .select(payments::origin_traceparent)
        .first::<Option<String>>(conn)
        .optional()?
        .flatten())
}

/// One payment, or `NotFound`.
pub fn find(conn: &mut DbConnection, id: Id) -> Result<Payment, StoreError> {
    let query = payments::table.find(id.get()).select(PAYMENT_COLUMNS);
    mesh_core::on_backend!(conn, |c| query.first::<PaymentRow>(c))
        .optional()?
        .ok_or(PaymentError::NotFound(id))?
        .try_into()
}

/// The payment of a reservation, if one exists.
pub fn find_by_reservation(
    conn: &mut DbConnection,
    reservation: Id,
) -> Result<Option<Payment>, StoreError> {
    let query = payments::table
        .filter(payments::reservation_id.eq(reservation.get()))
        .select(PAYMENT_COLUMNS);
    mesh_core::on_backend!(conn, |c| query.first::<PaymentRow>(c))
        .optional()?
        .map(Payment::try_from)
        .transpose()
}

/// The payments `caller` may see (of one reservation, when given), oldest first: every one
/// for an admin, else those they owe or whose product they sell.
pub fn list_visible_to(
    conn: &mut DbConnection,
    caller: &Caller,
    reservation: Option<Id>,
    after: Option<i64>,
    limit: i64,
) -> Result<Vec<Payment>, StoreError> {
    let mut query = payments::table
        .filter(payments::id.gt(after.unwrap_or(0)))
        .order(payments::id)
        .limit(limit)
        .select(PAYMENT_COLUMNS)
        .into_boxed();
    if !caller.is_admin() {
        query = query.filter(
            payments::customer_id
                .eq(caller.subject().to_owned())
                .or(payments::seller_id.eq(caller.subject().to_owned())),
        );
    }
    if let Some(reservation) = reservation {
        query = query.filter(payments::reservation_id.eq(reservation.get()));
    }
    query
        .load::<PaymentRow>(conn)?
        .into_iter()
        .map(Payment::try_from)
        .collect()
}

/// Moves payment `id` from one of `from` to `to` (version + 1); `None` when it was in none of
/// `from`.
pub fn transition(
    conn: &mut DbConnection,
    id: Id,
    from: &[PaymentStatus],
    to: PaymentStatus,
) -> Result<Option<Payment>, StoreError> {
    let from: Vec<&str> = from.iter().map(|status| status.as_str()).collect();
    let moved = diesel::update(
        payments::table
            .find(id.get())
            .filter(payments::status.eq_any(from)),
    )
    .set((
        payments::status.eq(to.as_str()),
        payments::version.eq(payments::version + 1),
        payments::updated_at_ms.eq(now_ms()),
    ));
    let moved = mesh_core::on_backend!(conn, |c| moved.execute(c))?;
    if moved == 0 {
        return Ok(None);
    }
    find(conn, id).map(Some)
}
