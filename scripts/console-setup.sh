#!/usr/bin/env bash
# console-setup.sh node|chromium: what the console's build and browser tests need. On a bare
# Debian, as root, installs Node.js + npm (for `npm ci` and Vite) or Debian's chromium (for
# the Playwright suite, which never downloads a browser) with apt when missing.
set -euo pipefail

apt_install() {
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
    echo "console-setup: installing $* (apt)" >&2
    apt-get update -qq && apt-get install -y -qq "$@" >/dev/null
  else
    echo "console-setup: install $* first" >&2; exit 1
  fi
}

case "${1:-}" in
  node) command -v npm >/dev/null || apt_install nodejs npm ;;
  # With CJK fonts, so the screenshots show Korean plates and place names.
  chromium) [[ -x "${CHROMIUM:-/usr/bin/chromium}" ]] || apt_install chromium fonts-noto-cjk ;;
  *) echo "usage: scripts/console-setup.sh node|chromium" >&2; exit 2 ;;
esac
