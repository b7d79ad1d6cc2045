//! Where notifications go: the log (default) or a webhook. A messenger such as KakaoTalk is
//! configured as a webhook. A sink only attempts one delivery; retries, back-off and giving up
//! are the dispatcher's.

use std::time::Duration;

use reserve_proto::notice::v1::Notice;
use serde::Serialize;

/// A configured sink.
#[derive(Clone, Debug)]
pub enum Sink {
    /// One log line per notification.
    Log,
    /// An HTTP POST of JSON per notification.
    Webhook(Webhook),
}

/// A webhook endpoint.
#[derive(Clone, Debug)]
pub struct Webhook {
    url: String,
    client: reqwest::Client,
}

impl Webhook {
    /// A webhook posting to `url` (http), giving up on an attempt after `timeout`.
    pub fn new(url: String, timeout: Duration) -> Result<Self, String> {
        if !url.starts_with("http://") {
            return Err(format!(
                "webhook URL must start with http:// (got {url:?}); put TLS in an egress proxy"
            ));
        }
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|err| err.to_string())?;
        Ok(Self { url, client })
    }
}

/// The JSON a webhook receives. `eventId` (also the `Idempotency-Key` header) is the same on
/// every attempt, so a receiver can drop a repeat after a lost response.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WebhookBody<'a> {
    event_id: &'a str,
    notice_id: i64,
    customer_id: &'a str,
    event_type: &'a str,
    reservation_id: i64,
    message: &'a str,
    created_at_unix_ms: i64,
}

impl Sink {
    /// Attempts one delivery; `Err` carries the reason.
    pub async fn deliver(&self, notice: &Notice) -> Result<(), String> {
        match self {
            Self::Log => {
                tracing::info!(
                    customer = %notice.customer_id,
                    reservation = notice.reservation_id,
                    event = %notice.event_type,
                    "NOTICE {}",
                    notice.message
                );
                Ok(())
            }
            Self::Webhook(webhook) => {
                let body = WebhookBody {
                    event_id: &notice.event_id,
                    notice_id: notice.id,
                    customer_id: &notice.customer_id,
                    event_type: &notice.event_type,
                    reservation_id: notice.reservation_id,
                    message: &notice.message,
                    created_at_unix_ms: notice.created_at_unix_ms,
                };
                let response = webhook
                    .client
                    .post(&webhook.url)
                    .header("Idempotency-Key", &notice.event_id)
                    .headers(trace_headers())
                    .json(&body)
                    .send()
                    .await
                    .map_err(|err| format!("webhook unreachable: {err}"))?;
                if response.status().is_success() {
                    Ok(())
                } else {
                    Err(format!("webhook answered {}", response.status()))
                }
            }
        }
    }
}

/// The delivery span's context as a `traceparent` header, so a traced webhook joins the trace.
fn trace_headers() -> reqwest::header::HeaderMap {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(value) = mesh_core::trace_context::current_traceparent()
        .and_then(|value| reqwest::header::HeaderValue::from_str(&value).ok())
    {
        headers.insert(mesh_core::trace_context::TRACEPARENT, value);
    }
    headers
}
