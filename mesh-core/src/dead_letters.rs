//! Operating the dead-letter stream: what is in it, and sending it back.
//!
//! A consumer dead-letters an event that can never apply as it is (it does not decode, its
//! handler rejects it, or it kept failing past the maximum retry age) to
//! `reserve.dlq.<consumer>` in `RESERVE_DLQ`, with the reason and the original subject in
//! headers. Once the cause is mended (a deploy, a database back), an operator replays the
//! letters (`dead-letters replay`): each goes back to its original subject with a
//! [`REPLAY_FOR_HEADER`] naming the one consumer it was meant for (every other consumer of the
//! subject acks it untouched), and is removed from the dead-letter stream once JetStream has
//! it. Replay is idempotent: the consumer's inbox drops an event it already applied.

use async_nats::HeaderMap;
use async_nats::jetstream;
use async_nats::jetstream::stream::Stream;
use prost::Message as _;
use reserve_proto::events::v1::EventEnvelope;

pub use crate::consumer::REPLAY_FOR_HEADER;
use crate::events::{self, bounded};
use crate::trace_context::TRACEPARENT;

/// Why the event was dead-lettered.
pub const REASON_HEADER: &str = "Reserve-Dead-Letter-Reason";
/// The subject the event was first published on.
pub const ORIGINAL_SUBJECT_HEADER: &str = "Reserve-Original-Subject";

/// The headers of a new dead letter: the reason, the original subject, and the event's trace
/// context (so a replay continues the trace).
pub fn letter_headers(reason: &str, subject: &str, original: Option<&HeaderMap>) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(REASON_HEADER, reason);
    headers.insert(ORIGINAL_SUBJECT_HEADER, subject);
    if let Some(traceparent) = original.and_then(|headers| headers.get(TRACEPARENT)) {
        headers.insert(TRACEPARENT, traceparent.as_str());
    }
    headers
}

/// One dead letter, as listed.
#[derive(Clone, Debug)]
pub struct DeadLetter {
    /// Its sequence in the dead-letter stream (what replay removes).
    pub sequence: u64,
    /// The consumer that gave it up.
    pub consumer: String,
    /// The event's type (from the envelope, else the original subject's last token).
    pub event_type: String,
    /// The event's id, empty when the envelope does not decode.
    pub event_id: String,
    /// Why it was given up.
    pub reason: String,
    /// When it was given up (RFC 3339, UTC).
    pub dead_lettered_at: String,
    /// The subject it was first published on.
    pub original_subject: String,
    traceparent: Option<String>,
    payload: bytes::Bytes,
}

/// Which dead letters to act on; an empty filter selects all.
#[derive(Clone, Debug, Default)]
pub struct Selection {
    /// Only this consumer's.
    pub consumer: Option<String>,
    /// Only the letter(s) of this event id.
    pub event_id: Option<String>,
}

impl Selection {
    fn selects(&self, letter: &DeadLetter) -> bool {
        self.consumer
            .as_ref()
            .is_none_or(|consumer| *consumer == letter.consumer)
            && self
                .event_id
                .as_ref()
                .is_none_or(|event_id| *event_id == letter.event_id)
    }
}

async fn dead_letter_stream(js: &jetstream::Context) -> Result<Stream, async_nats::Error> {
    bounded("provisioning the streams", events::provision(js)).await?;
    bounded(
        "finding the dead-letter stream",
        js.get_stream(events::DLQ_STREAM),
    )
    .await
}

/// The dead letters `selection` picks, oldest first.
pub async fn list(
    js: &jetstream::Context,
    selection: &Selection,
) -> Result<Vec<DeadLetter>, async_nats::Error> {
    let stream = dead_letter_stream(js).await?;
    let state = bounded("reading the dead-letter stream", stream.get_info())
        .await?
        .state;
    let mut letters = Vec::new();
    if state.messages == 0 {
        return Ok(letters);
    }
    for sequence in state.first_sequence..=state.last_sequence {
        // Replay deletes letters, so the range has holes: skip what is gone.
        let Ok(Ok(message)) =
            tokio::time::timeout(events::NATS_TIMEOUT, stream.get_raw_message(sequence)).await
        else {
            continue;
        };
        let letter = read_letter(message);
        if selection.selects(&letter) {
            letters.push(letter);
        }
    }
    Ok(letters)
}

fn read_letter(message: jetstream::message::StreamMessage) -> DeadLetter {
    let header = |name: &str| {
        message
            .headers
            .get(name)
            .map(|value| value.as_str().to_owned())
    };
    let consumer = message
        .subject
        .strip_prefix(events::DLQ_PREFIX)
        .and_then(|rest| rest.strip_prefix('.'))
        .unwrap_or(message.subject.as_str())
        .to_owned();
    let original_subject = header(ORIGINAL_SUBJECT_HEADER).unwrap_or_default();
    let envelope = EventEnvelope::decode(message.payload.clone()).ok();
    let event_type = envelope
        .as_ref()
        .map(|envelope| envelope.event_type.clone())
        .filter(|event_type| !event_type.is_empty())
        .unwrap_or_else(|| {
            original_subject
                .rsplit('.')
                .next()
                .unwrap_or_default()
                .to_owned()
        });
    DeadLetter {
        sequence: message.sequence,
        consumer,
        event_type,
        event_id: envelope
            .map(|envelope| envelope.event_id)
            .unwrap_or_default(),
        reason: header(REASON_HEADER).unwrap_or_default(),
        dead_lettered_at: message
            .time
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        original_subject,
        traceparent: header(TRACEPARENT),
        payload: message.payload,
    }
}

/// Sends every dead letter `selection` picks back to the consumer it was meant for, removing
/// each from the dead-letter stream once JetStream has stored its replay. Returns them.
pub async fn replay(
    js: &jetstream::Context,
    selection: &Selection,
) -> Result<Vec<DeadLetter>, async_nats::Error> {
    let letters = list(js, selection).await?;
    let stream = dead_letter_stream(js).await?;
    let mut replayed = Vec::with_capacity(letters.len());
    for letter in letters {
        if letter.original_subject.is_empty() {
            tracing::warn!(
                sequence = letter.sequence,
                "dead letter without its original subject; left in place"
            );
            continue;
        }
        let mut headers = HeaderMap::new();
        headers.insert(REPLAY_FOR_HEADER, letter.consumer.as_str());
        if let Some(traceparent) = &letter.traceparent {
            headers.insert(TRACEPARENT, traceparent.as_str());
        }
        // A fresh message id: the original one may still be in the duplicate window, which
        // would silently drop the replay. The inbox, not the window, makes replay idempotent.
        headers.insert(
            "Nats-Msg-Id",
            format!("replay-{}-{}", letter.sequence, letter.event_id).as_str(),
        );
        let ack = bounded(
            "publishing a replay",
            js.publish_with_headers(
                letter.original_subject.clone(),
                headers,
                letter.payload.clone(),
            ),
        )
        .await?;
        bounded("the replay's ack", ack).await?;
        bounded(
            "removing a replayed dead letter",
            stream.delete_message(letter.sequence),
        )
        .await?;
        replayed.push(letter);
    }
    Ok(replayed)
}
