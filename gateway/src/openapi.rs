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

/// One link of the document: from the `status` answer of `method path` to `operation`, with
/// its parameters and request body filled from that answer (runtime expressions).
struct LinkSpec {
    path: &'static str,
    method: &'static str,
    status: &'static str,
    name: &'static str,
    operation: &'static str,
    parameters: &'static [(&'static str, &'static str)],
    /// JSON with runtime expressions as values.
    body: Option<&'static str>,
}

/// The links a client (and schemathesis's stateful mode) follows from one answer to the next
/// request: a registered product to reading it and reserving it; a reservation to reading,
/// cancelling and finding its payment; a payment list to paying; a page to the next.
const LINKS: &[LinkSpec] = &[
    LinkSpec {
        path: "/product",
        method: "post",
        status: "201",
        name: "GetProduct",
        operation: "get_product",
        parameters: &[("id", "$response.body#/id")],
        body: None,
    },
    LinkSpec {
        path: "/product",
        method: "post",
        status: "201",
        name: "ReserveIt",
        operation: "create_reservation",
        parameters: &[],
        body: Some(r#"{"productId": "$response.body#/id"}"#),
    },
    LinkSpec {
        path: "/reservation",
        method: "post",
        status: "201",
        name: "GetReservation",
        operation: "get_reservation",
        parameters: &[("id", "$response.body#/id")],
        body: None,
    },
    LinkSpec {
        path: "/reservation",
        method: "post",
        status: "201",
        name: "CancelIt",
        operation: "cancel_reservation",
        parameters: &[],
        body: Some(r#"{"id": "$response.body#/id", "reservationStatus": "02"}"#),
    },
    LinkSpec {
        path: "/reservation",
        method: "post",
        status: "201",
        name: "ItsPayment",
        operation: "list_payments",
        parameters: &[("reservationId", "$response.body#/id")],
        body: None,
    },
    LinkSpec {
        path: "/payments",
        method: "get",
        status: "200",
        name: "PayIt",
        operation: "pay",
        parameters: &[],
        body: Some(r#"{"id": "$response.body#/0/id", "paymentStatus": "02"}"#),
    },
    LinkSpec {
        path: "/products",
        method: "get",
        status: "200",
        name: "NextPage",
        operation: "list_products",
        parameters: &[("pageToken", "$response.header.Next-Page-Token")],
        body: None,
    },
];

/// Adds [`LINKS`] to the answers they start from.
pub fn add_links(openapi: &mut utoipa::openapi::OpenApi) {
    for spec in LINKS {
        let Some(item) = openapi.paths.paths.get_mut(spec.path) else {
            continue;
        };
        let operation = match spec.method {
            "post" => item.post.as_mut(),
            "get" => item.get.as_mut(),
            _ => None,
        };
        let Some(operation) = operation else {
            continue;
        };
        if let Some(utoipa::openapi::RefOr::T(response)) =
            operation.responses.responses.get_mut(spec.status)
        {
            response.links.insert(
                spec.name.to_owned(),
                utoipa::openapi::RefOr::T(spec.build()),
            );
        }
    }
}

impl LinkSpec {
    fn build(&self) -> utoipa::openapi::link::Link {
        let mut link = utoipa::openapi::link::LinkBuilder::new().operation_id(self.operation);
        for (name, value) in self.parameters {
            link = link.parameter(*name, *value);
        }
        // The bodies above are literals of this file, valid JSON: gateway/tests/openapi_coverage.rs
        // checks that every link lands with its body.
        if let Some(body) = self
            .body
            .and_then(|body| serde_json::from_str::<serde_json::Value>(body).ok())
        {
            link = link.request_body(Some(body));
        }
        link.build()
    }
}

/// The document as JSON.
pub fn to_json(openapi: &utoipa::openapi::OpenApi) -> String {
    openapi.to_json().unwrap_or_else(|err| {
        tracing::error!(%err, "cannot serialize the OpenAPI document");
        String::from("{}")
    })
}
