//! Turns an `Authorization` value into a [`Caller`]: the bearer token's signature against
//! the key set, then `iss`, `aud`, `exp` and `nbf` (with a small clock skew), then `sub` and
//! the roles claim. Error messages say what was wrong, never the token itself.

use std::time::Duration;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Validation, decode, decode_header};
use serde_json::{Map, Value};

use super::AuthError;
use super::caller::{Caller, Role};
use super::config::{AuthConfig, AuthMode};
use super::key_set::{ACCEPTED_ALGORITHMS, KeySet};
use super::verified::VerifiedTokens;

/// Verifies callers for one process; share it behind an `Arc`.
pub struct Authenticator {
    mode: AuthMode,
    keys: KeySet,
    issuer: String,
    audience: String,
    roles_claim: String,
    clock_skew: Duration,
    verified: VerifiedTokens,
}

impl Authenticator {
    /// An authenticator over `config`; call [`Authenticator::load_keys`] before serving.
    pub fn new(config: &AuthConfig) -> Self {
        Self {
            mode: config.mode,
            keys: KeySet::new(config.keys.clone(), config.refresh_every),
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
            roles_claim: config.roles_claim.clone(),
            clock_skew: config.clock_skew,
            verified: VerifiedTokens::default(),
        }
    }

    /// Loads the key set; a failure is logged, not fatal: keys are fetched again on demand
    /// (throttled), and calls with tokens answer UNAVAILABLE until they load.
    pub async fn load_keys(&self) {
        if self.mode == AuthMode::Dev {
            tracing::warn!(
                "AUTH_MODE=dev: requests without a token act as the built-in `anonymous` \
                 buyer and seller; never expose this mesh"
            );
        }
        if let Err(err) = self.keys.load().await {
            tracing::warn!(%err, "token keys not loaded yet; retrying on demand");
        }
    }

    /// The mode it runs in.
    pub fn mode(&self) -> AuthMode {
        self.mode
    }

    /// The caller behind `authorization` (the header or metadata value, if any).
    pub async fn authenticate(&self, authorization: Option<&str>) -> Result<Caller, AuthError> {
        let Some(value) = authorization else {
            return match self.mode {
                AuthMode::Dev => Ok(Caller::anonymous()),
                AuthMode::Jwt => Err(AuthError::Missing),
            };
        };
        let token = bearer_token(value)?;
        self.verify(token).await
    }

    /// Verifies a bare token (once: a token verified moments ago is taken at its word, see
    /// [`super::verified`]).
    pub async fn verify(&self, token: &str) -> Result<Caller, AuthError> {
        if let Some(caller) = self.verified.get(token) {
            return Ok(caller);
        }
        let (caller, exp) = self.verify_signature(token).await?;
        self.verified.remember(token, &caller, exp);
        Ok(caller)
    }

    /// Checks the token's signature and claims; the caller and the token's `exp`.
    async fn verify_signature(&self, token: &str) -> Result<(Caller, u64), AuthError> {
        let header = decode_header(token)
            .map_err(|_| AuthError::Invalid("the bearer token is not a JWT".into()))?;
        if !ACCEPTED_ALGORITHMS.contains(&header.alg) {
            return Err(AuthError::Invalid(format!(
                "tokens signed with {:?} are not accepted (RS256, ES256 or EdDSA)",
                header.alg
            )));
        }
        let keys = self
            .keys
            .candidates(header.kid.as_deref(), header.alg)
            .await?;
        if keys.is_empty() {
            return Err(AuthError::Invalid(match header.kid {
                Some(kid) => format!("the token's signing key {kid:?} is not a trusted key"),
                None => "no trusted key verifies the token".into(),
            }));
        }
        let validation = self.validation(header.alg);
        let mut last = AuthError::Invalid("the token's signature does not verify".into());
        for key in keys {
            match decode::<Map<String, Value>>(token, &key.key, &validation) {
                Ok(data) => {
                    let exp = data.claims.get("exp").and_then(Value::as_u64).unwrap_or(0);
                    return Ok((self.caller(&data.claims)?, exp));
                }
                Err(err) if matches!(err.kind(), ErrorKind::InvalidSignature) => continue,
                Err(err) => {
                    last = AuthError::Invalid(explain(err.kind()));
                    break;
                }
            }
        }
        Err(last)
    }

    fn validation(&self, algorithm: jsonwebtoken::Algorithm) -> Validation {
        let mut validation = Validation::new(algorithm);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "sub", "iss", "aud"]);
        validation.validate_nbf = true;
        validation.leeway = self.clock_skew.as_secs();
        validation
    }

    fn caller(&self, claims: &Map<String, Value>) -> Result<Caller, AuthError> {
        let subject = claims
            .get("sub")
            .and_then(Value::as_str)
            .filter(|sub| !sub.is_empty())
            .ok_or_else(|| AuthError::Invalid("the token has no subject (sub)".into()))?;
        let roles = roles_in(claims.get(&self.roles_claim));
        Ok(Caller::new(subject, roles))
    }
}

/// The token of `Bearer <token>` (the scheme is case-insensitive).
fn bearer_token(value: &str) -> Result<&str, AuthError> {
    let (scheme, token) = value.trim().split_once(' ').ok_or_else(|| {
        AuthError::Invalid("the Authorization value is not `Bearer <token>`".into())
    })?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(AuthError::Invalid(
            "the Authorization value is not `Bearer <token>`".into(),
        ));
    }
    Ok(token)
}

/// The roles a claim grants: a list of names, or one space-separated string (as OAuth's
/// `scope`); unknown names grant nothing.
fn roles_in(claim: Option<&Value>) -> Vec<Role> {
    match claim {
        Some(Value::Array(names)) => names
            .iter()
            .filter_map(Value::as_str)
            .filter_map(Role::parse)
            .collect(),
        Some(Value::String(names)) => names.split_whitespace().filter_map(Role::parse).collect(),
        _ => Vec::new(),
    }
}

fn explain(kind: &ErrorKind) -> String {
    match kind {
        ErrorKind::ExpiredSignature => "the token has expired".into(),
        ErrorKind::ImmatureSignature => "the token is not valid yet (nbf)".into(),
        ErrorKind::InvalidIssuer => "the token's issuer is not trusted".into(),
        ErrorKind::InvalidAudience => "the token is for another audience".into(),
        ErrorKind::MissingRequiredClaim(claim) => format!("the token has no {claim} claim"),
        ErrorKind::InvalidAlgorithm => "the token's algorithm does not match its key".into(),
        _ => "the bearer token is malformed".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_scheme_must_be_bearer() {
        assert_eq!(bearer_token("Bearer abc").unwrap(), "abc");
        assert_eq!(bearer_token("bearer  abc ").unwrap(), "abc");
        assert!(bearer_token("Basic abc").is_err());
        assert!(bearer_token("Bearer").is_err());
        assert!(bearer_token("abc").is_err());
    }

    #[test]
    fn roles_come_from_a_list_or_a_space_separated_string() {
        assert_eq!(
            roles_in(Some(&json!(["buyer", "root", "admin"]))),
            vec![Role::Buyer, Role::Admin]
        );
        assert_eq!(
            roles_in(Some(&json!("seller buyer"))),
            vec![Role::Seller, Role::Buyer]
        );
        assert!(roles_in(Some(&json!(7))).is_empty());
        assert!(roles_in(None).is_empty());
    }

    #[tokio::test]
    async fn without_a_token_dev_mode_is_anonymous_and_jwt_mode_refuses() {
        let dev = Authenticator::new(&AuthConfig::dev(None));
        assert_eq!(dev.authenticate(None).await.unwrap(), Caller::anonymous());
        let mut config = AuthConfig::dev(None);
        config.mode = AuthMode::Jwt;
        let jwt = Authenticator::new(&config);
        assert!(matches!(
            jwt.authenticate(None).await,
            Err(AuthError::Missing)
        ));
    }
}
