//! Test support for the log layers: what a layer writes for the events of a closure, with the
//! OpenTelemetry layer beneath it as in the binaries (so lines can carry trace ids).

use std::sync::{Arc, Mutex};

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracer;
use tracing_opentelemetry::OpenTelemetryLayer;
use tracing_subscriber::Registry;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Layer, Layered, SubscriberExt};

/// A writer that keeps everything written to it; clones share the buffer.
#[derive(Clone, Default)]
pub(super) struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("buffer").extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Captured;

    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

/// The subscriber the log layers sit on in these tests.
type Traced = Layered<OpenTelemetryLayer<Registry, SdkTracer>, Registry>;

/// The lines the layer `make_layer` builds (around its writer) writes while `emit` runs.
pub(super) fn lines_written<L>(
    make_layer: impl FnOnce(Captured) -> L,
    emit: impl FnOnce(),
) -> Vec<String>
where
    L: Layer<Traced> + Send + Sync + 'static,
{
    let captured = Captured::default();
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")))
        .with(make_layer(captured.clone()));
    tracing::subscriber::with_default(subscriber, emit);
    let text = String::from_utf8(captured.0.lock().expect("buffer").clone()).expect("utf-8");
    text.lines().map(str::to_owned).collect()
}
