#!/usr/bin/env bash
# Demo of the multi-occurrence shutdown and wakeup (docs/shutdown.md):
# start a fleetsim with one agent "datum" of 9 occurrences, shut it down gracefully
# (one decision, waves explorer -> early adopters -> general, one progress line per wave),
# then wake it up again explorer first; stop the fleet.
# Usage: scripts/demo-shutdown.sh [VENV_BIN]   (default .venv/bin)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-.venv/bin}
work=$(mktemp -d "${TMPDIR:-/tmp}/agentfleet-demo-shutdown.XXXXXX")
sim_pid=""
cleanup() {
    if [ -n "$sim_pid" ] && kill -0 "$sim_pid" 2>/dev/null; then
        if kill "$sim_pid"; then
            wait "$sim_pid" 2>/dev/null || true
        fi
    fi
}
trap cleanup EXIT

# the collection as ansible sees it: this checkout (or AGENTFLEET_COLLECTIONS_PATH, e.g. the built tarball)
collections=${AGENTFLEET_COLLECTIONS_PATH:-$work/collections}
if [ -z "${AGENTFLEET_COLLECTIONS_PATH:-}" ]; then
    mkdir -p "$collections/ansible_collections/agentfleet"
    ln -s "$PWD" "$collections/ansible_collections/agentfleet/rollout"
fi
export ANSIBLE_COLLECTIONS_PATH=$collections ANSIBLE_NOCOLOR=${ANSIBLE_NOCOLOR:-0} ANSIBLE_RETRY_FILES_ENABLED=false

cat > "$work/fleet.json" <<'JSON'
{"agents": [{"agent_id": "datum", "occurrences": 9, "deliberation": "accept",
             "deliberation_reason": "maintenance window agreed; my work is saved",
             "boot_seconds": 1.0, "shutdown_exit_seconds": 1.0}]}
JSON

echo "==> starting fleetsim: agent datum with 9 occurrences"
"$bin/python" -m fleetsim serve --config "$work/fleet.json" --base-port 0 --control-port 0 \
    --inventory "$work/inventory.yml" --log "$work/requests.jsonl" --state-dir "$work/sim-state" \
    --ready-file "$work/ready.json" 2>"$work/fleetsim.err" &
sim_pid=$!
for _ in $(seq 1 300); do [ -f "$work/ready.json" ] && break; sleep 0.1; done
[ -f "$work/ready.json" ] || { echo "fleetsim did not start:"; cat "$work/fleetsim.err"; exit 1; }

common=(-i "$work/inventory.yml" -e rollout_state_path="$work/state.db")
delays=${DEMO_DELAYS:-[2,2]}

reason='{"shutdown_reason": "demo: host maintenance"}'

echo "==> the plan and the message the explorer will be asked with (--check: touches nothing)"
"$bin/ansible-playbook" agentfleet.rollout.shutdown "${common[@]}" -e "$reason" \
    -e "{\"shutdown_wave_delays\": $delays}" --check

echo "==> graceful shutdown (one decision by the explorer, verified waves)"
"$bin/ansible-playbook" agentfleet.rollout.shutdown "${common[@]}" -e "$reason" \
    -e "{\"shutdown_wave_delays\": $delays}" -e shutdown_poll_interval=0.2 \
    -e rollout_report_path="$work/shutdown-report.json"

echo "==> fleetsim saw $(grep -c '"event": "deliberation"' "$work/requests.jsonl") deliberation(s) for 9 occurrences"

echo "==> wakeup (explorer first, gated on work)"
"$bin/ansible-playbook" agentfleet.rollout.wakeup "${common[@]}" \
    -e rollout_driver=tasks -e rollout_update_tasks="$PWD/fleetsim/ansible/update.yml" -e "{\"wakeup_wave_delays\": $delays}" -e wakeup_poll_interval=0.2 \
    -e rollout_report_path="$work/wakeup-report.json"

echo "==> reports: $work/shutdown-report.json $work/wakeup-report.json"
