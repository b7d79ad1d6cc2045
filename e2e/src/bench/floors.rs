//! This machine's floors, measured in the same run as the mesh: what a bare tonic call and a
//! bare PostgreSQL conditional UPDATE cost here, so a figure reads as a ratio, not an absolute.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Unary calls per second against a bare tonic server (the health service) on this machine,
/// one HTTP/2 channel, 64 calls in flight, 3 s.
pub async fn tonic_echo_floor() -> f64 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (_reporter, health) = tonic_health::server::health_reporter();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(health)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .expect("url")
        .connect()
        .await
        .expect("connect");
    let done = Arc::new(AtomicUsize::new(0));
    let stop = Instant::now() + Duration::from_secs(3);
    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let (channel, done) = (channel.clone(), Arc::clone(&done));
            tokio::spawn(async move {
                let mut client = tonic_health::pb::health_client::HealthClient::new(channel);
                while Instant::now() < stop {
                    if client
                        .check(tonic_health::pb::HealthCheckRequest::default())
                        .await
                        .is_ok()
                    {
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        let _ = task.await;
    }
    done.load(Ordering::Relaxed) as f64 / 3.0
}

/// Conditional single-row UPDATEs per second on this machine's PostgreSQL: 16 connections,
/// 3 s, synchronous commit on (what product-svc's lock does, without the service around it).
pub async fn postgres_update_floor() -> f64 {
    use diesel::connection::SimpleConnection;
    use diesel::{Connection, PgConnection, RunQueryDsl};
    let url = mesh_core::testing::fresh_postgres_database("bench_floor");
    {
        let mut conn = PgConnection::establish(&url).expect("floor database");
        conn.batch_execute(
            "CREATE TABLE floor (id BIGINT PRIMARY KEY, status TEXT NOT NULL, holder BIGINT);
             INSERT INTO floor SELECT g, 'AVAILABLE', NULL FROM generate_series(1, 10000) g;",
        )
        .expect("floor table");
    }
    let done = Arc::new(AtomicUsize::new(0));
    let stop = Instant::now() + Duration::from_secs(3);
    let threads: Vec<_> = (0..16)
        .map(|thread| {
            let (url, done) = (url.clone(), Arc::clone(&done));
            std::thread::spawn(move || {
                let mut conn = PgConnection::establish(&url).expect("connect");
                let mut n: i64 = thread;
                while Instant::now() < stop {
                    let id = 1 + n % 10_000;
                    let sql = format!(
                        "UPDATE floor SET status = CASE status WHEN 'AVAILABLE' THEN 'PENDING' ELSE 'AVAILABLE' END, holder = {n} WHERE id = {id} AND status IN ('AVAILABLE', 'PENDING')"
                    );
                    if diesel::sql_query(sql).execute(&mut conn).is_ok() {
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    n += 16;
                }
            })
        })
        .collect();
    for thread in threads {
        let _ = thread.join();
    }
    done.load(Ordering::Relaxed) as f64 / 3.0
}
