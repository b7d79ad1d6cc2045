//! `LOG_FORMAT=json`: one JSON object per event, with the OpenTelemetry trace and span ids of
//! the span it happened in, so a log line leads to its trace and back.
//!
//! A layer of its own rather than a `fmt` formatter: reading a span's OpenTelemetry ids needs
//! the dispatcher ([`TraceLink`]).

use std::fmt;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

use super::log_lines::{LineFormat, LogLines};
use super::trace_link::TraceLink;

/// The JSON format.
pub(super) struct Json;

/// The JSON lines layer, writing to `W` (stdout in the binaries).
pub(super) type JsonLines<W> = LogLines<Json, W>;

impl<W> JsonLines<W> {
    /// Lines go to what `make_writer` makes, one write per line.
    pub(super) fn new(make_writer: W) -> Self {
        Self::with_format(Json, make_writer)
    }
}

impl LineFormat for Json {
    fn line<S>(&self, event: &Event<'_>, ctx: &Context<'_, S>, link: &TraceLink) -> Option<String>
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let mut line = Map::new();
        let mut timestamp = String::new();
        if SystemTime
            .format_time(&mut Writer::new(&mut timestamp))
            .is_ok()
        {
            line.insert("timestamp".into(), timestamp.into());
        }
        line.insert("level".into(), event.metadata().level().as_str().into());
        line.insert("target".into(), event.metadata().target().into());
        let mut fields = FieldsToJson(Map::new());
        event.record(&mut fields);
        if let Some(message) = fields.0.remove("message") {
            line.insert("message".into(), message);
        }
        line.insert("fields".into(), Value::Object(fields.0));
        if let Some(span) = ctx.event_span(event) {
            line.insert("span".into(), span.name().into());
            if let Some((trace_id, span_id)) = link.ids(&span.id()) {
                line.insert("trace_id".into(), trace_id.into());
                line.insert("span_id".into(), span_id.into());
            }
        }
        serde_json::to_string(&line).ok()
    }
}

/// Collects an event's fields as JSON values (numbers and booleans stay typed).
struct FieldsToJson(Map<String, Value>);

impl Visit for FieldsToJson {
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().into(), format!("{value:?}").into());
    }
}

#[cfg(test)]
mod tests {
    use super::super::captured::lines_written;
    use super::*;

    fn lines_of(emit: impl FnOnce()) -> Vec<Value> {
        lines_written(JsonLines::new, emit)
            .iter()
            .map(|line| serde_json::from_str(line).expect("one JSON object per line"))
            .collect()
    }

    #[test]
    fn a_line_carries_its_span_trace_and_typed_fields() {
        let lines = lines_of(|| {
            let span = tracing::info_span!("place");
            let _entered = span.enter();
            tracing::info!(product = 3_i64, held = true, "product reserved");
        });
        assert_eq!(lines.len(), 1);
        let line = &lines[0];
        assert_eq!(line["message"], "product reserved");
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["span"], "place");
        assert_eq!(line["fields"]["product"], 3);
        assert_eq!(line["fields"]["held"], true);
        let trace_id = line["trace_id"].as_str().expect("trace_id");
        assert_eq!(trace_id.len(), 32);
        assert_eq!(line["span_id"].as_str().map(str::len), Some(16));
    }

    #[test]
    fn a_line_outside_any_span_has_no_trace() {
        let lines = lines_of(|| tracing::warn!("starting"));
        assert_eq!(lines[0]["message"], "starting");
        assert!(lines[0].get("trace_id").is_none());
    }
}
