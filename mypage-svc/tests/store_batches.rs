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

/// A fresh in-memory SQLite my page.
fn sqlite() -> DbConnection {
    let mut conn = SqliteConnection::establish(":memory:").expect("in-memory SQLite");
    conn.run_pending_migrations(MIGRATIONS.sqlite)
        .expect("my-page migrations");
    DbConnection::Sqlite(conn)
}

/// A fresh PostgreSQL my page.
fn postgres(label: &str) -> DbConnection {
    let url = fresh_postgres_database(label);
    let mut conn = PgConnection::establish(&url).expect("PostgreSQL");
    conn.run_pending_migrations(MIGRATIONS.postgres)
        .expect("my-page migrations");
    DbConnection::Postgres(conn)
}

#[test]
fn a_batch_in_multi_row_upserts_ends_where_one_change_at_a_time_does() {
    let changes = changes();

    let mut one_at_a_time = sqlite();
    let changed_singly = changes
        .iter()
        .filter(|change| store::apply(&mut one_at_a_time, change).expect("apply"))
        .count();

    let mut batched = postgres("mypage_store_batches");
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

/// The consumer keeps no inbox for my page: it learns from `apply_new` which events of a batch
/// changed their entry. Those must be exactly the events that change it applied one at a time
/// (a stale or repeated one is not), on both backends, and a batch delivered again changes
/// nothing and names no event.
#[test]
fn a_batch_names_exactly_the_events_that_changed_an_entry() {
    let changes = changes();
    let ids: Vec<String> = (0..changes.len()).map(|n| format!("event-{n}")).collect();

    let mut one_at_a_time = sqlite();
    let mut taken_singly: Vec<&str> = changes
        .iter()
        .zip(&ids)
        .filter(|(change, _)| store::apply(&mut one_at_a_time, change).expect("apply"))
        .map(|(_, id)| id.as_str())
        .collect();
    taken_singly.sort_unstable();

    let events: Vec<(&str, Change)> = ids
        .iter()
        .map(String::as_str)
        .zip(changes.iter().cloned())
        .collect();
    for mut conn in [postgres("mypage_store_keyed"), sqlite()] {
        let mut taken: Vec<&str> = events
            .chunks(64)
            .flat_map(|batch| store::apply_new(&mut conn, batch).expect("apply a batch"))
            .collect();
        taken.sort_unstable();
        assert_eq!(taken, taken_singly);
        assert_eq!(page(&mut conn), page(&mut one_at_a_time));
        for batch in events.chunks(64) {
            let again = store::apply_new(&mut conn, batch).expect("apply it again");
            assert!(again.is_empty(), "a redelivered batch took {again:?}");
        }
        assert_eq!(page(&mut conn), page(&mut one_at_a_time));
    }
}
