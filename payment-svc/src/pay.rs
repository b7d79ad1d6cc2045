//! Paying: UNPAID → PAID and PaymentCompleted in one transaction. Needs nothing but this
//! service's own database (NATS may be down too: the event waits in the outbox), so payments
//! are taken while reservation-svc and product-svc are down (invariant I4).

use mesh_core::Db;
use mesh_core::auth::Caller;
use mesh_core::outbox::{self, OutboxSignal};
use mesh_core::request_log::{self, Answer, RequestKey};
use mesh_core::trace_context;

use crate::domain::{Id, Payment, PaymentStatus};
use crate::events::announce;
use crate::store::{self, StoreError};

/// The operation idempotency keys of payments are scoped to.
const OPERATION: &str = "pay";

/// Pays payment `id`; with a `key`, a retry of the same request gets the first answer.
pub async fn pay(
    db: &Db,
    signal: &OutboxSignal,
    caller: Caller,
    id: Id,
    key: Option<RequestKey<Payment>>,
) -> Result<Answer<Payment>, StoreError> {
    let (paid, origin) = db
        .transaction(
            move |conn| -> Result<(Answer<Payment>, Option<String>), StoreError> {
                // Only its buyer or an admin pays; checked before the key is claimed, so a
                // refused caller leaves nothing behind.
                let current = store::find(conn, id)?;
                caller.require_buyer_or_admin(&current.customer_id, &format!("payment {id}"))?;
                if let Some(key) = &key {
                    let fingerprint = format!("payment={id}");
                    let target = Some(id.get());
                    if let Some(first) = request_log::claim_once::<StoreError>(
                        conn,
                        OPERATION,
                        &key.key,
                        &fingerprint,
                        target,
                    )? {
                        return Ok((Answer::Before(first), None));
                    }
                }
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
                if let Some(key) = &key {
                    request_log::complete(
                        conn,
                        OPERATION,
                        &key.key,
                        Some(id.get()),
                        &(key.encode)(&paid),
                    )?;
                }
                Ok((Answer::Now(paid), store::origin_trace(conn, id)?))
            },
        )
        .await?;
    let Answer::Now(payment) = &paid else {
        tracing::info!(payment = %id, "pay request replayed from its idempotency key");
        return Ok(paid);
    };
    // Paying is a request of its own (its own trace); the link leads to the reservation's.
    trace_context::link(&tracing::Span::current(), origin.as_deref());
    signal.wake();
    tracing::info!(payment = %id, reservation = %payment.reservation_id, "payment completed");
    Ok(paid)
}
