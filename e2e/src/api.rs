//! The mesh as a REST client sees it: requests through the gateway (with the harness's
//! admin token or another), the flow's steps (register, reserve, pay, cancel), waiting for
//! an answer to change, and reading a service's metrics. Starting and stopping the
//! processes is in the crate root.

use std::time::{Duration, Instant};

use crate::{Mesh, Replica, Svc, read, with_token};

impl Mesh {
    /// PATCHes `body` (a JSON value) to `path`; returns the status and the JSON answer.
    pub async fn patch(&self, path: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
        self.patch_as(self.default_token.as_deref(), path, body)
            .await
    }

    /// PATCHes `body` to `path` with `token` (none: no Authorization header).
    pub async fn patch_as(
        &self,
        token: Option<&str>,
        path: &str,
        body: serde_json::Value,
    ) -> (u16, serde_json::Value) {
        let request = with_token(self.bare_http.patch(self.url(path)), token).json(&body);
        read(request.send().await.expect("gateway answers")).await
    }

    /// Polls `GET path` until `done` holds for its JSON answer, at most `limit`; returns the
    /// last answer. Fails the test, showing that answer, when time runs out.
    pub async fn eventually(
        &self,
        path: &str,
        limit: Duration,
        done: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + limit;
        loop {
            let (status, body) = self.get(path).await;
            if status == 200 && done(&body) {
                return body;
            }
            assert!(
                Instant::now() < deadline,
                "GET {path} never reached the expected state within {limit:?}; last: {status} {body}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `svc`'s `/metrics` exposition, if it answers.
    pub async fn metrics_text(&self, svc: Svc) -> Option<String> {
        self.replica_metrics_text((svc, 0)).await
    }

    /// A replica's `/metrics` exposition, if it answers.
    pub async fn replica_metrics_text(&self, key: Replica) -> Option<String> {
        let response = self
            .http
            .get(self.replica_metrics_url(key))
            .send()
            .await
            .ok()?;
        response.text().await.ok()
    }

    /// The sum of a replica's series of metric `name` whose labels include every one of
    /// `labels` (`key="value"`); 0 when none does or the replica does not answer.
    pub async fn replica_metric_sum(&self, key: Replica, name: &str, labels: &[&str]) -> f64 {
        let text = self.replica_metrics_text(key).await.unwrap_or_default();
        text.lines()
            .filter(|line| {
                line.strip_prefix(name)
                    .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
            })
            .filter(|line| labels.iter().all(|label| line.contains(label)))
            .filter_map(|line| line.rsplit(' ').next()?.trim().parse::<f64>().ok())
            .sum()
    }

    /// The value of a metric with one series (besides the global `service` label) in `svc`'s
    /// `/metrics`, if it is exported.
    pub async fn metric(&self, svc: Svc, name: &str) -> Option<f64> {
        let text = self.metrics_text(svc).await?;
        text.lines().find_map(|line| {
            let rest = line.strip_prefix(name)?;
            if !(rest.starts_with(' ') || rest.starts_with('{')) {
                return None;
            }
            rest.rsplit(' ').next()?.trim().parse().ok()
        })
    }

    /// Polls `svc`'s metric `name` until it equals `expected`, at most `limit`; fails the test
    /// with the last value when time runs out.
    pub async fn metric_becomes(&self, svc: Svc, name: &str, expected: f64, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            let value = self.metric(svc, name).await;
            if value == Some(expected) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{svc:?} {name} never became {expected} within {limit:?}; last: {value:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Registers a product through the gateway and returns its id, failing the test on
    /// anything but 201.
    pub async fn register_product(&self, name: &str) -> i64 {
        let (status, product) = self
            .post("/product", serde_json::json!({ "productName": name }))
            .await;
        assert_eq!(status, 201, "registering {name}: {product}");
        product["id"].as_i64().expect("a product id")
    }

    /// Reserves `product` for `customer` through the gateway (asserting 201); returns the
    /// reservation id.
    pub async fn reserve(&self, product: i64, customer: &str) -> i64 {
        let (status, reservation) = self.reserve_as_buyer(product, customer).await;
        assert_eq!(
            status, 201,
            "reserving {product} for {customer}: {reservation}"
        );
        reservation["id"].as_i64().expect("a reservation id")
    }

    /// `POST /reservation` of `product` by `customer`, with a buyer token of their own; the
    /// answer, whatever it is.
    pub async fn reserve_as_buyer(&self, product: i64, customer: &str) -> (u16, serde_json::Value) {
        self.post_as(
            Some(&self.buyer(customer)),
            "/reservation",
            serde_json::json!({"productId": product, "customerId": customer}),
        )
        .await
    }

    /// Waits (up to `limit`) for the payment made from `reservation`'s event; returns its id.
    pub async fn payment_of(&self, reservation: i64, limit: Duration) -> i64 {
        let payments = self
            .eventually(
                &format!("/payment?reservationId={reservation}"),
                limit,
                |body| body.as_array().is_some_and(|list| list.len() == 1),
            )
            .await;
        payments[0]["id"].as_i64().expect("a payment id")
    }

    /// Pays `payment` through the gateway (`PATCH /paid`, asserting 200); returns the payment.
    pub async fn pay(&self, payment: i64) -> serde_json::Value {
        let (status, paid) = self
            .patch(
                "/paid",
                serde_json::json!({"id": payment, "paymentStatus": "02"}),
            )
            .await;
        assert_eq!(status, 200, "paying {payment}: {paid}");
        paid
    }

    /// Cancels `reservation` through the gateway (`PATCH /reservationupdate`, asserting 200).
    pub async fn cancel(&self, reservation: i64) -> serde_json::Value {
        let (status, cancelled) = self
            .patch(
                "/reservationupdate",
                serde_json::json!({"id": reservation, "reservationStatus": "02"}),
            )
            .await;
        assert_eq!(status, 200, "cancelling {reservation}: {cancelled}");
        cancelled
    }

    /// POSTs `body` (a JSON value) to `path`; returns the status and the JSON answer.
    pub async fn post(&self, path: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
        self.post_as(self.default_token.as_deref(), path, body)
            .await
    }

    /// POSTs `body` to `path` with `token` (none: no Authorization header).
    pub async fn post_as(
        &self,
        token: Option<&str>,
        path: &str,
        body: serde_json::Value,
    ) -> (u16, serde_json::Value) {
        let request = with_token(self.bare_http.post(self.url(path)), token).json(&body);
        read(request.send().await.expect("gateway answers")).await
    }

    /// GETs `path`; returns the status and the JSON answer.
    pub async fn get(&self, path: &str) -> (u16, serde_json::Value) {
        self.get_as(self.default_token.as_deref(), path).await
    }

    /// GETs `path` with `token` (none: no Authorization header).
    pub async fn get_as(&self, token: Option<&str>, path: &str) -> (u16, serde_json::Value) {
        let request = with_token(self.bare_http.get(self.url(path)), token);
        read(request.send().await.expect("gateway answers")).await
    }
}

/// For [`Mesh::eventually`]: the answer's `field` reads `expected`.
pub fn field_is(
    field: &'static str,
    expected: &'static str,
) -> impl Fn(&serde_json::Value) -> bool {
    move |body| body[field] == expected
}
