"""Local bearer tokens for H Taxi (run through `scripts/token`).

  scripts/token rider 010-1234-5678   a rider's token (sub = their phone number)
  scripts/token driver <taxiId>       a driver's token (sub = their taxi's id, a UUID)
  scripts/token operator              an operator's token
  scripts/token --new-key             make a new throw-away Ed25519 key; print its JWKS

The key lives in .spin/dev-auth/ (never committed); `make up` makes a new one per run and
passes its JWKS as SPIN_VARIABLE_AUTH_JWKS, so a token from an earlier run stops working.
Tokens are signed with PyJWT (EdDSA) for the issuer and audience spin.toml defaults to.
"""

import json
import os
import sys
import time
import uuid

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KEY_DIR = os.path.join(ROOT, ".spin", "dev-auth")
KEY_FILE = os.path.join(KEY_DIR, "signing-key.pem")
JWKS_FILE = os.path.join(KEY_DIR, "jwks.json")
ISSUER = os.environ.get("SPIN_VARIABLE_AUTH_ISSUER", "https://auth.htaxi.local")
AUDIENCE = os.environ.get("SPIN_VARIABLE_AUTH_AUDIENCE", "htaxi")
TTL_SECS = int(os.environ.get("TOKEN_TTL_SECS", "3600"))


def new_key() -> str:
    """Write a fresh key pair and return its JWKS document."""
    os.makedirs(KEY_DIR, mode=0o700, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(KEY_FILE, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    jwk = json.loads(jwt.algorithms.OKPAlgorithm.to_jwk(key.public_key()))
    kid = uuid.uuid4().hex[:16]
    jwk.update({"kid": kid, "alg": "EdDSA", "use": "sig"})
    jwks = json.dumps({"keys": [jwk]}, separators=(",", ":"))
    with open(JWKS_FILE, "w", encoding="utf-8") as f:
        f.write(jwks)
    return jwks


def token(role: str, sub: str) -> str:
    """A token for `role` and `sub`, signed with the current key."""
    try:
        with open(KEY_FILE, "rb") as f:
            key = serialization.load_pem_private_key(f.read(), password=None)
        with open(JWKS_FILE, encoding="utf-8") as f:
            kid = json.load(f)["keys"][0]["kid"]
    except FileNotFoundError:
        sys.exit("scripts/token: no signing key yet: run `make up` (or scripts/token --new-key)")
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": sub, "role": role,
              "iat": now, "nbf": now, "exp": now + TTL_SECS}
    return jwt.encode(claims, key, algorithm="EdDSA", headers={"kid": kid})


def main(argv: list[str]) -> None:
    usage = "usage: scripts/token rider <phone> | driver <taxiId> | operator | --new-key"
    match argv:
        case ["--new-key"]:
            print(new_key())
        case ["rider", phone]:
            print(token("rider", phone))
        case ["driver", taxi_id]:
            print(token("driver", str(uuid.UUID(taxi_id))))
        case ["operator"]:
            print(token("operator", os.environ.get("USER", "operator")))
        case _:
            sys.exit(usage)


if __name__ == "__main__":
    main(sys.argv[1:])
