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
//! Core NATS delivers at most once: a replica cut off from NATS misses the others' signals
//! for that while (and applies nothing either: events come over NATS too). A signal carries
//! no data, only which entry to read again from the shared database, so a lost or late signal
//! never shows a wrong entry; a watcher that reconnects starts with its whole page.

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
    origin: String,
}

impl ChangeFeed {
    /// A feed for this replica's watchers (`local`) over `nats`.
    pub fn new(local: broadcast::Sender<EntryChanged>, nats: async_nats::Client) -> Self {
        Self {
            local,
            nats,
            origin: uuid::Uuid::new_v4().to_string(),
        }
    }

    /// Tells this replica's watchers, then every other replica's. Never blocks: the publish
    /// is queued on the NATS client by a task of its own.
    pub fn announce(&self, change: EntryChanged) {
        let payload = encode(&self.origin, &change);
        // No receiver is fine: nobody here is watching.
        let _ = self.local.send(change);
        let nats = self.nats.clone();
        tokio::spawn(async move {
            if let Err(err) = nats.publish(CHANGES_SUBJECT, payload).await {
                tracing::debug!(%err, "my-page change signal not sent to other replicas");
            }
        });
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
                Some((origin, _)) if origin == self.origin => {}
                Some((_, change)) => {
                    let _ = self.local.send(change);
                }
                None => tracing::warn!("unreadable my-page change signal ignored"),
            }
        }
    }
}

/// `origin \n reservation id \n customer id` (the customer id last: it may hold anything).
fn encode(origin: &str, change: &EntryChanged) -> Bytes {
    Bytes::from(format!(
        "{origin}\n{}\n{}",
        change.reservation_id.get(),
        change.customer_id
    ))
}

fn decode(payload: &[u8]) -> Option<(&str, EntryChanged)> {
    let text = std::str::from_utf8(payload).ok()?;
    let mut parts = text.splitn(3, '\n');
    let origin = parts.next()?;
    let reservation_id = Id::parse(parts.next()?.parse().ok()?, "reservation id").ok()?;
    let customer_id = parts.next()?.to_owned();
    Some((
        origin,
        EntryChanged {
            reservation_id,
            customer_id,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signal_reads_back_as_sent_whatever_the_customer_id_holds() {
        let change = EntryChanged {
            reservation_id: Id::parse(42, "reservation id").expect("positive"),
            customer_id: "buyer\nwith newline".to_owned(),
        };
        let payload = encode("replica-a", &change);
        let (origin, read) = decode(&payload).expect("readable");
        assert_eq!(origin, "replica-a");
        assert_eq!(read.reservation_id, change.reservation_id);
        assert_eq!(read.customer_id, change.customer_id);
    }

    #[test]
    fn a_garbled_signal_is_unreadable() {
        for garbled in [
            &b""[..],
            b"origin",
            b"origin\nnot-a-number\nbuyer",
            b"origin\n0\nbuyer",
            b"\xff\n1\nb",
        ] {
            assert!(decode(garbled).is_none(), "{garbled:?}");
        }
    }
}
