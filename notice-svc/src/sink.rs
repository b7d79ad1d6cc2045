//! Where notifications go: the log (default) or a webhook. A messenger such as KakaoTalk is
//! configured as a webhook. A sink only attempts one delivery; retries, back-off and giving up
//! are the dispatcher's.

use std::time::Duration;

use serde::Serialize;

use crate::domain::Notice;
use crate::signature::{self, WebhookSecret};

/// A configured sink.
#[derive(Clone, Debug)]
pub enum Sink {
    /// One log line per notification.
    Log,
    /// An HTTP POST of JSON per notification.
    Webhook(Webhook),
}

/// A webhook endpoint. Its URL is a credential (for a messenger it is the token), so it is
/// never printed: not in logs, not in `last_error`.
#[derive(Clone)]
pub struct Webhook {
    url: String,
    secret: WebhookSecret,
    client: reqwest::Client,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Webhook(…)")
    }
}

impl Webhook {
    /// A webhook posting to `url` (`http://` or `https://`, rustls), signing each delivery
    /// with `secret`, giving up on an attempt after `timeout`.
    pub fn new(url: String, secret: WebhookSecret, timeout: Duration) -> Result<Self, String> {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err("webhook URL must start with http:// or https://".into());
        }
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|err| err.to_string())?;
        Ok(Self {
            url,
            secret,
            client,
        })
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
                    reservation = notice.reservation_id.get(),
                    event = %notice.event_type,
                    "NOTICE {}",
                    notice.message
                );
                Ok(())
            }
            Self::Webhook(webhook) => {
                let body = WebhookBody {
                    event_id: &notice.event_id,
                    notice_id: notice.id.get(),
                    customer_id: &notice.customer_id,
                    event_type: &notice.event_type,
                    reservation_id: notice.reservation_id.get(),
                    message: &notice.message,
                    created_at_unix_ms: notice.created_at_ms,
                };
                let body = serde_json::to_vec(&body).map_err(|err| err.to_string())?;
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_secs();
                let response = webhook
                    .client
                    .post(&webhook.url)
                    .header("Idempotency-Key", &notice.event_id)
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .header(signature::HEADER, webhook.secret.sign(now, &body))
                    .headers(trace_headers())
                    .body(body)
                    .send()
                    .await
                    // Without the URL: it is a credential, and this reason is logged and stored.
                    .map_err(|err| format!("webhook unreachable: {}", err.without_url()))?;
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
