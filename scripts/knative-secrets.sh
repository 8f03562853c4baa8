#!/usr/bin/env bash
# Renders the Secrets the htaxi Knative Services need, as YAML on stdout, from values in the
# environment (never from a file in the repo). Apply with:
#   PAY_API_KEY=... AUTH_JWKS=... [SQLD_AUTH_TOKEN=... SQLD_JWT_PUBLIC_KEY=...] scripts/knative-secrets.sh | kubectl apply -f -
#
#   PAY_API_KEY          required; -> Secret htaxi-secrets key pay_api_key (SPIN_VARIABLE_PAY_API_KEY)
#   AUTH_JWKS            required; the identity provider's JWKS document (public keys bearer tokens
#                        are verified against) -> Secret htaxi-secrets key auth_jwks (SPIN_VARIABLE_AUTH_JWKS)
#   SQLD_AUTH_TOKEN      JWT accepted by the sqld servers; filled into knative/base/runtime-config.toml
#                        -> Secret htaxi-runtime-config key runtime-config.toml. Required when
#                        SQLD_JWT_PUBLIC_KEY is set; otherwise sqld runs without auth and any token works.
#   SQLD_JWT_PUBLIC_KEY  optional Ed25519 public key (URL-safe base64) -> Secret htaxi-sqld-auth: turns
#                        on JWT auth in every sqld.
# Values travel through 0600 temp files, not command-line arguments (no exposure in `ps`).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
NS="${NAMESPACE:-htaxi}"

: "${PAY_API_KEY:?set PAY_API_KEY (the pay service API key)}"
: "${AUTH_JWKS:?set AUTH_JWKS (the JWKS document bearer tokens are verified against)}"
if [[ -n "${SQLD_JWT_PUBLIC_KEY:-}" && -z "${SQLD_AUTH_TOKEN:-}" ]]; then
  echo "knative-secrets: SQLD_JWT_PUBLIC_KEY is set, so SQLD_AUTH_TOKEN (a JWT it verifies) is required" >&2
  exit 1
fi
if [[ -z "${SQLD_AUTH_TOKEN:-}" ]]; then
  echo "knative-secrets: SQLD_AUTH_TOKEN unset: sqld auth stays OFF (token 'sqld-auth-disabled')" >&2
fi
token="${SQLD_AUTH_TOKEN:-sqld-auth-disabled}"
case "$token" in *'"'*|*'\'*) echo "knative-secrets: SQLD_AUTH_TOKEN must not contain quotes or backslashes" >&2; exit 1 ;; esac

. "$ROOT/scripts/knative/tools.sh"
KUBECTL="$KNATIVE_KUBECTL"

tmp="$(mktemp -d)"; chmod 700 "$tmp"; trap 'rm -rf "$tmp"' EXIT
umask 077
printf '%s' "$PAY_API_KEY" >"$tmp/pay_api_key"
printf '%s' "$AUTH_JWKS" >"$tmp/auth_jwks"
# The token is a TOML basic string; the template marks where it goes.
TOKEN="$token" "$KNATIVE_PY" - "$ROOT/knative/base/runtime-config.toml" "$tmp/runtime-config.toml" <<'PY'
import os, sys
src, dst = sys.argv[1], sys.argv[2]
marker = 'token = "REPLACE_WITH_SQLD_TOKEN"'
text = open(src, encoding="utf-8").read()
assert marker in text, "template marker missing"
filled = text.replace(marker, 'token = "%s"' % os.environ["TOKEN"])
open(dst, "w", encoding="utf-8").write(filled)
PY

render=(--dry-run=client -o yaml)
"$KUBECTL" create secret generic htaxi-secrets -n "$NS" --from-file=pay_api_key="$tmp/pay_api_key" \
  --from-file=auth_jwks="$tmp/auth_jwks" "${render[@]}"
echo "---"
"$KUBECTL" create secret generic htaxi-runtime-config -n "$NS" \
  --from-file=runtime-config.toml="$tmp/runtime-config.toml" "${render[@]}"
if [[ -n "${SQLD_JWT_PUBLIC_KEY:-}" ]]; then
  printf '%s' "$SQLD_JWT_PUBLIC_KEY" >"$tmp/jwt-public-key"
  echo "---"
  "$KUBECTL" create secret generic htaxi-sqld-auth -n "$NS" --from-file=jwt-public-key="$tmp/jwt-public-key" "${render[@]}"
fi
