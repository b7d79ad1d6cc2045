//! The REST contract as OpenAPI 3.1, served at `GET /openapi.json`. It is generated from the
//! handlers' own annotations and types as the router is built ([`crate::routes::router`]
//! registers every route through `utoipa_axum::routes!`), so a route cannot exist without its
//! description.

use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

/// Every error answer's body.
#[derive(ToSchema)]
#[allow(dead_code)] // documents the JSON that `ApiError` writes
pub struct ErrorBody {
    /// What went wrong, for a person.
    #[schema(example = "product 9 does not exist")]
    error: String,
    /// A stable machine-readable code, e.g. `not_found`, `invalid_argument`, `forbidden`.
    #[schema(example = "not_found")]
    code: String,
}

/// The document's fixed parts; the paths come from the router.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Reserve Mesh REST API",
        description = "The original product-reservation API (register, reserve, pay, cancel, my \
                       page, notices) in front of a gRPC service mesh. Ids are accepted as \
                       numbers or numeric strings; statuses as names or the original codes \
                       (`01`, `02`). Send `Authorization: Bearer <JWT>` (a dev mesh also \
                       accepts none: the `anonymous` buyer and seller).",
        license(name = "Apache-2.0", identifier = "Apache-2.0")
    ),
    components(schemas(ErrorBody)),
    modifiers(&BearerAuth),
    tags(
        (name = "products", description = "The catalogue: public to read, sellers register."),
        (name = "reservations", description = "Buyers reserve and cancel."),
        (name = "payments", description = "A payment appears for every reservation; its buyer pays."),
        (name = "my page", description = "The buyer's reservations with their payments."),
        (name = "notices", description = "A notification for every status change."),
        (name = "health", description = "Probes."),
    )
)]
pub struct ApiDoc;

/// Adds the `bearer` security scheme (JWT) the protected operations name.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut bearer = Http::new(HttpAuthScheme::Bearer);
        bearer.bearer_format = Some("JWT".into());
        components.add_security_scheme("bearer", SecurityScheme::Http(bearer));
    }
}

/// Adds the links a client (and schemathesis's stateful mode) follows from one answer to the
/// next request: a registered product to reading it and reserving it; a reservation to
/// reading, cancelling and finding its payment; a payment list to paying; a page to the next.
pub fn add_links(openapi: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::link::LinkBuilder;
    let link = |operation: &str, parameters: &[(&str, &str)], body: Option<serde_json::Value>| {
        let mut link = LinkBuilder::new().operation_id(operation);
        for (name, value) in parameters {
            link = link.parameter(*name, *value);
        }
        if let Some(body) = body {
            link = link.request_body(Some(body));
        }
        link.build()
    };
    let links: Vec<(&str, &str, &str, &str, utoipa::openapi::link::Link)> = vec![
        (
            "/product",
            "post",
            "201",
            "GetProduct",
            link("get_product", &[("id", "$response.body#/id")], None),
        ),
        (
            "/product",
            "post",
            "201",
            "ReserveIt",
            link(
                "create_reservation",
                &[],
                Some(serde_json::json!({"productId": "$response.body#/id"})),
            ),
        ),
        (
            "/reservation",
            "post",
            "201",
            "GetReservation",
            link("get_reservation", &[("id", "$response.body#/id")], None),
        ),
        (
            "/reservation",
            "post",
            "201",
            "CancelIt",
            link(
                "cancel_reservation",
                &[],
                Some(serde_json::json!({"id": "$response.body#/id", "reservationStatus": "02"})),
            ),
        ),
        (
            "/reservation",
            "post",
            "201",
            "ItsPayment",
            link(
                "list_payments",
                &[("reservationId", "$response.body#/id")],
                None,
            ),
        ),
        (
            "/payments",
            "get",
            "200",
            "PayIt",
            link(
                "pay",
                &[],
                Some(serde_json::json!({"id": "$response.body#/0/id", "paymentStatus": "02"})),
            ),
        ),
        (
            "/products",
            "get",
            "200",
            "NextPage",
            link(
                "list_products",
                &[("pageToken", "$response.header.Next-Page-Token")],
                None,
            ),
        ),
    ];
    for (path, method, status, name, link) in links {
        let Some(item) = openapi.paths.paths.get_mut(path) else {
            continue;
        };
        let operation = match method {
            "post" => item.post.as_mut(),
            "get" => item.get.as_mut(),
            _ => None,
        };
        let Some(operation) = operation else {
            continue;
        };
        if let Some(utoipa::openapi::RefOr::T(response)) =
            operation.responses.responses.get_mut(status)
        {
            response
                .links
                .insert(name.to_owned(), utoipa::openapi::RefOr::T(link));
        }
    }
}

/// The document as JSON.
pub fn to_json(openapi: &utoipa::openapi::OpenApi) -> String {
    openapi.to_json().unwrap_or_else(|err| {
        tracing::error!(%err, "cannot serialize the OpenAPI document");
        String::from("{}")
    })
}
