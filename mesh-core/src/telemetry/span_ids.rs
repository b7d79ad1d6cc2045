//! Trace and span ids for every span when no trace is exported.
//!
//! Without an exporter the mesh still needs each span's ids: they travel as `traceparent` on
//! calls, outbox rows and messages, and log lines print them, so one request can be followed
//! through six processes' logs. The OpenTelemetry layer gives ids at a price paid for every
//! span (a span builder holding each field as an attribute, clock reads on every enter and
//! exit, an SDK span started and ended) only to drop the span the moment it ends; measured
//! under `script/bench`, about a sixth of the mesh's CPU. This layer gives ids alone: a span
//! takes its parent's trace id (or a new one at a root) and a span id of its own, one small
//! value in the span's extensions.
//!
//! With an exporter the OpenTelemetry layer runs instead of this one, and
//! [`crate::trace_context`] and the log lines read ids from whichever is installed.

use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId};
use opentelemetry_sdk::trace::{IdGenerator, RandomIdGenerator};
use tracing::span::{Attributes, Id};
use tracing::{Dispatch, Subscriber};
use tracing_subscriber::Registry;
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

/// A span's place in its trace: what a `traceparent` carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SpanIds {
    pub(crate) trace_id: TraceId,
    pub(crate) span_id: SpanId,
    pub(crate) flags: TraceFlags,
}

impl SpanIds {
    /// The W3C `traceparent` value (version 00).
    pub(crate) fn traceparent(&self) -> String {
        format!(
            "00-{}-{}-{:02x}",
            self.trace_id,
            self.span_id,
            self.flags.to_u8()
        )
    }
}

/// The layer that gives every span it sees its [`SpanIds`].
#[derive(Debug, Default)]
pub(crate) struct SpanIdsLayer {
    ids: RandomIdGenerator,
}

impl<S> Layer<S> for SpanIdsLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let parent = if let Some(parent) = attrs.parent() {
            ctx.span(parent)
        } else if attrs.is_contextual() {
            ctx.lookup_current()
        } else {
            None
        };
        let inherited = parent.and_then(|span| span.extensions().get::<SpanIds>().copied());
        let ids = SpanIds {
            trace_id: inherited.map_or_else(|| self.ids.new_trace_id(), |p| p.trace_id),
            span_id: self.ids.new_span_id(),
            // A new trace is sampled, as the default parent-based sampler decides.
            flags: inherited.map_or(TraceFlags::SAMPLED, |p| p.flags),
        };
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(ids);
        }
    }
}

/// The OpenTelemetry layer gives spans their ids here (this layer is not installed).
#[derive(Debug)]
pub(crate) struct NotInstalled;

/// `span`'s ids: `Ok(None)` for a span this layer did not see (none, or filtered out).
pub(crate) fn of(span: &tracing::Span) -> Result<Option<SpanIds>, NotInstalled> {
    span.with_subscriber(|(id, dispatch)| of_id(id, dispatch))
        .unwrap_or(Ok(None))
}

/// The ids of span `id` under `dispatch`.
pub(crate) fn of_id(id: &Id, dispatch: &Dispatch) -> Result<Option<SpanIds>, NotInstalled> {
    let registry = registry_of(dispatch)?;
    Ok(registry
        .span(id)
        .and_then(|span| span.extensions().get::<SpanIds>().copied()))
}

/// Makes the remote span `parent` the parent of `span`: the span joins its trace and takes
/// its sampling decision, keeping its own span id. Spans opened inside it from then on
/// inherit both.
pub(crate) fn adopt(span: &tracing::Span, parent: &SpanContext) -> Result<(), NotInstalled> {
    span.with_subscriber(|(id, dispatch)| {
        let registry = registry_of(dispatch)?;
        if let Some(span) = registry.span(id)
            && let Some(ids) = span.extensions_mut().get_mut::<SpanIds>()
        {
            ids.trace_id = parent.trace_id();
            ids.flags = parent.trace_flags();
        }
        Ok(())
    })
    .unwrap_or(Ok(()))
}

/// The registry holding the spans' extensions, when this layer is one of `dispatch`'s.
fn registry_of(dispatch: &Dispatch) -> Result<&Registry, NotInstalled> {
    if !dispatch.is::<SpanIdsLayer>() {
        return Err(NotInstalled);
    }
    dispatch.downcast_ref::<Registry>().ok_or(NotInstalled)
}

#[cfg(test)]
mod tests {
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;
    use crate::trace_context;

    fn with_ids_layer(body: impl FnOnce()) {
        let subscriber = tracing_subscriber::registry().with(SpanIdsLayer::default());
        tracing::subscriber::with_default(subscriber, body);
    }

    fn parts(traceparent: &str) -> Vec<String> {
        traceparent.split('-').map(str::to_owned).collect()
    }

    #[test]
    fn children_share_their_roots_trace_and_roots_start_new_ones() {
        with_ids_layer(|| {
            let root = tracing::info_span!("root");
            let child = root.in_scope(|| tracing::info_span!("child"));
            let explicit = tracing::info_span!(parent: &root, "explicit");
            let other = tracing::info_span!(parent: None, "other root");
            let [root, child, explicit, other] = [&root, &child, &explicit, &other]
                .map(|span| parts(&trace_context::traceparent_of(span).expect("ids")));
            assert_eq!(root[0], "00");
            assert_eq!(
                (root[1].len(), root[2].len(), root[3].as_str()),
                (32, 16, "01")
            );
            assert_eq!(child[1], root[1]);
            assert_eq!(explicit[1], root[1]);
            assert_ne!(child[2], root[2]);
            assert_ne!(explicit[2], child[2]);
            assert_ne!(other[1], root[1]);
        });
    }

    #[test]
    fn an_adopted_context_gives_its_trace_and_flags_to_the_span_and_its_children() {
        with_ids_layer(|| {
            let span = tracing::info_span!("served");
            trace_context::adopt(
                &span,
                Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"),
            );
            let own = parts(&trace_context::traceparent_of(&span).expect("ids"));
            assert_eq!(own[1], "4bf92f3577b34da6a3ce929d0e0e4736");
            assert_ne!(own[2], "00f067aa0ba902b7", "the span keeps its own id");
            assert_eq!(own[3], "00", "not sampled upstream, not sampled here");
            let child = span.in_scope(|| {
                let child = tracing::info_span!("child");
                parts(&trace_context::traceparent_of(&child).expect("ids of the child"))
            });
            assert_eq!(child[1], own[1]);
            assert_eq!(child[3], "00");
            assert_ne!(child[2], own[2]);
        });
    }

    #[test]
    fn a_malformed_context_leaves_the_span_its_own_trace() {
        with_ids_layer(|| {
            let span = tracing::info_span!("served");
            let before = trace_context::traceparent_of(&span);
            trace_context::adopt(&span, Some("00-not-a-trace-01"));
            assert_eq!(trace_context::traceparent_of(&span), before);
        });
    }

    #[test]
    fn without_the_layer_nothing_is_found_here() {
        let span = tracing::info_span!("untraced");
        assert!(matches!(of(&span), Ok(None) | Err(NotInstalled)));
        tracing::subscriber::with_default(tracing_subscriber::registry(), || {
            let span = tracing::info_span!("untraced");
            assert!(of(&span).is_err());
            assert_eq!(trace_context::traceparent_of(&span), None);
        });
    }
}
