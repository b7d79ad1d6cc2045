//! The trace and span ids of a `tracing` span (from the id layer or the OpenTelemetry layer,
//! whichever is installed), for log lines that lead to their trace.
//!
//! Reading a span's OpenTelemetry context needs the dispatcher, which a layer is handed when
//! it is registered (looking it up while an event is being dispatched would find none).

use std::sync::OnceLock;

use opentelemetry::trace::TraceContextExt;
use tracing::Dispatch;
use tracing::dispatcher::WeakDispatch;

/// Finds the trace and span ids of a span once registered with its dispatcher.
#[derive(Default)]
pub(super) struct TraceLink {
    dispatch: OnceLock<WeakDispatch>,
}

impl TraceLink {
    /// Remembers the dispatcher the layer was registered with (call from
    /// `Layer::on_register_dispatch`).
    pub(super) fn register(&self, dispatch: &Dispatch) {
        let _ = self.dispatch.set(dispatch.downgrade());
    }

    /// The (trace id, span id) of span `id`, when it has a valid OpenTelemetry context.
    pub(super) fn ids(&self, id: &tracing::span::Id) -> Option<(String, String)> {
        let dispatch = self.dispatch.get()?.upgrade()?;
        if let Ok(ids) = super::span_ids::of_id(id, &dispatch) {
            return ids.map(|ids| (ids.trace_id.to_string(), ids.span_id.to_string()));
        }
        let context = tracing_opentelemetry::get_otel_context(id, &dispatch)?;
        let span_context = context.span().span_context().clone();
        span_context.is_valid().then(|| {
            (
                span_context.trace_id().to_string(),
                span_context.span_id().to_string(),
            )
        })
    }
}
