#!/usr/bin/env bash
# The local stand-in for the cluster's PingSources: every second, flush each producer's
# outbox (rows whose after-commit send failed). The broker's deliveries and retries are
# the dispatcher's (scripts/local-dispatch.sh). Started in the background by `make up`.
set -u
base=${1:-http://127.0.0.1:3000}
every=${PING_INTERVAL_SECS:-1}
for _ in $(seq 1 60); do curl -fsS -o /dev/null "$base/health/broker" 2>/dev/null && break; sleep 1; done
while sleep "$every"; do
  for path in /outbox/flush/grab /outbox/flush/pay /outbox/flush/allocate; do
    curl -fsS -o /dev/null -X POST "$base$path" || true
  done
done
