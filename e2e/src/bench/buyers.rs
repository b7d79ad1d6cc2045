//! The load generator: buyers reserving through the gateway as fast as answers come back,
//! and a sampler of how long a reservation takes to reach its payment and my page.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::Mutex;

use crate::Mesh;

/// Concurrent buyers.
pub const USERS: usize = 100;

/// What the buyers saw.
#[derive(Default)]
pub struct Tally {
    /// 201 answers.
    pub created: usize,
    /// 409 answers (the product was taken).
    pub conflicts: usize,
    /// 503 answers (try again shortly).
    pub unavailable: usize,
    /// Anything else, transport failures included.
    pub other: usize,
    /// Every request's latency.
    pub latencies: Vec<Duration>,
    /// Requests for a product the buyers had already asked for: once they run out of
    /// products they start again from the first, and a reservation rate measured past that
    /// point is capped by the products registered, not by the mesh.
    pub products_reused: usize,
}

/// `USERS` buyers reserving the next product, until `stop`; `products` bounds the ids.
pub async fn buyers(mesh: &Arc<Mesh>, products: usize, run_for: Duration, first: usize) -> Tally {
    let next = Arc::new(AtomicUsize::new(first));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let stop = Instant::now() + run_for;
    let tasks: Vec<_> = (0..USERS)
        .map(|_| {
            let (mesh, next, tally) = (Arc::clone(mesh), Arc::clone(&next), Arc::clone(&tally));
            tokio::spawn(async move {
                let mut mine = Tally::default();
                while Instant::now() < stop {
                    let product = 1 + next.fetch_add(1, Ordering::Relaxed) % products;
                    let started = Instant::now();
                    let status = reserve_once(&mesh, product).await;
                    mine.count(status, started.elapsed());
                }
                tally.lock().await.add(mine);
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("buyer");
    }
    let mut tally = Arc::try_unwrap(tally)
        .map(Mutex::into_inner)
        .unwrap_or_default();
    tally.products_reused = (next.load(Ordering::Relaxed) - first).saturating_sub(products);
    tally
}

impl Tally {
    /// Counts one answer (`0`: no answer) and its latency.
    pub fn count(&mut self, status: u16, latency: Duration) {
        self.latencies.push(latency);
        match status {
            201 => self.created += 1,
            409 => self.conflicts += 1,
            503 => self.unavailable += 1,
            _ => self.other += 1,
        }
    }

    /// Adds another tally's counts.
    pub fn add(&mut self, other: Tally) {
        self.created += other.created;
        self.conflicts += other.conflicts;
        self.unavailable += other.unavailable;
        self.other += other.other;
        self.products_reused += other.products_reused;
        self.latencies.extend(other.latencies);
    }
}

/// One `POST /reservation` of `product` with the harness's token; its status (0: no answer).
pub async fn reserve_once(mesh: &Mesh, product: usize) -> u16 {
    let sent = mesh
        .http
        .post(mesh.url("/reservation"))
        .json(&json!({"productId": product}))
        .send()
        .await;
    match sent {
        Ok(response) => {
            let status = response.status().as_u16();
            let _ = response.bytes().await;
            status
        }
        Err(_) => 0,
    }
}

/// The `q` quantile of sorted latencies, in milliseconds (0 for none).
pub fn percentile(sorted: &[Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[index].as_secs_f64() * 1000.0
}

/// The slowest of `sorted` latencies in ms (0 for none).
pub fn slowest_ms(sorted: &[Duration]) -> f64 {
    sorted.last().map_or(0.0, |l| l.as_secs_f64() * 1000.0)
}

/// Reserves one product for its own buyer and waits until both its payment and its my-page
/// row (with the payment) are readable; returns that time.
pub async fn converge_once(mesh: &Mesh, product: usize) -> Option<Duration> {
    let customer = format!("sampler-{product}");
    let started = Instant::now();
    let product = i64::try_from(product).ok()?;
    let (status, reservation) = mesh.reserve_as_buyer(product, &customer).await;
    if status != 201 {
        return None;
    }
    let payment = format!("/payment?reservationId={}", reservation["id"]);
    let page = format!("/mypage?customerId={customer}");
    loop {
        let (_, payments) = mesh.get(&payment).await;
        let (_, rows) = mesh.get(&page).await;
        if payments.as_array().is_some_and(|l| !l.is_empty())
            && rows[0]["paymentStatus"] == "UNPAID"
        {
            return Some(started.elapsed());
        }
        if started.elapsed() > Duration::from_secs(30) {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}
