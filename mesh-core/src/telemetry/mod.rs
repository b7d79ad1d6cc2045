//! Logs, traces and metrics for every binary, configured from the standard variables.
//!
//! * **Logs**: human-readable lines by default; JSON lines carrying `trace_id` and `span_id`
//!   with `LOG_FORMAT=json`. `RUST_LOG` filters as usual (default `info`).
//! * **Traces**: when `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`)
//!   is set, every `tracing` span is also an OpenTelemetry span, exported over OTLP/gRPC.
//!   Otherwise spans only get trace and span ids (propagated as `traceparent` and printed in
//!   log lines, [`span_ids`]), which costs a fraction of building spans nobody receives; a
//!   new trace is then marked sampled and a received one keeps its flags. An exporting
//!   service is named by `OTEL_SERVICE_NAME`, else by the binary; `OTEL_TRACES_SAMPLER[_ARG]`
//!   pick its sampler (default: parent-based, always on). Export runs on its own thread
//!   behind a bounded queue, so a dead or slow collector costs dropped spans, never a slower
//!   request.
//! * **Metrics**: Prometheus text on `METRICS_ADDR` (default `0.0.0.0:<default port>`,
//!   `off` to disable); see [`catalog`] for what is exported.

#[cfg(test)]
mod captured;
pub mod catalog;
mod json_lines;
mod log_lines;
mod prometheus;
pub(crate) mod span_ids;
mod text_lines;
mod trace_link;
mod traces;

use std::net::SocketAddr;

use tracing::Level;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::{Layer, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Registry};

use crate::ConfigError;
use crate::config::optional_env;

/// How log lines are written (`LOG_FORMAT`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// One human-readable line per event (the default).
    Text,
    /// One JSON object per line, with the trace and span ids of the event's span.
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value.to_ascii_lowercase().as_str() {
            "text" | "" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            other => Err(format!("expected `text` or `json`, got `{other}`")),
        }
    }
}

/// What [`init`] reads from the environment.
#[derive(Clone, Debug)]
pub struct TelemetryConfig {
    /// `LOG_FORMAT`.
    pub log_format: LogFormat,
    /// Whether an OTLP endpoint is configured (the exporter reads the standard variables).
    pub export_traces: bool,
    /// `METRICS_ADDR`; `None` when set to `off`.
    pub metrics_addr: Option<SocketAddr>,
    /// Log lines go to stderr instead of stdout: one-off commands print their results on
    /// stdout, where logs would mix with them.
    pub logs_to_stderr: bool,
}

impl TelemetryConfig {
    /// Reads `LOG_FORMAT`, `METRICS_ADDR` and whether `OTEL_EXPORTER_OTLP[_TRACES]_ENDPOINT`
    /// is set; metrics default to `0.0.0.0:<default_metrics_port>`.
    pub fn from_env(default_metrics_port: u16) -> Result<Self, ConfigError> {
        let log_format = match optional_env("LOG_FORMAT") {
            Some(raw) => raw
                .parse()
                .map_err(|reason: String| ConfigError::new("LOG_FORMAT", &raw, reason))?,
            None => LogFormat::Text,
        };
        let export_traces = [
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "OTEL_EXPORTER_OTLP_ENDPOINT",
        ]
        .iter()
        .any(|name| optional_env(name).is_some());
        let metrics_addr = match optional_env("METRICS_ADDR") {
            Some(raw) if raw.eq_ignore_ascii_case("off") => None,
            Some(raw) => Some(raw.parse().map_err(|err: std::net::AddrParseError| {
                ConfigError::new("METRICS_ADDR", &raw, err.to_string())
            })?),
            None => Some(SocketAddr::from(([0, 0, 0, 0], default_metrics_port))),
        };
        Ok(Self {
            log_format,
            export_traces,
            metrics_addr,
            logs_to_stderr: false,
        })
    }
}

/// Why telemetry could not start.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// A variable holds a bad value.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The OTLP exporter could not be built (a malformed endpoint).
    #[error("cannot build the OTLP trace exporter: {0}")]
    Traces(String),
    /// The metrics listener could not start (address in use).
    #[error("cannot serve metrics: {0}")]
    Metrics(String),
}

/// Keeps the trace pipeline alive; [`Telemetry::shutdown`] flushes it at exit.
pub struct Telemetry {
    traces: traces::TracePipeline,
}

impl Telemetry {
    /// Exports the spans still queued (bounded by the exporter's timeout) and stops.
    pub async fn shutdown(self) {
        self.traces.shutdown().await;
    }
}

/// Installs logging, tracing and metrics for `service`, reading [`TelemetryConfig`] from the
/// environment. Call once, first thing in `main`, inside the Tokio runtime.
pub fn init(service: &'static str, default_metrics_port: u16) -> Result<Telemetry, TelemetryError> {
    start(service, TelemetryConfig::from_env(default_metrics_port)?)
}

/// Runs a binary's `main` body with telemetry: installed before it starts, flushed after it
/// ends (whether it succeeded or not).
pub async fn run<F>(service: &'static str, default_metrics_port: u16, body: F) -> anyhow::Result<()>
where
    F: std::future::Future<Output = anyhow::Result<()>>,
{
    let telemetry = init(service, default_metrics_port)?;
    let outcome = body.await;
    if let Err(err) = &outcome {
        tracing::error!(service, "exiting: {err:#}");
    }
    telemetry.shutdown().await;
    outcome
}

/// [`init`] for a one-off job: no metrics endpoint (nothing would scrape it in time), and logs
/// on stderr (its stdout is its output).
pub fn init_job(service: &'static str) -> Result<Telemetry, TelemetryError> {
    let config = TelemetryConfig {
        metrics_addr: None,
        logs_to_stderr: true,
        ..TelemetryConfig::from_env(0)?
    };
    start(service, config)
}

fn start(service: &'static str, config: TelemetryConfig) -> Result<Telemetry, TelemetryError> {
    let traces = traces::TracePipeline::start(service, config.export_traces)?;
    // RUST_LOG filters the log lines only: traces always get the mesh's info-level spans, so
    // quieter logs never cut a trace (or the context other services receive) short.
    let log_filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let log_lines: Box<dyn Layer<Registry> + Send + Sync> =
        match (config.log_format, config.logs_to_stderr) {
            (LogFormat::Text, false) => text_lines::TextLines::new(std::io::stdout).boxed(),
            (LogFormat::Text, true) => text_lines::TextLines::new(std::io::stderr).boxed(),
            (LogFormat::Json, false) => json_lines::JsonLines::new(std::io::stdout).boxed(),
            (LogFormat::Json, true) => json_lines::JsonLines::new(std::io::stderr).boxed(),
        };
    // Traces get the mesh's info-level spans, never the exporter's own.
    let traced = || {
        Targets::new()
            .with_default(Level::INFO)
            .with_target("opentelemetry", LevelFilter::OFF)
    };
    // Exporting: every span is an OpenTelemetry span. Not exporting: spans only get the ids
    // that are propagated and logged (`span_ids`), not spans that would be dropped unseen.
    let (otel, ids_only) = if config.export_traces {
        let otel = tracing_opentelemetry::layer()
            .with_tracer(traces.tracer())
            .with_threads(false)
            .with_location(false);
        (Some(otel.with_filter(traced())), None)
    } else {
        (
            None,
            Some(span_ids::SpanIdsLayer::default().with_filter(traced())),
        )
    };
    let installed = tracing_subscriber::registry()
        .with(log_lines.with_filter(log_filter))
        .with(otel)
        .with(ids_only)
        .try_init();
    if let Some(addr) = config.metrics_addr {
        prometheus::install(service, addr).map_err(TelemetryError::Metrics)?;
    }
    if installed.is_ok() {
        tracing::info!(
            service,
            export_traces = config.export_traces,
            metrics = ?config.metrics_addr,
            "telemetry initialised"
        );
    }
    Ok(Telemetry { traces })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_format_accepts_text_and_json_only() {
        assert_eq!("JSON".parse::<LogFormat>(), Ok(LogFormat::Json));
        assert_eq!("text".parse::<LogFormat>(), Ok(LogFormat::Text));
        assert!("yaml".parse::<LogFormat>().is_err());
    }
}
