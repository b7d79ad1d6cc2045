//! Paying: UNPAID → PAID and PaymentCompleted in one transaction. Needs nothing but this
//! service's own database (NATS may be down too: the event waits in the outbox), so payments
//! are taken while reservation-svc and product-svc are down (invariant I4).

use mesh_core::Db;
use mesh_core::outbox::{self, OutboxSignal};
use mesh_core::trace_context;

use crate::domain::{Id, Payment, PaymentStatus};
use crate::events::announce;
use crate::store::{self, StoreError};

/// Pays payment `id`.
pub async fn pay(db: &Db, signal: &OutboxSignal, id: Id) -> Result<Payment, StoreError> {
    let (paid, origin) = db
        .transaction(
            move |conn| -> Result<(Payment, Option<String>), StoreError> {
                let Some(paid) =
                    store::transition(conn, id, &PaymentStatus::PAYABLE, PaymentStatus::Paid)?
                else {
                    // Refused: explain from the row as it is now.
                    let current = store::find(conn, id)?;
                    current.status.pay(id)?;
                    return Err(crate::domain::PaymentError::IllegalTransition(format!(
                        "payment {id} changed while paying; try again"
                    ))
                    .into());
                };
                outbox::enqueue(conn, &announce(&paid))?;
                Ok((paid, store::origin_trace(conn, id)?))
            },
        )
        .await?;
    // Paying is a request of its own (its own trace); the link leads to the reservation's.
    trace_context::link(&tracing::Span::current(), origin.as_deref());
    signal.wake();
    tracing::info!(payment = %id, reservation = %paid.reservation_id, "payment completed");
    Ok(paid)
}
