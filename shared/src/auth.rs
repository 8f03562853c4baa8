//! Who is calling: bearer JWTs verified the way a service behind an OIDC identity provider
//! does it, and the one [`Principal`] every handler authorizes against.
//!
//! A token is accepted when its signature (EdDSA or ES256) checks against a key of the
//! JWKS document in the `auth_jwks` variable (no default), its `iss` and `aud` match
//! `auth_issuer` / `auth_audience`, it is within `exp`/`nbf` give or take `auth_leeway_secs`,
//! and its `role` claim with its `sub` names a principal: `rider` + phone number, `driver` +
//! taxi id, or `operator`. Anything else is a `401` with `WWW-Authenticate: Bearer`; a valid
//! principal doing what its role may not is a `403`; someone else's resource is a `404`
//! (its existence is not confirmed). The rules table lives in the README.
//!
//! [`verify`] is pure (the clock is passed in); [`authenticate`] is the Spin shell around it.

use crate::domain::PhoneNumber;
use crate::ids::TaxiId;
use crate::platform::config;
use crate::problem::ApiError;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use spin_sdk::http::Request;

/// The caller a verified token names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// A rider, known by the phone number the identity provider verified.
    Rider { phone: PhoneNumber },
    /// A driver, known by the taxi they drive.
    Driver { taxi_id: TaxiId },
    /// Operations staff: every list, dead letters, detailed health.
    Operator,
}

/// What a token must satisfy besides its signature.
#[derive(Debug, Clone)]
pub struct Policy {
    /// The expected `iss`.
    pub issuer: String,
    /// The expected `aud` (one of the token's audiences).
    pub audience: String,
    /// Clock skew allowed on `exp` and `nbf`, in seconds.
    pub leeway_secs: u64,
}

/// The verification keys: a JWKS document's keys by `kid`, each with its algorithm.
pub struct Keys {
    keys: Vec<(Option<String>, Algorithm, DecodingKey)>,
}

impl Keys {
    /// Parse a JWKS document (`{"keys":[...]}`); only EdDSA (OKP Ed25519) and ES256 (EC
    /// P-256) keys are kept. Fails when it is not a JWKS or holds no usable key.
    pub fn from_jwks(json: &str) -> anyhow::Result<Keys> {
        let set: JwkSet = serde_json::from_str(json)
            .map_err(|e| anyhow::anyhow!("auth_jwks is not a JWKS document: {e}"))?;
        let mut keys = Vec::new();
        for jwk in &set.keys {
            let alg = match &jwk.algorithm {
                jsonwebtoken::jwk::AlgorithmParameters::OctetKeyPair(_) => Algorithm::EdDSA,
                jsonwebtoken::jwk::AlgorithmParameters::EllipticCurve(p)
                    if p.curve == jsonwebtoken::jwk::EllipticCurve::P256 =>
                {
                    Algorithm::ES256
                }
                _ => continue,
            };
            let key = DecodingKey::from_jwk(jwk)
                .map_err(|e| anyhow::anyhow!("auth_jwks has an unusable key: {e}"))?;
            keys.push((jwk.common.key_id.clone(), alg, key));
        }
        if keys.is_empty() {
            anyhow::bail!("auth_jwks holds no EdDSA or ES256 key");
        }
        Ok(Keys { keys })
    }
}

/// The claims H Taxi reads.
#[derive(Debug, Deserialize)]
struct Claims {
    sub: String,
    role: String,
    exp: i64,
    nbf: Option<i64>,
}

/// Why a token was refused (all `401`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("a bearer token is required")]
    Missing,
    #[error("the bearer token is invalid: {0}")]
    Invalid(String),
    #[error("the bearer token has expired")]
    Expired,
    #[error("the bearer token is not valid yet")]
    NotYetValid,
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        ApiError::Unauthorized(e.to_string())
    }
}

/// Verify `token` against `keys` and `policy` at `now_secs` (Unix seconds) and name its
/// principal. Fails with the reason it is refused.
pub fn verify(
    token: &str,
    keys: &Keys,
    policy: &Policy,
    now_secs: i64,
) -> Result<Principal, AuthError> {
    let invalid = |why: &str| AuthError::Invalid(why.to_owned());
    let header = jsonwebtoken::decode_header(token).map_err(|_| invalid("not a JWT"))?;
    if !matches!(header.alg, Algorithm::EdDSA | Algorithm::ES256) {
        return Err(invalid("only EdDSA and ES256 tokens are accepted"));
    }
    let candidates = keys.keys.iter().filter(|(kid, alg, _)| {
        *alg == header.alg && (header.kid.is_none() || kid.is_none() || *kid == header.kid)
    });
    let mut validation = Validation::new(header.alg);
    validation.set_issuer(&[&policy.issuer]);
    validation.set_audience(&[&policy.audience]);
    validation.set_required_spec_claims(&["exp", "sub", "iss", "aud"]);
    // Time is checked below against the caller's clock.
    validation.validate_exp = false;
    validation.validate_nbf = false;
    let mut last = invalid("no key of auth_jwks matches it");
    for (_, _, key) in candidates {
        match jsonwebtoken::decode::<Claims>(token, key, &validation) {
            Ok(data) => return principal(data.claims, policy, now_secs),
            Err(e) => {
                use jsonwebtoken::errors::ErrorKind as K;
                last = match e.kind() {
                    K::InvalidSignature => invalid("bad signature"),
                    K::InvalidIssuer => invalid("wrong issuer"),
                    K::InvalidAudience => invalid("wrong audience"),
                    K::MissingRequiredClaim(c) => invalid(&format!("missing claim {c}")),
                    _ => invalid("malformed"),
                };
                if !matches!(e.kind(), K::InvalidSignature) {
                    return Err(last);
                }
            }
        }
    }
    Err(last)
}

fn principal(c: Claims, policy: &Policy, now: i64) -> Result<Principal, AuthError> {
    let leeway = policy.leeway_secs as i64;
    if now > c.exp + leeway {
        return Err(AuthError::Expired);
    }
    if c.nbf.is_some_and(|nbf| now + leeway < nbf) {
        return Err(AuthError::NotYetValid);
    }
    let bad_sub = |role: &str| AuthError::Invalid(format!("sub is not a {role}"));
    match c.role.as_str() {
        "rider" => Ok(Principal::Rider {
            phone: PhoneNumber::parse(&c.sub).map_err(|_| bad_sub("phone number"))?,
        }),
        "driver" => Ok(Principal::Driver {
            taxi_id: TaxiId::parse(&c.sub).map_err(|_| bad_sub("taxi id"))?,
        }),
        "operator" => Ok(Principal::Operator),
        _ => Err(AuthError::Invalid(
            "role must be rider, driver or operator".into(),
        )),
    }
}

/// The `Authorization: Bearer <token>` of a request, if any.
pub fn bearer(authorization: Option<&str>) -> Result<&str, AuthError> {
    let raw = authorization.ok_or(AuthError::Missing)?.trim();
    let (scheme, token) = raw.split_once(' ').ok_or(AuthError::Missing)?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(AuthError::Missing);
    }
    Ok(token.trim())
}

/// The principal of a request: its bearer token verified against the `auth_*` variables
/// and the clock. `401` for a missing or refused token; a missing or broken `auth_jwks`
/// is a deployment error (`500`, detail logged only).
pub fn authenticate(req: &Request) -> Result<Principal, ApiError> {
    let header = crate::platform::http::header(req, "authorization");
    let token = bearer(header.as_deref())?;
    let keys = Keys::from_jwks(&config::text("auth_jwks")?)?;
    let policy = Policy {
        issuer: config::text("auth_issuer")?,
        audience: config::text("auth_audience")?,
        leeway_secs: config::parsed("auth_leeway_secs")?,
    };
    Ok(verify(
        token,
        &keys,
        &policy,
        chrono::Utc::now().timestamp(),
    )?)
}

/// The principal when the request carries a token, `None` when it carries none (open
/// routes that show more to an operator). A refused token is still a `401`.
pub fn authenticate_optional(req: &Request) -> Result<Option<Principal>, ApiError> {
    if crate::platform::http::header(req, "authorization").is_none() {
        return Ok(None);
    }
    authenticate(req).map(Some)
}

fn forbidden(what: &str) -> ApiError {
    ApiError::Forbidden(format!("{what} is not allowed for this role"))
}

impl Principal {
    /// The rider's phone number; any other role is a `403` naming `what`.
    pub fn rider(&self, what: &str) -> Result<&PhoneNumber, ApiError> {
        match self {
            Principal::Rider { phone } => Ok(phone),
            _ => Err(forbidden(what)),
        }
    }

    /// The driver's taxi; any other role is a `403`.
    pub fn driver(&self, what: &str) -> Result<&TaxiId, ApiError> {
        match self {
            Principal::Driver { taxi_id } => Ok(taxi_id),
            _ => Err(forbidden(what)),
        }
    }

    /// Operators only; any other role is a `403`.
    pub fn operator(&self, what: &str) -> Result<(), ApiError> {
        match self {
            Principal::Operator => Ok(()),
            _ => Err(forbidden(what)),
        }
    }

    /// Reading a ride of rider `owner`: its rider or an operator. Another rider gets the
    /// `404` `not_found` (the ride is not confirmed to exist); a driver a `403`.
    pub fn read_ride(
        &self,
        owner: Option<&PhoneNumber>,
        not_found: ApiError,
    ) -> Result<(), ApiError> {
        match self {
            Principal::Operator => Ok(()),
            Principal::Rider { phone } if owner.is_some_and(|o| o.same_number(phone)) => Ok(()),
            Principal::Rider { .. } => Err(not_found),
            Principal::Driver { .. } => Err(forbidden("reading a ride")),
        }
    }

    /// Changing a ride of rider `owner` (cancel): its rider only; another rider → `404`.
    pub fn own_ride(&self, owner: &PhoneNumber, not_found: ApiError) -> Result<(), ApiError> {
        if self.rider("changing a ride")?.same_number(owner) {
            Ok(())
        } else {
            Err(not_found)
        }
    }

    /// Reading what belongs to taxi `owner` (the taxi, its allocations): its driver or an
    /// operator. Another driver → `404`; a rider → `403`.
    pub fn read_taxi(&self, owner: &TaxiId, not_found: ApiError) -> Result<(), ApiError> {
        match self {
            Principal::Operator => Ok(()),
            Principal::Driver { taxi_id } if taxi_id == owner => Ok(()),
            Principal::Driver { .. } => Err(not_found),
            Principal::Rider { .. } => Err(forbidden("reading a taxi")),
        }
    }

    /// Acting on taxi `owner`'s allocation (accept, complete): its driver only; another
    /// driver → `404`.
    pub fn own_taxi(&self, owner: &TaxiId, not_found: ApiError) -> Result<(), ApiError> {
        if self.driver("a driver's action")? == owner {
            Ok(())
        } else {
            Err(not_found)
        }
    }

    /// Which rider's rides a list shows: an operator sees what was `asked` (or all), a rider
    /// only their own (asking for another number is a `403`), a driver none (`403`).
    pub fn rides_listed(
        &self,
        asked: Option<PhoneNumber>,
    ) -> Result<Option<PhoneNumber>, ApiError> {
        match self {
            Principal::Operator => Ok(asked),
            Principal::Rider { phone } => match asked {
                Some(a) if !a.same_number(phone) => Err(ApiError::Forbidden(
                    "a rider lists only their own rides".into(),
                )),
                Some(a) => Ok(Some(a)),
                None => Ok(Some(phone.clone())),
            },
            Principal::Driver { .. } => Err(forbidden("listing rides")),
        }
    }

    /// Which taxi's allocations a list shows: an operator all (or `asked`), a driver only
    /// their taxi's, a rider none.
    pub fn allocations_listed(&self) -> Result<Option<&TaxiId>, ApiError> {
        match self {
            Principal::Operator => Ok(None),
            Principal::Driver { taxi_id } => Ok(Some(taxi_id)),
            Principal::Rider { .. } => Err(forbidden("listing allocations")),
        }
    }

    /// Who this is, as a stable key (a rider's digits, a driver's taxi id): idempotency
    /// keys are scoped by it.
    pub fn subject(&self) -> String {
        match self {
            Principal::Rider { phone } => {
                let digits: String = phone
                    .as_str()
                    .chars()
                    .filter(char::is_ascii_digit)
                    .collect();
                format!("rider:{digits}")
            }
            Principal::Driver { taxi_id } => format!("driver:{taxi_id}"),
            Principal::Operator => "operator".to_owned(),
        }
    }

    /// For logs: the role and a masked subject (a phone number is never logged whole).
    pub fn describe(&self) -> String {
        match self {
            Principal::Rider { phone } => format!("rider {}", phone.masked()),
            Principal::Driver { taxi_id } => format!("driver of taxi {taxi_id}"),
            Principal::Operator => "operator".to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{encode, EncodingKey, Header};
    use serde_json::json;

    // A throw-away Ed25519 test key pair (never used outside tests).
    const TEST_KEY: &str = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIBDK/MDX00GNS4XLC5+CNI6hJvtQqcYJqxc0AQlcMy02\n-----END PRIVATE KEY-----\n";
    const TEST_X: &str = "a_yDDI7lNv1uuylgoeijTtHf35Rlavc2fJpwmdmAEaU";
    const OTHER_KEY: &str = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEINs1NatkNPE6AoA+3bncvT9Y67vto8E3+vUESNKOBm/Y\n-----END PRIVATE KEY-----\n";
    const NOW: i64 = 1_800_000_000;
    const TAXI: &str = "7f1c1a52-6b0e-4c4f-9f51-1d3c2b9a0e11";

    fn keys() -> Keys {
        Keys::from_jwks(
            &json!({"keys":[{"kty":"OKP","crv":"Ed25519","x":TEST_X,"kid":"k1","alg":"EdDSA","use":"sig"}]})
                .to_string(),
        )
        .unwrap()
    }

    fn policy() -> Policy {
        Policy {
            issuer: "https://auth.htaxi.test".into(),
            audience: "htaxi".into(),
            leeway_secs: 30,
        }
    }

    fn token_with(key: &str, claims: serde_json::Value) -> String {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some("k1".into());
        encode(
            &header,
            &claims,
            &EncodingKey::from_ed_pem(key.as_bytes()).unwrap(),
        )
        .unwrap()
    }

    fn claims(role: &str, sub: &str) -> serde_json::Value {
        json!({"iss":"https://auth.htaxi.test","aud":"htaxi","sub":sub,"role":role,"exp":NOW+300,"nbf":NOW-10})
    }

    fn check(token: &str) -> Result<Principal, AuthError> {
        verify(token, &keys(), &policy(), NOW)
    }

    #[test]
    fn a_rider_token_names_the_riders_phone_number() {
        let p = check(&token_with(TEST_KEY, claims("rider", "010-1234-5678"))).unwrap();
        assert_eq!(
            p,
            Principal::Rider {
                phone: PhoneNumber::parse("010-1234-5678").unwrap()
            }
        );
        assert_eq!(p.describe(), "rider 010-****-5678");
    }

    #[test]
    fn a_driver_token_names_the_taxi_and_an_operator_token_the_operator() {
        let d = check(&token_with(TEST_KEY, claims("driver", TAXI))).unwrap();
        assert_eq!(
            d,
            Principal::Driver {
                taxi_id: TaxiId::parse(TAXI).unwrap()
            }
        );
        assert_eq!(
            check(&token_with(TEST_KEY, claims("operator", "ops"))).unwrap(),
            Principal::Operator
        );
    }

    #[test]
    fn a_token_signed_with_another_key_is_refused() {
        let e = check(&token_with(OTHER_KEY, claims("operator", "ops"))).unwrap_err();
        assert_eq!(e, AuthError::Invalid("bad signature".into()));
    }

    #[test]
    fn a_token_for_another_audience_or_issuer_is_refused() {
        let mut c = claims("operator", "ops");
        c["aud"] = json!("someone-else");
        assert_eq!(
            check(&token_with(TEST_KEY, c)).unwrap_err(),
            AuthError::Invalid("wrong audience".into())
        );
        let mut c = claims("operator", "ops");
        c["iss"] = json!("https://evil.example");
        assert_eq!(
            check(&token_with(TEST_KEY, c)).unwrap_err(),
            AuthError::Invalid("wrong issuer".into())
        );
    }

    #[test]
    fn an_expired_token_is_refused_after_the_leeway() {
        let mut c = claims("operator", "ops");
        c["exp"] = json!(NOW - 20);
        assert!(
            check(&token_with(TEST_KEY, c.clone())).is_ok(),
            "within the leeway"
        );
        c["exp"] = json!(NOW - 31);
        assert_eq!(
            check(&token_with(TEST_KEY, c)).unwrap_err(),
            AuthError::Expired
        );
        let mut c = claims("operator", "ops");
        c["nbf"] = json!(NOW + 60);
        assert_eq!(
            check(&token_with(TEST_KEY, c)).unwrap_err(),
            AuthError::NotYetValid
        );
    }

    #[test]
    fn a_token_without_exp_or_with_an_unknown_role_is_refused() {
        let mut c = claims("operator", "ops");
        c.as_object_mut().unwrap().remove("exp");
        assert!(check(&token_with(TEST_KEY, c)).is_err());
        assert!(check(&token_with(TEST_KEY, claims("admin", "root"))).is_err());
        assert!(check(&token_with(TEST_KEY, claims("rider", "not-a-phone"))).is_err());
        assert!(check("not.a.jwt").is_err());
    }

    #[test]
    fn an_hs256_token_is_refused_whatever_its_secret() {
        let t = encode(
            &Header::new(Algorithm::HS256),
            &claims("operator", "ops"),
            &EncodingKey::from_secret(TEST_X.as_bytes()).unwrap(),
        )
        .unwrap();
        assert!(matches!(check(&t), Err(AuthError::Invalid(_))));
    }

    #[test]
    fn only_a_bearer_authorization_carries_a_token() {
        assert_eq!(bearer(Some("Bearer abc")), Ok("abc"));
        assert_eq!(bearer(Some("bearer  abc ")), Ok("abc"));
        assert_eq!(bearer(None), Err(AuthError::Missing));
        assert_eq!(bearer(Some("Basic abc")), Err(AuthError::Missing));
        assert_eq!(bearer(Some("Bearer ")), Err(AuthError::Missing));
    }

    fn rider(p: &str) -> Principal {
        Principal::Rider {
            phone: PhoneNumber::parse(p).unwrap(),
        }
    }

    fn driver(t: &str) -> Principal {
        Principal::Driver {
            taxi_id: TaxiId::parse(t).unwrap(),
        }
    }

    fn nf() -> ApiError {
        ApiError::NotFound("x".into())
    }

    #[test]
    fn another_riders_ride_is_not_found_and_a_driver_may_not_read_rides() {
        let owner = PhoneNumber::parse("010-1234-5678").unwrap();
        assert!(rider("01012345678").read_ride(Some(&owner), nf()).is_ok());
        assert_eq!(
            rider("010-9999-0000")
                .read_ride(Some(&owner), nf())
                .unwrap_err()
                .status(),
            404
        );
        assert_eq!(
            rider("010-9999-0000")
                .read_ride(None, nf())
                .unwrap_err()
                .status(),
            404
        );
        assert_eq!(
            driver(TAXI)
                .read_ride(Some(&owner), nf())
                .unwrap_err()
                .status(),
            403
        );
        assert!(Principal::Operator.read_ride(Some(&owner), nf()).is_ok());
        assert_eq!(
            Principal::Operator
                .own_ride(&owner, nf())
                .unwrap_err()
                .status(),
            403
        );
        assert_eq!(
            rider("010-9999-0000")
                .own_ride(&owner, nf())
                .unwrap_err()
                .status(),
            404
        );
    }

    #[test]
    fn a_rider_lists_only_their_own_rides() {
        let me = rider("010-1234-5678");
        assert_eq!(
            me.rides_listed(None).unwrap(),
            Some(PhoneNumber::parse("010-1234-5678").unwrap())
        );
        assert_eq!(
            me.rides_listed(Some(PhoneNumber::parse("010-0000-0000").unwrap()))
                .unwrap_err()
                .status(),
            403
        );
        assert_eq!(Principal::Operator.rides_listed(None).unwrap(), None);
        assert_eq!(driver(TAXI).rides_listed(None).unwrap_err().status(), 403);
    }

    #[test]
    fn another_drivers_taxi_is_not_found_and_riders_may_not_act_for_drivers() {
        let taxi = TaxiId::parse(TAXI).unwrap();
        let other = "11111111-2222-4333-8444-555555555555";
        assert!(driver(TAXI).own_taxi(&taxi, nf()).is_ok());
        assert_eq!(
            driver(other).own_taxi(&taxi, nf()).unwrap_err().status(),
            404
        );
        assert_eq!(
            Principal::Operator
                .own_taxi(&taxi, nf())
                .unwrap_err()
                .status(),
            403
        );
        assert_eq!(
            rider("010-1234-5678")
                .read_taxi(&taxi, nf())
                .unwrap_err()
                .status(),
            403
        );
        assert!(Principal::Operator.read_taxi(&taxi, nf()).is_ok());
        assert_eq!(
            driver(other)
                .allocations_listed()
                .unwrap()
                .map(|t| t.to_string()),
            Some(other.to_owned())
        );
    }
}
