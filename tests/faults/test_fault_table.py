# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fault table (issue 12): every fault kind an agent (or what is in front of it) can show, rolled
by the real canary playbook (``none`` update driver: each agent's supervisor starts the version asked
for) against a misbehaving server of this test's own (faultserver.py). For every fault it asserts the
decision and result the report gives, and for every run that it ended in time (no hang), without a
Python traceback, without the token anywhere it wrote or printed, and that no agent was asked twice.
It writes tests/output/reliability/faults.json, which scripts/reliability-tables.py renders into
docs/reliability.md."""

from __future__ import annotations

import json
import re
import socket
import time
from concurrent.futures import ThreadPoolExecutor

from conftest import REPO, ansible_env, run_playbook
from faultserver import FAULTS, FaultServer, self_signed

TOKEN = "fault-harness-token-7d3e1b5a"
TABLE = REPO / "tests" / "output" / "reliability" / "faults.json"
# the most any run may take (the slowest fault waits out a 2 s request deadline a few times, the 3 s stop
# timeout and the 4 s health deadline): a hang shows as a timeout here
RUN_LIMIT = 90

# fault -> (what the agent, or what is in front of it, does; decision; result; words the report's reason says)
EXPECTED = {
    "ok": ("accepts, stops, comes back healthy on the target", "accept", "updated", None),
    "read_timeout": ("never answers (health and shutdown)", "unreachable", "failed", "read timeout"),
    "refused": ("nothing listens at its URL", "unreachable", "failed", "connection refused"),
    "http_500": ("answers the shutdown request 500", "reject", "rejected", "HTTP 500"),
    "busy_409": ("answers 409 busy, retry_after_ms 600000", "defer", "deferred", "busy"),
    "unauthorized_401": ("answers 401 (token refused)", "unauthorized", "failed", "authentication failed"),
    "forbidden_403": ("answers 403 (not an admin token)", "unauthorized", "failed", "authentication failed"),
    "garbage_json": ("answers 200 with a body that is not JSON", "unreachable", "failed", "unparsable"),
    "endless_body": ("sends headers, then a byte every 0.2 s for ever", "unreachable", "failed", "deadline"),
    "self_signed_tls": ("https with a self-signed certificate, no rollout_ca_path", "unreachable", "failed", "TLS"),
    "self_signed_tls_ca_path": ("the same, its certificate given as rollout_ca_path", "accept", "updated", None),
    "crash_mid_update": ("accepts, stops, never comes back", "accept", "failed", "HTTP 503"),
    "unhealthy_after_update": ("comes back degraded", "accept", "failed", "status degraded"),
    "flapping": ("comes back healthy and critical by turns", "accept", "failed", None),
    "crash_after_start": ("comes back healthy for 2 probes, then is gone", "accept", "failed", "HTTP 503"),
    "wrong_version": ("comes back on the old version", "accept", "failed", "version 1.0.0"),
    "never_stops": ("accepts, then goes on working", "accept", "failed", "did not stop"),
    "echo_headers": ("answers 400 with the request's headers (token included)", "reject", "rejected", "********"),
}
# the faults of the answer in one run, those after the update in another (a slow answer delays the watch for
# the others to stop, and an agent back on its old version before the watch began looks like one that never
# stopped); 401/403 stop their wave (a run each); TLS with its CA given
AFTER_UPDATE = ("ok", "crash_mid_update", "unhealthy_after_update", "flapping", "crash_after_start", "wrong_version",
                "never_stops")
RUNS = {
    "answers": [f for f in FAULTS if f not in AFTER_UPDATE + ("unauthorized_401", "forbidden_403")]
    + ["refused", "self_signed_tls"],
    "after_update": list(AFTER_UPDATE),
    "unauthorized_401": ["unauthorized_401"],
    "forbidden_403": ["forbidden_403"],
    "tls_ca_path": ["self_signed_tls_ca_path"],
}


def closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rollout_vars(work, **extra):
    v = {
        "rollout_target_version": "2.0.0",
        "rollout_driver": "none",
        "rollout_cohorts": "all",
        # every fault agent is judged in the one wave: the wave's verdict is not what this table is about
        "rollout_success_threshold": 0,
        "rollout_min_healthy_time": 0,
        "rollout_poll_interval": 0.2,
        "rollout_healthy_deadline": 4,
        "rollout_stop_timeout": 3,
        "rollout_connect_timeout": 1,
        "rollout_read_timeout": 1,
        "rollout_state_path": str(work / "state.db"),
        "rollout_report_path": str(work / "report.json"),
        "rollout_audit_path": str(work / "audit.jsonl"),
    }
    v.update(extra)
    return v


def run_group(group, faults, tmp_path):
    work = tmp_path / group
    work.mkdir()
    cert, key = self_signed(tmp_path / ("pki-" + group))
    plain = dict((f, f) for f in faults if f not in ("refused", "self_signed_tls", "self_signed_tls_ca_path"))
    tls = dict((f, "ok") for f in faults if f in ("self_signed_tls", "self_signed_tls_ca_path"))
    extra = {"rollout_ca_path": str(cert)} if "self_signed_tls_ca_path" in faults else {}
    with FaultServer(plain, TOKEN) as srv, FaultServer(tls, TOKEN, tls=(cert, key)) as tls_srv:
        hosts = {}
        for fault in faults:
            if fault == "refused":
                url = "http://127.0.0.1:%d/a/refused" % closed_port()
            else:
                url = (tls_srv if fault in tls else srv).url_of(fault)
            hosts[fault] = {"agent_url": url, "agent_id": fault}
        inv = {"all": {"vars": {"ansible_python_interpreter": "{{ ansible_playbook_python }}"},
                       "children": {"agents": {"hosts": hosts}}}}
        (work / "inventory.json").write_text(json.dumps(inv))
        env = ansible_env(work, AGENTFLEET_TOKEN=TOKEN)
        started = time.monotonic()
        res = run_playbook("agentfleet.rollout.canary", work, inventory=work / "inventory.json", env=env,
                           timeout=RUN_LIMIT, extra_vars=rollout_vars(work, **extra), report_path=work / "report.json")
        elapsed = time.monotonic() - started
        posts = dict((f, len(srv.posts(f)) + len(tls_srv.posts(f))) for f in faults)
    return {"group": group, "faults": faults, "res": res, "elapsed": elapsed, "work": work, "posts": posts}


def short(text):
    """A report detail without what differs from run to run (ports, timings)."""
    text = re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:PORT", text or "")
    text = re.sub(r"\d{4}-\d\d-\d\dT[0-9:.]+Z", "TIME", text)
    text = re.sub(r"\d+\.\d+ ?s\b", "Ns", text)
    text = text.replace("|", "/").replace("\n", " ")
    return text if len(text) <= 110 else text[:107] + "..."


def test_fault_table(tmp_path):
    with ThreadPoolExecutor(max_workers=2) as pool:
        runs = list(pool.map(lambda kv: run_group(kv[0], kv[1], tmp_path), RUNS.items()))
    rows = []
    seen = set()
    wrong = []
    for run in runs:
        res, group = run["res"], run["group"]
        out = res.output
        # no hang (run_playbook's timeout raises), no traceback, no token in what it printed
        assert run["elapsed"] < RUN_LIMIT, group
        assert "Traceback" not in out, (group, out[-4000:])
        assert TOKEN not in out, group
        # nor anywhere it wrote: state, report, audit log, ansible's own files, the extra vars
        for path in run["work"].rglob("*"):
            if path.is_file():
                assert TOKEN.encode() not in path.read_bytes(), (group, path)
        # nobody asked twice
        assert all(n <= 1 for n in run["posts"].values()), (group, run["posts"])
        report = res.report()
        agents = dict((a["host"], a) for a in report["agents"])
        if group in ("unauthorized_401", "forbidden_403"):
            assert res.rc != 0 and report["status"] == "failed", out[-3000:]
            assert "authentication failed" in out and "rollout_token" in out
        else:
            assert report["status"] in ("completed", "completed_with_failures"), (group, report["status"], out[-3000:])
        for fault in run["faults"]:
            what, decision, result, words = EXPECTED[fault]
            agent = agents[fault]
            detail = agent.get("detail") or agent.get("decision_reason") or ""
            got = (agent.get("decision"), agent.get("result"))
            if got != (decision, result):
                wrong.append("%s: %s, expected %s (%s)" % (fault, got, (decision, result), detail))
            elif words and words not in detail and words not in (agent.get("decision_reason") or ""):
                wrong.append("%s: %r does not say %r" % (fault, detail, words))
            # asked once; not at all where no connection could be made
            asked = 0 if fault in ("refused", "self_signed_tls") else 1
            if run["posts"].get(fault, 0) != asked:
                wrong.append("%s: asked %d times, expected %d" % (fault, run["posts"].get(fault, 0), asked))
            seen.add(fault)
            rows.append([fault, what, decision, result, short(detail)])
    assert not wrong, "\n".join(wrong)
    assert seen == set(EXPECTED)
    rows.sort(key=lambda r: list(EXPECTED).index(r[0]))
    TABLE.parent.mkdir(parents=True, exist_ok=True)
    TABLE.write_text(json.dumps({
        "title": "Fault -> classification (tests/faults/test_fault_table.py: real canary runs, driver none, "
                 "connect/read timeout 1 s, no run over %d s, no traceback, the token in no output or file, "
                 "nobody asked twice)" % RUN_LIMIT,
        "columns": ["fault", "what the agent does", "decision", "result", "report detail"],
        "rows": rows,
    }, indent=1) + "\n")
