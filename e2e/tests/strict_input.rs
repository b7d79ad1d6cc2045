//! Input is strict and its refusals uniform: bodies must be declared JSON, name only known
//! fields, carry no deceptive characters; query strings that do not fit answer the same JSON
//! error as everything else; protobuf that does not decode is INVALID_ARGUMENT, not INTERNAL.

use e2e::{Mesh, MeshOptions, Svc};
use reserve_proto::product::v1 as pb;
use serde_json::json;

#[tokio::test]
async fn refusals_are_json_with_a_stable_code_and_change_nothing() {
    let mesh = Mesh::start("strict_input", MeshOptions::default()).await;

    // A body not declared as JSON (a cross-site form or text/plain POST) never reaches a handler.
    for content_type in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/jsonx",
    ] {
        let response = mesh
            .http
            .post(mesh.url("/product"))
            .header("content-type", content_type)
            .body(r#"{"productName": "Phone"}"#)
            .send()
            .await
            .expect("gateway answers");
        let (status, error) = e2e::read(response).await;
        assert_eq!(
            (status, error["code"].as_str()),
            (415, Some("unsupported_media_type")),
            "{content_type}"
        );
    }
    let response = mesh
        .http
        .post(mesh.url("/product"))
        .header("content-type", "application/json; charset=utf-8")
        .body(r#"{"productName": "Phone"}"#)
        .send()
        .await
        .expect("gateway answers");
    assert_eq!(
        response.status().as_u16(),
        201,
        "JSON with a charset is JSON"
    );

    // An unknown field is named, not ignored (a typo would otherwise reserve for someone else).
    let (status, error) = mesh
        .post("/reservation", json!({"productId": 1, "customerID": "kim"}))
        .await;
    assert_eq!(
        (status, error["code"].as_str()),
        (400, Some("malformed_body")),
        "{error}"
    );
    assert!(
        error["error"]
            .as_str()
            .unwrap_or_default()
            .contains("customerID"),
        "{error}"
    );

    // Names that render deceptively are refused, naming the character.
    for name in ["Phone\u{202E}gnp.exe", "Pho\u{200B}ne", "Phone\u{2066}"] {
        let (status, error) = mesh.post("/product", json!({"productName": name})).await;
        assert_eq!(status, 400, "{name:?}: {error}");
        assert!(
            error["error"].as_str().unwrap_or_default().contains("U+"),
            "{error}"
        );
    }

    // A query string that does not fit: the same JSON error body.
    let (status, error) = mesh.get("/mypage?customerId=kim&customerId=lee").await;
    assert_eq!(
        (status, error["code"].as_str()),
        (400, Some("invalid_query")),
        "{error}"
    );

    let (_, products) = mesh.get("/products").await;
    assert_eq!(
        products.as_array().map(Vec::len),
        Some(1),
        "only the one good product: {products}"
    );

    // A gRPC request that does not decode as the method's message (field 1 is a string in
    // RegisterProductRequest, a number here).
    let channel =
        tonic::transport::Endpoint::from_shared(format!("http://{}", mesh.addr(Svc::Product)))
            .expect("an endpoint")
            .connect()
            .await
            .expect("connect product-svc");
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.expect("ready");
    let path =
        http::uri::PathAndQuery::from_static("/reserve.product.v1.ProductService/RegisterProduct");
    let codec = tonic_prost::ProstCodec::<pb::GetProductRequest, pb::Product>::default();
    let mut request = tonic::Request::new(pb::GetProductRequest { id: 7 });
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {}", mesh.admin_token().expect("a token"))
            .parse()
            .expect("a header"),
    );
    let refused = grpc
        .unary(request, path, codec)
        .await
        .expect_err("undecodable");
    assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{refused:?}");
}
