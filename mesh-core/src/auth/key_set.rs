//! The public keys tokens are verified with: a JWKS document from a URL or a file, re-read
//! when a token names a key id it does not hold (keys rotate), at most once per
//! `refresh_every` so a flood of made-up key ids cannot turn into a flood of fetches.

use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{
    AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm, PublicKeyUse,
};
use jsonwebtoken::{Algorithm, DecodingKey};

use super::AuthError;
use super::config::KeySource;

/// The signature algorithms accepted: asymmetric only, so a service holding the public
/// keys can verify but never mint a token.
pub const ACCEPTED_ALGORITHMS: [Algorithm; 3] =
    [Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA];

/// How long one fetch of a JWKS URL may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// One verification key.
pub struct VerifyKey {
    /// Its `kid`, if the document gave one.
    pub kid: Option<String>,
    /// The one algorithm it verifies (never taken from the token alone).
    pub algorithm: Algorithm,
    /// The key.
    pub key: DecodingKey,
}

#[derive(Default)]
struct Loaded {
    keys: Arc<Vec<Arc<VerifyKey>>>,
    last_attempt: Option<Instant>,
    ever_loaded: bool,
}

/// The key set, shared by every verification in the process.
pub struct KeySet {
    source: KeySource,
    refresh_every: Duration,
    loaded: std::sync::Mutex<Loaded>,
    /// One reload at a time; others wait for it and use its result.
    reloading: tokio::sync::Mutex<()>,
    http: reqwest::Client,
}

impl KeySet {
    /// A key set over `source`, not loaded yet ([`KeySet::load`]).
    pub fn new(source: KeySource, refresh_every: Duration) -> Self {
        Self {
            source,
            refresh_every,
            loaded: std::sync::Mutex::new(Loaded::default()),
            reloading: tokio::sync::Mutex::new(()),
            http: reqwest::Client::builder()
                .timeout(FETCH_TIMEOUT)
                .build()
                .unwrap_or_default(),
        }
    }

    /// Loads the keys now; the error says why not (a service logs it and keeps trying on
    /// demand, so an identity provider that is down at start does not stop the mesh).
    pub async fn load(&self) -> Result<usize, AuthError> {
        let _one_at_a_time = self.reloading.lock().await;
        self.reload_now().await
    }

    /// The keys that may have signed a token with `kid` and `algorithm`: by key id when the
    /// token names one, else every key of that algorithm. Reloads once (throttled) when none
    /// matches.
    pub async fn candidates(
        &self,
        kid: Option<&str>,
        algorithm: Algorithm,
    ) -> Result<Vec<Arc<VerifyKey>>, AuthError> {
        let found = matching(&self.current(), kid, algorithm);
        if !found.is_empty() {
            return Ok(found);
        }
        let _one_at_a_time = self.reloading.lock().await;
        // Another call may have reloaded while this one waited.
        let found = matching(&self.current(), kid, algorithm);
        if !found.is_empty() {
            return Ok(found);
        }
        if self.may_reload() {
            match self.reload_now().await {
                Ok(_) => {}
                Err(err) if self.never_loaded() => return Err(err),
                Err(err) => {
                    tracing::warn!(%err, "reloading token keys failed; keeping the old set");
                }
            }
        } else if self.never_loaded() {
            return Err(AuthError::KeysUnavailable(
                "token-signing keys are not loaded yet".into(),
            ));
        }
        Ok(matching(&self.current(), kid, algorithm))
    }

    fn current(&self) -> Arc<Vec<Arc<VerifyKey>>> {
        self.lock().keys.clone()
    }

    fn never_loaded(&self) -> bool {
        !self.lock().ever_loaded
    }

    fn may_reload(&self) -> bool {
        self.lock()
            .last_attempt
            .is_none_or(|at| at.elapsed() >= self.refresh_every)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Loaded> {
        self.loaded
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    async fn reload_now(&self) -> Result<usize, AuthError> {
        self.lock().last_attempt = Some(Instant::now());
        let document = self.fetch().await?;
        let keys = parse_key_set(&document)?;
        let count = keys.len();
        let mut loaded = self.lock();
        loaded.keys = Arc::new(keys.into_iter().map(Arc::new).collect());
        loaded.ever_loaded = true;
        tracing::info!(keys = count, "token keys loaded");
        Ok(count)
    }

    async fn fetch(&self) -> Result<Vec<u8>, AuthError> {
        match &self.source {
            KeySource::None => Ok(br#"{"keys":[]}"#.to_vec()),
            KeySource::File(path) => tokio::fs::read(path).await.map_err(|err| {
                AuthError::KeysUnavailable(format!("cannot read {}: {err}", path.display()))
            }),
            KeySource::Url(url) => {
                let shown = crate::config::redact_credentials(url);
                let response = self
                    .http
                    .get(url)
                    .send()
                    .await
                    .and_then(reqwest::Response::error_for_status)
                    .map_err(|err| {
                        AuthError::KeysUnavailable(format!(
                            "cannot fetch {shown}: {}",
                            err.without_url()
                        ))
                    })?;
                let body = response.bytes().await.map_err(|err| {
                    AuthError::KeysUnavailable(format!(
                        "cannot read {shown}: {}",
                        err.without_url()
                    ))
                })?;
                Ok(body.to_vec())
            }
        }
    }
}

fn matching(
    keys: &[Arc<VerifyKey>],
    kid: Option<&str>,
    algorithm: Algorithm,
) -> Vec<Arc<VerifyKey>> {
    keys.iter()
        .filter(|key| key.algorithm == algorithm)
        .filter(|key| kid.is_none() || key.kid.as_deref() == kid)
        .cloned()
        .collect()
}

/// The usable verification keys of a JWKS document. Keys for encryption, of algorithms not
/// accepted, or that do not parse are skipped (a provider's set often holds such keys); a
/// document that is not a JWKS at all is an error.
pub fn parse_key_set(document: &[u8]) -> Result<Vec<VerifyKey>, AuthError> {
    let set: JwkSet = serde_json::from_slice(document)
        .map_err(|err| AuthError::KeysUnavailable(format!("not a JWKS document: {err}")))?;
    Ok(set.keys.iter().filter_map(verify_key).collect())
}

fn verify_key(jwk: &Jwk) -> Option<VerifyKey> {
    if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
        return None;
    }
    let algorithm = match jwk.common.key_algorithm {
        Some(KeyAlgorithm::RS256) => Algorithm::RS256,
        Some(KeyAlgorithm::ES256) => Algorithm::ES256,
        Some(KeyAlgorithm::EdDSA) => Algorithm::EdDSA,
        Some(_) => return None,
        None => match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => Algorithm::RS256,
            AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => {
                Algorithm::ES256
            }
            AlgorithmParameters::OctetKeyPair(okp) if okp.curve == EllipticCurve::Ed25519 => {
                Algorithm::EdDSA
            }
            _ => return None,
        },
    };
    if !ACCEPTED_ALGORITHMS.contains(&algorithm) {
        return None;
    }
    let key = DecodingKey::from_jwk(jwk).ok()?;
    Some(VerifyKey {
        kid: jwk.common.key_id.clone(),
        algorithm,
        key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symmetric_and_encryption_keys_are_skipped() {
        let document = br#"{"keys":[
            {"kty":"oct","k":"c2VjcmV0","alg":"HS256","kid":"h"},
            {"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","kid":"e","use":"enc"},
            {"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","kid":"s"}
        ]}"#;
        let keys = parse_key_set(document).unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].kid.as_deref(), Some("s"));
        assert_eq!(keys[0].algorithm, Algorithm::EdDSA);
    }

    #[test]
    fn a_document_that_is_not_a_key_set_is_an_error() {
        assert!(parse_key_set(b"<html>").is_err());
        assert!(parse_key_set(br#"{"keys":[]}"#).unwrap().is_empty());
    }
}
