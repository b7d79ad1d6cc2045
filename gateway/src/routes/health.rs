//! Probes: `/healthz` says the process is alive; `/readyz` and `/actuator/health` (the path
//! the original's probes used) say whether every upstream service answers SERVING.

use axum::Json;
use axum::extract::State;
use http::StatusCode;
use serde_json::{Map, Value, json};

use crate::upstream::Upstreams;

/// Liveness: the gateway answers.
#[utoipa::path(get, path = "/healthz", operation_id = "live", tag = "health",
    responses((status = 200, description = "Alive", body = Object, example = json!({"status": "UP"}))))]
pub(super) async fn live() -> Json<Value> {
    Json(json!({ "status": "UP" }))
}

/// Readiness: 200 when every upstream is SERVING, else 503 naming the ones that are not.
#[utoipa::path(get, path = "/readyz", operation_id = "ready", tag = "health",
    responses(
        (status = 200, description = "Every service SERVING", body = Object),
        (status = 503, description = "Some service is not", body = Object)
    ))]
pub(super) async fn ready(State(upstreams): State<Upstreams>) -> (StatusCode, Json<Value>) {
    let results = upstreams.health().await;
    let all_up = results.iter().all(|(_, serving)| *serving);
    let components: Map<String, Value> = results
        .into_iter()
        .map(|(name, serving)| {
            let status = if serving { "UP" } else { "DOWN" };
            (name.to_owned(), json!({ "status": status }))
        })
        .collect();
    let (code, status) = if all_up {
        (StatusCode::OK, "UP")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "DOWN")
    };
    (
        code,
        Json(json!({ "status": status, "components": components })),
    )
}

/// `GET /actuator/health` (the original probes' path): the same as `/readyz`.
#[utoipa::path(get, path = "/actuator/health", operation_id = "actuator_health", tag = "health",
    responses(
        (status = 200, description = "Every service SERVING", body = Object),
        (status = 503, description = "Some service is not", body = Object)
    ))]
pub(super) async fn actuator(state: State<Upstreams>) -> (StatusCode, Json<Value>) {
    ready(state).await
}
