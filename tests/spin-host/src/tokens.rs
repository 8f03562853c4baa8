//! Test bearer tokens (the e2e suites and the bench): the app under test trusts [`TEST_JWKS`], and [`mint`] signs a token
//! for a rider, a driver or an operator with its private half, the way an OIDC identity
//! provider would. [`Token`] builds the broken ones the authorization matrix needs.
//!
//! Tokens are signed here with `ring` (already in the host's dependency graph), an
//! implementation independent of the verifier under test (`jsonwebtoken` in the app).

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD as B64};
use base64::Engine;
use ring::signature::Ed25519KeyPair;
use serde_json::json;
use std::time::{SystemTime, UNIX_EPOCH};

/// The issuer and audience the app expects (spin.toml's defaults, the ConfigMap's values).
pub const ISSUER: &str = "https://auth.htaxi.local";
pub const AUDIENCE: &str = "htaxi";

// A throw-away Ed25519 key for tests only (PKCS#8 DER, base64; also in shared/src/auth.rs's
// unit tests): its seed is the last 32 bytes.
const TEST_KEY: &str = "MC4CAQAwBQYDK2VwBCIEIBDK/MDX00GNS4XLC5+CNI6hJvtQqcYJqxc0AQlcMy02";
// A key the app does not trust.
const OTHER_KEY: &str = "MC4CAQAwBQYDK2VwBCIEINs1NatkNPE6AoA+3bncvT9Y67vto8E3+vUESNKOBm/Y";

/// The JWKS document of the test key (the `auth_jwks` variable of every test run).
pub const TEST_JWKS: &str = r#"{"keys":[{"kty":"OKP","crv":"Ed25519","x":"a_yDDI7lNv1uuylgoeijTtHf35Rlavc2fJpwmdmAEaU","kid":"e2e","alg":"EdDSA","use":"sig"}]}"#;

/// Who a token names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Who {
    /// A rider, by phone number.
    Rider(String),
    /// A driver, by taxi id.
    Driver(String),
    /// Operations staff.
    Operator,
}

/// A token to build: valid by default; [`Token::expired`], [`Token::wrong_key`] and
/// [`Token::audience`] break it one way each.
#[derive(Debug, Clone)]
pub struct Token {
    who: Who,
    audience: String,
    exp_offset_secs: i64,
    wrong_key: bool,
}

impl Token {
    /// A valid ten-minute token for `who`.
    pub fn new(who: Who) -> Self {
        Token {
            who,
            audience: AUDIENCE.into(),
            exp_offset_secs: 600,
            wrong_key: false,
        }
    }

    /// Expired ten minutes ago (well past the leeway).
    pub fn expired(mut self) -> Self {
        self.exp_offset_secs = -600;
        self
    }

    /// Signed with a key the app does not trust.
    pub fn wrong_key(mut self) -> Self {
        self.wrong_key = true;
        self
    }

    /// For another audience.
    pub fn audience(mut self, aud: &str) -> Self {
        self.audience = aud.into();
        self
    }

    /// The compact JWT (EdDSA).
    pub fn sign(&self) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock after 1970")
            .as_secs() as i64;
        let (role, sub) = match &self.who {
            Who::Rider(phone) => ("rider", phone.clone()),
            Who::Driver(taxi) => ("driver", taxi.clone()),
            Who::Operator => ("operator", "e2e-operator".to_owned()),
        };
        let claims = json!({
            "iss": ISSUER, "aud": self.audience, "sub": sub, "role": role,
            "iat": now, "nbf": now - 5, "exp": now + self.exp_offset_secs,
        });
        let header = json!({"alg": "EdDSA", "typ": "JWT", "kid": "e2e"});
        let signing_input = format!(
            "{}.{}",
            B64.encode(header.to_string()),
            B64.encode(claims.to_string())
        );
        let pkcs8 = STANDARD
            .decode(if self.wrong_key { OTHER_KEY } else { TEST_KEY })
            .expect("test key is base64");
        let key = Ed25519KeyPair::from_seed_unchecked(&pkcs8[pkcs8.len() - 32..])
            .expect("test key is an Ed25519 seed");
        let signature = key.sign(signing_input.as_bytes());
        format!("{signing_input}.{}", B64.encode(signature.as_ref()))
    }
}

/// A valid token for `who`.
pub fn mint(who: Who) -> String {
    Token::new(who).sign()
}
