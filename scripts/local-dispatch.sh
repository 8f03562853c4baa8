#!/usr/bin/env bash
# The local broker's dispatcher loop (the Kafka broker's delivery half): one
# `POST /broker/dispatch` after another. Each call sends every due delivery with several
# requests in flight and, when nothing is due, waits up to DISPATCH_WAIT_MS (< 1 s) for
# new rows before it answers, so an event is picked up within milliseconds and an idle
# loop costs about two requests a second. Started in the background by `make up`.
set -u
base=${1:-http://127.0.0.1:3000}
wait_ms=${DISPATCH_WAIT_MS:-500}
for _ in $(seq 1 60); do curl -fsS -o /dev/null "$base/health/broker" 2>/dev/null && break; sleep 1; done
while true; do
  # A failed call (the app restarting, the broker down) is retried after a pause.
  curl -fsS -o /dev/null -X POST --max-time 60 "$base/broker/dispatch?waitMs=$wait_ms" || sleep 0.2
done
