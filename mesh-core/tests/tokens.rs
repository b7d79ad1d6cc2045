//! Token verification against real key files: RS256, ES256 and EdDSA tokens, every claim
//! check, and the key set re-read on an unknown key id at most once per refresh interval.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use mesh_core::auth::config::{DEFAULT_AUDIENCE, DEV_ISSUER};
use mesh_core::auth::dev_keys::{DevIssuer, unix_now};
use mesh_core::auth::{AuthConfig, AuthError, AuthMode, Authenticator, Caller, KeySource, Role};
use serde_json::{Value, json};

fn scratch_dir(label: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "rm-tokens-{label}-{}-{}",
        std::process::id(),
        unix_now()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

fn jwt_config(jwks: &Path, refresh_every: Duration) -> AuthConfig {
    let mut config = AuthConfig::dev(Some(jwks.to_path_buf()));
    config.mode = AuthMode::Jwt;
    config.refresh_every = refresh_every;
    config
}

fn claims(sub: &str, roles: &[&str]) -> Value {
    let now = unix_now();
    json!({"iss": DEV_ISSUER, "aud": DEFAULT_AUDIENCE, "sub": sub, "roles": roles,
           "nbf": now, "exp": now + 600})
}

/// A pem fixture key as an encoding key and its public JWK under `kid`.
fn fixture(file: &str, algorithm: Algorithm, kid: &str) -> (EncodingKey, Jwk) {
    let pem = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(file),
    )
    .expect("fixture key");
    let key = match algorithm {
        Algorithm::RS256 => EncodingKey::from_rsa_pem(&pem),
        _ => EncodingKey::from_ec_pem(&pem),
    }
    .expect("fixture key parses");
    let mut jwk = Jwk::from_encoding_key(&key, algorithm).expect("public jwk");
    jwk.common.key_id = Some(kid.to_owned());
    (key, jwk)
}

fn sign(key: &EncodingKey, algorithm: Algorithm, kid: &str, claims: &Value) -> String {
    let mut header = Header::new(algorithm);
    header.kid = Some(kid.to_owned());
    encode(&header, claims, key).expect("sign")
}

#[tokio::test]
async fn rs256_es256_and_eddsa_tokens_verify_with_their_roles() {
    let dir = scratch_dir("algs");
    let dev = DevIssuer::open_or_create(&dir).unwrap();
    let (rsa, rsa_jwk) = fixture("test-only-rsa.pem", Algorithm::RS256, "rsa-1");
    let (ec, ec_jwk) = fixture("test-only-ec.pem", Algorithm::ES256, "ec-1");
    let mut set: JwkSet = serde_json::from_slice(&std::fs::read(dev.jwks_path()).unwrap()).unwrap();
    set.keys.extend([rsa_jwk, ec_jwk]);
    let jwks = dir.join("all.json");
    std::fs::write(&jwks, serde_json::to_vec(&set).unwrap()).unwrap();
    let auth = Authenticator::new(&jwt_config(&jwks, Duration::from_secs(30)));
    auth.load_keys().await;

    let by_rsa = sign(&rsa, Algorithm::RS256, "rsa-1", &claims("kim", &["buyer"]));
    let by_ec = sign(
        &ec,
        Algorithm::ES256,
        "ec-1",
        &claims("lee", &["seller", "x"]),
    );
    let by_ed = dev.mint("ops", &[Role::Admin, Role::Buyer], 60);
    assert_eq!(
        auth.verify(&by_rsa).await.unwrap(),
        Caller::new("kim", [Role::Buyer])
    );
    assert_eq!(
        auth.verify(&by_ec).await.unwrap(),
        Caller::new("lee", [Role::Seller])
    );
    assert_eq!(
        auth.authenticate(Some(&format!("Bearer {by_ed}")))
            .await
            .unwrap(),
        Caller::new("ops", [Role::Admin, Role::Buyer])
    );
    // A token whose header claims another key's algorithm does not verify.
    let confused = sign(&ec, Algorithm::ES256, "rsa-1", &claims("kim", &["admin"]));
    assert!(auth.verify(&confused).await.is_err());
}

#[tokio::test]
async fn every_claim_is_checked() {
    let dir = scratch_dir("claims");
    let dev = DevIssuer::open_or_create(&dir).unwrap();
    let auth = Authenticator::new(&jwt_config(dev.jwks_path(), Duration::from_secs(30)));
    auth.load_keys().await;
    let now = unix_now();
    let with = |changes: Value| {
        let mut all = claims("kim", &["buyer"]);
        for (name, value) in changes.as_object().unwrap() {
            if value.is_null() {
                all.as_object_mut().unwrap().remove(name);
            } else {
                all[name] = value.clone();
            }
        }
        dev.mint_claims(all)
    };
    let refused = [
        (json!({"exp": now - 120}), "expired"),
        (json!({"nbf": now + 120}), "not valid yet"),
        (json!({"aud": "someone-else"}), "another audience"),
        (json!({"iss": "https://evil.example"}), "issuer"),
        (json!({"exp": null}), "exp"),
        (json!({"sub": null}), "sub"),
        (json!({"sub": ""}), "subject"),
    ];
    for (change, why) in refused {
        let token = with(change.clone());
        match auth.verify(&token).await {
            Err(AuthError::Invalid(message)) => {
                assert!(message.contains(why), "{change}: {message}");
                assert!(!message.contains(&token), "the message shows the token");
            }
            other => panic!("{change} was not refused: {other:?}"),
        }
    }
    // Within the clock skew (30 s) an expired or early token still passes.
    assert!(auth.verify(&with(json!({"exp": now - 5}))).await.is_ok());
    assert!(auth.verify(&with(json!({"nbf": now + 5}))).await.is_ok());
    // Roles may come as one space-separated string.
    let spaced = auth
        .verify(&with(json!({"roles": "seller buyer"})))
        .await
        .unwrap();
    assert!(spaced.has(Role::Seller) && spaced.has(Role::Buyer));

    // HS256 (a shared secret anyone holding the key set could forge with) is refused, and
    // so is a token signed by a key that is not in the set.
    let hs = encode(
        &Header::new(Algorithm::HS256),
        &claims("kim", &["admin"]),
        &EncodingKey::from_secret(b"a-shared-secret-of-32-bytes-long").unwrap(),
    )
    .unwrap();
    assert!(matches!(auth.verify(&hs).await, Err(AuthError::Invalid(_))));
    let stranger = DevIssuer::open_or_create(&scratch_dir("stranger")).unwrap();
    assert!(matches!(
        auth.verify(&stranger.mint("kim", &[Role::Admin], 60)).await,
        Err(AuthError::Invalid(_))
    ));
    assert!(auth.authenticate(Some("Basic a2ltOmtpbQ==")).await.is_err());
    assert!(matches!(
        auth.authenticate(None).await,
        Err(AuthError::Missing)
    ));
}

#[tokio::test]
async fn an_unknown_key_id_rereads_the_key_set_at_most_once_per_interval() {
    let dir = scratch_dir("rotate");
    let old = DevIssuer::open_or_create(&dir.join("old")).unwrap();
    let jwks = dir.join("jwks.json");
    std::fs::copy(old.jwks_path(), &jwks).unwrap();
    let interval = Duration::from_millis(700);
    let auth = Authenticator::new(&jwt_config(&jwks, interval));
    auth.load_keys().await;
    let loaded_at = Instant::now();

    // The provider rotates to a new key and publishes it.
    let new = DevIssuer::open_or_create(&dir.join("new")).unwrap();
    std::fs::copy(new.jwks_path(), &jwks).unwrap();
    let token = new.mint("kim", &[Role::Buyer], 60);
    // Right after a load, an unknown key id does not cause another read...
    let early = auth.verify(&token).await;
    if loaded_at.elapsed() < interval {
        assert!(matches!(early, Err(AuthError::Invalid(_))), "{early:?}");
    }
    // ...once the interval has passed, it does, and the new key verifies.
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let verified = loop {
        tick.tick().await;
        if let Ok(caller) = auth.verify(&token).await {
            break caller;
        }
        assert!(
            loaded_at.elapsed() < interval * 4,
            "the rotated key was never picked up"
        );
    };
    assert!(
        loaded_at.elapsed() >= interval,
        "re-read sooner than the interval"
    );
    assert_eq!(verified.subject(), "kim");
    // The old key is gone from the set.
    assert!(
        auth.verify(&old.mint("kim", &[Role::Buyer], 60))
            .await
            .is_err()
    );
}

#[tokio::test]
async fn keys_that_cannot_be_loaded_answer_unavailable_not_unauthenticated() {
    let dir = scratch_dir("missing");
    let issuer = DevIssuer::open_or_create(&dir.join("issuer")).unwrap();
    let mut config = jwt_config(&dir.join("absent.json"), Duration::from_secs(30));
    config.keys = KeySource::File(dir.join("absent.json"));
    let auth = Authenticator::new(&config);
    auth.load_keys().await;
    let token = issuer.mint("kim", &[Role::Buyer], 60);
    assert!(matches!(
        auth.verify(&token).await,
        Err(AuthError::KeysUnavailable(_))
    ));
}

/// The Helm chart's bundled issuer: the key the chart generated, the JWKS an init container
/// writes with `mesh-token --jwks --out`, and tokens minted by `mesh-token` naming the
/// release's issuer, which a `jwt`-mode verifier (not dev mode) accepts.
#[tokio::test]
async fn mesh_token_issues_as_the_configured_issuer_and_writes_its_key_set() {
    let dir = scratch_dir("bundled");
    let keys = dir.join("issuer");
    DevIssuer::open_or_create(&keys).unwrap();
    let jwks = dir.join("jwks.json");
    let issuer_name = "https://reserve-mesh.example/issuer";
    let mesh_token = |args: &[&str]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_mesh-token"))
            .args(args)
            .env("MESH_AUTH_DIR", &keys)
            .env("AUTH_ISSUER", issuer_name)
            .env("AUTH_AUDIENCE", "shop")
            .output()
            .expect("mesh-token runs");
        assert!(output.status.success(), "mesh-token {args:?}: {output:?}");
        String::from_utf8(output.stdout).unwrap().trim().to_owned()
    };

    mesh_token(&["--jwks", "--out", jwks.to_str().unwrap()]);
    let token_file = dir.join("token");
    mesh_token(&["seller,buyer", "lee", "--out", token_file.to_str().unwrap()]);
    let token = std::fs::read_to_string(&token_file)
        .unwrap()
        .trim()
        .to_owned();

    let mut config = jwt_config(&jwks, Duration::from_secs(30));
    config.issuer = issuer_name.into();
    config.audience = "shop".into();
    let auth = Authenticator::new(&config);
    auth.load_keys().await;
    let caller = auth
        .verify(&token)
        .await
        .expect("the bundled issuer's token");
    assert_eq!(caller.subject(), "lee");
    assert!(caller.has(Role::Seller) && caller.has(Role::Buyer));

    let dev_config = jwt_config(&jwks, Duration::from_secs(30));
    let dev_auth = Authenticator::new(&dev_config);
    dev_auth.load_keys().await;
    assert!(
        matches!(dev_auth.verify(&token).await, Err(AuthError::Invalid(_))),
        "a verifier expecting the dev issuer refuses the release's tokens"
    );
}
