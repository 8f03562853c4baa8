//! `POST /console/dev/token`: local sign-in. Signs a bearer token for a chosen role with the
//! throw-away key `make up` made for this run (the `console_dev_signing_key` variable, an
//! Ed25519 PKCS#8 PEM), with the claims `scripts/token` gives. The variable is empty by
//! default and no cluster manifest sets it, so outside `make up` the route is a 404: there
//! tokens come from the identity provider only.

use htaxi_shared::domain::PhoneNumber;
use htaxi_shared::ids::TaxiId;
use htaxi_shared::platform::config;
use htaxi_shared::platform::http::{self, RequestContext};
use htaxi_shared::problem::ApiError;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};
use spin_sdk::http::{Request, Response};

/// How long a dev token lives (as `scripts/token`'s default).
pub const TTL_SECS: i64 = 3600;

/// The sign-in form: a role and who, as the identity provider would know them.
#[derive(Debug, Deserialize)]
#[serde(
    tag = "role",
    rename_all = "lowercase",
    rename_all_fields = "camelCase"
)]
#[serde(deny_unknown_fields)]
pub enum SignInDto {
    Rider { phone_number: String },
    Driver { taxi_id: String },
    Operator { name: Option<String> },
}

/// A parsed sign-in: the token's `role` and `sub`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignIn {
    pub role: &'static str,
    pub subject: String,
}

impl TryFrom<SignInDto> for SignIn {
    type Error = ApiError;
    fn try_from(dto: SignInDto) -> Result<Self, ApiError> {
        Ok(match dto {
            SignInDto::Rider { phone_number } => SignIn {
                role: "rider",
                subject: PhoneNumber::parse(&phone_number)?.as_str().to_owned(),
            },
            SignInDto::Driver { taxi_id } => SignIn {
                role: "driver",
                subject: TaxiId::parse(taxi_id.trim())
                    .map_err(|_| ApiError::invalid("taxiId", "must be a taxi id (a UUID)"))?
                    .as_str()
                    .to_owned(),
            },
            SignInDto::Operator { name } => SignIn {
                role: "operator",
                subject: name
                    .map(|n| n.trim().to_owned())
                    .filter(|n| !n.is_empty() && n.len() <= 64)
                    .unwrap_or_else(|| "console-operator".to_owned()),
            },
        })
    }
}

/// The claims `shared::auth` checks (and `scripts/mint_token.py` writes).
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    pub sub: String,
    pub role: String,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
}

/// The claims of a token for `sign_in`, issued at `now` (Unix seconds).
pub fn claims(sign_in: &SignIn, issuer: &str, audience: &str, now: i64) -> Claims {
    Claims {
        iss: issuer.to_owned(),
        aud: audience.to_owned(),
        sub: sign_in.subject.clone(),
        role: sign_in.role.to_owned(),
        iat: now,
        nbf: now,
        exp: now + TTL_SECS,
    }
}

/// Sign `claims` (EdDSA) with a PKCS#8 PEM Ed25519 key; fails when the key is unusable.
pub fn sign(claims: &Claims, pem: &str) -> anyhow::Result<String> {
    let key = EncodingKey::from_ed_pem(pem.as_bytes())
        .map_err(|e| anyhow::anyhow!("console_dev_signing_key is not an Ed25519 PEM key: {e}"))?;
    jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), claims, &key)
        .map_err(|e| anyhow::anyhow!("signing a dev token: {e}"))
}

/// What the route answers.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TokenView<'a> {
    token: String,
    role: &'a str,
    subject: &'a str,
    expires_at: i64,
}

/// The route's configuration: the key (empty when dev sign-in is off) and the token policy.
struct Config {
    signing_key: String,
    issuer: String,
    audience: String,
}

impl Config {
    fn load() -> anyhow::Result<Config> {
        Ok(Config {
            signing_key: config::text("console_dev_signing_key")?,
            issuer: config::text("auth_issuer")?,
            audience: config::text("auth_audience")?,
        })
    }
}

/// `POST /console/dev/token` `{"role":"rider","phoneNumber":..}` | `{"role":"driver",
/// "taxiId":..}` | `{"role":"operator"}` → `200 {"token",..}`; `404` when dev sign-in is off.
pub fn issue(ctx: &RequestContext, req: &Request) -> Result<Response, ApiError> {
    let config = Config::load()?;
    if config.signing_key.trim().is_empty() {
        return Err(ApiError::NotFound(
            "dev sign-in is off here: sign in with a token from the identity provider".into(),
        ));
    }
    let sign_in = SignIn::try_from(http::json_body::<SignInDto>(req)?)?;
    let now = chrono::Utc::now().timestamp();
    let claims = claims(&sign_in, &config.issuer, &config.audience, now);
    let token = sign(&claims, &config.signing_key)?;
    htaxi_shared::log!(
        ctx.component,
        ctx.correlation.as_str(),
        "dev sign-in: a {} token",
        sign_in.role
    );
    Ok(http::json(
        200,
        &TokenView {
            token,
            role: sign_in.role,
            subject: &sign_in.subject,
            expires_at: claims.exp,
        },
        ctx,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use htaxi_shared::auth::{verify, Keys, Policy, Principal};

    // A test-only Ed25519 key pair (RFC 8037's example key), as PEM and as JWKS.
    const PEM: &str = "-----BEGIN PRIVATE KEY-----\n\
MC4CAQAwBQYDK2VwBCIEIJ1hsZ3v/VpguoRK9JLsLMREScVpezJpGXA7rAMcrn9g\n\
-----END PRIVATE KEY-----\n";
    const JWKS: &str = r#"{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#;

    fn policy() -> Policy {
        Policy {
            issuer: "https://auth.htaxi.local".into(),
            audience: "htaxi".into(),
            leeway_secs: 30,
        }
    }

    fn parse(json: &str) -> Result<SignIn, ApiError> {
        SignIn::try_from(serde_json::from_str::<SignInDto>(json).expect("a sign-in form"))
    }

    fn token_for(json: &str, now: i64) -> String {
        let p = policy();
        sign(
            &claims(&parse(json).unwrap(), &p.issuer, &p.audience, now),
            PEM,
        )
        .unwrap()
    }

    #[test]
    fn a_rider_token_names_the_riders_phone_and_verifies_as_the_components_do() {
        let now = 1_800_000_000;
        let token = token_for(r#"{"role":"rider","phoneNumber":"010-1234-5678"}"#, now);
        let keys = Keys::from_jwks(JWKS).unwrap();
        match verify(&token, &keys, &policy(), now).unwrap() {
            Principal::Rider { phone } => assert_eq!(phone.as_str(), "010-1234-5678"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn driver_and_operator_tokens_name_their_principals() {
        let now = 1_800_000_000;
        let keys = Keys::from_jwks(JWKS).unwrap();
        let taxi = "6f1c1b7e-5f43-4a55-9a35-2b3cfa2f1d0a";
        let driver = token_for(&format!(r#"{{"role":"driver","taxiId":"{taxi}"}}"#), now);
        assert_eq!(
            verify(&driver, &keys, &policy(), now).unwrap(),
            Principal::Driver {
                taxi_id: TaxiId::parse(taxi).unwrap()
            }
        );
        let op = token_for(r#"{"role":"operator"}"#, now);
        assert_eq!(
            verify(&op, &keys, &policy(), now).unwrap(),
            Principal::Operator
        );
    }

    #[test]
    fn a_dev_token_expires_after_an_hour() {
        let now = 1_800_000_000;
        let token = token_for(r#"{"role":"operator"}"#, now);
        let keys = Keys::from_jwks(JWKS).unwrap();
        assert!(verify(&token, &keys, &policy(), now + TTL_SECS + 31).is_err());
    }

    #[test]
    fn a_bad_phone_number_or_taxi_id_is_refused_naming_the_field() {
        let e = parse(r#"{"role":"rider","phoneNumber":"call me"}"#).unwrap_err();
        assert_eq!(
            (e.status(), e.problem(None).field.as_deref()),
            (422, Some("phoneNumber"))
        );
        let e = parse(r#"{"role":"driver","taxiId":"taxi-1"}"#).unwrap_err();
        assert_eq!(
            (e.status(), e.problem(None).field.as_deref()),
            (422, Some("taxiId"))
        );
    }

    #[test]
    fn an_unknown_role_is_not_a_sign_in_form() {
        assert!(serde_json::from_str::<SignInDto>(r#"{"role":"admin"}"#).is_err());
        assert!(
            serde_json::from_str::<SignInDto>(r#"{"role":"rider","phoneNumber":"1","x":1}"#)
                .is_err()
        );
    }

    #[test]
    fn a_key_that_is_not_pem_is_an_error_not_a_token() {
        let c = claims(&parse(r#"{"role":"operator"}"#).unwrap(), "i", "a", 0);
        assert!(sign(&c, "not a key").is_err());
    }
}
