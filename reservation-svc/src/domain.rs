//! Reservations and the rules of placing one, as pure types: no I/O, no diesel, no tonic.

use std::fmt;
use std::time::{Duration, Instant};

use reserve_proto::StatusName;
use reserve_proto::reservation::v1::ReservationStatus as WireStatus;

/// Where a reservation is, including the two internal intent states of the product lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReservationState {
    /// Intent recorded, product lock requested; invisible to users.
    Placing,
    /// The lock's outcome is unknown or must be undone; the reconciler releases the product and
    /// deletes the row. Invisible to users.
    Abandoned,
    /// The product is locked for this buyer.
    Reserved,
    /// The buyer cancelled.
    Cancelled,
    /// Paid for.
    Confirmed,
}

impl ReservationState {
    /// Every state.
    pub const ALL: [ReservationState; 5] = [
        Self::Placing,
        Self::Abandoned,
        Self::Reserved,
        Self::Cancelled,
        Self::Confirmed,
    ];

    /// The API's status for it; `None` for the two intents, which users never see. The one
    /// mapping between the two.
    pub fn to_wire(self) -> Option<WireStatus> {
        match self {
            Self::Placing | Self::Abandoned => None,
            Self::Reserved => Some(WireStatus::Reserved),
            Self::Cancelled => Some(WireStatus::Cancelled),
            Self::Confirmed => Some(WireStatus::Confirmed),
        }
    }

    /// The name stored in the database and shown to users: the API's ([`StatusName`]), or
    /// the intent's own.
    pub fn as_str(self) -> &'static str {
        match (self, self.to_wire()) {
            (_, Some(status)) => status.name(),
            (Self::Abandoned, None) => "ABANDONED",
            (_, None) => "PLACING",
        }
    }

    /// Parses a stored name.
    pub fn from_stored(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|state| state.as_str() == name)
    }

    /// States a buyer may cancel from.
    pub const CANCELLABLE: [ReservationState; 2] = [Self::Reserved, Self::Confirmed];

    /// RESERVED or CONFIRMED → CANCELLED (a paid reservation is cancelled too: its payment is
    /// refunded). Cancelling twice is an illegal transition; intents are not reservations.
    pub fn cancel(self, id: Id) -> Result<ReservationState, ReservationError> {
        match self {
            Self::Reserved | Self::Confirmed => Ok(Self::Cancelled),
            Self::Cancelled => Err(ReservationError::IllegalTransition(format!(
                "reservation {id} is already CANCELLED"
            ))),
            Self::Placing | Self::Abandoned => Err(ReservationError::NotFound(id)),
        }
    }

    /// What a completed payment does to a reservation: RESERVED → CONFIRMED. Anything else is
    /// left alone: a cancelled reservation stays cancelled (payment-svc refunds it from the
    /// cancellation event), and a confirmed one is already confirmed (a redelivery).
    pub fn confirm(self) -> Option<ReservationState> {
        match self {
            Self::Reserved => Some(Self::Confirmed),
            _ => None,
        }
    }

    /// Whether users may see a reservation in this state: intents are not reservations yet.
    pub fn is_visible(self) -> bool {
        matches!(self, Self::Reserved | Self::Cancelled | Self::Confirmed)
    }
}

impl fmt::Display for ReservationState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

pub use mesh_core::ids::{Id, InvalidId};

/// Who reserves: free text from the caller, trimmed; "anonymous" when absent so the original
/// API's commands, which name no buyer, keep working.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CustomerId(String);

impl CustomerId {
    /// Used when the caller names no buyer.
    pub const ANONYMOUS: &'static str = "anonymous";
    /// Longest id accepted.
    pub const MAX_CHARS: usize = 128;

    /// Parses caller input.
    pub fn parse(raw: &str) -> Result<Self, ReservationError> {
        let id = raw.trim();
        if id.is_empty() {
            return Ok(Self(Self::ANONYMOUS.to_owned()));
        }
        if id.chars().count() > Self::MAX_CHARS {
            return Err(ReservationError::InvalidCustomer(format!(
                "customer id must be 1 to {} characters",
                Self::MAX_CHARS
            )));
        }
        if let Some(reason) = mesh_core::text::explain_deceptive(id) {
            return Err(ReservationError::InvalidCustomer(format!(
                "customer id {reason}"
            )));
        }
        Ok(Self(id.to_owned()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A reservation as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reservation {
    /// Its id.
    pub id: Id,
    /// The product it holds.
    pub product_id: Id,
    /// The buyer.
    pub customer_id: String,
    /// Where it is.
    pub state: ReservationState,
    /// Its version: how many visible changes it has had.
    pub version: i64,
    /// The product's seller ('' until the lock is granted, and for old rows).
    pub seller_id: String,
}

/// What a granted product lock tells about the product.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LockedProduct {
    /// Its name, for the ReservationPlaced event.
    pub name: String,
    /// Its seller, who may read the reservation.
    pub seller: String,
}

/// How a call to lock the product ended, as far as placing a reservation cares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LockFailure {
    /// product-svc answered no: the product is taken, sold, unknown, or the request invalid.
    /// Nothing was locked.
    Refused(ReservationError),
    /// No answer within the deadline or product-svc unreachable: the lock may or may not have
    /// been taken.
    Uncertain(String),
    /// The call was never made (shed for overload, or the circuit is open): nothing locked,
    /// but the buyer should try again shortly.
    NotAttempted(String),
}

/// What to do with the recorded intent after the lock call; `T` is what a granted lock gave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IntentFate<T> {
    /// The lock is ours: the intent becomes a RESERVED reservation.
    Reserve(T),
    /// Nothing was locked: delete the intent and report the refusal.
    Discard(ReservationError),
    /// The lock may exist: keep the intent as ABANDONED so the reconciler releases the product
    /// once any late lock has surely landed, and tell the buyer to try again shortly.
    Abandon(ReservationError),
}

/// Decides the intent's fate from the lock call's result.
pub fn fate_of_intent<T>(lock: Result<T, LockFailure>) -> IntentFate<T> {
    match lock {
        Ok(granted) => IntentFate::Reserve(granted),
        Err(LockFailure::Refused(err)) => IntentFate::Discard(err),
        Err(LockFailure::NotAttempted(reason)) => {
            IntentFate::Discard(ReservationError::TryAgainShortly(reason))
        }
        Err(LockFailure::Uncertain(reason)) => {
            IntentFate::Abandon(ReservationError::TryAgainShortly(reason))
        }
    }
}

/// Every way a reservation operation can be refused.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReservationError {
    /// A zero or negative id.
    #[error(transparent)]
    InvalidId(#[from] InvalidId),
    /// An unusable customer id.
    #[error("{0}")]
    InvalidCustomer(String),
    /// No reservation has this id.
    #[error("reservation {0} not found")]
    NotFound(Id),
    /// The product does not exist.
    #[error("{0}")]
    ProductNotFound(String),
    /// The product is taken or sold.
    #[error("{0}")]
    ProductNotAvailable(String),
    /// product-svc found the lock request itself invalid.
    #[error("product service rejected the request: {0}")]
    ProductRejected(String),
    /// The reservation is not in a state that allows the change.
    #[error("{0}")]
    IllegalTransition(String),
    /// The lock could not be taken now (overload, slow or unreachable product-svc).
    #[error("{0}; try again shortly")]
    TryAgainShortly(String),
}

/// Time kept after the lock for committing the reservation and answering the caller.
pub const ANSWER_MARGIN: Duration = Duration::from_millis(60);

/// Less time than this left for the lock, and the request is refused before it starts:
/// recording an intent and calling product-svc takes about this long under load.
pub const MIN_LOCK_TIME: Duration = Duration::from_millis(100);

/// When the lock must be had: the lock deadline counted from `now`, or earlier if the caller
/// stops waiting sooner (less [`ANSWER_MARGIN`]): time the request spent queueing before it
/// reached this service (in the gateway, on the wire, waiting for a thread) counts, so a
/// buyer is answered within the deadline the gateway promised from the request's arrival.
/// `None` when less than [`MIN_LOCK_TIME`] would be left: too late to try.
pub fn lock_deadline(
    now: Instant,
    lock_deadline: Duration,
    answer_by: Option<Instant>,
) -> Option<Instant> {
    let own = now + lock_deadline;
    let until = match answer_by {
        Some(answer_by) => own.min(answer_by.checked_sub(ANSWER_MARGIN).unwrap_or(now).max(now)),
        None => own,
    };
    (until.saturating_duration_since(now) >= MIN_LOCK_TIME.min(lock_deadline)).then_some(until)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_names_are_the_apis_and_read_back() {
        let names: Vec<&str> = ReservationState::ALL
            .iter()
            .map(|state| state.as_str())
            .collect();
        assert_eq!(
            names,
            ["PLACING", "ABANDONED", "RESERVED", "CANCELLED", "CONFIRMED"]
        );
        for state in ReservationState::ALL {
            assert_eq!(ReservationState::from_stored(state.as_str()), Some(state));
        }
        assert_eq!(ReservationState::from_stored("reserved"), None);
    }

    #[test]
    fn a_granted_lock_reserves() {
        assert_eq!(fate_of_intent(Ok("Phone")), IntentFate::Reserve("Phone"));
    }

    #[test]
    fn a_refused_lock_discards_the_intent_with_the_reason() {
        let refusal = ReservationError::ProductNotAvailable("product 3 is PENDING".into());
        assert_eq!(
            fate_of_intent::<()>(Err(LockFailure::Refused(refusal.clone()))),
            IntentFate::Discard(refusal)
        );
    }

    #[test]
    fn an_unknown_outcome_keeps_the_intent_for_the_reconciler() {
        let fate = fate_of_intent::<()>(Err(LockFailure::Uncertain("deadline passed".into())));
        match fate {
            IntentFate::Abandon(err) => assert!(err.to_string().contains("try again shortly")),
            other => panic!("expected Abandon, got {other:?}"),
        }
    }

    #[test]
    fn live_reservations_can_be_cancelled_once() {
        let id = Id::parse(4, "id").expect("id");
        assert_eq!(
            ReservationState::Reserved.cancel(id),
            Ok(ReservationState::Cancelled)
        );
        assert_eq!(
            ReservationState::Confirmed.cancel(id),
            Ok(ReservationState::Cancelled)
        );
        assert!(matches!(
            ReservationState::Cancelled.cancel(id),
            Err(ReservationError::IllegalTransition(_))
        ));
        assert_eq!(
            ReservationState::Placing.cancel(id),
            Err(ReservationError::NotFound(id))
        );
        for state in ReservationState::CANCELLABLE {
            assert!(state.cancel(id).is_ok());
        }
    }

    #[test]
    fn only_a_reserved_reservation_is_confirmed_by_payment() {
        assert_eq!(
            ReservationState::Reserved.confirm(),
            Some(ReservationState::Confirmed)
        );
        assert_eq!(ReservationState::Confirmed.confirm(), None);
        assert_eq!(ReservationState::Cancelled.confirm(), None);
    }

    #[test]
    fn a_call_never_made_discards_the_intent_and_asks_to_retry() {
        match fate_of_intent::<()>(Err(LockFailure::NotAttempted("circuit open".into()))) {
            IntentFate::Discard(ReservationError::TryAgainShortly(reason)) => {
                assert_eq!(reason, "circuit open");
            }
            other => panic!("expected a discard, got {other:?}"),
        }
    }

    #[test]
    fn only_real_reservations_are_visible() {
        assert!(!ReservationState::Placing.is_visible());
        assert!(!ReservationState::Abandoned.is_visible());
        assert!(ReservationState::Reserved.is_visible());
        assert!(ReservationState::Cancelled.is_visible());
        assert!(ReservationState::Confirmed.is_visible());
    }

    #[test]
    fn states_round_trip_through_storage() {
        for state in [
            ReservationState::Placing,
            ReservationState::Abandoned,
            ReservationState::Reserved,
            ReservationState::Cancelled,
            ReservationState::Confirmed,
        ] {
            assert_eq!(ReservationState::from_stored(state.as_str()), Some(state));
        }
    }

    #[test]
    fn absent_customer_is_anonymous_and_long_ids_are_refused() {
        assert_eq!(CustomerId::parse("  ").expect("ok").as_str(), "anonymous");
        assert_eq!(CustomerId::parse(" kim ").expect("ok").as_str(), "kim");
        assert!(CustomerId::parse(&"k".repeat(129)).is_err());
    }

    #[test]
    fn the_lock_ends_by_its_own_deadline_or_in_time_to_answer_the_caller() {
        let now = Instant::now();
        let deadline = Duration::from_millis(610);
        assert_eq!(lock_deadline(now, deadline, None), Some(now + deadline));
        // A caller with time to spare: the lock's own deadline.
        let patient = now + Duration::from_secs(5);
        assert_eq!(
            lock_deadline(now, deadline, Some(patient)),
            Some(now + deadline)
        );
        // The request queued 150 ms before it got here: the caller waits 560 ms more.
        let hurried = now + Duration::from_millis(560);
        assert_eq!(
            lock_deadline(now, deadline, Some(hurried)),
            Some(hurried - ANSWER_MARGIN)
        );
        // Too little left for a lock (it queued for most of its budget), or none at all:
        // refused before it starts.
        let late = now + ANSWER_MARGIN + MIN_LOCK_TIME - Duration::from_millis(1);
        assert_eq!(lock_deadline(now, deadline, Some(late)), None);
        let gone = now + Duration::from_millis(10);
        assert_eq!(lock_deadline(now, deadline, Some(gone)), None);
        // Just enough: tried.
        let enough = now + ANSWER_MARGIN + MIN_LOCK_TIME;
        assert_eq!(
            lock_deadline(now, deadline, Some(enough)),
            Some(now + MIN_LOCK_TIME)
        );
    }
}
