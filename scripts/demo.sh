#!/usr/bin/env bash
# Demos of agentfleet.rollout against a simulated fleet (fleetsim).
#   scripts/demo.sh canary     # 50 agents, CIRIS canary waves, some defer / reject / are busy
#   scripts/demo.sh shutdown   # multi-occurrence shutdown and wakeup (scripts/demo-shutdown.sh)
# Expects `make venv build` (the Makefile's `demo` target runs them): the playbook runs from the
# installed tarball in build/collections. Python tools from VENV_BIN, else $VENV/bin (make passes
# `make VENV=...` on), else .venv/bin.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${VENV_BIN:-${VENV:-.venv}/bin}
sim_pid=""
# shellcheck disable=SC2317  # invoked by the EXIT trap
stop_fleet() {
    if [ -n "$sim_pid" ] && kill -0 "$sim_pid" 2>/dev/null; then
        kill "$sim_pid"
        wait "$sim_pid" 2>/dev/null || true
    fi
}
trap stop_fleet EXIT

case "${1:-canary}" in
    shutdown) exec bash scripts/demo-shutdown.sh "$bin" ;;
    canary) ;;
    *) echo "usage: $0 canary|shutdown" >&2; exit 2 ;;
esac

collections=${AGENTFLEET_COLLECTIONS_PATH:-$PWD/build/collections}
if [ ! -f "$collections/ansible_collections/agentfleet/rollout/MANIFEST.json" ]; then
    echo "demo: no built collection in $collections: run 'make build' (or 'make demo')" >&2
    exit 1
fi
export ANSIBLE_COLLECTIONS_PATH=$collections ANSIBLE_RETRY_FILES_ENABLED=false
# one line per finished wave and the summary table after PLAY RECAP (docs/callback.md)
export ANSIBLE_CALLBACKS_ENABLED=agentfleet.rollout.rollout_progress
# progress lines and the summary without the per-task noise of the default callback
export ANSIBLE_DISPLAY_SKIPPED_HOSTS=false ANSIBLE_DISPLAY_OK_HOSTS=${ANSIBLE_DISPLAY_OK_HOSTS:-true}

work=$(mktemp -d "${TMPDIR:-/tmp}/agentfleet-demo.XXXXXX")

# 50 agents agent-000 .. agent-049 on 1.0.0, each taking 0.5 s to boot its new version. Waves (sorted):
# explorers 000-004, early_adopters 005-019, pragmatists 020-039, conservatives 040-049.
# Most answer with an explicit decision (the protocol's extension):
#   agent-003 defers for 3 s and accepts when asked again (inside rollout_defer_deadline)
#   agent-012 is busy (409, retry after 1 s) twice, then accepts
#   agent-033 defers for 3 s, but its wave starts after the 10 s defer deadline: it stays deferred
#   agent-013 and agent-042 reject
# Six answer like real CIRIS agents (consent: ciris): 200 "initiated" and no decision; they deliberate
# 0.5 s, then an accepting one drains (cognitive_state shutdown) for 1 s and exits:
#   agent-007, agent-008, agent-024, agent-025, agent-026 accept
#   agent-027 declines silently: it simply goes on working, and is reported declined after
#   rollout_stop_timeout (5 s here; 600 s by default)
cat > "$work/fleet.yml" <<'YAML'
defaults:
  version: "1.0.0"
  boot_seconds: 0.5
agents:
  - count: 50
    overrides:
      agent-003: {decision: defer, defer_seconds: 3, decision_reason: "finishing a conversation with a user"}
      agent-033: {decision: defer, defer_seconds: 3, decision_reason: "mid-way through a long task"}
      agent-012: {decision: busy, busy_times: 2, busy_retry_after_ms: 1000}
      agent-013: {decision: reject, decision_reason: "2.0.0 drops a tool my operator relies on"}
      agent-042: {decision: reject, decision_reason: "not during my maintenance freeze"}
      agent-007: {consent: ciris, decide_seconds: 0.5, drain_seconds: 1}
      agent-008: {consent: ciris, decide_seconds: 0.5, drain_seconds: 1}
      agent-024: {consent: ciris, decide_seconds: 0.5, drain_seconds: 1}
      agent-025: {consent: ciris, decide_seconds: 0.5, drain_seconds: 1}
      agent-026: {consent: ciris, decide_seconds: 0.5, drain_seconds: 1}
      agent-027: {consent: ciris, decide_seconds: 0.5, decision: reject}
YAML

echo "==> starting fleetsim: 50 agents on 1.0.0 (2 defer, 1 busy, 2 reject; 6 answer like CIRIS, 1 of them declines silently)"
"$bin/python" -m fleetsim serve --config "$work/fleet.yml" --base-port 0 \
    --inventory "$work/inventory.yml" --log "$work/requests.jsonl" --state-dir "$work/sim-state" \
    --ready-file "$work/ready.json" 2>"$work/fleetsim.err" &
sim_pid=$!
for _ in $(seq 1 300); do [ -f "$work/ready.json" ] && break; sleep 0.1; done
[ -f "$work/ready.json" ] || { echo "fleetsim did not start:"; cat "$work/fleetsim.err"; exit 1; }

echo "==> canary rollout to 2.0.0: explorers -> early_adopters -> pragmatists -> conservatives"
set +e
"$bin/ansible-playbook" agentfleet.rollout.canary -i "$work/inventory.yml" \
    -e rollout_target_version=2.0.0 -e rollout_driver=tasks -e rollout_update_tasks="$PWD/fleetsim/ansible/update.yml" \
    -e rollout_min_healthy_time=2 -e rollout_poll_interval=0.5 -e rollout_defer_deadline=10 \
    -e rollout_stop_timeout=5 \
    -e "rollout_message='Faster memory consolidation; safer tool-call retries.'" \
    -e rollout_state_path="$work/state.db" -e rollout_report_path="$work/report.json" \
    -e rollout_audit_path="$work/audit.jsonl"
rc=$?
set -e

if [ -f "$work/report.json" ]; then
    echo "==> report summary ($work/report.json)"
    "$bin/python" - "$work/report.json" <<'PY'
import json
import sys

report = json.load(open(sys.argv[1]))
print("deployment %(deployment_id)s: %(strategy)s -> %(target_version)s, %(status)s" % report)
for wave in report["waves"]:
    s = wave.get("summary") or {}
    print("  wave %s %-15s %-7s accepted %2s  declined %s  deferred %s  rejected %s  healthy %s/%s"
          % (wave["wave"], wave["name"], wave["status"], s.get("accepted", "-"), s.get("declined", "-"),
             s.get("deferred", "-"), s.get("rejected", "-"), s.get("healthy", "-"), s.get("updated", "-")))
print("  totals: " + ", ".join("%s %d" % kv for kv in report["totals"].items() if kv[1]))
for agent in report["agents"]:
    if agent["result"] != "updated" or (agent.get("asked_count") or 0) > 1:
        print("  %-10s %-8s asked %sx, %s: %s" % (agent["host"], agent["result"], agent.get("asked_count"),
                                                 agent.get("decision"), agent.get("decision_reason") or agent.get("detail")))
PY
    echo "==> audit log: $(wc -l <"$work/audit.jsonl") events in $work/audit.jsonl"
fi

# what the simulated fleet saw: the CIRIS-consent agents, and recreates of agents that had not stopped
"$bin/python" - "$work/ready.json" <<'PY' || true
import json
import sys
import urllib.request

control = json.load(open(sys.argv[1]))["control_url"]


def get(path):
    with urllib.request.urlopen(control + path, timeout=10) as resp:
        return json.load(resp)


print("==> fleetsim's view of the CIRIS-consent agents (%s/_sim/occurrences)" % control)
for occ in get("/_sim/occurrences"):
    if occ["consent"] != "ciris":
        continue
    last = occ["last_decision"] or {}
    print("  %-10s decided %-7s now %-6s on %-6s started %dx, violations %d"
          % (occ["name"], last.get("decision", "-"), occ["phase"], occ["version"], occ["starts"], occ["violations"]))
v = get("/_sim/violations")
print("==> fleetsim violations (%s/_sim/violations): %d start while running, %d start while draining"
      % (control, v["by_kind"]["start_while_running"], v["by_kind"]["start_while_draining"]))
PY
exit $rc
