//! reservation-svc against a real product-svc (in process, on a loopback port) and real
//! PostgreSQL databases, one fresh pair per test.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mesh_core::auth::Role;
use mesh_core::db::DbTarget;
use mesh_core::service::ServiceConfig;
use mesh_core::testing::{
    StopOnDrop, TestNats, as_user, fresh_postgres_database, serve_until_dropped, test_auth,
};
use reservation_svc::product_lock::LockPolicy;
use reservation_svc::reconciler::ReconcilerPolicy;
use reserve_proto::product::v1 as product_pb;
use reserve_proto::product::v1::product_lock_service_client::ProductLockServiceClient;
use reserve_proto::product::v1::product_service_client::ProductServiceClient;
use reserve_proto::reservation::v1 as pb;
use reserve_proto::reservation::v1::reservation_service_client::ReservationServiceClient;
use tonic::Code;
use tonic::transport::Channel;

fn free_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], mesh_core::testing::free_port()))
}

/// A product-svc on `addr`: its client and its stop handle.
struct ProductSvc {
    client: ProductServiceClient<Channel>,
    lock: ProductLockServiceClient<Channel>,
    internal_addr: SocketAddr,
    _stop: StopOnDrop,
}

async fn start_product_svc(addr: SocketAddr, label: &str, nats: &TestNats) -> ProductSvc {
    start_product_svc_on(
        addr,
        free_addr(),
        DbTarget::Postgres(fresh_postgres_database(label)),
        nats,
    )
    .await
}

/// A product-svc serving its public API on `addr` and its lock on `internal_addr`.
async fn start_product_svc_on(
    addr: SocketAddr,
    internal_addr: SocketAddr,
    db: DbTarget,
    nats: &TestNats,
) -> ProductSvc {
    let config = product_svc::Config {
        service: ServiceConfig {
            grpc_addr: addr,
            auth: test_auth(),
            ..ServiceConfig::local(db, &nats.url)
        },
        internal_addr,
        faults: Default::default(),
    };
    let app = product_svc::App::build(config)
        .await
        .expect("product-svc starts");
    let addr = app.local_addr();
    let internal_addr = app.internal_addr();
    let stop = serve_until_dropped(|shutdown| app.run(shutdown));
    let client = ProductServiceClient::connect(format!("http://{addr}"))
        .await
        .expect("connect product-svc");
    let lock = ProductLockServiceClient::connect(format!("http://{internal_addr}"))
        .await
        .expect("connect product-svc's internal listener");
    ProductSvc {
        client,
        lock,
        internal_addr,
        _stop: stop,
    }
}

/// A reservation-svc locking products through product-svc's internal listener at
/// `product_internal`.
async fn start_reservation_svc(
    product_internal: SocketAddr,
    label: &str,
    lock: LockPolicy,
    reconciler: ReconcilerPolicy,
    nats: &TestNats,
) -> (ReservationServiceClient<Channel>, StopOnDrop) {
    let config = reservation_svc::Config {
        service: ServiceConfig {
            db_pool_size: 16,
            auth: test_auth(),
            ..ServiceConfig::local(
                DbTarget::Postgres(fresh_postgres_database(label)),
                &nats.url,
            )
        },
        product_internal_url: format!("http://{product_internal}"),
        upstream_refresh: mesh_core::upstream::DEFAULT_REFRESH,
        lock,
        reconciler,
    };
    let app = reservation_svc::App::build(config)
        .await
        .expect("reservation-svc starts");
    let url = format!("http://{}", app.local_addr());
    let stop = serve_until_dropped(|shutdown| app.run(shutdown));
    let client = ReservationServiceClient::connect(url)
        .await
        .expect("connect reservation-svc");
    (client, stop)
}

/// product-svc and reservation-svc with the default lock and reconciler policies on one
/// private NATS; `label` names their databases. Dropped, reservation-svc stops first.
struct Pair {
    _stop_reservations: StopOnDrop,
    reservations: ReservationServiceClient<Channel>,
    products: ProductSvc,
    _nats: TestNats,
}

async fn start_pair(label: &str) -> Pair {
    let nats = TestNats::start();
    let products = start_product_svc(free_addr(), &format!("{label}_product"), &nats).await;
    let (reservations, stop) = start_reservation_svc(
        products.internal_addr,
        &format!("{label}_reservation"),
        LockPolicy::default(),
        default_reconciler(),
        &nats,
    )
    .await;
    Pair {
        _stop_reservations: stop,
        reservations,
        products,
        _nats: nats,
    }
}

fn default_reconciler() -> ReconcilerPolicy {
    ReconcilerPolicy {
        interval: Duration::from_millis(100),
        grace: Duration::from_millis(5000),
    }
}

async fn register(products: &mut ProductServiceClient<Channel>, name: &str) -> i64 {
    products
        .register_product(as_user(
            product_pb::RegisterProductRequest {
                name: name.into(),
                status: 0,
            },
            "lee",
            &[Role::Seller],
        ))
        .await
        .expect("register")
        .into_inner()
        .id
}

async fn product(products: &mut ProductServiceClient<Channel>, id: i64) -> product_pb::Product {
    products
        .get_product(product_pb::GetProductRequest { id })
        .await
        .expect("get product")
        .into_inner()
}

async fn visible(reservations: &mut ReservationServiceClient<Channel>) -> Vec<pb::Reservation> {
    reservations
        .list_reservations(as_admin(pb::ListReservationsRequest::default()))
        .await
        .expect("list")
        .into_inner()
        .reservations
}

/// A reservation request from buyer `customer`, in their own name.
fn reserve(product_id: i64, customer: &str) -> tonic::Request<pb::CreateReservationRequest> {
    as_user(
        pb::CreateReservationRequest {
            product_id,
            customer_id: customer.into(),
            ..Default::default()
        },
        customer,
        &[Role::Buyer],
    )
}

fn as_admin<T>(message: T) -> tonic::Request<T> {
    as_user(message, "ops", &[Role::Admin])
}

#[tokio::test]
async fn placing_locks_the_product_for_the_new_reservation() {
    let Pair {
        mut products,
        mut reservations,
        _stop_reservations,
        _nats,
    } = start_pair("placement_ok").await;
    let id = register(&mut products.client, "Phone").await;
    let placed = reservations
        .create_reservation(reserve(id, "kim"))
        .await
        .expect("reserved")
        .into_inner();
    assert_eq!(placed.status(), pb::ReservationStatus::Reserved);
    assert_eq!(
        (placed.product_id, placed.customer_id.as_str()),
        (id, "kim")
    );

    let locked = product(&mut products.client, id).await;
    assert_eq!(locked.status(), product_pb::ProductStatus::Pending);
    assert_eq!(locked.reservation_id, placed.id);
    let fetched = reservations
        .get_reservation(as_admin(pb::GetReservationRequest { id: placed.id }))
        .await
        .expect("get")
        .into_inner();
    assert_eq!(fetched, placed);
}

#[tokio::test]
async fn refusals_store_nothing() {
    let Pair {
        mut products,
        mut reservations,
        _stop_reservations,
        _nats,
    } = start_pair("placement_refused").await;
    let id = register(&mut products.client, "Phone").await;
    reservations
        .create_reservation(reserve(id, "kim"))
        .await
        .expect("first buyer");

    let cases = [
        (reserve(id, "lee"), Code::FailedPrecondition),
        (reserve(99, "lee"), Code::NotFound),
        (reserve(0, "lee"), Code::InvalidArgument),
        (reserve(id, &"x".repeat(200)), Code::InvalidArgument),
    ];
    for (request, code) in cases {
        let err = reservations
            .create_reservation(request)
            .await
            .expect_err("refused");
        assert_eq!(err.code(), code, "{err:?}");
    }
    let err = reservations
        .get_reservation(as_admin(pb::GetReservationRequest { id: 2 }))
        .await
        .expect_err("the refused intent is not a reservation");
    assert_eq!(err.code(), Code::NotFound);
    let all = visible(&mut reservations).await;
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(all[0].customer_id, "kim");
}

/// A caller with too little time left for the lock (its request queued for most of its
/// deadline) is told to try again shortly before anything is written or locked.
#[tokio::test]
async fn a_request_out_of_time_is_refused_before_it_locks_anything() {
    let Pair {
        mut products,
        mut reservations,
        _stop_reservations,
        _nats,
    } = start_pair("placement_late").await;
    let id = register(&mut products.client, "Phone").await;
    let mut late = reserve(id, "kim");
    // Less than the answer margin (60 ms) plus the least time worth a lock (100 ms).
    late.set_timeout(std::time::Duration::from_millis(120));
    let err = reservations
        .create_reservation(late)
        .await
        .expect_err("too late to place");
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert!(err.message().contains("try again shortly"), "{err:?}");
    assert_eq!(
        product(&mut products.client, id).await.status(),
        product_pb::ProductStatus::Available,
        "nothing was locked"
    );
    assert!(visible(&mut reservations).await.is_empty());
    // With time to spare, the same buyer gets it.
    reservations
        .create_reservation(reserve(id, "kim"))
        .await
        .expect("placed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_buyers_get_one_reservation() {
    let Pair {
        mut products,
        reservations,
        _stop_reservations,
        _nats,
    } = start_pair("placement_race").await;
    let id = register(&mut products.client, "Ticket").await;
    let buyers: Vec<_> = (0..40)
        .map(|buyer| {
            let mut client = reservations.clone();
            tokio::spawn(async move {
                client
                    .create_reservation(reserve(id, &format!("buyer-{buyer}")))
                    .await
                    .map(|response| response.into_inner().id)
                    .map_err(|status| status.code())
            })
        })
        .collect();
    let mut winners = Vec::new();
    for buyer in buyers {
        match buyer.await.expect("task") {
            Ok(reservation) => winners.push(reservation),
            Err(code) => assert_eq!(code, Code::FailedPrecondition),
        }
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    let mut client = reservations.clone();
    let all = visible(&mut client).await;
    assert_eq!(all.iter().map(|r| r.id).collect::<Vec<_>>(), winners);
    assert_eq!(
        product(&mut products.client, id).await.reservation_id,
        winners[0]
    );
}

/// Placements arriving together are recorded, locked and confirmed in batches: each buyer's
/// reservation is for the product they asked for, holds that product and shows its seller,
/// also when one buyer asks for several products at once or sends the same request twice
/// (two identical intents in one insert; one of them gets the product).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn placements_arriving_together_each_reserve_what_they_asked_for() {
    let Pair {
        mut products,
        reservations,
        _stop_reservations,
        _nats,
    } = start_pair("placement_batch").await;
    let mut ids = Vec::new();
    for n in 0..30 {
        ids.push(register(&mut products.client, &format!("Item {n}")).await);
    }
    // Product n for buyer-n, except products 20..30, all for kim; products 0, 1 and 2 asked
    // for twice by the same buyer.
    let buyer = |n: usize| {
        if n >= 20 {
            "kim".to_owned()
        } else {
            format!("buyer-{n}")
        }
    };
    let mut requests: Vec<(i64, String)> = (0..30).map(|n| (ids[n], buyer(n))).collect();
    requests.extend((0..3).map(|n| (ids[n], buyer(n))));
    let placements: Vec<_> = requests
        .into_iter()
        .map(|(product, customer)| {
            let mut client = reservations.clone();
            tokio::spawn(async move {
                let answer = client
                    .create_reservation(reserve(product, &customer))
                    .await
                    .map(tonic::Response::into_inner)
                    .map_err(|status| status.code());
                (product, customer, answer)
            })
        })
        .collect();
    let mut winners = std::collections::BTreeMap::new();
    for placement in placements {
        let (product, customer, answer) = placement.await.expect("task");
        match answer {
            Ok(placed) => {
                assert_eq!(
                    (placed.product_id, placed.customer_id.as_str()),
                    (product, customer.as_str())
                );
                assert_eq!(placed.status(), pb::ReservationStatus::Reserved);
                assert_eq!(placed.seller_id, "lee");
                assert!(winners.insert(product, placed).is_none(), "two winners");
            }
            Err(code) => assert_eq!(code, Code::FailedPrecondition, "product {product}"),
        }
    }
    assert_eq!(winners.len(), 30, "every product reserved once");
    for (id, placed) in &winners {
        assert_eq!(
            product(&mut products.client, *id).await.reservation_id,
            placed.id
        );
    }
    let mut client = reservations.clone();
    let all = visible(&mut client).await;
    assert_eq!(all.len(), 30);
    for stored in all {
        assert_eq!(winners.get(&stored.product_id), Some(&stored));
    }
}

#[tokio::test]
async fn product_svc_down_fails_fast_and_a_late_lock_is_released() {
    let nats = TestNats::start();
    // product-svc is not started yet: its port refuses connections. Its database is made now,
    // so that starting it later is quick next to the reconciler's grace period.
    let product_addr = free_addr();
    let product_db = DbTarget::Postgres(fresh_postgres_database("placement_down_product"));
    let lock = LockPolicy {
        deadline: Duration::from_millis(800),
        ..LockPolicy::default()
    };
    let (mut reservations, _r) = start_reservation_svc(
        product_addr,
        "placement_down_reservation",
        lock,
        ReconcilerPolicy {
            interval: Duration::from_millis(100),
            // Must outlast starting product-svc and the late lock below, as in production it
            // must outlast any lock still in flight.
            grace: Duration::from_millis(3000),
        },
        &nats,
    )
    .await;

    let started = Instant::now();
    let err = reservations
        .create_reservation(reserve(1, "kim"))
        .await
        .expect_err("product-svc is down");
    let elapsed = started.elapsed();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert!(
        err.message().contains("try again shortly"),
        "{}",
        err.message()
    );
    assert!(
        elapsed < Duration::from_millis(800),
        "refused connections must fail fast: {elapsed:?}"
    );
    assert!(visible(&mut reservations).await.is_empty());

    // product-svc comes up, and the lock request of that failed call lands late: the product
    // is now locked by reservation 1, which does not exist.
    let mut products = start_product_svc_on(free_addr(), product_addr, product_db, &nats).await;
    let id = register(&mut products.client, "Phone").await;
    products
        .lock
        .reserve_product(product_pb::ReserveProductRequest {
            product_id: id,
            reservation_id: 1,
        })
        .await
        .expect("the late lock");

    let deadline = Instant::now() + Duration::from_secs(10);
    while product(&mut products.client, id).await.status() != product_pb::ProductStatus::Available {
        assert!(
            Instant::now() < deadline,
            "the reconciler never released the ghost lock"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let placed = reservations
        .create_reservation(reserve(id, "kim"))
        .await
        .expect("free again")
        .into_inner();
    assert_eq!(placed.status(), pb::ReservationStatus::Reserved);
}
