"""notify's token rules (auth.py), given tokens signed by an independent library (PyJWT with
`cryptography`) and checked by ours (python-ecdsa): the rules of shared::auth."""

import json
import sys
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import auth  # noqa: E402

NOW = 1_790_000_000
POLICY = auth.Policy("https://auth.htaxi.test", "htaxi", 30)
TAXI = "22222222-3333-4444-8555-666666666666"
ED_KEY = Ed25519PrivateKey.generate()
EC_KEY = ec.generate_private_key(ec.SECP256R1())
OTHER_KEY = Ed25519PrivateKey.generate()


def jwk_of(private, kid, alg):
    algorithm = jwt.algorithms.OKPAlgorithm if alg == "EdDSA" else jwt.algorithms.ECAlgorithm
    jwk = json.loads(algorithm.to_jwk(private.public_key()))
    jwk.update({"kid": kid, "alg": alg, "use": "sig"})
    return jwk


JWKS = json.dumps({"keys": [jwk_of(ED_KEY, "ed", "EdDSA"), jwk_of(EC_KEY, "ec", "ES256")]})
KEYS = auth.keys_from_jwks(JWKS)


def claims(role="rider", sub="010-1234-5678", **over):
    c = {"iss": POLICY.issuer, "aud": POLICY.audience, "sub": sub, "role": role, "exp": NOW + 300, "nbf": NOW - 10}
    c.update(over)
    return {k: v for k, v in c.items() if v is not None}


def token(c=None, key=ED_KEY, alg="EdDSA", kid="ed"):
    return jwt.encode(claims() if c is None else c, key, algorithm=alg, headers={"kid": kid} if kid else None)


def check(tok):
    return auth.verify(tok, KEYS, POLICY, NOW)


def refused(tok, why):
    with pytest.raises(auth.Unauthorized, match=why):
        check(tok)


def test_a_rider_token_names_the_riders_phone_number():
    assert check(token()) == auth.Principal(auth.RIDER, "010-1234-5678")


def test_a_driver_token_names_the_taxi_and_an_operator_token_the_operator():
    assert check(token(claims("driver", TAXI.upper()))) == auth.Principal(auth.DRIVER, TAXI)
    assert check(token(claims("operator", "ops-kim"))).role == auth.OPERATOR


def test_es256_tokens_check_against_the_p256_key():
    assert check(token(key=EC_KEY, alg="ES256", kid="ec")).role == auth.RIDER


def test_a_token_without_kid_is_tried_against_every_key_of_its_algorithm():
    assert check(token(kid=None)).role == auth.RIDER


@pytest.mark.parametrize("exp, ok", [(NOW - 30, True), (NOW - 31, False)])
def test_expiry_allows_the_leeway_and_no_more(exp, ok):
    tok = token(claims(exp=exp))
    if ok:
        check(tok)
    else:
        refused(tok, "expired")


@pytest.mark.parametrize("nbf, ok", [(NOW + 30, True), (NOW + 31, False)])
def test_not_before_allows_the_leeway_and_no_more(nbf, ok):
    tok = token(claims(nbf=nbf))
    if ok:
        check(tok)
    else:
        refused(tok, "not valid yet")


@pytest.mark.parametrize(
    "tok, why",
    [
        (lambda: token(key=OTHER_KEY), "bad signature"),
        (lambda: token(kid="unknown"), "no key of auth_jwks"),
        (lambda: token(claims(iss="https://evil.example")), "wrong issuer"),
        (lambda: token(claims(aud="someone-else")), "wrong audience"),
        (lambda: token(claims(exp=None)), "missing claim exp"),
        (lambda: token(claims(sub=None)), "missing claim sub"),
        (lambda: token(claims(role="admin")), "role must be"),
        (lambda: token(claims(role=None)), "role must be"),
        (lambda: token(claims("rider", "not-a-phone")), "sub is not a phone number"),
        (lambda: token(claims("driver", "taxi-7")), "sub is not a taxi id"),
        (lambda: jwt.encode(claims(), "a-shared-secret-of-32-bytes-or-more", algorithm="HS256"), "only EdDSA and ES256"),
        (lambda: jwt.encode(claims(), None, algorithm="none"), "only EdDSA and ES256"),
        (lambda: "not.a.jwt", "not a JWT"),
        (lambda: "two.parts", "not a JWT"),
    ],
)
def test_a_token_that_fails_any_rule_is_refused_with_its_reason(tok, why):
    refused(tok(), why)


def test_a_tampered_payload_no_longer_matches_its_signature():
    head, _, sig = token().split(".")
    forged = jwt.utils.base64url_encode(json.dumps(claims(sub="010-9999-0000")).encode()).decode()
    refused(f"{head}.{forged}.{sig}", "bad signature")


def test_an_audience_list_needs_ours_among_them():
    assert check(token(claims(aud=["billing", "htaxi"]))).role == auth.RIDER
    refused(token(claims(aud=["billing"])), "wrong audience")


@pytest.mark.parametrize("header", [None, "", "Basic abc", "Bearer", "Bearer   "])
def test_no_bearer_token_is_a_401(header):
    with pytest.raises(auth.Unauthorized, match="required"):
        auth.bearer(header)


def test_the_bearer_scheme_is_case_insensitive():
    assert auth.bearer("bearer abc.def.ghi") == "abc.def.ghi"


@pytest.mark.parametrize(
    "jwks", ["", "[]", '{"keys": {}}', '{"keys": [{"kty": "RSA", "n": "x", "e": "AQAB"}]}',
             '{"keys": [{"kty": "OKP", "crv": "Ed25519", "x": "!!"}]}']
)
def test_a_jwks_without_a_usable_key_is_a_deployment_error(jwks):
    with pytest.raises(auth.BadJwks):
        auth.keys_from_jwks(jwks)


RIDER_A = auth.Principal(auth.RIDER, "010-1234-5678")
DRIVER_A = auth.Principal(auth.DRIVER, TAXI)
OPERATOR = auth.Principal(auth.OPERATOR, "ops-kim")


@pytest.mark.parametrize(
    "who, asked, listed",
    [
        (RIDER_A, None, (auth.RIDER, "010-1234-5678")),
        (RIDER_A, (auth.RIDER, "01012345678"), (auth.RIDER, "010-1234-5678")),
        (DRIVER_A, None, (auth.DRIVER, TAXI)),
        (DRIVER_A, (auth.DRIVER, TAXI), (auth.DRIVER, TAXI)),
        (OPERATOR, (auth.RIDER, "010-5555-6666"), (auth.RIDER, "010-5555-6666")),
        (OPERATOR, (auth.DRIVER, TAXI), (auth.DRIVER, TAXI)),
    ],
)
def test_riders_and_drivers_list_their_own_operators_whom_they_ask(who, asked, listed):
    assert auth.listed(who, asked) == listed


@pytest.mark.parametrize(
    "who, asked",
    [
        (RIDER_A, (auth.RIDER, "010-9999-0000")),
        (RIDER_A, (auth.DRIVER, TAXI)),
        (DRIVER_A, (auth.DRIVER, "99999999-3333-4444-8555-666666666666")),
        (DRIVER_A, (auth.RIDER, "010-1234-5678")),
    ],
)
def test_nobody_lists_someone_elses_notifications(who, asked):
    with pytest.raises(auth.Forbidden, match="only their own"):
        auth.listed(who, asked)


def test_phone_numbers_are_masked_for_logs():
    assert auth.mask("010-1234-5678") == "010-****-5678"
    assert auth.mask("+82 10 1234 5678") == "821-****-5678"
