//! What payment-svc consumes (ReservationPlaced → a payment UNPAID; ReservationCancelled →
//! VOIDED or REFUNDED) and publishes (PaymentRequested, PaymentCompleted, PaymentVoided,
//! PaymentRefunded).
//!
//! Order-safe: a cancellation that overtakes its placement creates the payment directly as
//! VOIDED, so the late placement finds a payment and creates none; a placement or cancellation
//! delivered twice finds the work done and changes nothing.

use std::collections::HashMap;

use mesh_core::consumer::{Batched, EventHandler, HandleError};
use mesh_core::events::{OutgoingEvent, open};
use mesh_core::outbox;
use mesh_core::{DbConnection, trace_context};
use reserve_proto::events::v1::{
    EventEnvelope, PaymentCompleted, PaymentRefunded, PaymentRequested, PaymentVoided,
    ReservationCancelled, ReservationPlaced,
};

use crate::domain::{Id, Payment, PaymentStatus};
use crate::store::{self, NewPayment, StoreError};

/// The event announcing a payment's status, by status.
pub fn announce(payment: &Payment) -> OutgoingEvent {
    let (id, reservation_id, product_id, customer_id) = (
        payment.id.get(),
        payment.reservation_id.get(),
        payment.product_id.get(),
        payment.customer_id.clone(),
    );
    match payment.status {
        PaymentStatus::Unpaid => OutgoingEvent::new(
            &PaymentRequested {
                payment_id: id,
                reservation_id,
                product_id,
                customer_id,
            },
            payment.version,
        ),
        PaymentStatus::Paid => OutgoingEvent::new(
            &PaymentCompleted {
                payment_id: id,
                reservation_id,
                product_id,
                customer_id,
            },
            payment.version,
        ),
        PaymentStatus::Voided => OutgoingEvent::new(
            &PaymentVoided {
                payment_id: id,
                reservation_id,
                customer_id,
            },
            payment.version,
        ),
        PaymentStatus::Refunded => OutgoingEvent::new(
            &PaymentRefunded {
                payment_id: id,
                reservation_id,
                customer_id,
            },
            payment.version,
        ),
    }
}

/// Applies the reservation events that concern payments.
pub struct ReservationEvents;

impl EventHandler for ReservationEvents {
    fn apply(&self, conn: &mut DbConnection, event: &EventEnvelope) -> Result<(), HandleError> {
        if let Some(placed) = open::<ReservationPlaced>(event) {
            let placed = placed?;
            return on_placed(conn, &placed);
        }
        if let Some(cancelled) = open::<ReservationCancelled>(event) {
            let cancelled = cancelled?;
            return on_cancelled(conn, &cancelled);
        }
        Ok(())
    }

    /// Consecutive placements together: their payments in one insert and the announcements
    /// in one outbox insert (four statements a placement become two a run). A cancellation
    /// ends a run and is applied on its own, so every reservation's events keep their order.
    fn apply_batch(
        &self,
        conn: &mut DbConnection,
        events: &[Batched<'_>],
    ) -> Result<(), HandleError> {
        let mut run = Vec::new();
        for event in events {
            if let Some(placed) = open::<ReservationPlaced>(event.envelope) {
                run.push((*event, placed?));
                continue;
            }
            on_placed_all(conn, &run)?;
            run.clear();
            event.span.in_scope(|| self.apply(conn, event.envelope))?;
        }
        on_placed_all(conn, &run)
    }
}

/// The payment a placement asks for, UNPAID.
fn payment_for(placed: &ReservationPlaced) -> Result<NewPayment<'_>, HandleError> {
    Ok(NewPayment {
        reservation_id: Id::parse(placed.reservation_id, "reservation id")?,
        product_id: Id::parse(placed.product_id, "product id")?,
        customer_id: &placed.customer_id,
        seller_id: &placed.seller_id,
        status: PaymentStatus::Unpaid,
    })
}

fn on_placed(conn: &mut DbConnection, placed: &ReservationPlaced) -> Result<(), HandleError> {
    let created =
        store::create_unless_exists(conn, &payment_for(placed)?).map_err(StoreError::retry)?;
    // None: the reservation has its payment already (a repeated placement under a new event
    // id, or a cancellation that overtook it).
    let Some(payment) = created else {
        return Ok(());
    };
    outbox::enqueue(conn, &announce(&payment))?;
    tracing::info!(payment = %payment.id, reservation = %payment.reservation_id, "payment requested");
    Ok(())
}

/// [`on_placed`] for a run of placements: the payments, then their announcements, each
/// stamped with the trace context of its own placement's span.
fn on_placed_all(
    conn: &mut DbConnection,
    run: &[(Batched<'_>, ReservationPlaced)],
) -> Result<(), HandleError> {
    if run.is_empty() {
        return Ok(());
    }
    let new = run
        .iter()
        .map(|(event, placed)| {
            let traceparent = event.span.in_scope(trace_context::current_traceparent);
            Ok((payment_for(placed)?, traceparent))
        })
        .collect::<Result<Vec<_>, HandleError>>()?;
    let spans: HashMap<i64, &tracing::Span> = run
        .iter()
        .map(|(event, placed)| (placed.reservation_id, event.span))
        .collect();
    let created = store::create_all_unless_exist(conn, &new).map_err(StoreError::retry)?;
    let announcements: Vec<_> = created
        .iter()
        .map(|payment| {
            let announce_in_span = || {
                tracing::info!(payment = %payment.id, reservation = %payment.reservation_id, "payment requested");
                announce(payment)
            };
            match spans.get(&payment.reservation_id.get()) {
                Some(span) => span.in_scope(announce_in_span),
                None => announce_in_span(),
            }
        })
        .collect();
    outbox::enqueue_all(conn, &announcements)?;
    Ok(())
}

fn on_cancelled(
    conn: &mut DbConnection,
    cancelled: &ReservationCancelled,
) -> Result<(), HandleError> {
    let reservation = Id::parse(cancelled.reservation_id, "reservation id")?;
    let payment = match store::find_by_reservation(conn, reservation).map_err(StoreError::retry)? {
        Some(payment) => {
            let Some(next) = payment.status.on_cancellation() else {
                return Ok(());
            };
            store::transition(conn, payment.id, &[payment.status], next)
                .map_err(StoreError::retry)?
                .ok_or_else(|| HandleError::Retry("payment changed concurrently".into()))?
        }
        // The cancellation overtook the placement: record the payment as never payable.
        None => store::create(
            conn,
            &NewPayment {
                reservation_id: reservation,
                product_id: Id::parse(cancelled.product_id, "product id")?,
                customer_id: &cancelled.customer_id,
                seller_id: "",
                status: PaymentStatus::Voided,
            },
        )
        .map_err(StoreError::retry)?,
    };
    outbox::enqueue(conn, &announce(&payment))?;
    tracing::info!(payment = %payment.id, reservation = %reservation, status = %payment.status, "reservation cancelled");
    Ok(())
}
