//! Identity and access, end to end: every REST route and every gRPC method answered with no
//! token, an expired token, a token for another audience, another user's token and the right
//! token; the internal listener out of the gateway's reach; the reservation rate limit; and
//! no token in any log line.
//!
//! Long (over 700 lines) by design: one table-like test per surface, every route and every gRPC
//! method with every kind of caller, so a gap shows as a missing row.

use std::process::Command;
use std::time::Duration;

use e2e::{Mesh, MeshOptions, Svc, find_tool};
use mesh_core::auth::Role;
use mesh_core::auth::config::{DEFAULT_AUDIENCE, DEV_ISSUER};
use mesh_core::auth::dev_keys::unix_now;
use mesh_core::auth::grpc::on_behalf_of;
use reserve_proto::mypage::v1::WatchMyPageRequest;
use reserve_proto::mypage::v1::my_page_service_client::MyPageServiceClient;
use serde_json::{Value, json};

const SOON: Duration = Duration::from_secs(20);

/// The people of these tests.
struct People {
    /// Seller of the products.
    lee: String,
    /// Buyer of the reservations.
    kim: String,
    /// Another buyer.
    park: String,
    /// Another seller.
    choi: String,
    /// An admin.
    ops: String,
    /// kim's token, expired an hour ago.
    expired: String,
    /// kim's token, for another audience.
    elsewhere: String,
}

impl People {
    fn of(mesh: &Mesh) -> Self {
        let now = unix_now();
        let kim_claims = |changes: Value| {
            let mut claims = json!({"iss": DEV_ISSUER, "aud": DEFAULT_AUDIENCE, "sub": "kim",
                                    "roles": ["buyer"], "nbf": now - 7200, "exp": now + 3600});
            for (name, value) in changes.as_object().into_iter().flatten() {
                claims[name] = value.clone();
            }
            mesh.token_with_claims(claims)
        };
        Self {
            lee: mesh.token("lee", &[Role::Seller]),
            kim: mesh.buyer("kim"),
            park: mesh.buyer("park"),
            choi: mesh.token("choi", &[Role::Seller]),
            ops: mesh.token("ops", &[Role::Admin]),
            expired: kim_claims(json!({"exp": now - 3600})),
            elsewhere: kim_claims(json!({"aud": "another-api"})),
        }
    }
}

/// Sends `method path` with `body` and `token`; the status, the JSON body and whether a
/// `WWW-Authenticate: Bearer` challenge came with it.
async fn call(
    mesh: &Mesh,
    method: &str,
    path: &str,
    body: Option<&Value>,
    token: Option<&str>,
) -> (u16, Value, bool) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("a method");
    let mut request = mesh.bare_http.request(method, mesh.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = request.send().await.expect("gateway answers");
    let challenged = response
        .headers()
        .get("www-authenticate")
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("Bearer"));
    let status = response.status().as_u16();
    let text = if path.starts_with("/mypage/stream") && status == 200 {
        String::from("{}") // an open event stream; its status is the answer
    } else {
        response.text().await.expect("a body")
    };
    let json = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, json, challenged)
}

/// No token, an expired one and one for another audience: 401 with the challenge and a JSON
/// error body, for a route that needs a caller.
async fn refuses_unauthenticated(
    mesh: &Mesh,
    people: &People,
    method: &str,
    path: &str,
    body: Option<&Value>,
) {
    for (label, token) in [
        ("no token", None),
        ("an expired token", Some(people.expired.as_str())),
        ("a wrong-audience token", Some(people.elsewhere.as_str())),
        ("a malformed token", Some("not-a-jwt")),
    ] {
        let (status, error, challenged) = call(mesh, method, path, body, token).await;
        assert_eq!(status, 401, "{method} {path} with {label}: {error}");
        assert!(
            challenged,
            "{method} {path} with {label}: no WWW-Authenticate: Bearer"
        );
        assert_eq!(
            error["code"], "unauthenticated",
            "{method} {path} with {label}"
        );
    }
}

fn ids(list: &Value) -> Vec<i64> {
    list.as_array()
        .into_iter()
        .flatten()
        .filter_map(|row| row["id"].as_i64().or(row["reservationId"].as_i64()))
        .collect()
}

#[tokio::test]
async fn every_rest_route_answers_each_caller_by_the_rules() {
    let mesh = Mesh::start("access_rest", MeshOptions::default()).await;
    let people = People::of(&mesh);

    // POST /product: sellers only; the product records its seller.
    let body = json!({"productName": "Phone"});
    refuses_unauthenticated(&mesh, &people, "POST", "/product", Some(&body)).await;
    let (status, error, _) = call(&mesh, "POST", "/product", Some(&body), Some(&people.kim)).await;
    assert_eq!(
        (status, error["code"].as_str()),
        (403, Some("forbidden")),
        "{error}"
    );
    let (_, products, _) = call(&mesh, "GET", "/products", None, None).await;
    assert_eq!(products, json!([]), "a refused registration stores nothing");
    let mut product_ids = Vec::new();
    for name in ["Phone", "Tv", "Lamp", "Desk"] {
        let body = json!({"productName": name});
        let (status, product, _) =
            call(&mesh, "POST", "/product", Some(&body), Some(&people.lee)).await;
        assert_eq!(status, 201, "{product}");
        product_ids.push(product["id"].as_i64().expect("an id"));
    }

    // Products stay public.
    for path in [
        "/products",
        "/product",
        &format!("/product/{}", product_ids[0]),
    ] {
        let (status, _, _) = call(&mesh, "GET", path, None, None).await;
        assert_eq!(status, 200, "GET {path} without a token");
    }

    // POST /reservation: buyers only, in their own name.
    let reserve = json!({"productId": product_ids[0]});
    refuses_unauthenticated(&mesh, &people, "POST", "/reservation", Some(&reserve)).await;
    let (status, _, _) = call(
        &mesh,
        "POST",
        "/reservation",
        Some(&reserve),
        Some(&people.lee),
    )
    .await;
    assert_eq!(status, 403, "a seller cannot reserve");
    let for_park = json!({"productId": product_ids[0], "customerId": "park"});
    let (status, error, _) = call(
        &mesh,
        "POST",
        "/reservation",
        Some(&for_park),
        Some(&people.kim),
    )
    .await;
    assert_eq!(
        status, 403,
        "nobody reserves in another buyer's name: {error}"
    );
    let (_, product, _) = call(
        &mesh,
        "GET",
        &format!("/product/{}", product_ids[0]),
        None,
        None,
    )
    .await;
    assert_eq!(
        product["productStatus"], "AVAILABLE",
        "refusals lock nothing"
    );
    let mut reservations = Vec::new();
    for product in &product_ids[..3] {
        let body = json!({"productId": product});
        let (status, reservation, _) = call(
            &mesh,
            "POST",
            "/reservation",
            Some(&body),
            Some(&people.kim),
        )
        .await;
        assert_eq!(
            (status, reservation["customerId"].as_str()),
            (201, Some("kim")),
            "{reservation}"
        );
        reservations.push(reservation["id"].as_i64().expect("an id"));
    }
    let (first, to_cancel) = (reservations[0], reservations[1]);

    // Reading one reservation: its buyer, its product's seller, an admin; nobody else.
    let path = format!("/reservation/{first}");
    refuses_unauthenticated(&mesh, &people, "GET", &path, None).await;
    for (who, token, expected) in [
        ("kim", &people.kim, 200),
        ("lee", &people.lee, 200),
        ("ops", &people.ops, 200),
        ("park", &people.park, 403),
        ("choi", &people.choi, 403),
    ] {
        let (status, body, _) = call(&mesh, "GET", &path, None, Some(token)).await;
        assert_eq!(status, expected, "GET {path} as {who}: {body}");
    }

    // Lists show what the caller may see.
    refuses_unauthenticated(&mesh, &people, "GET", "/reservations", None).await;
    for (who, token, sees) in [
        ("kim", &people.kim, reservations.clone()),
        ("lee", &people.lee, reservations.clone()),
        ("ops", &people.ops, reservations.clone()),
        ("park", &people.park, vec![]),
        ("choi", &people.choi, vec![]),
    ] {
        let (status, list, _) = call(&mesh, "GET", "/reservations", None, Some(token)).await;
        assert_eq!(
            (status, ids(&list)),
            (200, sees),
            "GET /reservations as {who}"
        );
    }

    // Payments appear from the events; the same rules.
    let payments = mesh
        .eventually("/payments", SOON, |list| ids(list).len() == 3)
        .await;
    let payment = payments[0]["id"].as_i64().expect("a payment id");
    let path = format!("/payment/{payment}");
    refuses_unauthenticated(&mesh, &people, "GET", &path, None).await;
    for (who, token, expected) in [
        ("kim", &people.kim, 200),
        ("lee", &people.lee, 200),
        ("park", &people.park, 403),
        ("choi", &people.choi, 403),
    ] {
        let (status, body, _) = call(&mesh, "GET", &path, None, Some(token)).await;
        assert_eq!(status, expected, "GET {path} as {who}: {body}");
    }
    let by_reservation = format!("/payment?reservationId={first}");
    refuses_unauthenticated(&mesh, &people, "GET", &by_reservation, None).await;
    let (_, parks, _) = call(&mesh, "GET", &by_reservation, None, Some(&people.park)).await;
    assert_eq!(parks, json!([]), "park sees none of kim's payments");
    let (_, kims, _) = call(&mesh, "GET", &by_reservation, None, Some(&people.kim)).await;
    assert_eq!(ids(&kims), vec![payment]);

    // Paying and cancelling: only the buyer (or an admin); refusals change nothing.
    let pay = json!({"id": payment, "paymentStatus": "02"});
    refuses_unauthenticated(&mesh, &people, "PATCH", "/paid", Some(&pay)).await;
    for (who, token) in [("park", &people.park), ("lee", &people.lee)] {
        let (status, error, _) = call(&mesh, "PATCH", "/paid", Some(&pay), Some(token)).await;
        assert_eq!(status, 403, "PATCH /paid as {who}: {error}");
    }
    let (_, unpaid, _) = call(&mesh, "GET", &path, None, Some(&people.kim)).await;
    assert_eq!(
        unpaid["paymentStatus"], "UNPAID",
        "a refused payment pays nothing"
    );
    let (status, paid, _) = call(&mesh, "PATCH", "/paid", Some(&pay), Some(&people.kim)).await;
    assert_eq!(
        (status, paid["paymentStatus"].as_str()),
        (200, Some("PAID")),
        "{paid}"
    );

    let cancel = json!({"id": to_cancel, "reservationStatus": "02"});
    refuses_unauthenticated(&mesh, &people, "PATCH", "/reservationupdate", Some(&cancel)).await;
    for (who, token) in [("park", &people.park), ("lee", &people.lee)] {
        let (status, error, _) = call(
            &mesh,
            "PATCH",
            "/reservationupdate",
            Some(&cancel),
            Some(token),
        )
        .await;
        assert_eq!(status, 403, "PATCH /reservationupdate as {who}: {error}");
    }
    let (_, still, _) = call(
        &mesh,
        "GET",
        &format!("/reservation/{to_cancel}"),
        None,
        Some(&people.kim),
    )
    .await;
    assert_eq!(still["reservationStatus"], "RESERVED");
    let (status, _, _) = call(
        &mesh,
        "PATCH",
        "/reservationupdate",
        Some(&cancel),
        Some(&people.kim),
    )
    .await;
    assert_eq!(status, 200);
    let admin_cancel = json!({"id": reservations[2], "reservationStatus": "02"});
    let (status, _, _) = call(
        &mesh,
        "PATCH",
        "/reservationupdate",
        Some(&admin_cancel),
        Some(&people.ops),
    )
    .await;
    assert_eq!(status, 200, "an admin may cancel anyone's");

    // My page, notices and the live stream: the buyer's own, or an admin's view.
    mesh.eventually("/mypage?customerId=kim", SOON, |rows| ids(rows).len() == 3)
        .await;
    for path in [
        "/mypage?customerId=kim",
        "/notice?customerId=kim",
        "/mypage/stream?customerId=kim",
    ] {
        refuses_unauthenticated(&mesh, &people, "GET", path, None).await;
        for (who, token, expected) in [
            ("kim", &people.kim, 200),
            ("ops", &people.ops, 200),
            ("park", &people.park, 403),
            ("lee", &people.lee, 403),
        ] {
            let (status, body, _) = call(&mesh, "GET", path, None, Some(token)).await;
            assert_eq!(status, expected, "GET {path} as {who}: {body}");
        }
    }
    // Without a name, a buyer sees their own page.
    let (_, own, _) = call(&mesh, "GET", "/mypage", None, Some(&people.kim)).await;
    assert_eq!(ids(&own).len(), 3, "{own}");
    let (_, parks, _) = call(&mesh, "GET", "/mypage", None, Some(&people.park)).await;
    assert_eq!(parks, json!([]));

    // The internal listener's services have no REST route and no gRPC path through the
    // gateway.
    for path in [
        "/reserve.product.v1.ProductLockService/ReserveProduct",
        "/reserve.product.v1.ProductAdminService/SetReserveFaults",
    ] {
        let (status, _, _) = call(&mesh, "POST", path, Some(&json!({})), Some(&people.ops)).await;
        assert_eq!(status, 404, "POST {path} through the gateway");
    }

    assert_no_token_logged(
        &mesh,
        &[
            &people.lee,
            &people.kim,
            &people.park,
            &people.ops,
            &people.expired,
        ],
    );
}

/// Who may call a gRPC method.
enum Rule {
    /// Anyone, even without a token.
    Open,
    /// A valid token, and `allowed`'s in particular; `denied`'s is PERMISSION_DENIED.
    Token {
        allowed: String,
        denied: Option<String>,
    },
}

/// One gRPC method to call: where, what with, and who may.
struct Case {
    addr: String,
    method: String,
    data: Value,
    rule: Rule,
}

impl Case {
    fn new(addr: &str, method: &str, data: Value, rule: Rule) -> Self {
        Self {
            addr: addr.to_owned(),
            method: method.to_owned(),
            data,
            rule,
        }
    }
}

/// One gRPC call through grpcurl: `Ok(stdout)` or `Err(the status code's name)`.
fn grpcurl(addr: &str, method: &str, data: &Value, token: Option<&str>) -> Result<String, String> {
    let path = find_tool("grpcurl").expect("grpcurl is installed by script/test");
    let mut command = Command::new(path);
    command.arg("-plaintext");
    let header;
    if let Some(token) = token {
        header = format!("authorization: Bearer {token}");
        command.args(["-H", &header]);
    }
    let output = command
        .args(["-d", &data.to_string(), addr, method])
        .output()
        .expect("grpcurl runs");
    if output.status.success() {
        return Ok(String::from_utf8_lossy(&output.stdout).into_owned());
    }
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    Err(stderr
        .lines()
        .find_map(|line| line.trim().strip_prefix("Code: "))
        .map(str::to_owned)
        .unwrap_or(stderr))
}

#[tokio::test]
async fn every_grpc_method_checks_the_callers_token_itself() {
    let mesh = Mesh::start("access_grpc", MeshOptions::default()).await;
    let people = People::of(&mesh);
    let addr = |svc: Svc| mesh.addr(svc).to_string();
    let product = addr(Svc::Product);
    let registered = grpcurl(
        &product,
        "reserve.product.v1.ProductService/RegisterProduct",
        &json!({"name": "Phone"}),
        Some(&people.lee),
    )
    .expect("a seller registers");
    assert!(registered.contains(r#""sellerId": "lee""#), "{registered}");
    for name in ["Tv", "Lamp"] {
        mesh.post_as(Some(&people.lee), "/product", json!({"productName": name}))
            .await;
    }
    let reservation = mesh.reserve(1, "kim").await;
    let cancellable = mesh.reserve(2, "kim").await;
    let payment = mesh.payment_of(reservation, SOON).await;
    mesh.eventually("/mypage?customerId=kim", SOON, |rows| ids(rows).len() == 2)
        .await;

    let reservation_svc = addr(Svc::Reservation);
    let payment_svc = addr(Svc::Payment);
    let mypage_svc = addr(Svc::MyPage);
    let notice_svc = addr(Svc::Notice);
    let open = |addr: &str, method: &str, data: Value| Case::new(addr, method, data, Rule::Open);
    let guarded = |addr: &str, method: &str, data: Value, allowed: &str, denied: Option<&str>| {
        Case::new(
            addr,
            method,
            data,
            Rule::Token {
                allowed: allowed.to_owned(),
                denied: denied.map(str::to_owned),
            },
        )
    };
    let cases = [
        open(
            &product,
            "reserve.product.v1.ProductService/GetProduct",
            json!({"id": 1}),
        ),
        open(
            &product,
            "reserve.product.v1.ProductService/ListProducts",
            json!({}),
        ),
        guarded(
            &product,
            "reserve.product.v1.ProductService/RegisterProduct",
            json!({"name": "Desk"}),
            &people.lee,
            Some(&people.kim),
        ),
        guarded(
            &reservation_svc,
            "reserve.reservation.v1.ReservationService/CreateReservation",
            json!({"product_id": 3}),
            &people.kim,
            Some(&people.lee),
        ),
        guarded(
            &reservation_svc,
            "reserve.reservation.v1.ReservationService/GetReservation",
            json!({"id": reservation}),
            &people.kim,
            Some(&people.park),
        ),
        guarded(
            &reservation_svc,
            "reserve.reservation.v1.ReservationService/ListReservations",
            json!({}),
            &people.kim,
            None,
        ),
        guarded(
            &reservation_svc,
            "reserve.reservation.v1.ReservationService/CancelReservation",
            json!({"id": cancellable}),
            &people.kim,
            Some(&people.park),
        ),
        guarded(
            &payment_svc,
            "reserve.payment.v1.PaymentService/GetPayment",
            json!({"id": payment}),
            &people.lee,
            Some(&people.park),
        ),
        guarded(
            &payment_svc,
            "reserve.payment.v1.PaymentService/ListPayments",
            json!({}),
            &people.kim,
            None,
        ),
        guarded(
            &payment_svc,
            "reserve.payment.v1.PaymentService/Pay",
            json!({"id": payment}),
            &people.kim,
            Some(&people.park),
        ),
        guarded(
            &mypage_svc,
            "reserve.mypage.v1.MyPageService/ListMyPage",
            json!({"customer_id": "kim"}),
            &people.kim,
            Some(&people.park),
        ),
        guarded(
            &mypage_svc,
            "reserve.mypage.v1.MyPageService/GetMyPageEntry",
            json!({"reservation_id": reservation}),
            &people.kim,
            Some(&people.park),
        ),
        guarded(
            &notice_svc,
            "reserve.notice.v1.NoticeService/ListNotices",
            json!({"customer_id": "kim"}),
            &people.kim,
            Some(&people.park),
        ),
    ];
    for Case {
        addr,
        method,
        data,
        rule,
    } in &cases
    {
        let (addr, method) = (addr.as_str(), method.as_str());
        let Rule::Token { allowed, denied } = rule else {
            grpcurl(addr, method, data, None)
                .unwrap_or_else(|code| panic!("{method} without a token: {code}"));
            continue;
        };
        for (label, token) in [
            ("no token", None),
            ("an expired token", Some(people.expired.as_str())),
            ("a wrong-audience token", Some(people.elsewhere.as_str())),
        ] {
            assert_eq!(
                grpcurl(addr, method, data, token).err().as_deref(),
                Some("Unauthenticated"),
                "{method} with {label}"
            );
        }
        if let Some(denied) = denied {
            assert_eq!(
                grpcurl(addr, method, data, Some(denied)).err().as_deref(),
                Some("PermissionDenied"),
                "{method} as another user"
            );
        }
        grpcurl(addr, method, data, Some(allowed))
            .unwrap_or_else(|code| panic!("{method} as its user: {code}"));
    }

    // WatchMyPage (a stream, so through tonic): the same rules at the service itself.
    let mut mypage = MyPageServiceClient::connect(format!("http://{mypage_svc}"))
        .await
        .expect("connect mypage-svc");
    let watch = |token: Option<&str>| {
        let bearer = token.map(|token| format!("Bearer {token}"));
        on_behalf_of(
            WatchMyPageRequest {
                customer_id: "kim".into(),
            },
            bearer.as_deref(),
        )
    };
    for (label, token, code) in [
        ("no token", None, tonic::Code::Unauthenticated),
        (
            "an expired token",
            Some(people.expired.as_str()),
            tonic::Code::Unauthenticated,
        ),
        (
            "park's token",
            Some(people.park.as_str()),
            tonic::Code::PermissionDenied,
        ),
    ] {
        let refused = mypage.watch_my_page(watch(token)).await.expect_err(label);
        assert_eq!(refused.code(), code, "WatchMyPage with {label}");
    }
    mypage
        .watch_my_page(watch(Some(&people.kim)))
        .await
        .expect("kim watches her own page");

    // The lock and the admin service: not on the public listener at all; on the internal
    // one, admin calls need the admin role.
    for method in [
        "reserve.product.v1.ProductLockService/ReserveProduct",
        "reserve.product.v1.ProductAdminService/GetReserveFaults",
    ] {
        assert_eq!(
            grpcurl(&product, method, &json!({}), Some(&people.ops))
                .err()
                .as_deref(),
            Some("Unimplemented"),
            "{method} on the public listener"
        );
    }
    let internal = mesh.product_internal_addr().to_string();
    let faults = "reserve.product.v1.ProductAdminService/GetReserveFaults";
    assert_eq!(
        grpcurl(&internal, faults, &json!({}), None)
            .err()
            .as_deref(),
        Some("Unauthenticated")
    );
    assert_eq!(
        grpcurl(&internal, faults, &json!({}), Some(&people.kim))
            .err()
            .as_deref(),
        Some("PermissionDenied")
    );
    grpcurl(&internal, faults, &json!({}), Some(&people.ops)).expect("an admin reads the faults");

    assert_no_token_logged(
        &mesh,
        &[
            &people.lee,
            &people.kim,
            &people.park,
            &people.ops,
            &people.expired,
        ],
    );
}

#[tokio::test]
async fn one_buyer_cannot_hold_the_catalogue_pending() {
    let options = MeshOptions {
        extra_env: vec![
            (Svc::Gateway, "RESERVE_RATE_PER_SEC".into(), "0.1".into()),
            (Svc::Gateway, "RESERVE_RATE_BURST".into(), "2".into()),
        ],
        ..MeshOptions::default()
    };
    let mesh = Mesh::start("access_rate_limit", options).await;
    for n in 0..4 {
        mesh.register_product(&format!("item-{n}")).await;
    }
    let kim = mesh.buyer("kim");
    for product in [1, 2] {
        let (status, body) = mesh
            .post_as(Some(&kim), "/reservation", json!({"productId": product}))
            .await;
        assert_eq!(status, 201, "{body}");
    }
    let response = mesh
        .bare_http
        .post(mesh.url("/reservation"))
        .bearer_auth(&kim)
        .json(&json!({"productId": 3}))
        .send()
        .await
        .expect("gateway answers");
    let retry_after: u64 = response
        .headers()
        .get("retry-after")
        .and_then(|value| value.to_str().ok()?.parse().ok())
        .expect("a Retry-After in seconds");
    let (status, error) = e2e::read(response).await;
    assert_eq!(
        (status, error["code"].as_str()),
        (429, Some("rate_limited")),
        "{error}"
    );
    assert!((1..=10).contains(&retry_after), "Retry-After {retry_after}");
    let (_, product) = mesh.get("/product/3").await;
    assert_eq!(
        product["productStatus"], "AVAILABLE",
        "the limited request locked nothing"
    );
    // Another buyer has a bucket of their own.
    let (status, body) = mesh
        .post_as(
            Some(&mesh.buyer("park")),
            "/reservation",
            json!({"productId": 3}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
}

/// No service or gateway log line holds one of `tokens` (or any part of its signature).
fn assert_no_token_logged(mesh: &Mesh, tokens: &[&str]) {
    for svc in Svc::ALL {
        let log = std::fs::read_to_string(mesh.log_path(svc)).unwrap_or_default();
        for token in tokens {
            let signature = token.rsplit('.').next().unwrap_or(token);
            assert!(
                !log.contains(signature),
                "{svc:?}'s log holds a bearer token"
            );
        }
    }
}
