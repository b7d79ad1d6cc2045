//! What a service's store answers when it cannot do what was asked: the domain refused, the
//! database failed, a stored row breaks the schema's rules, the idempotency key is taken, or
//! the caller may not. One definition for every service (each names its domain error), and
//! one mapping to a gRPC status, so no handler builds one ad hoc.

use crate::DbError;
use crate::auth::Denied;
use crate::consumer::HandleError;
use crate::request_log::KeyConflict;

/// A service's domain error, as its store reports it.
pub trait StoreDomain: std::error::Error + Into<tonic::Status> + Send + Sync + 'static {
    /// What the store holds, for messages: `product` in "product database unavailable".
    const STORE: &'static str;
}

/// A refused operation or a failure of a service's store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError<D: StoreDomain> {
    /// The domain refused the operation.
    #[error(transparent)]
    Domain(D),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// A stored row breaks the schema's own rules (a bug or a manual edit).
    #[error("stored {store} {id} is corrupt: {detail}", store = D::STORE)]
    Corrupt {
        /// The row.
        id: i64,
        /// What is wrong with it.
        detail: String,
    },
    /// The request's idempotency key is taken by another request or one still running.
    #[error(transparent)]
    Key(#[from] KeyConflict),
    /// The caller may not do this.
    #[error(transparent)]
    Denied(#[from] Denied),
}

impl<D: StoreDomain> From<D> for StoreError<D> {
    fn from(err: D) -> Self {
        Self::Domain(err)
    }
}

impl<D: StoreDomain> StoreError<D> {
    /// For an event consumer: try the event again later (the database may come back; a
    /// refusal may stop being one once an earlier event lands).
    pub fn retry(self) -> HandleError {
        HandleError::Retry(self.to_string())
    }

    /// For an event consumer: a refusal by the domain is final (the event is rejected and
    /// dead-lettered); anything else is tried again later.
    pub fn reject_refusal(self) -> HandleError {
        match self {
            Self::Domain(err) => HandleError::Reject(err.to_string()),
            other => HandleError::Retry(other.to_string()),
        }
    }
}

impl<D: StoreDomain> From<diesel::result::Error> for StoreError<D> {
    fn from(err: diesel::result::Error) -> Self {
        Self::Db(DbError::Query(err))
    }
}

impl<D: StoreDomain> From<StoreError<D>> for tonic::Status {
    fn from(err: StoreError<D>) -> Self {
        match err {
            StoreError::Domain(err) => err.into(),
            StoreError::Db(err) => err.into_status(D::STORE),
            StoreError::Corrupt { .. } => {
                tracing::error!(%err, "corrupt {} row", D::STORE);
                tonic::Status::internal(format!("{} record is corrupt", D::STORE))
            }
            StoreError::Key(err) => err.into(),
            StoreError::Denied(denied) => denied.into(),
        }
    }
}
