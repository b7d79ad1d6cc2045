//! Live my-page watchers end with their clients, and are capped: through the real gateway and
//! mypage-svc.

use std::time::{Duration, Instant};

use e2e::{Mesh, MeshOptions, Svc};

const SOON: Duration = Duration::from_secs(20);
use reserve_proto::mypage::v1 as pb;
use reserve_proto::mypage::v1::my_page_service_client::MyPageServiceClient;

/// Resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// Opens a stream for `customer` through the gateway and returns the response once its
/// headers arrived (the watcher exists then).
async fn open_stream(mesh: &Mesh, customer: &str) -> reqwest::Response {
    mesh.authorized(
        mesh.http
            .get(mesh.url(&format!("/mypage/stream?customerId={customer}"))),
    )
    .send()
    .await
    .expect("gateway answers")
}

/// Opens 100 streams at once through the gateway, checks each got 200, and drops them all.
async fn open_and_drop_a_hundred(mesh: &Mesh, batch: &str) {
    let mut opening = tokio::task::JoinSet::new();
    for i in 0..100 {
        let request = mesh.authorized(
            mesh.http
                .get(mesh.url(&format!("/mypage/stream?customerId={batch}x{i}"))),
        );
        opening.spawn(async move { request.send().await.expect("gateway answers") });
    }
    let streams = opening.join_all().await;
    assert!(streams.iter().all(|stream| stream.status() == 200));
    // Dropped here: the clients go away.
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_dropped_streams_leave_no_watcher_and_no_memory_behind() {
    let mesh = Mesh::start("watchers_leak", MeshOptions::default()).await;
    let started = rss_kib(mesh.pid(Svc::MyPage));
    // One batch at the test's peak concurrency first: the allocator keeps what a peak needed
    // (3,000 streams leave the same RSS as 1,000), and a leak is what grows past that.
    open_and_drop_a_hundred(&mesh, "warmup").await;
    mesh.metric_becomes(Svc::MyPage, "mypage_watchers", 0.0, SOON)
        .await;
    let before = rss_kib(mesh.pid(Svc::MyPage));

    for batch in 0..10 {
        open_and_drop_a_hundred(&mesh, &format!("buyer{batch}")).await;
    }
    mesh.metric_becomes(Svc::MyPage, "mypage_watchers", 0.0, SOON)
        .await;
    let after = rss_kib(mesh.pid(Svc::MyPage));
    println!(
        "mypage-svc RSS: {started} KiB at start, {before} KiB after the first 100 streams, \
         {after} KiB after 1,000 more"
    );
    assert!(
        after <= before + 5 * 1024,
        "RSS grew from {before} KiB to {after} KiB"
    );
}

#[tokio::test]
async fn streams_past_the_caps_are_refused() {
    let options = MeshOptions::default()
        .everywhere("GATEWAY_MAX_STREAMS", "2")
        .everywhere("MYPAGE_MAX_WATCHERS", "3");
    let mesh = Mesh::start("watchers_cap", options).await;
    let first = open_stream(&mesh, "kim").await;
    let second = open_stream(&mesh, "lee").await;
    assert_eq!(
        (first.status().as_u16(), second.status().as_u16()),
        (200, 200)
    );
    let refused = open_stream(&mesh, "park").await;
    assert_eq!(refused.status(), 503, "the gateway's stream cap");
    let (_, error) = e2e::read(refused).await;
    assert_eq!(error["code"], "try_again_shortly");

    let mut direct = MyPageServiceClient::connect(format!("http://{}", mesh.addr(Svc::MyPage)))
        .await
        .expect("connect");
    let admin = format!("Bearer {}", mesh.admin_token().expect("an admin token"));
    let watch = |customer: &str| {
        mesh_core::auth::grpc::on_behalf_of(
            pb::WatchMyPageRequest {
                customer_id: customer.into(),
            },
            Some(&admin),
        )
    };
    let _third = direct
        .watch_my_page(watch("park"))
        .await
        .expect("third watcher");
    let fourth = direct
        .watch_my_page(watch("choi"))
        .await
        .expect_err("past mypage-svc's cap");
    assert_eq!(fourth.code(), tonic::Code::ResourceExhausted, "{fourth:?}");
    // Naming nobody watches the caller's own page: one more watcher, refused past the cap
    // like any other (not a stream of every buyer's changes).
    let own = direct
        .watch_my_page(watch("  "))
        .await
        .expect_err("past mypage-svc's cap");
    assert_eq!(own.code(), tonic::Code::ResourceExhausted, "{own:?}");

    // A stream that ends frees its slot.
    drop(first);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let again = open_stream(&mesh, "park").await;
        if again.status() == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "the slot never came back");
        tokio::task::yield_now().await;
    }
}
