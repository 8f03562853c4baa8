# Sourced by the set-up scripts: `apt_install WHO PACKAGE...` installs Debian packages with
# apt when running as root on a Debian-like machine, else says what to install and exits 1.
apt_install() {
  local who=$1; shift
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
    echo "$who: installing $* (apt)" >&2
    apt-get update -qq && apt-get install -y -qq "$@" >/dev/null
  else
    echo "$who: install $* first" >&2; exit 1
  fi
}
