//! A consumer batch's changes applied in multi-row upserts on PostgreSQL leave my page exactly
//! as the same changes applied one at a time (on SQLite, the row-at-a-time path), even when a
//! batch holds several changes of one entry, stale ones and repeats.

use diesel::{Connection, PgConnection, SqliteConnection};
use diesel_migrations::MigrationHarness;
use mesh_core::DbConnection;
use mesh_core::testing::fresh_postgres_database;
use mypage_svc::domain::{Change, Entry, Id, PaymentStatus, ReservationStatus};
use mypage_svc::store::{self, MIGRATIONS};

fn id(value: i64) -> Id {
    Id::parse(value, "id").expect("positive")
}

fn reservation(entry: i64, version: i64, status: ReservationStatus, name: Option<&str>) -> Change {
    Change::Reservation {
        reservation_id: id(entry),
        product_id: Some(id(entry * 10)),
        product_name: name.map(str::to_owned),
        customer_id: format!("buyer-{}", entry % 3),
        status,
        version,
    }
}

fn payment(entry: i64, version: i64, status: PaymentStatus) -> Change {
    Change::Payment {
        reservation_id: id(entry),
        product_id: None,
        payment_id: id(entry * 100),
        customer_id: format!("buyer-{}", entry % 3),
        status,
        version,
    }
}

/// Forty entries, each seeing a payment before or after its placement, a cancellation or a
/// payment, a stale placement and a repeat, interleaved the way two producers' events reach
/// one consumer.
fn changes() -> Vec<Change> {
    let mut changes = Vec::new();
    for entry in 1..=40 {
        if entry % 2 == 0 {
            changes.push(payment(entry, 1, PaymentStatus::Unpaid));
        }
        changes.push(reservation(
            entry,
            1,
            ReservationStatus::Reserved,
            Some(&format!("Item {entry}")),
        ));
        if entry % 2 == 1 {
            changes.push(payment(entry, 1, PaymentStatus::Unpaid));
        }
    }
    for entry in 1..=40 {
        if entry % 3 == 0 {
            changes.push(reservation(entry, 2, ReservationStatus::Cancelled, None));
            changes.push(payment(entry, 2, PaymentStatus::Voided));
        } else {
            changes.push(payment(entry, 2, PaymentStatus::Paid));
            changes.push(reservation(entry, 2, ReservationStatus::Confirmed, None));
        }
        // Stale and repeated: change nothing.
        changes.push(reservation(
            entry,
            1,
            ReservationStatus::Reserved,
            Some("Other"),
        ));
        changes.push(payment(entry, 2, PaymentStatus::Paid));
    }
    changes
}

/// Every entry as stored, without the time it was written.
fn page(conn: &mut DbConnection) -> Vec<Entry> {
    (1..=40)
        .map(|entry| {
            let mut entry = store::get(conn, id(entry))
                .expect("read")
                .expect("every entry exists");
            entry.updated_at_ms = 0;
            entry
        })
        .collect()
}

#[test]
fn a_batch_in_multi_row_upserts_ends_where_one_change_at_a_time_does() {
    let changes = changes();

    let mut one_at_a_time = SqliteConnection::establish(":memory:").expect("in-memory SQLite");
    one_at_a_time
        .run_pending_migrations(MIGRATIONS.sqlite)
        .expect("my-page migrations");
    let mut one_at_a_time = DbConnection::Sqlite(one_at_a_time);
    let changed_singly = changes
        .iter()
        .filter(|change| store::apply(&mut one_at_a_time, change).expect("apply"))
        .count();

    let url = fresh_postgres_database("mypage_store_batches");
    let mut batched = PgConnection::establish(&url).expect("PostgreSQL");
    batched
        .run_pending_migrations(MIGRATIONS.postgres)
        .expect("my-page migrations");
    let mut batched = DbConnection::Postgres(batched);
    let changed_in_batches: usize = changes
        .chunks(64)
        .map(|batch| {
            batched
                .transaction(|conn| store::apply_all(conn, batch))
                .expect("apply a batch")
        })
        .sum();

    assert_eq!(page(&mut batched), page(&mut one_at_a_time));
    assert_eq!(changed_in_batches, changed_singly);
    // Stale events and repeats (80 of them) changed nothing in either.
    assert_eq!(changed_singly, changes.len() - 80);
}
