//! What payment-svc consumes (ReservationPlaced → a payment UNPAID; ReservationCancelled →
//! VOIDED or REFUNDED) and publishes (PaymentRequested, PaymentCompleted, PaymentVoided,
//! PaymentRefunded).
//!
//! Order-safe: a cancellation that overtakes its placement creates the payment directly as
//! VOIDED, so the late placement finds a payment and creates none; a placement or cancellation
//! delivered twice finds the work done and changes nothing. That is also why the consumer
//! keeps no inbox for these events ([`KeyedEffect`]): the payment, keyed by its reservation,
//! and its status tell a repeat apart by themselves.

use std::collections::{HashMap, HashSet};

use mesh_core::consumer::{Batched, EventHandler, HandleError, KeyedEffect, SHORT_LOCK_WAIT};
use mesh_core::db::transaction_with;
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
        apply_one(conn, event).map(drop)
    }

    fn apply_batch(
        &self,
        conn: &mut DbConnection,
        events: &[Batched<'_>],
    ) -> Result<(), HandleError> {
        apply_in_order(conn, events).map(drop)
    }

    /// A repeated placement finds its reservation's payment, a repeated cancellation finds it
    /// voided or refunded: the consumer needs no inbox for these events.
    fn keyed(&self) -> Option<&dyn KeyedEffect> {
        Some(self)
    }
}

impl KeyedEffect for ReservationEvents {
    /// The batch in one transaction (its payments and their outbox rows commit together),
    /// which waits at most briefly for a row lock, as the inbox path's did.
    fn apply_new(
        &self,
        conn: &mut DbConnection,
        events: &[Batched<'_>],
    ) -> Result<HashSet<String>, HandleError> {
        transaction_with(conn, SHORT_LOCK_WAIT, |conn| apply_in_order(conn, events))
    }
}

/// Applies one event; whether it changed anything (an event of another type counts as
/// applied: it asks for nothing).
fn apply_one(conn: &mut DbConnection, event: &EventEnvelope) -> Result<bool, HandleError> {
    if let Some(placed) = open::<ReservationPlaced>(event) {
        return on_placed(conn, &placed?);
    }
    if let Some(cancelled) = open::<ReservationCancelled>(event) {
        return on_cancelled(conn, &cancelled?);
    }
    Ok(true)
}

/// Consecutive placements together: their payments in one insert and the announcements
/// in one outbox insert (four statements a placement become two a run). A cancellation
/// ends a run and is applied on its own, so every reservation's events keep their order.
/// Returns the ids of the events that changed something.
fn apply_in_order(
    conn: &mut DbConnection,
    events: &[Batched<'_>],
) -> Result<HashSet<String>, HandleError> {
    let mut applied = HashSet::new();
    let mut run = Vec::new();
    for event in events {
        if let Some(placed) = open::<ReservationPlaced>(event.envelope) {
            run.push((*event, placed?));
            continue;
        }
        applied.extend(on_placed_all(conn, &run)?);
        run.clear();
        if event.span.in_scope(|| apply_one(conn, event.envelope))? {
            applied.insert(event.envelope.event_id.clone());
        }
    }
    applied.extend(on_placed_all(conn, &run)?);
    Ok(applied)
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

/// Creates the payment a placement asks for; false when the reservation has one already.
fn on_placed(conn: &mut DbConnection, placed: &ReservationPlaced) -> Result<bool, HandleError> {
    let created =
        store::create_unless_exists(conn, &payment_for(placed)?).map_err(StoreError::retry)?;
    // None: the reservation has its payment already (a repeated placement under a new event
    // id, or a cancellation that overtook it).
    let Some(payment) = created else {
        return Ok(false);
    };
    outbox::enqueue(conn, &announce(&payment))?;
    tracing::info!(payment = %payment.id, reservation = %payment.reservation_id, "payment requested");
    Ok(true)
}

/// [`on_placed`] for a run of placements: the payments, then their announcements, each
/// stamped with the trace context of its own placement's span. Returns the ids of the events
/// whose payment was created (of two placements of one reservation, the first's).
fn on_placed_all(
    conn: &mut DbConnection,
    run: &[(Batched<'_>, ReservationPlaced)],
) -> Result<Vec<String>, HandleError> {
    if run.is_empty() {
        return Ok(Vec::new());
    }
    let new = run
        .iter()
        .map(|(event, placed)| {
            let traceparent = event.span.in_scope(trace_context::current_traceparent);
            Ok((payment_for(placed)?, traceparent))
        })
        .collect::<Result<Vec<_>, HandleError>>()?;
    // The first placement of each reservation: the one whose row the insert keeps.
    let mut firsts: HashMap<i64, Batched<'_>> = HashMap::new();
    for (event, placed) in run {
        firsts.entry(placed.reservation_id).or_insert(*event);
    }
    let created = store::create_all_unless_exist(conn, &new).map_err(StoreError::retry)?;
    let announcements: Vec<_> = created
        .iter()
        .map(|payment| {
            let announce_in_span = || {
                tracing::info!(payment = %payment.id, reservation = %payment.reservation_id, "payment requested");
                announce(payment)
            };
            match firsts.get(&payment.reservation_id.get()) {
                Some(event) => event.span.in_scope(announce_in_span),
                None => announce_in_span(),
            }
        })
        .collect();
    outbox::enqueue_all(conn, &announcements)?;
    Ok(created
        .iter()
        .filter_map(|payment| firsts.get(&payment.reservation_id.get()))
        .map(|event| event.envelope.event_id.clone())
        .collect())
}

/// Voids or refunds the reservation's payment (creates it VOIDED when the cancellation came
/// first); false when it is voided or refunded already.
fn on_cancelled(
    conn: &mut DbConnection,
    cancelled: &ReservationCancelled,
) -> Result<bool, HandleError> {
    let reservation = Id::parse(cancelled.reservation_id, "reservation id")?;
    let payment = match store::find_by_reservation(conn, reservation).map_err(StoreError::retry)? {
        Some(payment) => {
            let Some(next) = payment.status.on_cancellation() else {
                return Ok(false);
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
    Ok(true)
}
