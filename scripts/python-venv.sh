#!/usr/bin/env bash
# python-venv.sh VENV REQUIREMENTS: (re)create the project's Python virtualenv and install the
# pinned requirements from PyPI (componentize-py for notify, pytest, the CloudEvents SDK).
# On a bare Debian, as root, installs python3 / python3-venv with apt when they are missing.
set -euo pipefail
venv="$1" req="$2"

# shellcheck source=scripts/apt-install.sh
source "$(dirname "$0")/apt-install.sh"

command -v python3 >/dev/null || apt_install python-venv python3 python3-venv
rm -rf "$venv"
python3 -m venv "$venv" 2>/dev/null || { apt_install python-venv python3-venv; rm -rf "$venv"; python3 -m venv "$venv"; }
"$venv/bin/pip" install --quiet --disable-pip-version-check -r "$req"
touch "$venv/.installed"
