//! Keeping a consumer alive and honest: a watchdog that re-subscribes a subscription gone
//! quiet while events wait (and reports the lag from the server), progress acks while a slow
//! apply runs, and handing back prefetched events at shutdown.

use std::future::Future;
use std::time::{Duration, Instant};

use async_nats::jetstream;
use async_nats::jetstream::AckKind;
use async_nats::jetstream::consumer::pull;

use super::EventConsumer;
use tokio_stream::StreamExt;

use crate::events;

impl EventConsumer {
    /// Reports the consumer's lag from the server, and fails (so [`Self::run`] subscribes
    /// anew) when the server holds undelivered events but none arrived for `stall_after`, or
    /// when the server does not answer at all.
    pub(super) async fn check_stall(
        &self,
        consumer: &jetstream::consumer::Consumer<pull::Config>,
        last_delivery: Instant,
    ) -> Result<(), async_nats::Error> {
        let info = events::bounded("reading the consumer's state", consumer.get_info()).await?;
        self.metrics
            .lag(info.num_pending + info.num_ack_pending as u64);
        let quiet = last_delivery.elapsed();
        if info.num_pending > 0 && quiet >= self.policy.stall_after {
            self.metrics.stalled();
            return Err(format!(
                "stalled: {} events wait on the server but nothing arrived for {}s",
                info.num_pending,
                quiet.as_secs()
            )
            .into());
        }
        Ok(())
    }

    /// Runs `work` (an apply transaction) while telling JetStream, every half ack wait, that
    /// `messages` are still being worked on, so a slow apply (a database that answers slowly)
    /// is not redelivered to a second, concurrent attempt.
    pub(super) async fn in_progress<T>(
        &self,
        messages: &[&jetstream::Message],
        work: impl Future<Output = T>,
    ) -> T {
        let mut work = std::pin::pin!(work);
        let every = (self.policy.ack_wait / 2).max(Duration::from_millis(100));
        loop {
            tokio::select! {
                done = &mut work => return done,
                _ = tokio::time::sleep(every) => {
                    for message in messages {
                        // Best effort: a lost progress ack only risks a redelivery, which the
                        // inbox absorbs.
                        let _ = events::bounded("progress ack", message.ack_with(AckKind::Progress)).await;
                    }
                }
            }
        }
    }

    /// At shutdown: hands back the messages already pulled but not yet applied, so the next
    /// process gets them within a second instead of after the ack wait. (The one-second nak
    /// delay keeps them from coming straight back to this closing subscription.)
    pub(super) async fn release_prefetched(messages: &mut pull::Stream) {
        let mut released = 0;
        // Bounded: the stream keeps pulling while it lives, so stop at the first pause or
        // after half a second, whichever comes first; anything left is redelivered after
        // the ack wait.
        let until = tokio::time::Instant::now() + Duration::from_millis(500);
        while let Ok(Some(Ok(message))) = tokio::time::timeout(
            Duration::from_millis(50)
                .min(until.saturating_duration_since(tokio::time::Instant::now())),
            messages.next(),
        )
        .await
        {
            if message
                .ack_with(AckKind::Nak(Some(Duration::from_secs(1))))
                .await
                .is_ok()
            {
                released += 1;
            }
        }
        if released > 0 {
            tracing::info!(released, "handed back prefetched events at shutdown");
        }
    }
}
