# A private container registry for the registry-credential tests: Debian's `docker-registry`
# (the CNCF Distribution registry) with htpasswd authentication, on a free loopback port, its
# storage in a temporary directory. The Docker Engine pulls from loopback registries over plain
# HTTP without configuration. Sourced by scripts/test.sh (see lib.sh).
#
# Exports KILN_TEST_REGISTRY (HOST:PORT), KILN_TEST_REGISTRY_USER, KILN_TEST_REGISTRY_PASSWORD
# (made up for this run).

need_packages docker-registry apache2-utils

_reg_dir="$KILN_SERVICES_DIR/registry"
_reg_port=$(free_port)
mkdir -p "$_reg_dir/data"
KILN_TEST_REGISTRY_USER=kiln-test
KILN_TEST_REGISTRY_PASSWORD=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
htpasswd -Bbn "$KILN_TEST_REGISTRY_USER" "$KILN_TEST_REGISTRY_PASSWORD" >"$_reg_dir/htpasswd" 2>/dev/null
cat >"$_reg_dir/config.yml" <<YAML
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $_reg_dir/data
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$_reg_port
auth:
  htpasswd:
    realm: kiln-test
    path: $_reg_dir/htpasswd
YAML
docker-registry serve "$_reg_dir/config.yml" >"$_reg_dir/registry.log" 2>&1 &
_reg_pid=$!
service_on_exit "kill $_reg_pid 2>/dev/null; wait $_reg_pid 2>/dev/null"
# Up when /v2/ asks for credentials.
_reg_asks_login() {
  python3 - "$1" <<'PY'
import sys, urllib.error, urllib.request
try:
    urllib.request.urlopen(f"http://{sys.argv[1]}/v2/", timeout=2)
except urllib.error.HTTPError as e:
    sys.exit(0 if e.code == 401 else 1)
sys.exit(1)
PY
}
wait_until "_reg_asks_login 127.0.0.1:$_reg_port" 30 || {
  cat "$_reg_dir/registry.log" >&2
  return 1
}
export KILN_TEST_REGISTRY="127.0.0.1:$_reg_port" KILN_TEST_REGISTRY_USER KILN_TEST_REGISTRY_PASSWORD
# The images the tests pulled from it leave the engine with it (the port is this run's own).
service_on_exit "docker images --format '{{.Repository}}:{{.Tag}}' | grep '^$KILN_TEST_REGISTRY/' | xargs -r docker rmi >/dev/null 2>&1"

echo "services: container registry on $KILN_TEST_REGISTRY (htpasswd)" >&2
