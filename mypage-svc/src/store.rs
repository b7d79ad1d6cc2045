//! The only file that knows SQL: the `my_page` table.
//!
//! Each half of an entry is written with one conditional update, `WHERE <half>_version < $v`,
//! so a late event never overwrites a newer state, and the reservation consumer and the payment
//! consumer can write the same row concurrently without losing each other's half.

use diesel::prelude::*;
use mesh_core::clock::now_ms;
use mesh_core::{DbConnection, DbError, Migrations};
use reserve_proto::mypage::v1::MyPageEntry;
use reserve_proto::payment::v1::PaymentStatus;
use reserve_proto::reservation::v1::ReservationStatus;

use crate::domain::Change;

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
        my_page (reservation_id) {
            reservation_id -> BigInt,
            product_id -> BigInt,
            product_name -> Text,
            customer_id -> Text,
            reservation_status -> Nullable<Text>,
            reservation_version -> BigInt,
            payment_id -> Nullable<BigInt>,
            payment_status -> Nullable<Text>,
            payment_version -> BigInt,
            updated_at_ms -> BigInt,
        }
    }
}
use schema::my_page;

#[derive(Queryable)]
struct EntryRow {
    reservation_id: i64,
    product_id: i64,
    product_name: String,
    customer_id: String,
    reservation_status: Option<String>,
    reservation_version: i64,
    payment_id: Option<i64>,
    payment_status: Option<String>,
    payment_version: i64,
    updated_at_ms: i64,
}

impl From<EntryRow> for MyPageEntry {
    fn from(row: EntryRow) -> Self {
        let reservation_status = row
            .reservation_status
            .as_deref()
            .and_then(ReservationStatus::from_str_name_short)
            .unwrap_or(ReservationStatus::Unspecified);
        let payment_status = row
            .payment_status
            .as_deref()
            .and_then(PaymentStatus::from_str_name_short)
            .unwrap_or(PaymentStatus::Unspecified);
        MyPageEntry {
            reservation_id: row.reservation_id,
            product_id: row.product_id,
            product_name: row.product_name,
            customer_id: row.customer_id,
            reservation_status: reservation_status.into(),
            payment_id: row.payment_id.unwrap_or_default(),
            payment_status: payment_status.into(),
            updated_at_unix_ms: row.updated_at_ms,
            reservation_version: row.reservation_version,
            payment_version: row.payment_version,
        }
    }
}

/// Short status names ("RESERVED", "PAID") ⇄ the wire enums ("RESERVATION_STATUS_RESERVED").
trait ShortName: Sized {
    fn from_str_name_short(name: &str) -> Option<Self>;
}

impl ShortName for ReservationStatus {
    fn from_str_name_short(name: &str) -> Option<Self> {
        Self::from_str_name(&format!("RESERVATION_STATUS_{name}"))
    }
}

impl ShortName for PaymentStatus {
    fn from_str_name_short(name: &str) -> Option<Self> {
        Self::from_str_name(&format!("PAYMENT_STATUS_{name}"))
    }
}

/// Applies one change; returns whether the entry changed (false for a stale event).
pub fn apply(conn: &mut DbConnection, change: &Change) -> Result<bool, DbError> {
    ensure_row(conn, change)?;
    let id = change.reservation_id();
    let updated = match change {
        Change::Reservation {
            product_id,
            customer_id,
            status,
            version,
            ..
        } => {
            let newer = my_page::table
                .find(id)
                .filter(my_page::reservation_version.lt(version));
            diesel::update(newer)
                .set((
                    my_page::reservation_status.eq(*status),
                    my_page::reservation_version.eq(version),
                    my_page::product_id.eq(product_id),
                    my_page::customer_id.eq(customer_id),
                    my_page::updated_at_ms.eq(now_ms()),
                ))
                .execute(conn)?
        }
        Change::Payment {
            payment_id,
            customer_id,
            status,
            version,
            ..
        } => {
            let newer = my_page::table
                .find(id)
                .filter(my_page::payment_version.lt(version));
            diesel::update(newer)
                .set((
                    my_page::payment_status.eq(*status),
                    my_page::payment_version.eq(version),
                    my_page::payment_id.eq(payment_id),
                    my_page::customer_id.eq(customer_id),
                    my_page::updated_at_ms.eq(now_ms()),
                ))
                .execute(conn)?
        }
    };
    // updated == 0: a late or repeated event; that half already shows newer state.
    Ok(fill_in_product(conn, change)? || updated == 1)
}

/// Makes sure the entry's row exists, as an empty skeleton the halves then fill in. The
/// reservation consumer and the payment consumer may both see a new reservation at once:
/// `ON CONFLICT DO NOTHING` lets the second wait for the first instead of failing.
fn ensure_row(conn: &mut DbConnection, change: &Change) -> Result<(), DbError> {
    let insert = diesel::insert_into(my_page::table)
        .values((
            my_page::reservation_id.eq(change.reservation_id()),
            my_page::product_id.eq(0),
            my_page::product_name.eq(""),
            my_page::customer_id.eq(change.customer_id()),
            my_page::reservation_version.eq(0),
            my_page::payment_version.eq(0),
            my_page::updated_at_ms.eq(now_ms()),
        ))
        .on_conflict(my_page::reservation_id)
        .do_nothing();
    // Both backends speak ON CONFLICT, but diesel's multi-backend connection does not render
    // it: run it on the concrete connection.
    match conn {
        DbConnection::Postgres(pg) => insert.execute(pg)?,
        DbConnection::Sqlite(sqlite) => insert.execute(sqlite)?,
    };
    Ok(())
}

/// The product's id and name never change, and only some events carry them: whichever event
/// brings them first fills them in, whatever its version (a late ReservationPlaced is stale
/// for the status but still the only carrier of the product's name).
fn fill_in_product(conn: &mut DbConnection, change: &Change) -> Result<bool, DbError> {
    let id = change.reservation_id();
    let (product_id, product_name) = match change {
        Change::Reservation {
            product_id,
            product_name,
            ..
        } => (Some(*product_id), product_name.as_deref()),
        Change::Payment { product_id, .. } => (*product_id, None),
    };
    let mut filled = 0;
    if let Some(product) = product_id.filter(|product| *product > 0) {
        filled += diesel::update(my_page::table.find(id).filter(my_page::product_id.eq(0)))
            .set(my_page::product_id.eq(product))
            .execute(conn)?;
    }
    if let Some(name) = product_name.filter(|name| !name.is_empty()) {
        filled += diesel::update(my_page::table.find(id).filter(my_page::product_name.eq("")))
            .set(my_page::product_name.eq(name))
            .execute(conn)?;
    }
    Ok(filled > 0)
}

const COLUMNS: (
    my_page::reservation_id,
    my_page::product_id,
    my_page::product_name,
    my_page::customer_id,
    my_page::reservation_status,
    my_page::reservation_version,
    my_page::payment_id,
    my_page::payment_status,
    my_page::payment_version,
    my_page::updated_at_ms,
) = (
    my_page::reservation_id,
    my_page::product_id,
    my_page::product_name,
    my_page::customer_id,
    my_page::reservation_status,
    my_page::reservation_version,
    my_page::payment_id,
    my_page::payment_status,
    my_page::payment_version,
    my_page::updated_at_ms,
);

/// One entry.
pub fn get(conn: &mut DbConnection, reservation_id: i64) -> Result<Option<MyPageEntry>, DbError> {
    Ok(my_page::table
        .find(reservation_id)
        .select(COLUMNS)
        .first::<EntryRow>(conn)
        .optional()?
        .map(MyPageEntry::from))
}

/// A page of entries (of one buyer, unless `customer` is empty) after `after`, by reservation.
pub fn list(
    conn: &mut DbConnection,
    customer: &str,
    after: i64,
    limit: i64,
) -> Result<Vec<MyPageEntry>, DbError> {
    let mut query = my_page::table
        .filter(my_page::reservation_id.gt(after))
        .order(my_page::reservation_id)
        .limit(limit)
        .select(COLUMNS)
        .into_boxed();
    if !customer.is_empty() {
        query = query.filter(my_page::customer_id.eq(customer.to_owned()));
    }
    Ok(query
        .load::<EntryRow>(conn)?
        .into_iter()
        .map(MyPageEntry::from)
        .collect())
}

/// Empties the read model (before a rebuild).
pub fn clear(conn: &mut DbConnection) -> Result<usize, DbError> {
    Ok(diesel::delete(my_page::table).execute(conn)?)
}
