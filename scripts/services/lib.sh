# Shared by scripts/services/*.sh, which scripts/test.sh sources once per run: each service the
# tests need is installed (Debian packages, when run as root), started once for the whole run on
# loopback, described to the tests through KILN_TEST_* variables, and stopped when the run ends.
# A service that cannot be started fails the run loudly; no test is skipped for a missing one.

KILN_SERVICES_DIR=${KILN_SERVICES_DIR:-$(mktemp -d -t kiln-services.XXXXXX)}
export KILN_SERVICES_DIR
_kiln_service_stops=()

# Runs CMD (a string) when the test run ends, last registered first.
service_on_exit() {
  _kiln_service_stops=("$1" "${_kiln_service_stops[@]}")
}

stop_services() {
  local cmd
  for cmd in "${_kiln_service_stops[@]}"; do
    eval "$cmd" || true
  done
  rm -rf "$KILN_SERVICES_DIR"
}

# Installs the Debian packages named that are not installed yet (as root, with apt-get).
need_packages() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  if [[ $(id -u) != 0 ]] || ! command -v apt-get >/dev/null; then
    echo "services: the tests need the Debian packages: ${missing[*]} (install them, or run as root)" >&2
    return 1
  fi
  echo "services: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  # Waits for another apt (a parallel run, unattended upgrades) instead of failing on its lock.
  local apt=(apt-get -o DPkg::Lock::Timeout=600)
  "${apt[@]}" install -y -qq "${missing[@]}" >/dev/null 2>&1 ||
    { "${apt[@]}" update -qq && "${apt[@]}" install -y -qq "${missing[@]}" >/dev/null; }
}

# Installs the Python packages named (NAME==VERSION) that pip does not have yet.
need_pip() {
  local missing=() p
  for p in "$@"; do
    python3 -m pip show -q "${p%%[=<>]*}" >/dev/null 2>&1 || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  echo "services: pip installing ${missing[*]}" >&2
  python3 -m pip install -q --disable-pip-version-check "${missing[@]}"
}

# A free TCP port on loopback.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# Waits up to $2 seconds (default 30) for the command in $1 to succeed.
wait_until() {
  local deadline=$((SECONDS + ${2:-30}))
  until eval "$1" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      echo "services: timed out waiting for: $1" >&2
      return 1
    fi
    sleep 0.2
  done
}
