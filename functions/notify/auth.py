"""Who is calling notify: the bearer-token rules of `shared::auth` (the Rust components'),
for the Python component. Pure: the clock and the `auth_*` variables are passed in.

A token is accepted when its signature (EdDSA or ES256, checked with python-ecdsa, a
maintained pure-Python library: componentize-py cannot load `cryptography`'s native code)
checks against a key of the JWKS document, its `iss` and `aud` match, it is within
`exp`/`nbf` give or take the leeway, and its `role` with its `sub` names a principal:
`rider` + phone number, `driver` + taxi id (a UUID), or `operator`. Anything else raises
`Unauthorized` (401); a principal asking for what its role may not raises `Forbidden` (403).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import uuid
from dataclasses import dataclass
from typing import Optional

import ecdsa

RIDER, DRIVER, OPERATOR = "rider", "driver", "operator"


class Unauthorized(Exception):
    """No usable bearer token (401, with WWW-Authenticate: Bearer)."""


class Forbidden(Exception):
    """A verified caller whose role may not do this (403)."""


class BadJwks(Exception):
    """The auth_jwks variable is not a JWKS with an EdDSA or ES256 key (a deployment error)."""


@dataclass(frozen=True)
class Principal:
    """The caller a verified token names: `subject` is a rider's phone number, a driver's
    taxi id, or the operator's name."""

    role: str
    subject: str


@dataclass(frozen=True)
class Policy:
    issuer: str
    audience: str
    leeway_secs: int


@dataclass(frozen=True)
class Key:
    kid: Optional[str]
    alg: str
    verifying_key: ecdsa.VerifyingKey


def keys_from_jwks(text: str) -> list[Key]:
    """The EdDSA (OKP Ed25519) and ES256 (EC P-256) keys of a JWKS document."""
    try:
        doc = json.loads(text)
        jwks = doc["keys"]
        if not isinstance(jwks, list):
            raise TypeError
    except (ValueError, KeyError, TypeError):
        raise BadJwks("auth_jwks is not a JWKS document") from None
    keys = []
    for jwk in jwks:
        if not isinstance(jwk, dict):
            continue
        kid = jwk.get("kid") if isinstance(jwk.get("kid"), str) else None
        try:
            if jwk.get("kty") == "OKP" and jwk.get("crv") == "Ed25519":
                vk = ecdsa.VerifyingKey.from_string(_b64(jwk["x"]), curve=ecdsa.Ed25519)
                keys.append(Key(kid, "EdDSA", vk))
            elif jwk.get("kty") == "EC" and jwk.get("crv") == "P-256":
                point = _b64(jwk["x"]).rjust(32, b"\0") + _b64(jwk["y"]).rjust(32, b"\0")
                vk = ecdsa.VerifyingKey.from_string(point, curve=ecdsa.NIST256p, hashfunc=hashlib.sha256)
                keys.append(Key(kid, "ES256", vk))
        except (KeyError, TypeError, ValueError, ecdsa.MalformedPointError):
            raise BadJwks(f"auth_jwks has an unusable key {kid or ''}".strip()) from None
    if not keys:
        raise BadJwks("auth_jwks holds no EdDSA or ES256 key")
    return keys


def bearer(authorization: Optional[str]) -> str:
    """The token of an `Authorization: Bearer <token>` header."""
    scheme, _, token = (authorization or "").strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("a bearer token is required")
    return token.strip()


def verify(token: str, keys: list[Key], policy: Policy, now_secs: int) -> Principal:
    """The principal `token` names, or Unauthorized with the reason it is refused."""
    parts = token.split(".")
    if len(parts) != 3:
        raise Unauthorized("the bearer token is invalid: not a JWT")
    try:
        header = json.loads(_b64(parts[0]))
        claims = json.loads(_b64(parts[1]))
    except (ValueError, binascii.Error):
        raise Unauthorized("the bearer token is invalid: not a JWT") from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise Unauthorized("the bearer token is invalid: not a JWT")
    alg, kid = header.get("alg"), header.get("kid")
    if alg not in ("EdDSA", "ES256"):
        raise Unauthorized("the bearer token is invalid: only EdDSA and ES256 tokens are accepted")
    try:
        signature = _b64(parts[2])
    except (ValueError, binascii.Error):
        raise Unauthorized("the bearer token is invalid: bad signature") from None
    signed = f"{parts[0]}.{parts[1]}".encode()
    candidates = [k for k in keys if k.alg == alg and (kid is None or k.kid is None or k.kid == kid)]
    if not any(_signature_ok(k, signed, signature) for k in candidates):
        why = "bad signature" if candidates else "no key of auth_jwks matches it"
        raise Unauthorized(f"the bearer token is invalid: {why}")
    return _principal(claims, policy, now_secs)


def _signature_ok(key: Key, signed: bytes, signature: bytes) -> bool:
    try:
        if key.alg == "ES256":
            return key.verifying_key.verify(signature, signed, hashfunc=hashlib.sha256)
        return key.verifying_key.verify(signature, signed)
    except (ecdsa.BadSignatureError, ValueError, AssertionError):
        return False


def _principal(claims: dict, policy: Policy, now: int) -> Principal:
    for claim in ("exp", "sub", "iss", "aud"):
        if claim not in claims:
            raise Unauthorized(f"the bearer token is invalid: missing claim {claim}")
    if claims["iss"] != policy.issuer:
        raise Unauthorized("the bearer token is invalid: wrong issuer")
    aud = claims["aud"]
    if policy.audience not in (aud if isinstance(aud, list) else [aud]):
        raise Unauthorized("the bearer token is invalid: wrong audience")
    exp, nbf = claims["exp"], claims.get("nbf")
    if not _is_time(exp) or (nbf is not None and not _is_time(nbf)):
        raise Unauthorized("the bearer token is invalid: malformed")
    if now > exp + policy.leeway_secs:
        raise Unauthorized("the bearer token has expired")
    if nbf is not None and now + policy.leeway_secs < nbf:
        raise Unauthorized("the bearer token is not valid yet")
    role, sub = claims.get("role"), claims["sub"]
    if not isinstance(sub, str):
        raise Unauthorized("the bearer token is invalid: malformed")
    if role == RIDER:
        if not is_phone(sub):
            raise Unauthorized("the bearer token is invalid: sub is not a phone number")
        return Principal(RIDER, sub.strip())
    if role == DRIVER:
        try:
            return Principal(DRIVER, str(uuid.UUID(sub)))
        except ValueError:
            raise Unauthorized("the bearer token is invalid: sub is not a taxi id") from None
    if role == OPERATOR:
        return Principal(OPERATOR, sub)
    raise Unauthorized("the bearer token is invalid: role must be rider, driver or operator")


def is_phone(s: str) -> bool:
    """A phone number as every H Taxi component reads one: an optional `+`, then 9-15
    digits with `-` or spaces between them."""
    s = s.strip()
    body = s[1:] if s.startswith("+") else s
    digits = sum(c.isdigit() for c in body)
    return bool(body) and all(c in "0123456789- " for c in body) and not body.startswith("-") and 9 <= digits <= 15


def same_number(a: str, b: str) -> bool:
    """Two spellings of one phone number (only the digits count)."""
    return [c for c in a if c.isdigit()] == [c for c in b if c.isdigit()]


def mask(phone: str) -> str:
    """`010-1234-5678` -> `010-****-5678`, for logs."""
    digits = [c for c in phone if c.isdigit()]
    if len(digits) < 7:
        return "****"
    return "".join(digits[:3]) + "-****-" + "".join(digits[-4:])


def _is_time(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _b64(s: str) -> bytes:
    if not isinstance(s, str) or not s or any(c in s for c in "+/="):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def listed(principal: Principal, asked: Optional[tuple[str, str]]) -> tuple[str, str]:
    """Whose notifications `principal` may list, as (audience, key): an operator what was
    `asked`; a rider only their own phone number's, a driver only their taxi's (asked or
    not). `asked` is (RIDER, phone) or (DRIVER, taxi id), already validated."""
    if principal.role == OPERATOR:
        if asked is None:
            raise ValueError("an operator names whose notifications to list")
        return asked
    if asked is not None and not (
        asked[0] == principal.role
        and (same_number(asked[1], principal.subject) if asked[0] == RIDER else asked[1] == principal.subject)
    ):
        raise Forbidden(f"a {principal.role} lists only their own notifications")
    return principal.role, principal.subject
