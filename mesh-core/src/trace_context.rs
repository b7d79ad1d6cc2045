//! W3C trace context (`traceparent`) across process boundaries: gRPC metadata, HTTP headers,
//! outbox rows and NATS message headers all carry the same one string.
//!
//! Out: [`current_traceparent`] reads the current span's context. In: [`adopt`] makes a
//! received context the parent of a new span. Without a valid context nothing is sent and
//! nothing adopted, so a span simply starts a new trace. Spans get their ids from the
//! OpenTelemetry layer when traces are exported, and from the lighter id layer otherwise
//! (`telemetry::span_ids`); these functions read whichever is installed. A link
//! ([`link`]) is recorded only in exported traces.

use opentelemetry::propagation::{Injector, TextMapPropagator};
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tonic::metadata::MetadataValue;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::telemetry::span_ids;

/// The header (and metadata key) that carries the context.
pub const TRACEPARENT: &str = "traceparent";

/// The current span's context as a `traceparent` value; `None` outside any traced span.
pub fn current_traceparent() -> Option<String> {
    traceparent_of(&tracing::Span::current())
}

/// `span`'s context as a `traceparent` value.
pub fn traceparent_of(span: &tracing::Span) -> Option<String> {
    if let Ok(ids) = span_ids::of(span) {
        return ids.map(|ids| ids.traceparent());
    }
    let context = span.context();
    if !context.span().span_context().is_valid() {
        return None;
    }
    let mut carrier = OneHeader(None);
    TraceContextPropagator::new().inject_context(&context, &mut carrier);
    carrier.0
}

/// Makes the context in `traceparent` the parent of `span`; a missing or malformed value
/// leaves `span` the root of a new trace.
pub fn adopt(span: &tracing::Span, traceparent: Option<&str>) {
    if let Some(parent) = parse(traceparent)
        && span_ids::adopt(span, &parent).is_err()
    {
        // Fails only when the span is disabled (filtered out), and then there is nothing to link.
        let _ = span.set_parent(opentelemetry::Context::new().with_remote_span_context(parent));
    }
}

/// Links `span` to the span in `traceparent` (another trace it follows from, e.g. paying a
/// reservation links to the reservation's trace); nothing for a missing or malformed value.
/// Only an exported span records links.
pub fn link(span: &tracing::Span, traceparent: Option<&str>) {
    if let Some(context) = parse(traceparent) {
        span.add_link(context);
    }
}

/// Whether `span` becomes an exported OpenTelemetry span (so its attributes are worth
/// computing), rather than ids only.
pub fn is_exported(span: &tracing::Span) -> bool {
    span_ids::of(span).is_err()
}

/// The remote span in a W3C `traceparent` (`version-traceid-spanid-flags`, lowercase hex),
/// when it is a valid one: version `ff` is invalid, version `00` has exactly four fields
/// (later versions may append more), and neither id may be all zeros. Parsed here rather than
/// by the OpenTelemetry propagator, which builds a context map for every message and call.
fn parse(traceparent: Option<&str>) -> Option<SpanContext> {
    let mut fields = traceparent?.trim().split('-');
    let [version, trace_id, span_id, flags] = [
        fields.next()?,
        fields.next()?,
        fields.next()?,
        fields.next()?,
    ];
    let lower_hex = |field: &str, len: usize| {
        field.len() == len
            && field
                .bytes()
                .all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte))
    };
    let well_formed = lower_hex(version, 2)
        && lower_hex(trace_id, 32)
        && lower_hex(span_id, 16)
        && lower_hex(flags, 2);
    if !well_formed || version == "ff" || (version == "00" && fields.next().is_some()) {
        return None;
    }
    let trace_id = TraceId::from_hex(trace_id).ok()?;
    let span_id = SpanId::from_hex(span_id).ok()?;
    let flags = u8::from_str_radix(flags, 16).ok()?;
    let context = SpanContext::new(
        trace_id,
        span_id,
        TraceFlags::new(flags) & TraceFlags::SAMPLED,
        true,
        TraceState::default(),
    );
    context.is_valid().then_some(context)
}

/// Reads `traceparent` from HTTP headers (also gRPC metadata, which travels as headers).
pub fn from_headers(headers: &http::HeaderMap) -> Option<&str> {
    headers
        .get(TRACEPARENT)
        .and_then(|value| value.to_str().ok())
}

/// A tonic interceptor that sends the calling span's context with every request, so the
/// server's span becomes its child. Wrap a channel with it: `Client::with_interceptor`.
#[derive(Clone, Copy, Debug, Default)]
pub struct SendTraceContext;

impl tonic::service::Interceptor for SendTraceContext {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = current_traceparent()
            && let Ok(value) = MetadataValue::try_from(value)
        {
            request.metadata_mut().insert(TRACEPARENT, value);
        }
        Ok(request)
    }
}

/// A channel that sends trace context: the client type every service uses for its peers.
pub type TracedChannel =
    tonic::service::interceptor::InterceptedService<tonic::transport::Channel, SendTraceContext>;

/// A carrier of the `traceparent` field only (we neither send nor read `tracestate`).
struct OneHeader(Option<String>);

impl Injector for OneHeader {
    fn set(&mut self, key: &str, value: String) {
        if key == TRACEPARENT {
            self.0 = Some(value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outside_a_traced_span_nothing_is_sent() {
        assert_eq!(current_traceparent(), None);
    }

    #[test]
    fn a_malformed_traceparent_is_ignored() {
        // What `adopt` and `link` act on: a valid context from a well-formed value, none
        // from a missing, malformed or all-zero one (so the span keeps its own parent).
        let valid = parse(Some(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ))
        .expect("a well-formed traceparent");
        assert_eq!(
            valid.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(valid.span_id().to_string(), "00f067aa0ba902b7");
        assert!(valid.is_sampled() && valid.is_remote());
        let later_version = parse(Some(
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-more",
        ))
        .expect("a later version may append fields");
        assert!(!later_version.is_sampled());
        for bad in [
            None,
            Some(""),
            Some("not-a-traceparent"),
            Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7"),
            Some("00-00000000000000000000000000000000-0000000000000000-01"),
            Some("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01"),
            Some("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"),
            Some("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-more"),
            Some("00-+bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1"),
        ] {
            assert!(parse(bad).is_none(), "{bad:?} must be ignored");
        }
        let span = tracing::info_span!("test");
        adopt(&span, Some("not-a-traceparent"));
        link(&span, Some("not-a-traceparent"));
    }
}
