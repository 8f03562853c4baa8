#!/usr/bin/env bash
# console-browser-test.sh: the console's browser suite against the app as `make up` runs it.
# Starts `make up` on a free loopback port (its own process group, stopped on exit), waits
# until every component answers its health route, then runs the Playwright suite
# (functions/console/web/browser/, playwright-core driving Debian's chromium: no browser
# download). Screenshots go to target/console-screenshots/. Installs chromium with apt when
# it is missing and we run as root.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
scripts/console-setup.sh chromium

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
log=target/console-browser-up.log
mkdir -p target
setsid make --no-print-directory up LISTEN="127.0.0.1:$port" >"$log" 2>&1 &
up=$!
stop() { kill -TERM -- "-$up" 2>/dev/null || true; wait "$up" 2>/dev/null || true; }
trap stop EXIT

echo "console-browser-test: make up on $base (log: $log)"
for c in console grab pay allocate grab-status notify broker; do
  for _ in $(seq 1 600); do
    curl -fsS -o /dev/null "$base/health/$c" 2>/dev/null && break
    kill -0 "$up" 2>/dev/null || { echo "make up exited:"; tail -30 "$log"; exit 1; }
    sleep 1
  done
  curl -fsS -o /dev/null "$base/health/$c" || { echo "$c never became healthy"; tail -30 "$log"; exit 1; }
done

cd functions/console/web
CONSOLE_URL="$base" SCREENSHOT_DIR="$ROOT/target/console-screenshots" \
  node --test --test-concurrency=1 browser/console.test.mjs
