//! W3C trace context (`traceparent`) across process boundaries: gRPC metadata, HTTP headers,
//! outbox rows and NATS message headers all carry the same one string.
//!
//! Out: [`current_traceparent`] reads the current span's context. In: [`adopt`] makes a
//! received context the parent of a new span. Without a valid context nothing is sent and
//! nothing adopted, so a span simply starts a new trace. Spans get their ids from the
//! OpenTelemetry layer when traces are exported, and from the lighter id layer otherwise
//! (`telemetry::span_ids`); these functions read whichever is installed. A link
//! ([`link`]) is recorded only in exported traces.

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TraceContextExt;
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
    if let Some(context) = extract(traceparent)
        && span_ids::adopt(span, context.span().span_context()).is_err()
    {
        // Fails only when the span is disabled (filtered out), and then there is nothing to link.
        let _ = span.set_parent(context);
    }
}

/// Links `span` to the span in `traceparent` (another trace it follows from, e.g. paying a
/// reservation links to the reservation's trace); nothing for a missing or malformed value.
pub fn link(span: &tracing::Span, traceparent: Option<&str>) {
    if let Some(context) = extract(traceparent) {
        span.add_link(context.span().span_context().clone());
    }
}

/// The remote context in `traceparent`, when there is a valid one.
fn extract(traceparent: Option<&str>) -> Option<opentelemetry::Context> {
    let carrier = OneHeader(Some(traceparent?.to_owned()));
    let context = TraceContextPropagator::new().extract(&carrier);
    context.span().span_context().is_valid().then_some(context)
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

impl Extractor for OneHeader {
    fn get(&self, key: &str) -> Option<&str> {
        (key == TRACEPARENT).then_some(self.0.as_deref()).flatten()
    }

    fn keys(&self) -> Vec<&str> {
        vec![TRACEPARENT]
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
        let valid = extract(Some(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ))
        .expect("a well-formed traceparent");
        assert_eq!(
            valid.span().span_context().trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        for bad in [
            None,
            Some("not-a-traceparent"),
            Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7"),
            Some("00-00000000000000000000000000000000-0000000000000000-01"),
        ] {
            assert!(extract(bad).is_none(), "{bad:?} must be ignored");
        }
        let span = tracing::info_span!("test");
        adopt(&span, Some("not-a-traceparent"));
        link(&span, Some("not-a-traceparent"));
    }
}
