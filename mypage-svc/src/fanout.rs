//! Change signals shared by every replica, so a watcher hears each change of its buyer's page
//! whichever replica applied it.
//!
//! Replicas share one durable consumer per aggregate, so each event is applied by exactly one
//! of them, while a buyer's watch stream is served by whichever replica the client reached.
//! After each commit the applying replica tells its own watchers at once (an in-process
//! broadcast) and publishes the change on the core NATS subject [`CHANGES_SUBJECT`]; every
//! replica listens there and hands the changes of the others to its own watchers (its own
//! come back too and are skipped by their origin).
//!
//! A signal names every change still waiting to be sent when its publish runs: a consumer
//! commits a batch of events and announces their changes one after another, and they leave
//! as one message, read back by each replica once, instead of one message (and one read on
//! every replica) per change.
//!
//! Core NATS delivers at most once: a replica cut off from NATS misses the others' signals
//! for that while (and applies nothing either: events come over NATS too). A signal carries
//! no data, only which entry to read again from the shared database, so a lost or late signal
//! never shows a wrong entry; a watcher that reconnects starts with its whole page.

use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use tokio::sync::broadcast;

use crate::domain::Id;
use crate::events::EntryChanged;
use mesh_core::Shutdown;

/// The core NATS subject of my-page change signals (outside every JetStream stream's subjects:
/// signals are not kept).
pub const CHANGES_SUBJECT: &str = "reserve.signals.mypage.changed";

/// Where this replica sends and hears change signals. Cheap to clone.
#[derive(Clone)]
pub struct ChangeFeed {
    local: broadcast::Sender<EntryChanged>,
    nats: async_nats::Client,
    origin: Arc<str>,
    /// Changes announced here and not yet taken by a publish.
    unsent: Arc<Mutex<Vec<EntryChanged>>>,
}

impl ChangeFeed {
    /// A feed for this replica's watchers (`local`) over `nats`.
    pub fn new(local: broadcast::Sender<EntryChanged>, nats: async_nats::Client) -> Self {
        Self {
            local,
            nats,
            origin: uuid::Uuid::new_v4().to_string().into(),
            unsent: Arc::default(),
        }
    }

    /// Tells this replica's watchers, then every other replica's. Never blocks: the change
    /// joins the ones waiting to be sent, and the first of them starts a task that publishes
    /// all that are waiting when it runs.
    pub fn announce(&self, change: EntryChanged) {
        // No receiver is fine: nobody here is watching.
        let _ = self.local.send(change.clone());
        let first = {
            let mut unsent = self.unsent.lock().unwrap_or_else(PoisonError::into_inner);
            unsent.push(change);
            unsent.len() == 1
        };
        if first {
            let feed = self.clone();
            tokio::spawn(async move { feed.publish_unsent().await });
        }
    }

    /// Publishes every change waiting, in one signal.
    async fn publish_unsent(&self) {
        let changes =
            std::mem::take(&mut *self.unsent.lock().unwrap_or_else(PoisonError::into_inner));
        if changes.is_empty() {
            return;
        }
        let payload = encode(&self.origin, &changes);
        if let Err(err) = self.nats.publish(CHANGES_SUBJECT, payload).await {
            tracing::debug!(%err, "my-page change signal not sent to other replicas");
        }
    }

    /// Hands the other replicas' signals to this replica's watchers until `shutdown`.
    pub async fn listen(self, shutdown: Shutdown) {
        use tokio_stream::StreamExt as _;
        let mut signals = match self.nats.subscribe(CHANGES_SUBJECT).await {
            Ok(signals) => signals,
            Err(err) => {
                tracing::error!(%err, "cannot hear other replicas' my-page changes; their watchers' updates wait for a reconnect");
                return;
            }
        };
        loop {
            let message = tokio::select! {
                message = signals.next() => message,
                () = shutdown.requested() => return,
            };
            let Some(message) = message else { return };
            match decode(&message.payload) {
                Some((origin, _)) if origin == &*self.origin => {}
                Some((_, changes)) => {
                    for change in changes {
                        let _ = self.local.send(change);
                    }
                }
                None => tracing::warn!("unreadable my-page change signal ignored"),
            }
        }
    }
}

/// `origin`, then per change `\n<reservation id> <length of the customer id in bytes> <customer
/// id>`: the customer id may hold anything, so it is counted, not delimited.
fn encode(origin: &str, changes: &[EntryChanged]) -> Bytes {
    use std::fmt::Write as _;
    let mut text = String::from(origin);
    for change in changes {
        let customer = &change.customer_id;
        // Writing to a String cannot fail.
        let _ = write!(
            text,
            "\n{} {} {customer}",
            change.reservation_id.get(),
            customer.len()
        );
    }
    Bytes::from(text)
}

/// The origin and changes of a signal; `None` for anything [`encode`] does not write
/// (including a signal without changes).
fn decode(payload: &[u8]) -> Option<(&str, Vec<EntryChanged>)> {
    let text = std::str::from_utf8(payload).ok()?;
    let (origin, mut rest) = text.split_once('\n')?;
    let mut changes = Vec::new();
    loop {
        let (reservation_id, after) = rest.split_once(' ')?;
        let (length, after) = after.split_once(' ')?;
        let length: usize = length.parse().ok()?;
        let customer_id = after.get(..length)?;
        changes.push(EntryChanged {
            reservation_id: Id::parse(reservation_id.parse().ok()?, "reservation id").ok()?,
            customer_id: customer_id.to_owned(),
        });
        match after.get(length..)? {
            "" => return Some((origin, changes)),
            more => rest = more.strip_prefix('\n')?,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(reservation: i64, customer: &str) -> EntryChanged {
        EntryChanged {
            reservation_id: Id::parse(reservation, "reservation id").expect("positive"),
            customer_id: customer.to_owned(),
        }
    }

    #[test]
    fn a_signal_reads_back_as_sent_whatever_the_customer_ids_hold() {
        let changes = [
            change(42, "buyer\nwith newline"),
            change(7, "3 7 spaces and digits"),
            change(9, ""),
            change(1_000_000, "구매자"),
        ];
        let payload = encode("replica-a", &changes);
        let (origin, read) = decode(&payload).expect("readable");
        assert_eq!(origin, "replica-a");
        let read: Vec<(Id, String)> = read
            .into_iter()
            .map(|c| (c.reservation_id, c.customer_id))
            .collect();
        let sent: Vec<(Id, String)> = changes
            .into_iter()
            .map(|c| (c.reservation_id, c.customer_id))
            .collect();
        assert_eq!(read, sent);
    }

    #[test]
    fn a_garbled_signal_is_unreadable() {
        for garbled in [
            &b""[..],
            b"origin",
            b"origin\n",
            b"origin\nnot-a-number 5 buyer",
            b"origin\n0 5 buyer",
            b"origin\n1 6 buyer",
            b"origin\n1 4 buyer",
            b"origin\n1 5 buyer\n",
            b"origin\n1 5 buyerX2 1 b",
            b"origin\n1 2 \xea\xb5\xac",
            b"\xff\n1 1 b",
        ] {
            assert!(decode(garbled).is_none(), "{garbled:?}");
        }
    }
}
