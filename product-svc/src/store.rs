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

#[derive(Queryable, Selectable)]
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
