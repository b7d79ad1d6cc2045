//! Every reservation and payment status change → one notification, recorded by one statement
//! keyed by the event's id (so none is lost and none is doubled: a redelivery finds its row),
//! then handed to the dispatcher.

use std::collections::HashSet;
use std::sync::Arc;

use mesh_core::DbConnection;
use mesh_core::consumer::{Batched, EventHandler, HandleError, KeyedEffect, keyed_drafts_in_spans};
use reserve_proto::events::v1::EventEnvelope;
use tokio::sync::Notify;

use crate::domain::{NoticeError, notice_of};
use crate::store::{self, NewNotice};
use crate::templates::{Lang, render};

/// Records notifications for events.
pub struct NoticeRecorder {
    lang: Lang,
    dispatcher: Arc<Notify>,
}

impl NoticeRecorder {
    /// Writes in `lang`; wakes `dispatcher` after each commit.
    pub fn new(lang: Lang, dispatcher: Arc<Notify>) -> Self {
        Self { lang, dispatcher }
    }
}

impl NoticeRecorder {
    /// The notification `event` asks for, if any, in the trace context current now.
    fn notice_for<'e>(
        &self,
        event: &'e EventEnvelope,
    ) -> Result<Option<NewNotice<'e>>, NoticeError> {
        let Some(facts) = notice_of(event)? else {
            return Ok(None);
        };
        let message = render(self.lang, &facts);
        Ok(Some(NewNotice {
            event_id: &event.event_id,
            customer_id: facts.customer_id,
            event_type: facts.event_type,
            reservation_id: facts.reservation_id,
            message,
            traceparent: mesh_core::trace_context::current_traceparent(),
        }))
    }
}

impl EventHandler for NoticeRecorder {
    fn apply(&self, conn: &mut DbConnection, event: &EventEnvelope) -> Result<(), HandleError> {
        let notice = self.notice_for(event)?;
        store::record(conn, notice.as_slice())?;
        Ok(())
    }

    /// A notification is a row keyed by its event id: the consumer needs no inbox for it.
    fn keyed(&self) -> Option<&dyn KeyedEffect> {
        Some(self)
    }

    fn committed(&self, _event: &EventEnvelope) {
        self.dispatcher.notify_one();
    }

    /// Notifications are delivered by the dispatcher, not announced: nothing for the relay.
    fn announces(&self) -> bool {
        false
    }
}

impl KeyedEffect for NoticeRecorder {
    /// A batch's notifications in one insert, each drafted inside its event's span; an event
    /// whose notification exists already (a redelivery) adds none. Events that ask for no
    /// notification count as applied.
    fn apply_new(
        &self,
        conn: &mut DbConnection,
        events: &[Batched<'_>],
    ) -> Result<HashSet<String>, HandleError> {
        let (notices, mut applied) = keyed_drafts_in_spans(events, |event| self.notice_for(event))?;
        applied.extend(store::record(conn, &notices)?);
        Ok(applied)
    }
}

/// An event that cannot become a notification never will: reject it (dead-lettered).
impl From<NoticeError> for HandleError {
    fn from(err: NoticeError) -> Self {
        HandleError::Reject(err.to_string())
    }
}
