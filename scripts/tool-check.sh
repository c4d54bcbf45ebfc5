#!/usr/bin/env bash
# `make tool-check`: run tests with only the tools the README asks a newcomer for, so a test that depends on a
# program the README does not list fails here instead of on a newcomer's machine (issue 23).
#
# Twice, with PATH set to:
#   1. the test venv's bin + the system's base tools (/usr/bin, /bin) WITHOUT any container CLI
#      (docker, podman, buildah, nerdctl): a machine where none is installed;
#   2. the same + a fake `docker` and a fake `podman` that only print a version (and fail on anything else):
#      a machine with container CLIs. ansible-builder only probes for them (shutil.which('podman') picks its
#      default runtime), so a fake is enough to show a test that depends on which one is there.
# /usr/local/bin, ~/.local/bin and the like are not on PATH in either run.
#
# Usage: scripts/tool-check.sh PYTHON 'PYTEST ARGS' ['PYTEST ARGS'...]
# Each quoted argument is one pytest run (split on spaces): test directories whose conftest.py files share a
# module name (tests/packaging, tests/integration) cannot be collected in one session.
set -euo pipefail
python=${1:?usage: tool-check.sh PYTHON 'PYTEST ARGS' ['PYTEST ARGS'...]}
shift
[ "$#" -gt 0 ] || { echo "tool-check.sh: no tests given" >&2; exit 2; }
venv_bin=$(cd "$(dirname "$python")" && pwd)
here=$(cd "$(dirname "$0")" && pwd)

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
base=$tmp/base
fake=$tmp/fake
mkdir -p "$base" "$fake"
# the base tools as symlinks, minus every container CLI (on a merged-/usr system /bin is /usr/bin: -n skips
# a name already linked)
for dir in /usr/bin /bin; do
    if [ -d "$dir" ]; then
        cp -sn "$dir"/* "$base"/ 2>/dev/null || true
    fi
done
rm -f "$base"/docker "$base"/dockerd "$base"/podman "$base"/buildah "$base"/nerdctl
for cli in docker podman; do
    cat >"$fake/$cli" <<EOF
#!/bin/sh
# a fake $cli for make tool-check: it only answers --version
case "\$1" in
    --version|version) echo "$cli version 0.0.0-fake (make tool-check)" ;;
    *) echo "fake $cli (make tool-check): '\$*' is not supported: a test runs $cli itself" >&2; exit 1 ;;
esac
EOF
    chmod +x "$fake/$cli"
done

run() {
    local label=$1 path=$2 group
    local -a args
    shift 2
    for group in "$@"; do
        read -r -a args <<<"$group"
        echo "== tool-check: $label: pytest ${args[*]} (PATH=$path)"
        if ! env PATH="$path" bash "$here/pytest.sh" "$python" "${args[@]}"; then
            echo "tool-check: FAILED $label: a test needs a program the README does not list (or finds one on" \
                 "PATH it should not rely on)" >&2
            exit 1
        fi
    done
}
run "no container CLI" "$venv_bin:$base" "$@"
run "fake docker and podman CLIs" "$venv_bin:$fake:$base" "$@"
echo "tool-check: OK with and without container CLIs"
