#!/usr/bin/env bash
# console-setup.sh node|chromium: what the console's build and browser tests need. On a bare
# Debian, as root, installs Node.js + npm (for `npm ci` and Vite) or Debian's chromium (for
# the Playwright suite, which never downloads a browser) with apt when missing.
set -euo pipefail

# shellcheck source=scripts/apt-install.sh
source "$(dirname "$0")/apt-install.sh"

case "${1:-}" in
  node) command -v npm >/dev/null || apt_install console-setup nodejs npm ;;
  # With CJK fonts, so the screenshots show Korean plates and place names.
  chromium) [[ -x "${CHROMIUM:-/usr/bin/chromium}" ]] || apt_install console-setup chromium fonts-noto-cjk ;;
  *) echo "usage: scripts/console-setup.sh node|chromium" >&2; exit 2 ;;
esac
