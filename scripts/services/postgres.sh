# PostgreSQL for the store conformance suite and the cluster tests on `--db postgres://…`.
# Sourced by scripts/test.sh (see lib.sh). PostgreSQL refuses to run as root, so the cluster is
# its own, in a temporary directory owned by the `postgres` user, on a free loopback port; it
# trusts loopback connections and stops when the run ends. Tests create a database each.
#
# Exports KILN_TEST_PG_URL: a superuser URL of the server's `postgres` database.

need_packages postgresql

_pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[[ -x $_pg_bin/initdb ]] || {
  echo "services: postgresql is installed but no initdb was found under /usr/lib/postgresql" >&2
  return 1
}
_pg_dir="$KILN_SERVICES_DIR/postgres"
_pg_port=$(free_port)
mkdir -p "$_pg_dir"
# Run as the `postgres` user when we are root (PostgreSQL will not run as root).
_pg_as() {
  if [[ $(id -u) == 0 ]]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}
[[ $(id -u) == 0 ]] && chown postgres: "$_pg_dir" && chmod 755 "$KILN_SERVICES_DIR"
_pg_as "$_pg_bin/initdb" -D "$_pg_dir/data" -U postgres --auth=trust -E UTF8 --no-sync \
  >"$_pg_dir/initdb.log" 2>&1 || {
  cat "$_pg_dir/initdb.log" >&2
  return 1
}
# Tuned for tests: no fsync (the data is thrown away), room for several servers' pools.
_pg_as "$_pg_bin/pg_ctl" -D "$_pg_dir/data" -l "$_pg_dir/postgres.log" -w -t 60 \
  -o "-c listen_addresses=127.0.0.1 -p $_pg_port -k $_pg_dir -c fsync=off \
      -c synchronous_commit=off -c full_page_writes=off -c max_connections=300" \
  start >/dev/null || {
  cat "$_pg_dir/postgres.log" >&2
  return 1
}
service_on_exit "_pg_as '$_pg_bin/pg_ctl' -D '$_pg_dir/data' -m immediate stop >/dev/null 2>&1"
export KILN_TEST_PG_URL="postgres://postgres@127.0.0.1:$_pg_port/postgres"
echo "services: PostgreSQL on 127.0.0.1:$_pg_port" >&2
