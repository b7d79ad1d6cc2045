//! product-svc's gRPC API against a real PostgreSQL (a fresh database per test) and, once, the
//! embedded SQLite default.

use mesh_core::db::DbTarget;
use mesh_core::service::ServiceConfig;
use mesh_core::testing::{StopOnDrop, TestNats, fresh_postgres_database, serve_until_dropped};
use product_svc::{App, Config};
use reserve_proto::product::v1 as pb;
use reserve_proto::product::v1::product_lock_service_client::ProductLockServiceClient;
use reserve_proto::product::v1::product_service_client::ProductServiceClient;
use tonic::Code;
use tonic::transport::Channel;

struct Running {
    client: ProductServiceClient<Channel>,
    /// The internal listener's lock service.
    lock: ProductLockServiceClient<Channel>,
    _stop: StopOnDrop,
    _nats: TestNats,
}

async fn start_on(db: DbTarget) -> Running {
    let nats = TestNats::start();
    let config = Config {
        service: ServiceConfig::local(db, &nats.url),
        internal_addr: "127.0.0.1:0".parse().expect("an address"),
        faults: Default::default(),
    };
    let app = App::build(config).await.expect("product-svc starts");
    let addr = app.local_addr();
    let internal = app.internal_addr();
    let stop = serve_until_dropped(|shutdown| app.run(shutdown));
    let client = ProductServiceClient::connect(format!("http://{addr}"))
        .await
        .expect("connect");
    let lock = ProductLockServiceClient::connect(format!("http://{internal}"))
        .await
        .expect("connect the internal listener");
    Running {
        client,
        lock,
        _stop: stop,
        _nats: nats,
    }
}

async fn start(label: &str) -> Running {
    start_on(DbTarget::Postgres(fresh_postgres_database(label))).await
}

async fn register(client: &mut ProductServiceClient<Channel>, name: &str) -> pb::Product {
    client
        .register_product(pb::RegisterProductRequest {
            name: name.into(),
            status: 0,
        })
        .await
        .expect("register")
        .into_inner()
}

fn reserve_request(product_id: i64, reservation_id: i64) -> pb::ReserveProductRequest {
    pb::ReserveProductRequest {
        product_id,
        reservation_id,
    }
}

fn release_request(product_id: i64, reservation_id: i64) -> pb::ReleaseProductRequest {
    pb::ReleaseProductRequest {
        product_id,
        reservation_id,
    }
}

#[tokio::test]
async fn registered_products_can_be_read_back() {
    let mut svc = start("product_register").await;
    let phone = register(&mut svc.client, " Phone ").await;
    assert_eq!((phone.id, phone.name.as_str()), (1, "Phone"));
    assert_eq!(phone.status(), pb::ProductStatus::Available);
    register(&mut svc.client, "Tv").await;

    let fetched = svc
        .client
        .get_product(pb::GetProductRequest { id: 1 })
        .await
        .expect("get")
        .into_inner();
    assert_eq!(fetched, phone);
    let all = svc
        .client
        .list_products(pb::ListProductsRequest::default())
        .await
        .expect("list")
        .into_inner()
        .products;
    assert_eq!(
        all.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
        ["Phone", "Tv"]
    );
}

#[tokio::test]
async fn bad_input_is_refused_and_stores_nothing() {
    let mut svc = start("product_bad_input").await;
    let refusals = [
        (String::new(), 0, Code::InvalidArgument),
        ("x".repeat(201), 0, Code::InvalidArgument),
        (
            "Tv".into(),
            pb::ProductStatus::SoldOut as i32,
            Code::InvalidArgument,
        ),
        ("Tv".into(), 42, Code::InvalidArgument),
    ];
    for (name, status, code) in refusals {
        let err = svc
            .client
            .register_product(pb::RegisterProductRequest { name, status })
            .await
            .expect_err("refused");
        assert_eq!(err.code(), code, "{err:?}");
        assert!(!err.message().is_empty());
    }
    let err = svc
        .client
        .get_product(pb::GetProductRequest { id: 0 })
        .await
        .expect_err("id 0");
    assert_eq!(err.code(), Code::InvalidArgument);
    let err = svc
        .client
        .get_product(pb::GetProductRequest { id: 9 })
        .await
        .expect_err("unknown");
    assert_eq!(err.code(), Code::NotFound);
    let err = svc
        .lock
        .reserve_product(reserve_request(9, 1))
        .await
        .expect_err("unknown");
    assert_eq!(err.code(), Code::NotFound);
    let listed = svc
        .client
        .list_products(pb::ListProductsRequest::default())
        .await
        .expect("list")
        .into_inner();
    assert!(listed.products.is_empty());
}

#[tokio::test]
async fn reserve_is_idempotent_and_exclusive() {
    let mut svc = start("product_reserve").await;
    let product = register(&mut svc.client, "Phone").await;

    let locked = svc
        .lock
        .reserve_product(reserve_request(product.id, 7))
        .await
        .expect("first lock")
        .into_inner();
    assert_eq!(locked.status(), pb::ProductStatus::Pending);
    assert_eq!(locked.reservation_id, 7);

    // A retry of the same reservation's call succeeds again.
    let again = svc
        .lock
        .reserve_product(reserve_request(product.id, 7))
        .await
        .expect("retried lock")
        .into_inner();
    assert_eq!(again, locked);

    // Another reservation is refused, and the holder is unchanged.
    let err = svc
        .lock
        .reserve_product(reserve_request(product.id, 8))
        .await
        .expect_err("taken");
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(err.message().contains("PENDING"), "{}", err.message());
    let current = svc
        .client
        .get_product(pb::GetProductRequest { id: product.id })
        .await
        .expect("get")
        .into_inner();
    assert_eq!(current.reservation_id, 7);
}

#[tokio::test]
async fn only_the_holder_releases() {
    let mut svc = start("product_release").await;
    let product = register(&mut svc.client, "Phone").await;
    svc.lock
        .reserve_product(reserve_request(product.id, 7))
        .await
        .expect("lock");

    let untouched = svc
        .lock
        .release_product(release_request(product.id, 8))
        .await
        .expect("a stranger's release is a no-op")
        .into_inner();
    assert_eq!(untouched.status(), pb::ProductStatus::Pending);

    let released = svc
        .lock
        .release_product(release_request(product.id, 7))
        .await
        .expect("holder releases")
        .into_inner();
    assert_eq!(released.status(), pb::ProductStatus::Available);
    assert_eq!(released.reservation_id, 0);

    // Releasing again is harmless, and the product can be taken by someone else.
    svc.lock
        .release_product(release_request(product.id, 7))
        .await
        .expect("idempotent release");
    svc.lock
        .reserve_product(reserve_request(product.id, 9))
        .await
        .expect("free again");
}

#[tokio::test]
async fn a_lock_arriving_after_its_reservation_was_released_takes_nothing() {
    let mut svc = start("product_fenced").await;
    let product = register(&mut svc.client, "Phone").await;
    // The reconciler released reservation 7's abandoned intent before its lock arrived.
    svc.lock
        .release_product(release_request(product.id, 7))
        .await
        .expect("release before any lock");
    let late = svc
        .lock
        .reserve_product(reserve_request(product.id, 7))
        .await
        .expect_err("the late lock is fenced");
    assert_eq!(late.code(), Code::FailedPrecondition);
    assert!(
        late.message().contains("already released"),
        "{}",
        late.message()
    );
    let current = svc
        .client
        .get_product(pb::GetProductRequest { id: product.id })
        .await
        .expect("get")
        .into_inner();
    assert_eq!(current.status(), pb::ProductStatus::Available);
    svc.lock
        .reserve_product(reserve_request(product.id, 8))
        .await
        .expect("a live reservation still locks it");
}

#[derive(diesel::QueryableByName)]
struct Waiting {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    waiting: i64,
}

#[tokio::test]
async fn a_lock_whose_caller_gave_up_is_not_committed() {
    use diesel::connection::SimpleConnection;
    use diesel::{Connection, PgConnection, RunQueryDsl};

    let url = fresh_postgres_database("product_late_commit");
    let mut svc = start_on(DbTarget::Postgres(url.clone())).await;
    let product = register(&mut svc.client, "Phone").await;
    // Another transaction holds the product's row, so the lock waits on it past the caller's
    // deadline (as it would for a pooled connection under load).
    let mut holder = PgConnection::establish(&url).expect("connect");
    holder
        .batch_execute(&format!(
            "BEGIN; SELECT id FROM products WHERE id = {} FOR UPDATE",
            product.id
        ))
        .expect("hold the row");
    let caller_waits_ms: i64 = 300;
    let mut request = tonic::Request::new(reserve_request(product.id, 7));
    request.set_timeout(std::time::Duration::from_millis(
        caller_waits_ms.unsigned_abs(),
    ));
    let gave_up = svc
        .lock
        .reserve_product(request)
        .await
        .expect_err("the caller gives up");
    assert!(
        matches!(gave_up.code(), Code::DeadlineExceeded | Code::Cancelled),
        "{gave_up:?}"
    );
    // Wait until product-svc's statement is queued behind the held row and has waited there
    // longer than the caller would, on the database's clock (which counts the lock's deadline
    // from the statement's arrival, a little after the caller's), then let the row go.
    let mut watcher = PgConnection::establish(&url).expect("connect");
    let queued = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let found: Waiting = diesel::sql_query(
            "SELECT count(*) AS waiting FROM pg_stat_activity \
             WHERE datname = current_database() AND wait_event_type = 'Lock' \
               AND clock_timestamp() - query_start > $1 * interval '1 ms'",
        )
        .bind::<diesel::sql_types::BigInt, _>(caller_waits_ms)
        .get_result(&mut watcher)
        .expect("pg_stat_activity");
        if found.waiting > 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < queued,
            "the lock never waited past its deadline"
        );
        std::thread::yield_now();
    }
    holder.batch_execute("COMMIT").expect("let the row go");
    // The next buyer waits behind the late lock; it wins only if the late lock rolled back.
    let next = svc
        .lock
        .reserve_product(reserve_request(product.id, 8))
        .await
        .expect("the late lock was not committed, so the product is free");
    assert_eq!(next.into_inner().reservation_id, 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_locks_have_exactly_one_winner() {
    let mut svc = start("product_race").await;
    let product = register(&mut svc.client, "Ticket").await;
    let attempts: Vec<_> = (1..=50)
        .map(|reservation| {
            let mut lock = svc.lock.clone();
            tokio::spawn(async move {
                lock.reserve_product(reserve_request(product.id, reservation))
                    .await
            })
        })
        .collect();
    let mut winners = Vec::new();
    for (reservation, attempt) in (1..=50).zip(attempts) {
        match attempt.await.expect("task") {
            Ok(_) => winners.push(reservation),
            Err(status) => assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "winners: {winners:?}");
    let current = svc
        .client
        .get_product(pb::GetProductRequest { id: product.id })
        .await
        .expect("get")
        .into_inner();
    assert_eq!(current.reservation_id, winners[0]);
}

/// Locks arriving together are taken by one batch (two statements for all of them): each
/// takes its own product, a retried lock of the same reservation succeeds beside the first,
/// a lock for a product that does not exist or is taken is refused, and none of them
/// disturbs the others.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn locks_arriving_together_each_take_their_own_product() {
    let mut svc = start("product_batch").await;
    let mut products = Vec::new();
    for n in 0..40 {
        products.push(register(&mut svc.client, &format!("Item {n}")).await.id);
    }
    svc.lock
        .reserve_product(reserve_request(products[0], 1000))
        .await
        .expect("taken before the batch");
    // Reservation 100 + n wants product n, twice for every fifth (a retry racing the first
    // call); reservation 2000 wants product 0, taken; reservation 3000 a product that does
    // not exist.
    let mut wanted: Vec<(i64, i64)> = (1..40).map(|n| (products[n], 100 + n as i64)).collect();
    wanted.extend((1..40).step_by(5).map(|n| (products[n], 100 + n as i64)));
    wanted.push((products[0], 2000));
    wanted.push((999_999, 3000));
    let calls: Vec<_> = wanted
        .iter()
        .map(|&(product, reservation)| {
            let mut lock = svc.lock.clone();
            tokio::spawn(async move {
                let answer = lock
                    .reserve_product(reserve_request(product, reservation))
                    .await;
                (product, reservation, answer)
            })
        })
        .collect();
    for call in calls {
        let (product, reservation, answer) = call.await.expect("task");
        match reservation {
            2000 => {
                let err = answer.expect_err("product 0 is taken");
                assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
            }
            3000 => {
                let err = answer.expect_err("no such product");
                assert_eq!(err.code(), Code::NotFound, "{err:?}");
            }
            _ => {
                let locked = answer.expect("its own product").into_inner();
                assert_eq!((locked.id, locked.reservation_id), (product, reservation));
                assert_eq!(locked.status(), pb::ProductStatus::Pending);
            }
        }
    }
    for (n, &id) in products.iter().enumerate() {
        let current = svc
            .client
            .get_product(pb::GetProductRequest { id })
            .await
            .expect("get")
            .into_inner();
        let holder = if n == 0 { 1000 } else { 100 + n as i64 };
        assert_eq!(current.reservation_id, holder, "product {n}");
    }
}

#[tokio::test]
async fn the_embedded_sqlite_default_works_too() {
    let dir = std::env::temp_dir().join(format!(
        "product-svc-test-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default()
    ));
    let mut svc = start_on(DbTarget::SqliteFile(dir.join("product.sqlite3"))).await;
    let product = register(&mut svc.client, "Phone").await;
    svc.lock
        .reserve_product(reserve_request(product.id, 1))
        .await
        .expect("lock");
    let err = svc
        .lock
        .reserve_product(reserve_request(product.id, 2))
        .await
        .expect_err("taken");
    assert_eq!(err.code(), Code::FailedPrecondition);
    drop(svc);
    let _ = std::fs::remove_dir_all(dir);
}
