//! The default log format: one human-readable line per event, formatted only when an event is
//! logged.
//!
//! `tracing_subscriber::fmt`'s layer formats every span's fields into a string the moment the
//! span is created, in case an event inside it is logged later. The mesh opens spans on every
//! call and every consumed event (for traces), and logs inside few of them, so that work was
//! mostly thrown away: about a seventh of the services' CPU under load (measured against
//! `LOG_FORMAT=json`, whose layer formats nothing up front). This layer writes what a reader
//! needs to place a line instead: the names of the spans it happened in, the message, the
//! event's fields, and the trace id, which leads to the span's fields in the trace.
//!
//! `2026-11-29T18:15:31.660301Z  INFO grpc.server: product reserved product=7 reservation=9 trace_id=4bf9…`

use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

use super::log_lines::{LineFormat, LogLines};
use super::trace_link::TraceLink;

/// The text format.
pub(super) struct Text;

/// The text lines layer, writing to `W` (stdout in the binaries).
pub(super) type TextLines<W> = LogLines<Text, W>;

impl<W> TextLines<W> {
    /// Lines go to what `make_writer` makes, one write per line.
    pub(super) fn new(make_writer: W) -> Self {
        Self::with_format(Text, make_writer)
    }
}

impl LineFormat for Text {
    fn line<S>(&self, event: &Event<'_>, ctx: &Context<'_, S>, link: &TraceLink) -> Option<String>
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let mut line = String::with_capacity(192);
        let _ = SystemTime.format_time(&mut Writer::new(&mut line));
        let _ = write!(line, " {:>5} ", event.metadata().level().as_str());
        if let Some(scope) = ctx.event_scope(event) {
            for (n, span) in scope.from_root().enumerate() {
                if n > 0 {
                    line.push(':');
                }
                line.push_str(span.name());
            }
            line.push_str(": ");
        }
        let mut fields = FieldsToText::default();
        event.record(&mut fields);
        line.push_str(&fields.message);
        line.push_str(&fields.rest);
        if let Some((trace_id, _)) = ctx.event_span(event).and_then(|span| link.ids(&span.id())) {
            let _ = write!(line, " trace_id={trace_id}");
        }
        Some(line)
    }
}

/// An event's message, and its other fields as ` name=value`.
#[derive(Default)]
struct FieldsToText {
    message: String,
    rest: String,
}

impl FieldsToText {
    fn push(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else if value.is_empty()
            || (!value.starts_with('"') && value.contains(|c: char| c.is_whitespace()))
        {
            // Quoted where a reader could not tell where the value ends.
            let _ = write!(self.rest, " {}={value:?}", field.name());
        } else {
            let _ = write!(self.rest, " {}={value}", field.name());
        }
    }
}

impl Visit for FieldsToText {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.push(field, value);
    }

    /// Also what `%value` (Display) fields arrive as.
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let mut text = String::new();
        let _ = write!(text, "{value:?}");
        self.push(field, &text);
    }
}

#[cfg(test)]
mod tests {
    use super::super::captured::lines_written;
    use super::*;

    fn lines_of(emit: impl FnOnce()) -> Vec<String> {
        lines_written(TextLines::new, emit)
    }

    #[test]
    fn a_line_names_its_spans_message_fields_and_trace() {
        let lines = lines_of(|| {
            let outer = tracing::info_span!("grpc.server", secret_field = "not printed");
            let _outer = outer.enter();
            let inner = tracing::info_span!("place");
            let _inner = inner.enter();
            let reason = "no such product";
            tracing::warn!(product = 3_i64, held = true, %reason, "product refused");
        });
        assert_eq!(lines.len(), 1, "{lines:?}");
        let line = &lines[0];
        let (_timestamp, rest) = line.split_once(' ').expect("a timestamp first");
        assert!(
            rest.starts_with(" WARN grpc.server:place: product refused product=3 held=true reason=\"no such product\" trace_id="),
            "{line}"
        );
        let trace_id = line.rsplit("trace_id=").next().expect("trace id");
        assert_eq!(trace_id.len(), 32, "{line}");
        assert!(
            !line.contains("not printed"),
            "span fields stay in the trace: {line}"
        );
    }

    #[test]
    fn a_line_outside_any_span_is_the_message_and_fields() {
        let lines = lines_of(|| tracing::info!(port = 7081_u64, "serving"));
        let (_timestamp, rest) = lines[0].split_once(' ').expect("a timestamp first");
        assert_eq!(rest, " INFO serving port=7081");
    }
}
