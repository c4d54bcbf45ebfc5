#!/usr/bin/env bash
# Demo of the docker update driver against real containers (podman's Docker-compatible API):
# five agent containers on 1.0.0 in CIRIS canary waves are recreated on 2.0.0 by
# `rollout_driver: docker`; one declines (goes on working) and is never touched. Then the
# report's images per agent (digests before and after) and the containers' kept settings.
#   make demo-docker            (or: bash scripts/demo-docker.sh, after `make venv build`)
# Needs root, podman, runc and a static busybox (apt-get install podman runc busybox-static):
# the images are built here with `podman import` (no registry). Without them it says so and exits 1.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${VENV_BIN:-${VENV:-.venv}/bin}

if ! why=$(bash scripts/podman-service.sh check); then
    echo "demo-docker: podman cannot be used here: $why" >&2
    echo "demo-docker: as root: apt-get install -y podman runc busybox-static" >&2
    exit 1
fi
collections=${AGENTFLEET_COLLECTIONS_PATH:-$PWD/build/collections}
if [ ! -f "$collections/ansible_collections/agentfleet/rollout/MANIFEST.json" ]; then
    echo "demo-docker: no built collection in $collections: run 'make build' (or 'make demo-docker')" >&2
    exit 1
fi
export ANSIBLE_COLLECTIONS_PATH=$collections ANSIBLE_RETRY_FILES_ENABLED=false
export ANSIBLE_CALLBACKS_ENABLED=agentfleet.rollout.rollout_progress ANSIBLE_DISPLAY_SKIPPED_HOSTS=false

work=$(mktemp -d "${TMPDIR:-/tmp}/agentfleet-demo-docker.XXXXXX")
# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
    bash scripts/podman-service.sh stop "$work/engine" || true
}
trap cleanup EXIT

echo "== podman system service and the agent images 1.0.0, 2.0.0 (podman import)"
DOCKER_HOST=$(bash scripts/podman-service.sh start "$work/engine" 1.0.0 2.0.0 | sed -n 's/^DOCKER_HOST=//p')
export DOCKER_HOST
echo "DOCKER_HOST=$DOCKER_HOST"

echo "== five agent containers on 1.0.0 (ciris-agent-scout declines: it goes on working)"
"$bin/python" - "$work" <<'PY'
import json, socket, sys, time, urllib.request
import docker

work = sys.argv[1]
client = docker.from_env()
hosts = {}
for name in ("datum", "sage", "echo", "scout", "nova"):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {"AGENT_ID": name, "CIRIS_AGENT_NAME": name.capitalize()}
    if name == "scout":
        env["AGENT_CONSENT"] = "decline"
    client.containers.run("localhost/agentfleet-test-agent:1.0.0", name="ciris-agent-" + name, detach=True,
                          environment=env, labels={"ai.ciris.agent.id": name},
                          ports={"8080/tcp": ("127.0.0.1", port)},
                          restart_policy={"Name": "on-failure", "MaximumRetryCount": 3})
    hosts[name] = {"agent_container": "ciris-agent-" + name, "agent_url": "http://127.0.0.1:%d/cgi-bin/agent" % port}
    print("  ciris-agent-%-6s 127.0.0.1:%d -> 8080" % (name, port))
for h in hosts.values():
    for _ in range(100):
        try:
            urllib.request.urlopen(h["agent_url"] + "/v1/system/health", timeout=1).read()
            break
        except OSError:
            time.sleep(0.1)
inventory = {"agents": {"hosts": hosts, "vars": {"ansible_connection": "local", "rollout_driver": "docker",
                                                 "rollout_docker_image": "localhost/agentfleet-test-agent:{version}"}}}
with open(work + "/inventory.json", "w") as f:
    json.dump(inventory, f, indent=1)
PY

echo "== ansible-playbook agentfleet.rollout.canary -e rollout_target_version=2.0.0 (driver docker)"
rc=0
"$bin/ansible-playbook" agentfleet.rollout.canary -i "$work/inventory.json" --forks 5 \
    -e rollout_target_version=2.0.0 -e rollout_stop_timeout=5 -e rollout_min_healthy_time=1 \
    -e rollout_poll_interval=0.2 -e rollout_cohorts=all \
    -e "rollout_state_path=$work/state.db" -e "rollout_report_path=$work/report.json" \
    -e "rollout_audit_path=$work/audit.jsonl" || rc=$?

echo "== the report: each agent's images (docs/drivers.md), and the containers now"
"$bin/python" - "$work/report.json" <<'PY'
import json, sys
import docker

report = json.load(open(sys.argv[1]))
for a in report["agents"]:
    upd = (a.get("driver") or {}).get("update")
    if upd:
        print("  %-6s %-8s %s (%s) -> %s (%s)" % (a["host"], a["result"], upd["image_before"]["ref"],
                                                  (upd["image_before"]["digest"] or "")[:19], upd["image_after"]["ref"],
                                                  (upd["image_after"]["digest"] or "")[:19]))
    else:
        print("  %-6s %-8s not recreated (%s)" % (a["host"], a["result"], a.get("detail") or a.get("decision")))
client = docker.from_env()
for c in sorted(client.containers.list(all=True), key=lambda c: c.name):
    a = c.attrs
    print("  %-18s %-8s %-40s env AGENT_ID=%s, ports %s, restart %s, previous image %s" % (
        c.name, c.status, a["Config"]["Image"],
        [e.split("=", 1)[1] for e in a["Config"]["Env"] if e.startswith("AGENT_ID=")][0],
        a["HostConfig"]["PortBindings"]["8080/tcp"][0]["HostPort"], a["HostConfig"]["RestartPolicy"]["Name"],
        (a["Config"]["Labels"] or {}).get("agentfleet.rollout.previous_image_ref", "-")))
PY
echo "demo-docker: work directory $work (report.json, audit.jsonl)"
exit "$rc"
