#!/usr/bin/env bash
# A private podman engine serving the Docker API on a unix socket, for the docker driver's
# tests and demo, plus the test agent's images (built here with `podman import`: no registry).
#
#   scripts/podman-service.sh start DIR [VERSION[:HEALTH]...]   start the service under DIR, build the images
#   scripts/podman-service.sh stop DIR                          remove its containers, stop it
#   scripts/podman-service.sh check                             exit 0 when podman can be used here
#
# start prints DOCKER_HOST=unix:///tmp/afpm.XXXXXX/podman.sock (its runroot: podman wants a short one). Images: localhost/agentfleet-test-agent:VERSION,
# each reporting VERSION (AGENT_VERSION), with AGENT_HEALTH=HEALTH when given (e.g. 3.0.0:degraded,
# an image whose agent is never healthy). Storage is DIR/root (vfs driver: works nested, in CI
# containers), runtime runc, ulimits set in DIR/containers.conf (this machine's notes).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cmd=${1:?usage: podman-service.sh start|stop DIR [VERSION[:HEALTH]...] | check}

podman_in() {
    local dir=$1
    shift
    CONTAINERS_CONF="$dir/containers.conf" podman --root "$dir/root" --runroot "$(cat "$dir/runroot")" \
        --storage-driver vfs --cgroup-manager cgroupfs --events-backend file "$@"
}

case "$cmd" in
check)
    command -v podman >/dev/null 2>&1 || { echo "podman is not installed"; exit 1; }
    command -v runc >/dev/null 2>&1 || { echo "runc is not installed"; exit 1; }
    command -v curl >/dev/null 2>&1 || { echo "curl is not installed"; exit 1; }
    command -v busybox >/dev/null 2>&1 || { echo "busybox (static) is not installed"; exit 1; }
    file -L "$(command -v busybox)" 2>/dev/null | grep -q "statically linked" \
        || ldd "$(command -v busybox)" 2>&1 | grep -q "not a dynamic" \
        || { echo "busybox is not statically linked (install busybox-static)"; exit 1; }
    [ "$(id -u)" = 0 ] || { echo "not root: the test engine runs rootful podman"; exit 1; }
    exit 0
    ;;
start)
    dir=${2:?usage: podman-service.sh start DIR [VERSION[:HEALTH]...]}
    shift 2
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    cat >"$dir/containers.conf" <<CONF
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
[engine]
runtime = "runc"
CONF
    # podman wants a runroot of at most 50 characters (and a socket path has ~100): both in a short /tmp dir
    short=$(mktemp -d /tmp/afpm.XXXXXX)
    echo "$short" >"$dir/runroot"
    sock="$short/podman.sock"
    # exec: the recorded pid is podman's own, so stop ends the service
    (
        export CONTAINERS_CONF="$dir/containers.conf"
        exec podman --root "$dir/root" --runroot "$short" --storage-driver vfs --cgroup-manager cgroupfs \
            --events-backend file system service --time=0 "unix://$sock" >"$dir/service.log" 2>&1
    ) &
    echo $! >"$dir/service.pid"
    for _ in $(seq 1 150); do
        if [ -S "$sock" ] && curl -fsS --unix-socket "$sock" http://d/_ping >/dev/null 2>&1; then
            break
        fi
        kill -0 "$(cat "$dir/service.pid")" 2>/dev/null || { echo "podman system service died:"; cat "$dir/service.log"; exit 1; }
        sleep 0.1
    done
    curl -fsS --unix-socket "$sock" http://d/_ping >/dev/null || { echo "podman service did not answer"; cat "$dir/service.log"; exit 1; }
    rootfs="$dir/rootfs"
    rm -rf "$rootfs"
    mkdir -p "$rootfs/bin" "$rootfs/tmp"
    cp -a "$here/tests/docker-agent/rootfs/." "$rootfs/"
    cp "$(command -v busybox)" "$rootfs/bin/busybox"
    for app in sh httpd sleep cat rm touch printf; do ln -sf busybox "$rootfs/bin/$app"; done
    tar -C "$rootfs" -cf "$dir/rootfs.tar" .
    for spec in "$@"; do
        version=${spec%%:*}
        health=${spec#*:}
        [ "$health" = "$spec" ] && health=healthy
        podman_in "$dir" import -q \
            --change "ENV AGENT_VERSION=$version" --change "ENV AGENT_HEALTH=$health" \
            --change 'CMD ["/agent/run.sh"]' --change "EXPOSE 8080" \
            --change "LABEL org.opencontainers.image.version=$version" \
            "$dir/rootfs.tar" "localhost/agentfleet-test-agent:$version" >/dev/null
    done
    echo "DOCKER_HOST=unix://$sock"
    ;;
stop)
    dir=${2:?usage: podman-service.sh stop DIR}
    [ -f "$dir/service.pid" ] || exit 0
    podman_in "$dir" rm -af -t 0 >/dev/null 2>&1 || true
    pid=$(cat "$dir/service.pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$dir/service.pid"
    # vfs layers are plain directories; the images go with the directory
    rm -rf "$dir/root" "$(cat "$dir/runroot")" "$dir/rootfs" "$dir/rootfs.tar"
    ;;
*)
    echo "usage: podman-service.sh start|stop DIR [VERSION[:HEALTH]...] | check" >&2
    exit 2
    ;;
esac
