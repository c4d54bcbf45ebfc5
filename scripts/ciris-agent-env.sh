#!/usr/bin/env bash
# Copyright (c) 2026 agentfleet.rollout contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Install a real CIRIS agent (ciris-agent from PyPI) into a cache directory, for
# the real-agent test suite (tests/ciris). Idempotent: a finished install is
# reused. Nothing is installed on the system: a Python 3.12 virtualenv, and a
# newer glibc unpacked (not installed) from Debian trixie's libc6 package.
#
#   scripts/ciris-agent-env.sh [CACHE_DIR]      (default: build/ciris-agent)
#
# On success it writes CACHE_DIR/env (KEY=value lines: CIRIS_LOADER,
# CIRIS_LIBDIR, CIRIS_PYTHON, CIRIS_AGENT, CIRIS_ADAPTERS, CIRIS_VERSION) and
# prints its path. On failure it exits non-zero with one line saying why.
#
# Why the detour: ciris-agent needs ciris-server, whose only Linux wheel is
# tagged manylinux_2_39 (glibc >= 2.38). pip judges a wheel by its file name
# only, so the unmodified wheel is installed under a manylinux_2_17 name, and
# the agent's Python then runs under trixie's glibc loader:
#   ld-linux-x86-64.so.2 --library-path LIBDIR PYTHON AGENT ...
set -euo pipefail

CIRIS_AGENT_VERSION=${CIRIS_AGENT_VERSION:-2.16.5}
CACHE=${1:-build/ciris-agent}
mkdir -p "$CACHE"
CACHE=$(cd "$CACHE" && pwd)
STAMP=$CACHE/.done-$CIRIS_AGENT_VERSION
ENV_FILE=$CACHE/env

die() { echo "ciris-agent-env: $*" >&2; exit 1; }

# one install at a time per cache (make test starts one in the background; the test fixture waits for it)
if command -v flock >/dev/null 2>&1; then
    exec 9>"$CACHE/.lock"
    flock 9
fi

if [ -f "$STAMP" ] && [ -f "$ENV_FILE" ]; then
    echo "$ENV_FILE"
    exit 0
fi

[ "$(uname -s)-$(uname -m)" = "Linux-x86_64" ] || die "unsupported platform $(uname -s)-$(uname -m): ciris-server ships a Linux x86_64 wheel only"
if ! command -v apt-get >/dev/null 2>&1 || ! command -v dpkg-deb >/dev/null 2>&1; then
    die "apt-get and dpkg-deb are needed to fetch a newer glibc"
fi

# A Python 3.12 (ciris-agent's wheels and os.setns in the tests' forwarder).
PY312=${CIRIS_PYTHON312:-}
if [ -z "$PY312" ]; then
    # pyenv's own versions first: its shims may name a python3.12 that is not selected.
    for cand in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.12*/bin/python3.12 \
                "$(command -v python3.12 2>/dev/null || true)"; do
        if [ -n "$cand" ] && [ -x "$cand" ] \
           && "$cand" -c 'import sys; assert sys.version_info[:2] == (3, 12)' >/dev/null 2>&1; then
            PY312=$cand; break
        fi
    done
fi
[ -n "$PY312" ] || die "no Python 3.12 found (set CIRIS_PYTHON312, or install it with pyenv)"

rm -rf "$CACHE/venv" "$CACHE/wheels" "$CACHE/glibc" "$CACHE/apt" "$STAMP" "$ENV_FILE"
mkdir -p "$CACHE/wheels"

echo "ciris-agent-env: downloading ciris-agent $CIRIS_AGENT_VERSION" >&2
"$PY312" -m pip download --quiet --no-deps "ciris-agent==$CIRIS_AGENT_VERSION" -d "$CACHE/wheels" \
    || die "cannot download ciris-agent $CIRIS_AGENT_VERSION from PyPI"
AGENT_WHEEL=$(ls "$CACHE"/wheels/ciris_agent-"$CIRIS_AGENT_VERSION"-*.whl)

# Its requirements (extras left out), read from the wheel's METADATA.
"$PY312" - "$AGENT_WHEEL" "$CACHE/requirements.txt" <<'EOF'
import sys, zipfile
wheel, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
    text = z.read(meta).decode()
reqs = [line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("Requires-Dist:")]
reqs = [r for r in reqs if "extra ==" not in r]
with open(out, "w") as f:
    f.write("\n".join(reqs) + "\n")
EOF
SERVER_REQ=$(grep -E '^ciris-server' "$CACHE/requirements.txt" | tr -d ' ')
CLIENT_REQ=$(grep -E '^ciris-client' "$CACHE/requirements.txt" | tr -d ' ')
[ -n "$SERVER_REQ" ] || die "ciris-agent's METADATA names no ciris-server"

"$PY312" -m pip download --quiet --no-deps --only-binary=:all: --platform manylinux_2_39_x86_64 \
    --python-version 3.12 "$SERVER_REQ" ${CLIENT_REQ:+"$CLIENT_REQ"} -d "$CACHE/wheels" \
    || die "cannot download $SERVER_REQ"
for w in "$CACHE"/wheels/ciris_server-*-manylinux_2_39_x86_64.whl; do
    mv "$w" "${w%manylinux_2_39_x86_64.whl}manylinux_2_17_x86_64.whl"
done

echo "ciris-agent-env: installing into a Python 3.12 virtualenv" >&2
"$PY312" -m venv "$CACHE/venv"
VPY=$CACHE/venv/bin/python
grep -v -E '^ciris-(server|client)' "$CACHE/requirements.txt" > "$CACHE/requirements-rest.txt"
"$VPY" -m pip install --quiet -r "$CACHE/requirements-rest.txt" || die "cannot install ciris-agent's requirements"
"$VPY" -m pip install --quiet --no-deps "$CACHE"/wheels/ciris_server-*.whl "$CACHE"/wheels/ciris_client-*.whl "$AGENT_WHEEL" \
    || die "cannot install ciris-agent and ciris-server"

# glibc from Debian trixie: apt with a private state directory, same mirror.
echo "ciris-agent-env: fetching libc6 from Debian trixie" >&2
APT=$CACHE/apt
mkdir -p "$APT/lists/partial" "$APT/cache/archives/partial" "$APT/etc/sources.list.d" "$APT/etc/preferences.d" "$APT/deb"
MIRROR=$(grep -h -o -E 'https?://[^ ]+/debian/?$' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null | head -1 || true)
MIRROR=${MIRROR:-http://deb.debian.org/debian}
cat > "$APT/etc/sources.list.d/trixie.sources" <<EOF
Types: deb
URIs: $MIRROR
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
: > "$APT/etc/sources.list"
APT_OPTS=(-o "Dir::State=$APT" -o "Dir::State::Lists=$APT/lists" -o "Dir::State::status=/dev/null"
          -o "Dir::Cache=$APT/cache" -o "Dir::Etc::SourceList=$APT/etc/sources.list"
          -o "Dir::Etc::SourceParts=$APT/etc/sources.list.d" -o "Dir::Etc::PreferencesParts=$APT/etc/preferences.d"
          -o "APT::Architecture=amd64" -o "APT::Architectures=amd64" -o "Debug::NoLocking=1"
          -o "APT::Sandbox::User=root")
apt-get "${APT_OPTS[@]}" -qq update || die "apt-get update for trixie failed"
(cd "$APT/deb" && apt-get "${APT_OPTS[@]}" -qq download libc6) || die "cannot download trixie's libc6"
dpkg-deb -x "$APT"/deb/libc6_*.deb "$CACHE/glibc"
LIBDIR=$CACHE/glibc/usr/lib/x86_64-linux-gnu
[ -d "$LIBDIR" ] || LIBDIR=$CACHE/glibc/lib/x86_64-linux-gnu
LOADER=$LIBDIR/ld-linux-x86-64.so.2
[ -x "$LOADER" ] || die "no loader in the unpacked libc6 ($LOADER)"
rm -rf "$APT/lists" "$APT/cache"

ADAPTERS=$("$LOADER" --library-path "$LIBDIR" "$VPY" -c \
    'import ciris_adapters, os; print(os.path.dirname(ciris_adapters.__file__))') \
    || die "the installed ciris-agent does not import under trixie's glibc"
"$LOADER" --library-path "$LIBDIR" "$VPY" -c 'import ciris_server' \
    || die "ciris-server does not import under trixie's glibc"

cat > "$ENV_FILE" <<EOF
CIRIS_VERSION=$CIRIS_AGENT_VERSION
CIRIS_LOADER=$LOADER
CIRIS_LIBDIR=$LIBDIR
CIRIS_PYTHON=$VPY
CIRIS_AGENT=$CACHE/venv/bin/ciris-agent
CIRIS_ADAPTERS=$ADAPTERS
EOF
touch "$STAMP"
echo "$ENV_FILE"
