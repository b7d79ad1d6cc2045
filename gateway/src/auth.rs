//! Who is calling, at the gateway: the `Authorization: Bearer …` header verified with the
//! same [`Authenticator`] the services use, the route's role checked here (so a request that
//! cannot succeed never reaches a service), and the caller's own header forwarded on every
//! upstream call, where each service checks the same rules again, ownership included.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use http::request::Parts;
use mesh_core::auth::{AuthError, Authenticator, Caller, Role};

use crate::api_error::ApiError;

/// The verified caller of a request and the header to forward.
#[derive(Clone, Debug)]
pub struct Credentials {
    /// Who is calling.
    pub caller: Caller,
    authorization: Option<String>,
}

impl Credentials {
    /// 403 unless the caller has `role`.
    pub fn require(&self, role: Role, to: &str) -> Result<(), ApiError> {
        self.caller.require(role, to).map_err(ApiError::forbidden)
    }

    /// 403 unless the caller has one of `roles`.
    pub fn require_any(&self, roles: &[Role], to: &str) -> Result<(), ApiError> {
        if roles.iter().any(|role| self.caller.has(*role)) {
            return Ok(());
        }
        let names: Vec<&str> = roles.iter().map(|role| role.name()).collect();
        Err(ApiError::forbidden(mesh_core::auth::Denied(format!(
            "only a {} may {to}",
            names.join(" or ")
        ))))
    }

    /// `message` as an upstream request on the caller's behalf.
    pub fn request<T>(&self, message: T) -> tonic::Request<T> {
        mesh_core::auth::grpc::on_behalf_of(message, self.authorization.as_deref())
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Credentials {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let authenticator = parts
            .extensions
            .get::<Arc<Authenticator>>()
            .cloned()
            .ok_or_else(|| {
                tracing::error!("the router has no authenticator");
                ApiError::internal()
            })?;
        let authorization = match parts.headers.get(http::header::AUTHORIZATION) {
            None => None,
            Some(value) => Some(value.to_str().map(str::to_owned).map_err(|_| {
                ApiError::unauthenticated(&AuthError::Invalid(
                    "the Authorization header is not visible ASCII".into(),
                ))
            })?),
        };
        let caller = authenticator
            .authenticate(authorization.as_deref())
            .await
            .map_err(|err| match err {
                AuthError::KeysUnavailable(_) => {
                    tracing::warn!(%err, "cannot verify tokens");
                    ApiError::from(tonic::Status::from(err))
                }
                err => ApiError::unauthenticated(&err),
            })?;
        Ok(Self {
            caller,
            authorization,
        })
    }
}
