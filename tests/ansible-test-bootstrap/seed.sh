#!/usr/bin/env bash
# Pre-seed ansible-test's pip bootstrap cache so `ansible-test sanity` works offline.
#
# Every sanity venv ansible-test creates (~/.ansible/test/venv/...) is made
# without pip and then bootstrapped by running a cached "get-pip" script:
#   ansible_test/_util/target/setup/requirements.py:bootstrap()
#     url        = https://ci-files.testing.ansible.com/ansible-test/get-pip-<ver>.py   (not reachable here)
#     cache_path = ~/.ansible/test/cache/get_pip_<ver with . -> _>.py
# If cache_path exists it is used as is (run via quiet_pip.py with GET_PIP=<path>)
# and nothing is downloaded.  <ver> comes from
#   ansible_test/_internal/python_requirements.py:get_venv_packages()  (pip='24.2' in 2.19)
#
# So we put there: the pip wheel of that version (from PyPI, `pip download`)
# and get_pip_shim.py under the expected name, which installs that wheel.
# The sanity requirements themselves (pylint, yamllint, voluptuous, ...) are
# then installed by ansible-test from PyPI, which is reachable.
#
# Usage: seed.sh PYTHON   (PYTHON = the venv python that has ansible-core)
set -euo pipefail

PYTHON=${1:?usage: seed.sh PYTHON}
here=$(cd "$(dirname "$0")" && pwd)

read -r pip_version cache_dir < <("$PYTHON" - <<'PY'
import os, re, ansible_test
src = os.path.join(os.path.dirname(ansible_test.__file__), '_internal', 'python_requirements.py')
with open(src) as f:
    m = re.search(r"default_packages\s*=\s*dict\(\s*pip='([^']+)'", f.read())
if not m:
    raise SystemExit('cannot find the pip version ansible-test bootstraps in ' + src)
# the same expression ansible-test uses for its cache path
print(m.group(1), os.path.expanduser('~/.ansible/test/cache'))
PY
)

script="$cache_dir/get_pip_${pip_version//./_}.py"
wheel="$cache_dir/pip-${pip_version}-py3-none-any.whl"
mkdir -p "$cache_dir"

if [ ! -f "$wheel" ]; then
    echo "ansible-test bootstrap: downloading pip==$pip_version wheel into $cache_dir"
    "$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: \
        --dest "$cache_dir" "pip==$pip_version"
fi
[ -f "$wheel" ] || { echo "ansible-test bootstrap: $wheel missing after download" >&2; exit 1; }

if ! cmp -s "$here/get_pip_shim.py" "$script"; then
    cp "$here/get_pip_shim.py" "$script"
fi
echo "ansible-test bootstrap: $script -> $(basename "$wheel")"
