//! The only file that knows SQL: the `my_page` table.
//!
//! Each half of an entry is written with one conditional update, `WHERE <half>_version < $v`,
//! so a late event never overwrites a newer state, and the reservation consumer and the payment
//! consumer can write the same row concurrently without losing each other's half.

use diesel::prelude::*;
use mesh_core::clock::now_ms;
use mesh_core::{DbConnection, DbError, Migrations};
use reserve_proto::StatusName;

use crate::domain::{Change, Entry, Id, MyPageError};

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

/// A refused request or a failure of the my-page store.
pub type StoreError = mesh_core::StoreError<MyPageError>;

impl mesh_core::StoreDomain for MyPageError {
    const STORE: &'static str = "my-page";
}

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

impl TryFrom<EntryRow> for Entry {
    type Error = StoreError;

    /// Only this file writes the row, so an unknown status name or a non-positive id is
    /// corruption, not something to show as "unspecified".
    fn try_from(row: EntryRow) -> Result<Self, StoreError> {
        let id = row.reservation_id;
        let corrupt = |detail: String| StoreError::Corrupt { id, detail };
        Ok(Entry {
            reservation_id: Id::parse(id, "reservation id")
                .map_err(|err| corrupt(err.to_string()))?,
            product_id: Id::parse(row.product_id, "product id").ok(),
            product_name: row.product_name,
            customer_id: row.customer_id,
            reservation_status: stored_status(row.reservation_status).map_err(corrupt)?,
            reservation_version: row.reservation_version,
            payment_id: row
                .payment_id
                .and_then(|raw| Id::parse(raw, "payment id").ok()),
            payment_status: stored_status(row.payment_status).map_err(corrupt)?,
            payment_version: row.payment_version,
            updated_at_ms: row.updated_at_ms,
        })
    }
}

/// A half's stored status: NULL until its first event, else a name of the API's enum.
fn stored_status<S: StatusName>(name: Option<String>) -> Result<Option<S>, String> {
    name.map(|name| S::from_name(&name).ok_or(format!("unknown status {name:?}")))
        .transpose()
}

/// Applies one change; returns whether the entry changed (false for a stale event).
pub fn apply(conn: &mut DbConnection, change: &Change) -> Result<bool, DbError> {
    ensure_row(conn, change)?;
    let id = change.reservation_id().get();
    let updated = match change {
        Change::Reservation {
            customer_id,
            status,
            version,
            ..
        } => {
            let newer = my_page::table
                .find(id)
                .filter(my_page::reservation_version.lt(version));
            let update = diesel::update(newer).set((
                my_page::reservation_status.eq(status.name()),
                my_page::reservation_version.eq(version),
                my_page::customer_id.eq(customer_id),
                my_page::updated_at_ms.eq(now_ms()),
            ));
            mesh_core::on_backend!(conn, |c| update.execute(c))?
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
            let update = diesel::update(newer).set((
                my_page::payment_status.eq(status.name()),
                my_page::payment_version.eq(version),
                my_page::payment_id.eq(payment_id.get()),
                my_page::customer_id.eq(customer_id),
                my_page::updated_at_ms.eq(now_ms()),
            ));
            mesh_core::on_backend!(conn, |c| update.execute(c))?
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
            my_page::reservation_id.eq(change.reservation_id().get()),
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
    let id = change.reservation_id().get();
    let product_name = match change {
        Change::Reservation { product_name, .. } => product_name.as_deref(),
        Change::Payment { .. } => None,
    };
    let mut filled = 0;
    if let Some(product) = change.product_id() {
        let update = diesel::update(my_page::table.find(id).filter(my_page::product_id.eq(0)))
            .set(my_page::product_id.eq(product.get()));
        filled += mesh_core::on_backend!(conn, |c| update.execute(c))?;
    }
    if let Some(name) = product_name.filter(|name| !name.is_empty()) {
        let update = diesel::update(my_page::table.find(id).filter(my_page::product_name.eq("")))
            .set(my_page::product_name.eq(name));
        filled += mesh_core::on_backend!(conn, |c| update.execute(c))?;
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
pub fn get(conn: &mut DbConnection, reservation_id: Id) -> Result<Option<Entry>, StoreError> {
    my_page::table
        .find(reservation_id.get())
        .select(COLUMNS)
        .first::<EntryRow>(conn)
        .optional()?
        .map(Entry::try_from)
        .transpose()
}

/// A page of entries (of one buyer, unless `customer` is empty) after `after`, by reservation.
pub fn list(
    conn: &mut DbConnection,
    customer: &str,
    after: Option<i64>,
    limit: i64,
) -> Result<Vec<Entry>, StoreError> {
    let mut query = my_page::table
        .filter(my_page::reservation_id.gt(after.unwrap_or(0)))
        .order(my_page::reservation_id)
        .limit(limit)
        .select(COLUMNS)
        .into_boxed();
    if !customer.is_empty() {
        query = query.filter(my_page::customer_id.eq(customer.to_owned()));
    }
    query
        .load::<EntryRow>(conn)?
        .into_iter()
        .map(Entry::try_from)
        .collect()
}

/// Empties the read model (before a rebuild).
pub fn clear(conn: &mut DbConnection) -> Result<usize, DbError> {
    Ok(diesel::delete(my_page::table).execute(conn)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{PaymentStatus, ReservationStatus};

    #[test]
    fn stored_statuses_read_back_and_unknown_ones_are_corrupt() {
        assert_eq!(stored_status::<PaymentStatus>(None), Ok(None));
        assert_eq!(
            stored_status(Some(ReservationStatus::Cancelled.name().to_owned())),
            Ok(Some(ReservationStatus::Cancelled))
        );
        assert_eq!(
            stored_status::<PaymentStatus>(Some("RESERVED".into())),
            Err("unknown status \"RESERVED\"".to_owned())
        );
    }
}
