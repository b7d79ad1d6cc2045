//! The only file that knows SQL: the products table and its queries.
//!
//! Every state change is one conditional `UPDATE … WHERE status = …`, never a read followed by a
//! write, so concurrent callers are serialised by the database row lock. The read that follows
//! a refused update only explains the refusal; it never decides a write.

use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::query_builder::AstPass;
use mesh_core::prepared::{FixedStatement, Prepared};
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
/// is one statement whatever its size ([`LockAll`]), committed on its own: it upserts every
/// fence row (in reservation id order, so two batches take them in the same order) and takes
/// every product that is AVAILABLE or already held by the same reservation, for the locks
/// whose reservation is not released. When two locks want one product it goes to one of
/// them; the other reads the product and is refused, as it would have been one after the
/// other. A lock whose deadline passed before the statement is refused without a write; one
/// whose deadline passes while the statement waits for its product's row fails the whole
/// statement, which then takes nothing, and the batch runs again lock by lock (the late one
/// is refused before it writes). On SQLite (one writer, in process, no round trips to save)
/// each lock runs [`reserve`] in turn.
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
    let started = std::time::Instant::now();
    let in_time: Vec<&LockRequest> = locks
        .iter()
        .filter(|lock| domain::check_in_time(lock.deadline, started).is_ok())
        .collect();
    let (released, taken) = if in_time.is_empty() {
        Default::default()
    } else {
        lock_all(pg, &in_time)?
    };
    let mut outcomes = Vec::with_capacity(locks.len());
    for lock in locks {
        let outcome = match taken.get(&lock.product.get()) {
            Some(row) if row.reservation_id == Some(lock.reservation.get()) => {
                Product::try_from(row.clone()).map(Ok)
            }
            _ if domain::check_in_time(lock.deadline, std::time::Instant::now()).is_err() => {
                Ok(Err(ProductError::DeadlinePassed))
            }
            _ if released.contains(&lock.reservation.get()) => {
                Ok(Err(ProductError::ReservationReleased(lock.reservation)))
            }
            _ => refusal(pg, *lock).map(Err),
        };
        outcomes.push(outcome);
    }
    Ok(outcomes)
}

/// Runs [`LockAll`] for `locks` (all in time when the batch began): the reservations found
/// released, and the products taken, by id. What is left of each deadline is taken as late
/// as possible, just before the statement goes: PostgreSQL counts it from the statement's
/// arrival, so the time between the two (the trip, and on a connection's first batch the
/// statement's preparation) is what a lock may outlive its caller by.
fn lock_all(
    pg: &mut diesel::PgConnection,
    locks: &[&LockRequest],
) -> Result<
    (
        std::collections::HashSet<i64>,
        std::collections::HashMap<i64, ProductRow>,
    ),
    StoreError,
> {
    let mut fenced: Vec<i64> = locks.iter().map(|lock| lock.reservation.get()).collect();
    fenced.sort_unstable();
    fenced.dedup();
    let sent = std::time::Instant::now();
    let statement = LockAll {
        now_ms: mesh_core::clock::now_ms(),
        fenced,
        products: locks.iter().map(|lock| lock.product.get()).collect(),
        holders: locks.iter().map(|lock| lock.reservation.get()).collect(),
        remaining_ms: locks
            .iter()
            .map(|lock| {
                lock.deadline
                    .map(|deadline| deadline.saturating_duration_since(sent).as_secs_f64() * 1000.0)
            })
            .collect(),
        available: ProductStatus::Available.as_str(),
        pending: ProductStatus::Pending.as_str(),
    };
    let mut released = std::collections::HashSet::new();
    let mut taken = std::collections::HashMap::new();
    for row in Prepared(statement).load::<LockRow>(pg)? {
        match row {
            LockRow {
                released: true,
                reservation_id: Some(reservation),
                ..
            } => {
                released.insert(reservation);
            }
            LockRow {
                id: Some(id),
                name: Some(name),
                status: Some(status),
                reservation_id,
                seller_id: Some(seller_id),
                ..
            } => {
                taken.insert(
                    id,
                    ProductRow {
                        id,
                        name,
                        status,
                        reservation_id,
                        seller_id,
                    },
                );
            }
            LockRow { id, .. } => {
                return Err(StoreError::Corrupt {
                    id: id.unwrap_or_default(),
                    detail: "a lock batch answered a row with missing columns".into(),
                });
            }
        }
    }
    Ok((released, taken))
}

/// One row [`LockAll`] answers: a product taken (`released` false, every column set), or a
/// reservation found released (`released` true, only `reservation_id` set).
#[derive(QueryableByName)]
struct LockRow {
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::BigInt>)]
    id: Option<i64>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    name: Option<String>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    status: Option<String>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::BigInt>)]
    reservation_id: Option<i64>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    seller_id: Option<String>,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    released: bool,
}

/// A batch of locks as one statement, prepared once per connection
/// ([`mesh_core::prepared`]): the fence rows of `fenced` (sorted, distinct) touched or
/// created; every product of `products` taken for the reservation at the same position of
/// `holders` if that reservation is not released and the product is AVAILABLE or already
/// its own; a product taken after its lock's `remaining_ms` (counted on the database's clock
/// from the statement's start) fails the statement (`lock_too_late()`, a migration). Answers
/// the products taken and the reservations found released ([`LockRow`]).
struct LockAll {
    now_ms: i64,
    fenced: Vec<i64>,
    products: Vec<i64>,
    holders: Vec<i64>,
    remaining_ms: Vec<Option<f64>>,
    available: &'static str,
    pending: &'static str,
}

impl FixedStatement for LockAll {
    type Key = Self;

    fn write<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        use diesel::sql_types::{Array, BigInt, Double, Nullable, Text};

        // Each parameter once, named, in `args`: the text stays fixed and reads as SQL.
        out.push_sql("WITH args AS (SELECT ");
        out.push_bind_param::<BigInt, _>(&self.now_ms)?;
        out.push_sql("::int8 AS now_ms, ");
        out.push_bind_param::<Array<BigInt>, _>(&self.fenced)?;
        out.push_sql("::int8[] AS fenced, ");
        out.push_bind_param::<Array<BigInt>, _>(&self.products)?;
        out.push_sql("::int8[] AS products, ");
        out.push_bind_param::<Array<BigInt>, _>(&self.holders)?;
        out.push_sql("::int8[] AS holders, ");
        out.push_bind_param::<Array<Nullable<Double>>, _>(&self.remaining_ms)?;
        out.push_sql("::float8[] AS remaining_ms, ");
        out.push_bind_param::<Text, _>(&self.available)?;
        out.push_sql("::text AS available, ");
        out.push_bind_param::<Text, _>(&self.pending)?;
        out.push_sql(
            "::text AS pending), \
             fenced AS ( \
               INSERT INTO reservation_fences (reservation_id, released, touched_at_ms) \
               SELECT f.id, false, args.now_ms \
               FROM args, unnest(args.fenced) WITH ORDINALITY AS f(id, n) ORDER BY f.n \
               ON CONFLICT (reservation_id) DO UPDATE SET touched_at_ms = excluded.touched_at_ms \
               RETURNING reservation_id, released), \
             taken AS ( \
               UPDATE products AS p \
               SET status = args.pending, reservation_id = w.reservation_id, \
                   version = p.version + 1 \
               FROM args, \
                 unnest(args.products, args.holders, args.remaining_ms) \
                   AS w(product_id, reservation_id, remaining_ms), \
                 fenced \
               WHERE fenced.reservation_id = w.reservation_id AND NOT fenced.released \
                 AND p.id = w.product_id \
                 AND (p.status = args.available \
                   OR (p.status = args.pending AND p.reservation_id = w.reservation_id)) \
               RETURNING p.id, p.name, p.status, p.reservation_id, p.seller_id, w.remaining_ms) \
             SELECT id, name, status, reservation_id, seller_id, false AS released FROM taken \
             WHERE remaining_ms IS NULL \
               OR clock_timestamp() < statement_timestamp() + remaining_ms * interval '1 ms' \
               OR lock_too_late() \
             UNION ALL \
             SELECT NULL, NULL, NULL, reservation_id, NULL, true FROM fenced WHERE released",
        );
        Ok(())
    }
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
