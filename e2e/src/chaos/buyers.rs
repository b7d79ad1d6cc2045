//! The buyers of a chaos run: each reserves a random product (many race for the same ones),
//! then pays or cancels (sometimes both: a refund), through the gateway, with an
//! Idempotency-Key on every change and retries with back-off on 503 or no answer, as a careful
//! client would. What each got is tallied, and every 2xx is kept as evidence the final state
//! must reflect.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::task::JoinSet;

use super::ChaosConfig;
use crate::Mesh;

/// A change a client was told succeeded.
#[derive(Clone, Copy, Debug)]
pub(super) enum Evidence {
    /// 201 for this reservation.
    Reserved(i64),
    /// 200 for paying this payment.
    Paid(i64),
    /// 200 for cancelling this reservation.
    Cancelled(i64),
}

/// What the buyers saw.
#[derive(Debug, Default)]
pub(super) struct Seen {
    /// Operations that got a final answer.
    pub ops: u64,
    /// 2xx answers.
    pub ok: u64,
    /// 503 answers.
    pub unavailable: u64,
    /// Other answers, and no answer at all.
    pub other: u64,
    /// Every 2xx, for the final check.
    pub evidence: Vec<Evidence>,
}

/// The running buyers.
pub(super) struct Load {
    tasks: JoinSet<()>,
    seen: Arc<Mutex<Seen>>,
}

impl Load {
    /// Waits for the buyers to finish their current operation (bounded) and returns the tally.
    pub(super) async fn finish(mut self) -> Seen {
        let all = async { while self.tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(Duration::from_secs(30), all)
            .await
            .is_err()
        {
            self.tasks.abort_all();
        }
        std::mem::take(
            &mut *self
                .seen
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }
}

/// Registers `count` products through the gateway, 16 at a time.
pub(super) async fn register_products(mesh: &Mesh, count: usize) {
    let mut registering = JoinSet::new();
    for i in 0..count {
        let request = mesh
            .authorized(mesh.http.post(mesh.url("/product")))
            .json(&json!({"productName": format!("Item {i}")}));
        registering.spawn(async move { request.send().await.map(|r| r.status().as_u16()) });
        if registering.len() >= 16 {
            let _ = registering.join_next().await;
        }
    }
    while registering.join_next().await.is_some() {}
}

/// Starts `config.buyers` buyers; they stop at their next operation once `stop` is set.
pub(super) fn start(mesh: &Mesh, config: &ChaosConfig, stop: Arc<AtomicBool>) -> Load {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let mut tasks = JoinSet::new();
    for index in 0..config.buyers {
        let customer = format!("buyer{index}");
        let buyer = Buyer {
            http: mesh.http.clone(),
            base: mesh.url(""),
            token: mesh.buyer(&customer),
            customer,
            products: config.products as i64,
            rng: fastrand::Rng::with_seed(config.seed.wrapping_add(index as u64)),
            seen: Arc::clone(&seen),
            stop: Arc::clone(&stop),
        };
        tasks.spawn(buyer.run());
    }
    Load { tasks, seen }
}

struct Buyer {
    http: reqwest::Client,
    base: String,
    /// The buyer's own bearer token: it reserves, pays and cancels only its own.
    token: String,
    customer: String,
    products: i64,
    rng: fastrand::Rng,
    seen: Arc<Mutex<Seen>>,
    stop: Arc<AtomicBool>,
}

impl Buyer {
    async fn run(mut self) {
        let mut turn = 0u64;
        while !self.stop.load(Ordering::SeqCst) {
            turn += 1;
            let product = self.rng.i64(1..=self.products);
            let body = json!({"productId": product, "customerId": self.customer});
            let key = format!("{}-{turn}-reserve", self.customer);
            let Some((201, reservation)) = self
                .call(reqwest::Method::POST, "/reservation", &key, body)
                .await
            else {
                continue;
            };
            let Some(reservation) = reservation["id"].as_i64() else {
                continue;
            };
            self.record(Evidence::Reserved(reservation));
            let pays = self.rng.f64() < 0.6;
            let refunds = pays && self.rng.f64() < 0.2;
            if pays && let Some(payment) = self.payment_of(reservation).await {
                let body = json!({"id": payment, "paymentStatus": "02"});
                let key = format!("{}-{turn}-pay", self.customer);
                if let Some((200, _)) = self.call(reqwest::Method::PATCH, "/paid", &key, body).await
                {
                    self.record(Evidence::Paid(payment));
                }
            }
            if !pays || refunds {
                let body = json!({"id": reservation, "reservationStatus": "02"});
                let key = format!("{}-{turn}-cancel", self.customer);
                if let Some((200, _)) = self
                    .call(reqwest::Method::PATCH, "/reservationupdate", &key, body)
                    .await
                {
                    self.record(Evidence::Cancelled(reservation));
                }
            }
        }
    }

    fn tally(&self, update: impl FnOnce(&mut Seen)) {
        update(
            &mut self
                .seen
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
    }

    fn record(&self, evidence: Evidence) {
        self.tally(|seen| seen.evidence.push(evidence));
    }

    /// Sends a change with its idempotency key, retrying 503s and lost answers with back-off
    /// (the same key each time); returns the final answer, or `None` if there was none.
    async fn call(
        &mut self,
        method: reqwest::Method,
        path: &str,
        key: &str,
        body: Value,
    ) -> Option<(u16, Value)> {
        let mut backoff = Duration::from_millis(100);
        let give_up = Instant::now() + Duration::from_secs(20);
        loop {
            let sent = self
                .http
                .request(method.clone(), format!("{}{path}", self.base))
                .bearer_auth(&self.token)
                .header("Idempotency-Key", key)
                .timeout(Duration::from_secs(10))
                .json(&body)
                .send()
                .await;
            match sent {
                Ok(response) if response.status().as_u16() != 503 => {
                    let (status, answer) = crate::read(response).await;
                    self.tally(|seen| {
                        seen.ops += 1;
                        if (200..300).contains(&status) {
                            seen.ok += 1;
                        } else {
                            seen.other += 1;
                        }
                    });
                    return Some((status, answer));
                }
                Ok(_) => self.tally(|seen| seen.unavailable += 1),
                Err(_) => self.tally(|seen| seen.other += 1),
            }
            if Instant::now() + backoff > give_up {
                return None;
            }
            let jitter = Duration::from_millis(self.rng.u64(0..=backoff.as_millis() as u64 / 2));
            tokio::time::sleep(backoff + jitter).await;
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
    }

    /// The payment of `reservation` once it exists (it is created from the event).
    async fn payment_of(&self, reservation: i64) -> Option<i64> {
        let until = Instant::now() + Duration::from_secs(20);
        while Instant::now() < until {
            let answer = self
                .http
                .get(format!("{}/payment?reservationId={reservation}", self.base))
                .bearer_auth(&self.token)
                .timeout(Duration::from_secs(5))
                .send()
                .await;
            if let Ok(response) = answer
                && response.status().is_success()
                && let Ok(payments) = response.json::<Value>().await
                && let Some(id) = payments.get(0).and_then(|payment| payment["id"].as_i64())
            {
                return Some(id);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        None
    }
}
