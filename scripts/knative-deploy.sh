#!/usr/bin/env bash
# `make deploy`: publishes the app and applies a knative/ overlay to the current kube context.
#   RUNTIME=shim       (default; OVERLAY= is accepted as an alias) `spin registry push` the Spin OCI artifact; overlays/shim
#   RUNTIME=container  `docker build/push` deploy/Dockerfile;              overlays/container
#   REGISTRY           required, e.g. ghcr.io/acme (you must be logged in: `spin registry login` /
#                      `docker login`)
#   TAG                default: $VERSION, else `git describe --always --dirty`
#   DRY_RUN=1          render what would be applied, apply nothing, push nothing
# Prerequisites (knative/README.md): Knative Serving + Eventing + Kafka Broker, Kafka, a Gateway API
# implementation; for shim, containerd-shim-spin on the nodes. The .wasm files must be built
# (`make build`). Secrets: created from PAY_API_KEY/SQLD_* via scripts/knative-secrets.sh when
# PAY_API_KEY is set, otherwise they must already exist in the cluster.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

RUNTIME="${RUNTIME:-${OVERLAY:-shim}}"
: "${REGISTRY:?set REGISTRY, e.g. REGISTRY=ghcr.io/acme make deploy}"
TAG="${TAG:-${VERSION:-$(git describe --always --dirty 2>/dev/null || echo dev)}}"
NS=htaxi

. "$ROOT/scripts/knative/tools.sh"
KUBECTL="${KUBECTL:-$(command -v kubectl || echo "$KNATIVE_KUBECTL")}"
run() { if [[ "${DRY_RUN:-}" == 1 ]]; then echo "+ $*"; else "$@"; fi; }

case "$RUNTIME" in
  shim)
    overlay=knative/overlays/shim
    overlay_image=ghcr.io/htaxi/htaxi   # the overlay's `images` newName
    repo="$REGISTRY/htaxi"
    if [[ "${DRY_RUN:-}" == 1 ]]; then
      digest="sha256:$(printf '%064d' 0)"; echo "+ spin registry push $repo:$TAG"
    else
      out="$(spin registry push "$repo:$TAG" 2>&1 | tee /dev/stderr)"
      digest="$(grep -o 'sha256:[0-9a-f]\{64\}' <<<"$out" | tail -1)"
    fi
    ;;
  container)
    overlay=knative/overlays/container
    overlay_image=ghcr.io/htaxi/htaxi-container
    repo="$REGISTRY/htaxi-container"
    run docker build -f deploy/Dockerfile -t "$repo:$TAG" .
    run docker push "$repo:$TAG"
    if [[ "${DRY_RUN:-}" == 1 ]]; then
      digest="sha256:$(printf '%064d' 0)"
    else
      digest="$(docker inspect --format '{{index .RepoDigests 0}}' "$repo:$TAG" | sed 's/.*@//')"
    fi
    ;;
  *) echo "knative-deploy: RUNTIME must be shim or container" >&2; exit 2 ;;
esac
[[ "$digest" == sha256:* ]] || { echo "knative-deploy: could not read the pushed digest" >&2; exit 1; }

# Pin the pushed artifact by digest: every rollout creates a new Knative revision of exactly it.
# (kustomize only accepts relative resource paths, so the wrapper lives inside the repo's target/.)
mkdir -p "$ROOT/target"
tmp="$(mktemp -d "$ROOT/target/knative-deploy.XXXXXX")"; trap 'rm -rf "$tmp"' EXIT
cat >"$tmp/kustomization.yaml" <<YAML
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - $(realpath --relative-to="$tmp" "$ROOT/$overlay")
images:
  - name: $overlay_image
    newName: $repo
    digest: $digest
YAML
"$KNATIVE_KUBECTL" kustomize "$tmp" >"$tmp/rendered.yaml"

if [[ "${DRY_RUN:-}" == 1 ]]; then
  cat "$tmp/rendered.yaml"; exit 0
fi

"$KUBECTL" apply -f knative/base/namespace.yaml
if [[ -n "${PAY_API_KEY:-}" ]]; then
  "$ROOT/scripts/knative-secrets.sh" | "$KUBECTL" apply -f -
elif ! "$KUBECTL" -n "$NS" get secret htaxi-secrets htaxi-runtime-config >/dev/null 2>&1; then
  echo "knative-deploy: Secrets htaxi-secrets / htaxi-runtime-config missing in namespace $NS." >&2
  echo "  Re-run with PAY_API_KEY=... AUTH_JWKS=... (and SQLD_AUTH_TOKEN=...) set, or see knative/secrets/secret.example.yaml" >&2
  exit 1
fi
"$KUBECTL" apply -f "$tmp/rendered.yaml"
echo "knative-deploy: applied $overlay with $repo@$digest"
"$KUBECTL" -n "$NS" get ksvc 2>/dev/null || true
