//! The layer both log formats share: it remembers its dispatcher (for the trace ids a line
//! carries, [`TraceLink`]) and writes each line its format makes in one write. A format
//! ([`LineFormat`]) only turns an event into text.

use std::io::Write as _;

use tracing::{Dispatch, Event, Subscriber};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

use super::trace_link::TraceLink;

/// How an event becomes one log line (without its newline); `None` writes nothing.
pub(super) trait LineFormat: Send + Sync + 'static {
    /// The line of `event`; `link` finds the trace ids of the span it happened in.
    fn line<S>(&self, event: &Event<'_>, ctx: &Context<'_, S>, link: &TraceLink) -> Option<String>
    where
        S: Subscriber + for<'a> LookupSpan<'a>;
}

/// A log layer writing `F`'s lines to `W` (stdout in the binaries).
pub(super) struct LogLines<F, W> {
    format: F,
    make_writer: W,
    link: TraceLink,
}

impl<F, W> LogLines<F, W> {
    /// Lines in `format` go to what `make_writer` makes, one write per line.
    pub(super) fn with_format(format: F, make_writer: W) -> Self {
        Self {
            format,
            make_writer,
            link: TraceLink::default(),
        }
    }
}

impl<S, F, W> Layer<S> for LogLines<F, W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    F: LineFormat,
    W: for<'w> MakeWriter<'w> + 'static,
{
    fn on_register_dispatch(&self, dispatch: &Dispatch) {
        self.link.register(dispatch);
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        if let Some(mut line) = self.format.line(event, &ctx, &self.link) {
            line.push('\n');
            // A log line that cannot be written has nowhere else to go.
            let _ = self.make_writer.make_writer().write_all(line.as_bytes());
        }
    }
}
