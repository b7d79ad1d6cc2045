//! The only file that knows SQL: the products table and its queries.
//!
//! Every state change is one conditional `UPDATE … WHERE status = …`, never a read followed by a
//! write, so concurrent callers are serialised by the database row lock. The read that follows
//! a refused update only explains the refusal; it never decides a write.

use diesel::prelude::*;
use mesh_core::{DbConnection, Migrations};

use crate::domain::{self, Id, Product, ProductError, ProductName, ProductStatus};

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
        products (id) {
            id -> BigInt,
            name -> Text,
            status -> Text,
            reservation_id -> Nullable<BigInt>,
            version -> BigInt,
            seller_id -> Text,
        }
    }

    diesel::table! {
        reservation_fences (reservation_id) {
            reservation_id -> BigInt,
            released -> Bool,
            touched_at_ms -> BigInt,
        }
    }
}
use schema::{products, reservation_fences};

/// A refused operation or a failure of the product store.
pub type StoreError = mesh_core::StoreError<ProductError>;

impl mesh_core::StoreDomain for ProductError {
    const STORE: &'static str = "product";
}

/// The columns of a [`ProductRow`], in order. A plain tuple rather than `as_returning()`:
/// diesel's multi-backend connection cannot render `SelectBy` inside a RETURNING clause.
const PRODUCT_COLUMNS: (
    products::id,
    products::name,
    products::status,
    products::reservation_id,
    products::seller_id,
) = (
    products::id,
    products::name,
    products::status,
    products::reservation_id,
    products::seller_id,
);

#[derive(Clone, Queryable, QueryableByName, Selectable)]
#[diesel(table_name = products)]
struct ProductRow {
    id: i64,
    name: String,
    status: String,
    reservation_id: Option<i64>,
    seller_id: String,
}

impl TryFrom<ProductRow> for Product {
    type Error = StoreError;

    fn try_from(row: ProductRow) -> Result<Self, StoreError> {
        let corrupt = || StoreError::Corrupt {
            id: row.id,
            detail: format!("status {:?}, ids must be positive", row.status),
        };
        let status = ProductStatus::from_stored(&row.status).ok_or_else(corrupt)?;
        Ok(Product {
            id: Id::parse(row.id, "product id").map_err(|_| corrupt())?,
            name: row.name,
            status,
            holder: row
                .reservation_id
                .map(|raw| Id::parse(raw, "reservation id"))
                .transpose()
                .map_err(|_| corrupt())?,
            seller: row.seller_id,
        })
    }
}

/// Inserts a new product of `seller`.
pub fn register(
    conn: &mut DbConnection,
    name: &ProductName,
    status: ProductStatus,
    seller: &str,
) -> Result<Product, StoreError> {
    let row: ProductRow = diesel::insert_into(products::table)
        .values((
            products::name.eq(name.as_str()),
            products::status.eq(status.as_str()),
            products::seller_id.eq(seller),
        ))
        .returning(PRODUCT_COLUMNS)
        .get_result(conn)?;
    row.try_into()
}

/// One product, or `NotFound`.
pub fn find(conn: &mut DbConnection, id: Id) -> Result<Product, StoreError> {
    // Built inside: `as_select()` names its backend.
    mesh_core::on_backend!(conn, |c| products::table
        .find(id.get())
        .select(ProductRow::as_select())
        .first(c))
    .optional()?
    .ok_or(ProductError::NotFound(id))?
    .try_into()
}

/// At most `limit` products after id `after`, oldest first: one page, read by the primary
/// key so a page costs the same however large the table.
pub fn list_page(
    conn: &mut DbConnection,
    after: Option<i64>,
    limit: i64,
) -> Result<Vec<Product>, StoreError> {
    products::table
        .filter(products::id.gt(after.unwrap_or(0)))
        .order(products::id)
        .limit(limit)
        .select(ProductRow::as_select())
        .load(conn)?
        .into_iter()
        .map(Product::try_from)
        .collect()
}

/// Takes `reservation`'s fence row (creating it), marks it released when `release`, and
/// answers whether it is released. The upsert holds the row's lock until the transaction
/// ends, so a lock and a release of the same reservation are applied one after the other,
/// never interleaved. Written with diesel's query builder on the backend's own connection,
/// not as SQL text: a statement of fixed shape is prepared once per connection, where SQL
/// text (`sql_query`) was parsed and planned again on every lock.
fn fence(conn: &mut DbConnection, reservation: Id, release: bool) -> Result<bool, StoreError> {
    use diesel::upsert::excluded;
    use reservation_fences::{released, reservation_id, touched_at_ms};

    let upsert = diesel::insert_into(reservation_fences::table)
        .values((
            reservation_id.eq(reservation.get()),
            released.eq(release),
            touched_at_ms.eq(mesh_core::clock::now_ms()),
        ))
        .on_conflict(reservation_id)
        .do_update()
        .set((
            released.eq(released.or(excluded(released))),
            touched_at_ms.eq(excluded(touched_at_ms)),
        ))
        .returning(released);
    // Both backends speak ON CONFLICT; diesel's multi-backend connection does not render it.
    Ok(mesh_core::on_backend!(conn, |c| upsert.get_result::<bool>(c))?)
}

/// Fences `reservation` for good: no later lock of it takes a product. For a cancellation,
/// whose lock retries might still be on their way.
pub fn fence_released(conn: &mut DbConnection, reservation: Id) -> Result<(), StoreError> {
    fence(conn, reservation, true).map(drop)
}

/// Forgets fences untouched since `before_ms` (no lock arrives that late).
pub fn purge_fences(conn: &mut DbConnection, before_ms: i64) -> Result<usize, StoreError> {
    Ok(diesel::delete(
        reservation_fences::table.filter(reservation_fences::touched_at_ms.lt(before_ms)),
    )
    .execute(conn)?)
}

/// AVAILABLE → PENDING for `reservation`, or a no-op success if that reservation already holds
/// it. One conditional UPDATE decides; 100 racing callers get exactly one winner. Run it in a
/// transaction: a reservation already released is refused, and a lock whose caller's
/// `deadline` passed meanwhile (it may have waited long for a connection or a row lock) is
/// rolled back rather than committed for a caller that gave up.
pub fn reserve(
    conn: &mut DbConnection,
    id: Id,
    reservation: Id,
    deadline: Option<std::time::Instant>,
) -> Result<Product, StoreError> {
    if fence(conn, reservation, false)? {
        return Err(ProductError::ReservationReleased(reservation).into());
    }
    let taken = diesel::update(
        products::table.find(id.get()).filter(
            products::status
                .eq(ProductStatus::Available.as_str())
                .or(products::status
                    .eq(ProductStatus::Pending.as_str())
                    .and(products::reservation_id.eq(reservation.get()))),
        ),
    )
    .set((
        products::status.eq(ProductStatus::Pending.as_str()),
        products::reservation_id.eq(reservation.get()),
        products::version.eq(products::version + 1),
    ))
    .returning(PRODUCT_COLUMNS);
    let taken = mesh_core::on_backend!(conn, |c| taken.get_result::<ProductRow>(c)).optional()?;
    if let Some(locked) = taken {
        domain::check_in_time(deadline, std::time::Instant::now())?;
        return locked.try_into();
    }
    // The update was refused: say why from the row as it is now. Should the row have changed
    // since (a release racing us), the refusal still stands and the caller may try again.
    let product = find(conn, id)?;
    product.check_reserve(reservation)?;
    Err(ProductError::NotAvailable {
        product: id,
        status: product.status,
    }
    .into())
}

/// A lock to take: `reservation` wants `product`, if it can have it before `deadline`.
#[derive(Clone, Copy, Debug)]
pub struct LockRequest {
    /// The product to lock.
    pub product: Id,
    /// The reservation it is locked for.
    pub reservation: Id,
    /// When the caller stops waiting (its `grpc-timeout`), if it said.
    pub deadline: Option<std::time::Instant>,
}

/// What a lock in a batch answers: the locked product, or a refusal that wrote nothing but
/// its reservation's fence row (a touch: it blocks nothing); or, as the outer error, a
/// failure whose writes must be undone.
pub type LockOutcome = Result<Result<Product, ProductError>, StoreError>;

/// [`reserve`] for many locks at once, one outcome per lock in order. On PostgreSQL a batch
/// is two statements whatever its size: one upsert of every fence row (in reservation id
/// order, so two batches take them in the same order), then one conditional `UPDATE … FROM
/// unnest(…)` taking every product that is AVAILABLE or already held by the same reservation.
/// When two locks want one product the update gives it to one of them; the other reads the
/// product and is refused, as it would have been one after the other. A lock whose deadline
/// passed before the update is refused without a write; one whose deadline passed during it
/// fails, so the batch commit undoes it. On SQLite (one writer, in process, no round trips
/// to save) each lock runs [`reserve`] in turn.
pub fn reserve_all(
    conn: &mut DbConnection,
    locks: &[LockRequest],
) -> Result<Vec<LockOutcome>, StoreError> {
    match conn {
        DbConnection::Postgres(pg) => reserve_together(pg, locks),
        sqlite => Ok(locks
            .iter()
            .map(|lock| reserve(sqlite, lock.product, lock.reservation, lock.deadline).map(Ok))
            .collect()),
    }
}

fn reserve_together(
    pg: &mut diesel::PgConnection,
    locks: &[LockRequest],
) -> Result<Vec<LockOutcome>, StoreError> {
    use diesel::sql_types::{Array, BigInt, Text};

    let started = std::time::Instant::now();
    let in_time = |lock: &&LockRequest| domain::check_in_time(lock.deadline, started).is_ok();
    let mut fenced: Vec<i64> = locks
        .iter()
        .filter(in_time)
        .map(|lock| lock.reservation.get())
        .collect();
    fenced.sort_unstable();
    fenced.dedup();
    let released = fence_all(pg, &fenced)?;
    let wanted: Vec<&LockRequest> = locks
        .iter()
        .filter(in_time)
        .filter(|lock| !released.contains(&lock.reservation.get()))
        .collect();
    let taken: std::collections::HashMap<i64, ProductRow> = if wanted.is_empty() {
        Default::default()
    } else {
        let products: Vec<i64> = wanted.iter().map(|lock| lock.product.get()).collect();
        let holders: Vec<i64> = wanted.iter().map(|lock| lock.reservation.get()).collect();
        diesel::sql_query(LOCK_ALL)
            .bind::<Array<BigInt>, _>(products)
            .bind::<Array<BigInt>, _>(holders)
            .bind::<Text, _>(ProductStatus::Available.as_str())
            .bind::<Text, _>(ProductStatus::Pending.as_str())
            .load::<ProductRow>(pg)?
            .into_iter()
            .map(|row| (row.id, row))
            .collect()
    };
    let mut outcomes = Vec::with_capacity(locks.len());
    for lock in locks {
        let outcome = if domain::check_in_time(lock.deadline, started).is_err() {
            Ok(Err(ProductError::DeadlinePassed))
        } else if released.contains(&lock.reservation.get()) {
            Ok(Err(ProductError::ReservationReleased(lock.reservation)))
        } else {
            match taken.get(&lock.product.get()) {
                Some(row) if row.reservation_id == Some(lock.reservation.get()) => {
                    match domain::check_in_time(lock.deadline, std::time::Instant::now()) {
                        Ok(()) => Product::try_from(row.clone()).map(Ok),
                        Err(late) => Err(late.into()),
                    }
                }
                _ => Ok(Err(refusal(pg, *lock)?)),
            }
        };
        outcomes.push(outcome);
    }
    Ok(outcomes)
}

/// Every lock's update at once: a product goes to the reservation that wants it if it is
/// AVAILABLE, or stays with it if it already holds it (a retried lock). SQL text, bound to
/// arrays: one statement whatever the batch's size.
const LOCK_ALL: &str = "UPDATE products AS p \
     SET status = $4, reservation_id = wanted.reservation_id, version = p.version + 1 \
     FROM unnest($1::int8[], $2::int8[]) AS wanted(product_id, reservation_id) \
     WHERE p.id = wanted.product_id \
       AND (p.status = $3 OR (p.status = $4 AND p.reservation_id = wanted.reservation_id)) \
     RETURNING p.id, p.name, p.status, p.reservation_id, p.seller_id";

/// Touches the fence rows of `reservations` (creating them) and returns those released.
fn fence_all(
    pg: &mut diesel::PgConnection,
    reservations: &[i64],
) -> Result<std::collections::HashSet<i64>, StoreError> {
    use diesel::upsert::excluded;
    use reservation_fences::{released, reservation_id, touched_at_ms};

    if reservations.is_empty() {
        return Ok(Default::default());
    }
    let now = mesh_core::clock::now_ms();
    let rows: Vec<_> = reservations
        .iter()
        .map(|id| {
            (
                reservation_id.eq(*id),
                released.eq(false),
                touched_at_ms.eq(now),
            )
        })
        .collect();
    Ok(diesel::insert_into(reservation_fences::table)
        .values(rows)
        .on_conflict(reservation_id)
        .do_update()
        .set(touched_at_ms.eq(excluded(touched_at_ms)))
        .returning((reservation_id, released))
        .get_results::<(i64, bool)>(pg)?
        .into_iter()
        .filter_map(|(id, is_released)| is_released.then_some(id))
        .collect())
}

/// Why `lock` did not get its product, read from the product as it is now (in this
/// transaction: a product another lock of the batch took shows as taken).
fn refusal(pg: &mut diesel::PgConnection, lock: LockRequest) -> Result<ProductError, StoreError> {
    let Some(row) = products::table
        .find(lock.product.get())
        .select(ProductRow::as_select())
        .first(pg)
        .optional()?
    else {
        return Ok(ProductError::NotFound(lock.product));
    };
    let product = Product::try_from(row)?;
    Ok(match product.check_reserve(lock.reservation) {
        Err(refused) => refused,
        Ok(()) => ProductError::NotAvailable {
            product: lock.product,
            status: product.status,
        },
    })
}

/// PENDING → AVAILABLE if `reservation` holds the product; otherwise nothing changes but the
/// fence: from now on no lock of `reservation` takes the product. Run it in a transaction.
pub fn release(conn: &mut DbConnection, id: Id, reservation: Id) -> Result<Product, StoreError> {
    fence(conn, reservation, true)?;
    let released = diesel::update(
        products::table
            .find(id.get())
            .filter(products::status.eq(ProductStatus::Pending.as_str()))
            .filter(products::reservation_id.eq(reservation.get())),
    )
    .set((
        products::status.eq(ProductStatus::Available.as_str()),
        products::reservation_id.eq(None::<i64>),
        products::version.eq(products::version + 1),
    ));
    let released = mesh_core::on_backend!(conn, |c| released.execute(c))?;
    let product = find(conn, id)?;
    if released == 1 {
        tracing::info!(product = %id, reservation = %reservation, "product released");
    }
    Ok(product)
}

/// Moves the product from one of `from` to `to`, but only while `reservation` holds it.
/// Returns whether it moved; events about a reservation that no longer holds the product
/// (cancelled and re-reserved since, or arriving out of order) change nothing.
pub fn transition_if_held(
    conn: &mut DbConnection,
    id: Id,
    reservation: Id,
    from: &[ProductStatus],
    to: ProductStatus,
) -> Result<bool, StoreError> {
    let from: Vec<&str> = from.iter().map(|status| status.as_str()).collect();
    let holder = (to != ProductStatus::Available).then_some(reservation.get());
    let moved = diesel::update(
        products::table
            .find(id.get())
            .filter(products::reservation_id.eq(reservation.get()))
            .filter(products::status.eq_any(from)),
    )
    .set((
        products::status.eq(to.as_str()),
        products::reservation_id.eq(holder),
        products::version.eq(products::version + 1),
    ));
    let moved = mesh_core::on_backend!(conn, |c| moved.execute(c))?;
    Ok(moved == 1)
}
