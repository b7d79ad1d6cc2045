//! Statements of fixed SQL text that PostgreSQL parses and plans once per connection.
//!
//! diesel prepares, and caches per connection, every statement its query builder writes, but
//! never SQL text given to `sql_query`: that is parsed and planned again on every run. The
//! hot paths' batch statements (a CTE over arrays, one statement for a whole batch) cost the
//! server more to parse and plan than to run. A [`FixedStatement`] writes the same text
//! through diesel's AST pass instead, pushing its parameters where they go (diesel numbers
//! them `$1`, `$2`, … itself), and [`Prepared`] tells diesel that the text is fixed, so the
//! prepared statement is cached under the statement's type.
//!
//! Measure before converting a statement: after five runs PostgreSQL may settle on a generic
//! plan, which can cost more than parsing and planning anew. product-svc's lock batch gained
//! (docs/performance.md); reservation-svc's confirmation statement ran twice as long under a
//! generic plan and stays SQL text.

use diesel::pg::Pg;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::{PgConnection, QueryResult, RunQueryDsl};

/// A statement whose text is the same on every run; only its parameters vary.
pub trait FixedStatement {
    /// The type diesel caches the prepared statement under: one per text. For a statement
    /// that borrows its parameters, the same type with `'static` lifetimes.
    type Key: 'static;

    /// Writes the statement: `push_sql` for the text, `push_bind_param` for each parameter in
    /// the order they appear. The text must not depend on the parameters' values (an array's
    /// length included), or the cached statement would be the wrong one.
    fn write<'b>(&'b self, out: AstPass<'_, 'b, Pg>) -> QueryResult<()>;
}

/// A [`FixedStatement`] to run: load its rows (`QueryableByName`) or execute it.
pub struct Prepared<S>(pub S);

impl<S: FixedStatement> QueryFragment<Pg> for Prepared<S> {
    fn walk_ast<'b>(&'b self, out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        self.0.write(out)
    }
}

impl<S: FixedStatement> QueryId for Prepared<S> {
    type QueryId = S::Key;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl<S: FixedStatement> Query for Prepared<S> {
    type SqlType = diesel::sql_types::Untyped;
}

impl<S: FixedStatement> RunQueryDsl<PgConnection> for Prepared<S> {}
