//! The only file that knows SQL: the `my_page` table.
//!
//! Each half of an entry is written only when its version is newer than the one shown, in one
//! upsert per event, so a late event never overwrites a newer state, and the reservation
//! consumer and the payment consumer can write the same row concurrently without losing each
//! other's half.

use diesel::prelude::*;
use mesh_core::clock::now_ms;
use mesh_core::consumer::SHORT_LOCK_WAIT;
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

/// Applies one change in one statement; returns whether the entry changed (false for a stale
/// or repeated event). See [`apply_all`].
pub fn apply(conn: &mut DbConnection, change: &Change) -> Result<bool, DbError> {
    Ok(apply_all(conn, std::slice::from_ref(change))? == 1)
}

/// Applies changes in order, each entry's in one upsert row, many entries per statement;
/// returns how many entries changed (a stale or repeated event changes none).
///
/// The row is inserted with a change's half (the other half empty, version 0) or, when it
/// exists, merged into it: a half is taken only if its version is newer than the one shown,
/// the product's id and name only while they are still unknown (they never change, and only
/// some events carry them: a late ReservationPlaced is stale for the status but still the
/// only carrier of the product's name). The reservation consumer and the payment consumer may
/// write the same new row at once: the second waits for the first's insert and then merges
/// into it, so neither half is lost.
///
/// One statement may touch an entry only once (PostgreSQL refuses a second update of a row in
/// the same `ON CONFLICT DO UPDATE`), so the changes go in runs without a repeated entry, in
/// order; within a run the rows are sorted by entry, so two consumers' statements lock the
/// rows they share in the same order.
pub fn apply_all(conn: &mut DbConnection, changes: &[Change]) -> Result<usize, DbError> {
    let mut changed = 0;
    for run in runs_of_distinct(changes, Change::reservation_id, MAX_ROWS_PER_STATEMENT) {
        let run: Vec<&Change> = run.iter().collect();
        changed += upsert(conn, &run)?.len();
    }
    Ok(changed)
}

/// [`apply_all`] for changes that each came with an event id; returns the ids of the events
/// whose change was taken (a stale or repeated one's was not). The upserts are idempotent by
/// version, so the consumer needs no inbox for them: a batch is one statement, or, when it
/// repeats an entry, its runs in one transaction (so what the ids say is what committed).
/// Such a transaction locks its rows run by run, not in one sorted order, so it waits for a
/// lock only briefly ([`SHORT_LOCK_WAIT`]): should it meet the other consumer's statement in a
/// deadlock, it gives up at once and the consumer applies the events one by one.
pub fn apply_new<'e>(
    conn: &mut DbConnection,
    changes: &[(&'e str, Change)],
) -> Result<Vec<&'e str>, DbError> {
    let runs = runs_of_distinct(
        changes,
        |(_, change)| change.reservation_id(),
        MAX_ROWS_PER_STATEMENT,
    );
    let apply_runs = |conn: &mut DbConnection| {
        let mut taken = Vec::new();
        for run in &runs {
            let entries: Vec<&Change> = run.iter().map(|(_, change)| change).collect();
            let changed: std::collections::HashSet<i64> =
                upsert(conn, &entries)?.into_iter().collect();
            // Entries are distinct within a run: an entry that changed names its one event.
            taken.extend(
                run.iter()
                    .filter(|(_, change)| changed.contains(&change.reservation_id().get()))
                    .map(|(event_id, _)| *event_id),
            );
        }
        Ok::<_, DbError>(taken)
    };
    // SQLite writes a run row by row: a transaction keeps its rows together there too.
    if runs.len() > 1 || matches!(conn, DbConnection::Sqlite(_)) {
        mesh_core::db::transaction_with(conn, SHORT_LOCK_WAIT, apply_runs)
    } else {
        apply_runs(conn)
    }
}

/// Rows per upsert: 10 bound values each stays far below SQLite's limit on parameters.
const MAX_ROWS_PER_STATEMENT: usize = 100;

/// Splits `items` into consecutive runs, in order, none longer than `max` and none holding
/// two items with the same key.
fn runs_of_distinct<T, K: Eq + std::hash::Hash>(
    items: &[T],
    key: impl Fn(&T) -> K,
    max: usize,
) -> Vec<&[T]> {
    let mut runs = Vec::new();
    let mut start = 0;
    let mut keys = std::collections::HashSet::new();
    for (at, item) in items.iter().enumerate() {
        if at - start == max || !keys.insert(key(item)) {
            runs.push(&items[start..at]);
            start = at;
            keys.clear();
            keys.insert(key(item));
        }
    }
    if start < items.len() {
        runs.push(&items[start..]);
    }
    runs
}

/// The merging upsert of `$values` (one row or many), written once for the two ways it runs.
macro_rules! merging_upsert {
    ($values:expr) => {{
        use diesel::dsl::case_when;
        use diesel::query_dsl::methods::FilterDsl;
        use diesel::upsert::excluded;

        let newer_reservation =
            excluded(my_page::reservation_version).gt(my_page::reservation_version);
        let newer_payment = excluded(my_page::payment_version).gt(my_page::payment_version);
        let newer_half = newer_reservation.or(newer_payment);
        let product_id_missing = my_page::product_id
            .eq(0)
            .and(excluded(my_page::product_id).ne(0));
        let product_name_missing = my_page::product_name
            .eq("")
            .and(excluded(my_page::product_name).ne(""));
        let upsert = diesel::insert_into(my_page::table)
            .values($values)
            .on_conflict(my_page::reservation_id)
            .do_update()
            .set((
                my_page::reservation_status.eq(case_when(
                    newer_reservation,
                    excluded(my_page::reservation_status),
                )
                .otherwise(my_page::reservation_status)),
                my_page::reservation_version.eq(case_when(
                    newer_reservation,
                    excluded(my_page::reservation_version),
                )
                .otherwise(my_page::reservation_version)),
                my_page::payment_status.eq(case_when(
                    newer_payment,
                    excluded(my_page::payment_status),
                )
                .otherwise(my_page::payment_status)),
                my_page::payment_id.eq(case_when(newer_payment, excluded(my_page::payment_id))
                    .otherwise(my_page::payment_id)),
                my_page::payment_version.eq(case_when(
                    newer_payment,
                    excluded(my_page::payment_version),
                )
                .otherwise(my_page::payment_version)),
                my_page::customer_id.eq(case_when(newer_half, excluded(my_page::customer_id))
                    .otherwise(my_page::customer_id)),
                my_page::updated_at_ms.eq(case_when(newer_half, excluded(my_page::updated_at_ms))
                    .otherwise(my_page::updated_at_ms)),
                my_page::product_id.eq(case_when(
                    product_id_missing,
                    excluded(my_page::product_id),
                )
                .otherwise(my_page::product_id)),
                my_page::product_name.eq(case_when(
                    product_name_missing,
                    excluded(my_page::product_name),
                )
                .otherwise(my_page::product_name)),
            ));
        // Rows that would not change are not written (and count as not changed).
        FilterDsl::filter(
            upsert,
            newer_half.or(product_id_missing).or(product_name_missing),
        )
    }};
}

/// One upsert of `changes` (distinct entries); returns the entries that changed.
fn upsert(conn: &mut DbConnection, changes: &[&Change]) -> Result<Vec<i64>, DbError> {
    let now = now_ms();
    let mut sorted = changes.to_vec();
    sorted.sort_by_key(|change| change.reservation_id());
    let rows: Vec<_> = sorted
        .iter()
        .map(|change| {
            let proposed = Proposed::from(*change);
            (
                my_page::reservation_id.eq(change.reservation_id().get()),
                my_page::product_id.eq(proposed.product_id),
                my_page::product_name.eq(proposed.product_name),
                my_page::customer_id.eq(change.customer_id()),
                my_page::reservation_status.eq(proposed.reservation_status),
                my_page::reservation_version.eq(proposed.reservation_version),
                my_page::payment_id.eq(proposed.payment_id),
                my_page::payment_status.eq(proposed.payment_status),
                my_page::payment_version.eq(proposed.payment_version),
                my_page::updated_at_ms.eq(now),
            )
        })
        .collect();
    match conn {
        DbConnection::Postgres(pg) => Ok(merging_upsert!(rows)
            .returning(my_page::reservation_id)
            .get_results(pg)?),
        // diesel writes no multi-row upsert for SQLite, and an embedded database has no round
        // trips to save: a row at a time.
        DbConnection::Sqlite(lite) => {
            let mut changed = Vec::new();
            for (row, change) in rows.into_iter().zip(&sorted) {
                if merging_upsert!(row).execute(lite)? == 1 {
                    changed.push(change.reservation_id().get());
                }
            }
            Ok(changed)
        }
    }
}

/// The row one change proposes: its own half filled in, the other empty (version 0, which
/// nothing is newer than). A half whose version is not positive proposes nothing.
struct Proposed<'a> {
    product_id: i64,
    product_name: &'a str,
    reservation_status: Option<&'static str>,
    reservation_version: i64,
    payment_id: Option<i64>,
    payment_status: Option<&'static str>,
    payment_version: i64,
}

impl<'a> From<&'a Change> for Proposed<'a> {
    fn from(change: &'a Change) -> Self {
        let empty = Proposed {
            product_id: change.product_id().map_or(0, Id::get),
            product_name: "",
            reservation_status: None,
            reservation_version: 0,
            payment_id: None,
            payment_status: None,
            payment_version: 0,
        };
        match change {
            Change::Reservation {
                status,
                version,
                product_name,
                ..
            } => Proposed {
                product_name: product_name.as_deref().unwrap_or(""),
                reservation_status: (*version > 0).then(|| status.name()),
                reservation_version: (*version).max(0),
                ..empty
            },
            Change::Payment {
                payment_id,
                status,
                version,
                ..
            } => Proposed {
                payment_id: (*version > 0).then(|| payment_id.get()),
                payment_status: (*version > 0).then(|| status.name()),
                payment_version: (*version).max(0),
                ..empty
            },
        }
    }
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

    /// The embedded default's own engine (the PostgreSQL side runs in `tests/mypage_api.rs`).
    fn sqlite() -> DbConnection {
        use diesel_migrations::MigrationHarness;
        let mut conn = diesel::SqliteConnection::establish(":memory:").expect("in-memory SQLite");
        conn.run_pending_migrations(MIGRATIONS.sqlite)
            .expect("my-page migrations");
        DbConnection::Sqlite(conn)
    }

    fn placed(version: i64, status: ReservationStatus, name: Option<&str>) -> Change {
        Change::Reservation {
            reservation_id: Id::parse(7, "reservation id").expect("positive"),
            product_id: Some(Id::parse(70, "product id").expect("positive")),
            product_name: name.map(str::to_owned),
            customer_id: "buyer-1".into(),
            status,
            version,
        }
    }

    fn paid(version: i64, status: PaymentStatus) -> Change {
        Change::Payment {
            reservation_id: Id::parse(7, "reservation id").expect("positive"),
            product_id: None,
            payment_id: Id::parse(700, "payment id").expect("positive"),
            customer_id: "buyer-1".into(),
            status,
            version,
        }
    }

    fn entry(conn: &mut DbConnection) -> Entry {
        get(conn, Id::parse(7, "reservation id").expect("positive"))
            .expect("read")
            .expect("the entry exists")
    }

    #[test]
    fn runs_keep_order_never_repeat_a_key_and_stay_under_the_limit() {
        let keys = [1, 2, 1, 3, 4, 5, 3, 3];
        let runs = runs_of_distinct(&keys, |key| *key, 3);
        assert_eq!(runs, [&[1, 2][..], &[1, 3, 4], &[5, 3], &[3]]);
        assert!(runs_of_distinct(&[] as &[i32], |key| *key, 3).is_empty());
    }

    #[test]
    fn one_upsert_merges_halves_by_version_and_fills_the_product_in_once() {
        let mut conn = sqlite();
        // The payment half arrives first: the row starts from it.
        assert!(apply(&mut conn, &paid(1, PaymentStatus::Unpaid)).expect("apply"));
        let first = entry(&mut conn);
        assert_eq!(first.payment_status, Some(PaymentStatus::Unpaid));
        assert_eq!(first.reservation_status, None);
        assert_eq!(first.product_id, None);

        // A later cancellation (no product name) fills the reservation half and the product id.
        let cancelled = placed(3, ReservationStatus::Cancelled, None);
        assert!(apply(&mut conn, &cancelled).expect("apply"));
        // The placement arrives late: stale for the status, but it brings the name.
        assert!(
            apply(
                &mut conn,
                &placed(1, ReservationStatus::Reserved, Some("Desk"))
            )
            .expect("apply")
        );
        let merged = entry(&mut conn);
        assert_eq!(
            merged.reservation_status,
            Some(ReservationStatus::Cancelled)
        );
        assert_eq!(merged.reservation_version, 3);
        assert_eq!(merged.product_name, "Desk");
        assert_eq!(merged.product_id.map(Id::get), Some(70));
        assert_eq!(merged.payment_status, Some(PaymentStatus::Unpaid));

        // Repeats and stale events change nothing, and say so.
        assert!(!apply(&mut conn, &cancelled).expect("apply"));
        assert!(
            !apply(
                &mut conn,
                &placed(1, ReservationStatus::Reserved, Some("Chair"))
            )
            .expect("apply")
        );
        assert!(!apply(&mut conn, &paid(1, PaymentStatus::Unpaid)).expect("apply"));
        assert_eq!(entry(&mut conn).product_name, "Desk");
        assert_eq!(entry(&mut conn).updated_at_ms, merged.updated_at_ms);

        // A newer payment takes its half and leaves the other alone.
        assert!(apply(&mut conn, &paid(2, PaymentStatus::Paid)).expect("apply"));
        let last = entry(&mut conn);
        assert_eq!(last.payment_status, Some(PaymentStatus::Paid));
        assert_eq!(last.payment_version, 2);
        assert_eq!(last.payment_id.map(Id::get), Some(700));
        assert_eq!(last.reservation_status, Some(ReservationStatus::Cancelled));
    }

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
