//! Dev mode's own token issuer: an Ed25519 key pair generated into a directory (`.run/auth`
//! under `script/server`), its public half published as `jwks.json` for the services, and
//! tokens signed with the private half (`script/token buyer kim`). Tests mint their tokens
//! the same way.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};

use super::caller::Role;
use super::config::{DEFAULT_AUDIENCE, DEV_ISSUER};

/// The private key's file name inside the directory (PKCS#8 DER, mode 0600).
pub const SIGNING_KEY_FILE: &str = "signing-key.der";
/// The public key set's file name inside the directory (give it as `AUTH_JWKS_FILE`).
pub const JWKS_FILE: &str = "jwks.json";

/// How long a minted token lives unless told otherwise.
pub const DEFAULT_TTL_SECS: u64 = 12 * 3600;

/// The PKCS#8 v1 wrapping of a 32-byte Ed25519 seed (RFC 8410, section 7).
const PKCS8_ED25519_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// A token issuer over one key pair.
pub struct DevIssuer {
    kid: String,
    key: EncodingKey,
    public_keys: Value,
    jwks_path: PathBuf,
    issuer: String,
    audience: String,
}

impl DevIssuer {
    /// The issuer whose keys are in `dir`, generating them first when the directory has
    /// none.
    pub fn open_or_create(dir: &Path) -> std::io::Result<Self> {
        let key_path = dir.join(SIGNING_KEY_FILE);
        if !key_path.exists() {
            std::fs::create_dir_all(dir)?;
            let mut seed = [0u8; 32];
            getrandom::fill(&mut seed).map_err(std::io::Error::other)?;
            write_private(&key_path, &pkcs8(&seed))?;
            std::fs::write(dir.join(JWKS_FILE), jwks(&seed).to_string())?;
        }
        let der = std::fs::read(&key_path)?;
        let seed: [u8; 32] = der
            .strip_prefix(&PKCS8_ED25519_PREFIX[..])
            .and_then(|rest| rest.try_into().ok())
            .ok_or_else(|| {
                std::io::Error::other(format!(
                    "{} is not an Ed25519 PKCS#8 key",
                    key_path.display()
                ))
            })?;
        Ok(Self {
            kid: kid_of(&seed),
            key: EncodingKey::from_ed_der(&der),
            public_keys: jwks(&seed),
            jwks_path: dir.join(JWKS_FILE),
            issuer: DEV_ISSUER.to_owned(),
            audience: DEFAULT_AUDIENCE.to_owned(),
        })
    }

    /// The same key issuing as `issuer` for `audience`: the Helm chart's bundled issuer
    /// (a key the chart generates, trusted in `jwt` mode) names itself after the release.
    pub fn issuing_as(mut self, issuer: String, audience: String) -> Self {
        self.issuer = issuer;
        self.audience = audience;
        self
    }

    /// The public key set (JWKS) that verifies this issuer's tokens.
    pub fn public_keys(&self) -> &Value {
        &self.public_keys
    }

    /// Where the public key set is.
    pub fn jwks_path(&self) -> &Path {
        &self.jwks_path
    }

    /// A token for `subject` with `roles`, issued by this issuer ([`DEV_ISSUER`] unless
    /// [`Self::issuing_as`] said otherwise) for its audience, valid for `ttl_secs`.
    pub fn mint(&self, subject: &str, roles: &[Role], ttl_secs: u64) -> String {
        let now = unix_now();
        self.mint_claims(json!({
            "iss": self.issuer,
            "aud": self.audience,
            "sub": subject,
            "roles": roles.iter().map(|role| role.name()).collect::<Vec<_>>(),
            "iat": now,
            "nbf": now,
            "exp": now + ttl_secs,
        }))
    }

    /// A token carrying exactly `claims` (tests forge expired, early or misaddressed ones).
    pub fn mint_claims(&self, claims: Value) -> String {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        // Signing with a key we just parsed cannot fail; an empty token would be refused.
        encode(&header, &claims, &self.key).unwrap_or_default()
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

fn pkcs8(seed: &[u8; 32]) -> Vec<u8> {
    let mut der = PKCS8_ED25519_PREFIX.to_vec();
    der.extend_from_slice(seed);
    der
}

fn public_key(seed: &[u8; 32]) -> [u8; 32] {
    ed25519_dalek::SigningKey::from_bytes(seed)
        .verifying_key()
        .to_bytes()
}

fn kid_of(seed: &[u8; 32]) -> String {
    format!("dev-{}", URL_SAFE_NO_PAD.encode(&public_key(seed)[..9]))
}

fn jwks(seed: &[u8; 32]) -> Value {
    json!({"keys": [{
        "kty": "OKP",
        "crv": "Ed25519",
        "alg": "EdDSA",
        "use": "sig",
        "kid": kid_of(seed),
        "x": URL_SAFE_NO_PAD.encode(public_key(seed)),
    }]})
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    options.mode(0o600);
    options.open(path)?.write_all(bytes)
}
