# Python tools the contract tests drive (sourced by scripts/test.sh): openapi-spec-validator and
# schemathesis against the OpenAPI document, openapi-python-client for clients/python, and
# Tencent's tccli and tencentcloud-sdk-python against the Tencent Cloud API endpoint. They are
# installed, pinned with every dependency (python-tools.lock), into a virtualenv kept under the
# cargo target directory and rebuilt when the lock file changes.
# Exports KILN_TEST_PYTHON_TOOLS: the virtualenv's bin directory.

_kiln_py_lock=scripts/services/python-tools.lock
_kiln_py_venv=${KILN_PYTHON_TOOLS_VENV:-${CARGO_TARGET_DIR:-$PWD/target}/python-tools}
_kiln_py_stamp=$(sha256sum "$_kiln_py_lock" | cut -d' ' -f1)
if [[ $(cat "$_kiln_py_venv/.lock-sha256" 2>/dev/null) != "$_kiln_py_stamp" ]]; then
  echo "services: installing the Python tools into $_kiln_py_venv" >&2
  rm -rf "$_kiln_py_venv"
  python3 -m venv "$_kiln_py_venv"
  "$_kiln_py_venv/bin/python" -m pip install -q --disable-pip-version-check \
    --no-deps -r "$_kiln_py_lock"
  echo "$_kiln_py_stamp" >"$_kiln_py_venv/.lock-sha256"
fi
export KILN_TEST_PYTHON_TOOLS=$_kiln_py_venv/bin
unset _kiln_py_lock _kiln_py_venv _kiln_py_stamp
