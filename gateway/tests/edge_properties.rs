//! Properties of every parser at the REST edge: none panics on any input, and each accepts
//! exactly what it documents.

use axum::body::Body;
use axum::extract::FromRequest;
use gateway::body::{JsonBody, WireId};
use gateway::status_names::{parse_payment_status, parse_product_status, parse_reservation_status};
use proptest::prelude::*;
use serde::Deserialize;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Ids: exactly the positive whole numbers, written in decimal (spaces around allowed).
    #[test]
    fn ids_accept_exactly_positive_decimal_numbers(raw in "\\PC{0,24}") {
        let expected = raw.trim().parse::<i64>().ok().filter(|id| *id > 0);
        prop_assert_eq!(WireId::parse(&raw).ok().map(|id| id.0), expected);
    }

    #[test]
    fn every_positive_id_round_trips(id in 1i64..=i64::MAX, pad in " {0,2}") {
        prop_assert_eq!(WireId::parse(&format!("{pad}{id}{pad}")).map(|id| id.0), Ok(id));
    }

    /// Statuses: the documented names and original codes, any case, nothing else.
    #[test]
    fn statuses_accept_exactly_their_names_and_codes(raw in "\\PC{0,12}|(?i)(01|02|available|pending|sold_?out|reserved|cancell?ed|confirmed|unpaid|paid|voided|refunded)") {
        let upper = raw.trim().to_ascii_uppercase();
        let product = ["01", "02", "AVAILABLE", "PENDING", "SOLDOUT", "SOLD_OUT"];
        let reservation = ["01", "02", "RESERVED", "CANCELLED", "CANCELED", "CONFIRMED"];
        let payment = ["01", "02", "UNPAID", "PAID", "VOIDED", "REFUNDED"];
        prop_assert_eq!(parse_product_status(&raw).is_ok(), product.contains(&upper.as_str()));
        prop_assert_eq!(parse_reservation_status(&raw).is_ok(), reservation.contains(&upper.as_str()));
        prop_assert_eq!(parse_payment_status(&raw).is_ok(), payment.contains(&upper.as_str()));
    }
}

#[derive(Deserialize, Debug)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[allow(dead_code)]
struct Body1 {
    product_id: WireId,
    #[serde(default)]
    customer_id: Option<String>,
}

fn extract(bytes: Vec<u8>, content_type: &str) -> Result<Body1, (u16, String)> {
    let request = http::Request::builder()
        .method("POST")
        .uri("/x")
        .header("content-type", content_type)
        .body(Body::from(bytes))
        .expect("a request");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    runtime
        .block_on(JsonBody::<Body1>::from_request(request, &()))
        .map(|JsonBody(body)| body)
        .map_err(|err| (err.status.as_u16(), err.code.to_owned()))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// The JSON body extractor: any bytes give the body or a 4xx with a code, never a panic.
    #[test]
    fn any_bytes_are_a_body_or_a_4xx(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        match extract(bytes, "application/json") {
            Ok(_) => {}
            Err((status, code)) => {
                prop_assert_eq!(status, 400);
                prop_assert_eq!(code, "malformed_body");
            }
        }
    }

    /// A well-formed body is accepted exactly when it names only known fields.
    #[test]
    fn known_fields_only(id in 1i64..1_000_000, extra in proptest::option::of("[a-zA-Z]{1,10}")) {
        let mut json = serde_json::json!({"productId": id});
        if let Some(name) = &extra {
            json[name.as_str()] = serde_json::json!(1);
        }
        let known = extra.as_deref().is_none_or(|name| name == "productId" || name == "customerId");
        let result = extract(json.to_string().into_bytes(), "application/json; charset=utf-8");
        if known && extra.as_deref() != Some("customerId") {
            prop_assert_eq!(result.map(|body| body.product_id.0), Ok(id));
        } else if !known {
            prop_assert!(result.is_err());
        }
    }

    /// Anything not declared JSON is a 415, whatever the bytes.
    #[test]
    fn other_media_types_are_415(content_type in "(text/plain|application/xml|multipart/form-data|application/jsonx)", bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        prop_assert_eq!(extract(bytes, &content_type).map_err(|(status, _)| status).err(), Some(415));
    }
}
