//! The OpenTelemetry trace pipeline behind the `tracing` layer.

use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};

use super::TelemetryError;
use crate::config::optional_env;

/// Longest a flush at exit may hold the process up.
const FLUSH_LIMIT: Duration = Duration::from_secs(3);

/// A tracer provider, exporting over OTLP/gRPC or not at all.
pub(super) struct TracePipeline {
    provider: SdkTracerProvider,
    service: &'static str,
}

impl TracePipeline {
    /// Without export, spans still get ids (propagated to other services and printed in JSON
    /// logs) but are dropped when they end. With export, the batch processor's thread sends
    /// them; its queue is bounded (`OTEL_BSP_MAX_QUEUE_SIZE`), so when the collector is down
    /// spans are dropped instead of piling up or blocking a request.
    pub(super) fn start(service: &'static str, export: bool) -> Result<Self, TelemetryError> {
        // OTEL_SERVICE_NAME (read by the resource builder) wins over the binary's name.
        let resource = match optional_env("OTEL_SERVICE_NAME") {
            Some(_) => Resource::builder().build(),
            None => Resource::builder().with_service_name(service).build(),
        };
        let mut builder = SdkTracerProvider::builder().with_resource(resource);
        if export {
            // Endpoint, headers, timeout and compression come from the standard variables.
            // Built inside the Tokio runtime: the exporter's channel runs on it.
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .build()
                .map_err(|err| TelemetryError::Traces(err.to_string()))?;
            builder = builder.with_batch_exporter(exporter);
        }
        Ok(Self {
            provider: builder.build(),
            service,
        })
    }

    /// The tracer the `tracing` layer records into.
    pub(super) fn tracer(&self) -> SdkTracer {
        self.provider.tracer(self.service)
    }

    /// Flushes queued spans and stops the exporter, off the async threads (the flush blocks).
    pub(super) async fn shutdown(self) {
        let provider = self.provider;
        let flushed =
            tokio::task::spawn_blocking(move || provider.shutdown_with_timeout(FLUSH_LIMIT)).await;
        if let Ok(Err(err)) = flushed {
            tracing::debug!(%err, "trace pipeline did not shut down cleanly");
        }
    }
}
