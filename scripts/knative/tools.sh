#!/usr/bin/env bash
# Installs (once) the pinned Knative tooling into a private virtualenv and exports:
#   KNATIVE_PY       python of that venv (has ruamel.yaml)
#   KNATIVE_KUBECTL  kubectl v1.36.4 (renders with `kubectl kustomize`; applies in deploy)
#   KNATIVE_CHECK    check-jsonschema 0.39.0
# Source it:  . scripts/knative/tools.sh
# Venv location: $KNATIVE_TOOLS_DIR (default: <repo>/target/knative-tools, git-ignored).
# Needs python3 with venv; on a bare Debian it installs python3-venv with apt when run as root.
set -euo pipefail

_kt_here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
_kt_root="$(cd "$_kt_here/../.." && pwd)"
_kt_req="$_kt_here/requirements.txt"
KNATIVE_TOOLS_DIR="${KNATIVE_TOOLS_DIR:-$_kt_root/target/knative-tools}"
_kt_venv="$KNATIVE_TOOLS_DIR/venv"
_kt_stamp="$_kt_venv/.requirements.sha256"

_kt_log() { echo "knative-tools: $*" >&2; }

_kt_want="$(sha256sum "$_kt_req" | cut -d' ' -f1)"
if [[ ! -x "$_kt_venv/bin/python" || ! -f "$_kt_stamp" || "$(cat "$_kt_stamp")" != "$_kt_want" ]]; then
  command -v python3 >/dev/null || {
    if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
      _kt_log "installing python3 (apt)"; apt-get update -qq && apt-get install -y -qq python3 python3-venv >/dev/null
    else
      _kt_log "python3 is required"; exit 1
    fi
  }
  rm -rf "$_kt_venv"
  mkdir -p "$KNATIVE_TOOLS_DIR"
  if ! python3 -m venv "$_kt_venv" 2>/dev/null; then
    if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
      _kt_log "installing python3-venv (apt)"
      apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
      rm -rf "$_kt_venv"; python3 -m venv "$_kt_venv"
    else
      _kt_log "python3 -m venv failed: install python3-venv"; exit 1
    fi
  fi
  _kt_log "installing pinned tools into $_kt_venv"
  "$_kt_venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input -r "$_kt_req"
  echo "$_kt_want" > "$_kt_stamp"
fi

export KNATIVE_PY="$_kt_venv/bin/python"
export KNATIVE_KUBECTL="$_kt_venv/bin/kubectl"
export KNATIVE_CHECK="$_kt_venv/bin/check-jsonschema"
