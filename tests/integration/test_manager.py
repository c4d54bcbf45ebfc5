"""manager_notify, manager_status and the manager_deploy playbook: real ansible-playbook runs against the
CIRISManager stand-in (tests/managersim.py) on loopback, over HTTP and HTTPS."""

from __future__ import annotations

import json
import re

import pytest

from conftest import ansible_env, run_playbook
from managersim import ManagerSim, make_tls_files

TOKEN = "deploy-token-0123456789abcdef"


def deploy(sim, tmp_path, token=TOKEN, check=False, args=None, **extra):
    extra_vars = {"manager_url": sim.url, "manager_agent_image": "ghcr.io/cirisai/ciris-agent:2.0.0",
                  "manager_poll_interval": 0.2, "manager_wait_timeout": 60}
    extra_vars.update(extra)
    env = ansible_env(tmp_path, CIRIS_DEPLOY_TOKEN=token, ANSIBLE_SHOW_CUSTOM_STATS="1")
    res = run_playbook("agentfleet.rollout.manager_deploy", tmp_path, extra_vars=extra_vars, check=check, env=env,
                       args=args, timeout=300)
    assert token not in res.output, "the token leaked into the output"
    return res


def custom_stats(output):
    """The agentfleet_manager_deploy custom stats printed after the recap."""
    text = output.split("CUSTOM STATS:", 1)[1]
    start = text.index("{")
    return json.JSONDecoder().raw_decode(text[start:])[0]["agentfleet_manager_deploy"]


def test_canary_deployment_completes(tmp_path):
    with ManagerSim(tokens=(TOKEN,), phase_seconds=0.4) as sim:
        res = deploy(sim, tmp_path, manager_gui_image="ghcr.io/cirisai/ciris-gui:2.0.0", manager_source="github-actions",
                     manager_commit_sha="abc123", manager_message="Faster memory consolidation",
                     manager_metadata={"version": "2.0.0", "pr_number": 123})
        assert res.rc == 0, res
        posts = sim.posts()
        assert len(posts) == 1
        assert posts[0][3] == {"agent_image": "ghcr.io/cirisai/ciris-agent:2.0.0",
                               "gui_image": "ghcr.io/cirisai/ciris-gui:2.0.0", "strategy": "canary",
                               "source": "github-actions", "commit_sha": "abc123",
                               "message": "Faster memory consolidation",
                               "metadata": {"version": "2.0.0", "pr_number": 123}}
        assert all(r[4] for r in sim.requests), "every request carried the right token"
        deployment_id = re.search(r"CIRISManager deployment (deploy-\S+):", res.output).group(1)
        gets = [r for r in sim.requests if r[0] == "GET"]
        assert gets and all(r[2] == {"deployment_id": [deployment_id]} for r in gets)
    assert "7 total, 5 updated, 1 deferred, 1 rejected" in res.output
    stats = custom_stats(res.output)
    assert stats["deployment_id"] == deployment_id and stats["status"] == "completed"
    assert stats["agents_updated"] == 5 and stats["canary_phase"] == "general" and not stats["error"]


def test_failed_deployment_fails_the_job(tmp_path):
    agents = [{"agent_id": "datum", "group": "explorers", "outcome": "fail"},
              {"agent_id": "sage", "group": "general", "outcome": "accept"}]
    with ManagerSim(tokens=(TOKEN,), agents=agents, phase_seconds=0.3) as sim:
        res = deploy(sim, tmp_path)
    assert res.rc == 2, res
    assert "ended failed: Explorer phase failed - no agents reached stable WORK state" in res.output
    stats = custom_stats(res.output)
    assert stats["status"] == "failed" and stats["canary_phase"] == "explorers"


def test_wrong_token_is_refused_and_never_shown(tmp_path):
    wrong = "wrong-token-that-must-not-leak-42"
    with ManagerSim(tokens=(TOKEN,), echo_auth=True) as sim:
        # -vvv prints module arguments and results: the token must not be among them either
        res = deploy(sim, tmp_path, token=wrong, args=["-vvv"])
        assert len(sim.requests) == 1 and not sim.requests[0][4]
    assert res.rc == 2, res
    assert "the manager refused the deploy token for the notify (HTTP 401: Invalid deployment token" in res.output
    assert wrong not in res.output


def test_conflict_names_the_running_deployment_and_is_not_retried(tmp_path):
    with ManagerSim(tokens=(TOKEN,), phase_seconds=120) as sim:
        running = sim.start_deployment({"agent_image": "ghcr.io/cirisai/ciris-agent:1.9.0"})
        res = deploy(sim, tmp_path)
        assert len(sim.posts()) == 1, "the notify was sent once, not retried"
    assert res.rc == 2, res
    assert "CIRISManager has a deployment in progress already (%s)" % running in res.output
    assert "deployment_id=%s" % running in res.output


def test_check_mode_sends_nothing(tmp_path):
    with ManagerSim(tokens=(TOKEN,)) as sim:
        res = deploy(sim, tmp_path, check=True, manager_message="m")
        assert sim.requests == []
    assert res.rc == 0, res
    sent = {"agent_image": "ghcr.io/cirisai/ciris-agent:2.0.0", "strategy": "canary", "source": "ansible", "message": "m"}
    # the debug callback prints the message as a JSON string
    assert json.dumps("check mode: would send " + json.dumps(sent)) in res.output


def test_wait_timeout_fails_with_the_last_status(tmp_path):
    with ManagerSim(tokens=(TOKEN,), phase_seconds=120) as sim:
        res = deploy(sim, tmp_path, manager_wait_timeout=1)
    assert res.rc == 2, res
    assert re.search(r"did not finish within 1 s; last status: deploy-\S+: in_progress \(phase explorers\) - 7 total",
                     res.output), res
    stats = custom_stats(res.output)
    assert stats["status"] == "in_progress" and "did not finish" in stats["error"]


def test_https_is_verified_by_default_and_ca_path_works(tmp_path):
    ca, cert, key = make_tls_files(tmp_path)
    with ManagerSim(tokens=(TOKEN,), phase_seconds=0.2, tls=(cert, key)) as sim:
        url = sim.url
        refused = deploy(sim, tmp_path / "default", manager_strategy="immediate")
        assert sim.requests == [], "nothing was sent over an unverified connection"
        trusted = deploy(sim, tmp_path / "ca", manager_strategy="immediate", manager_ca_path=ca)
        assert len(sim.posts()) == 1 and sim.posts()[0][3]["strategy"] == "immediate"
    assert refused.rc == 2, refused
    assert "TLS verification failed for POST %s/manager/v1/updates/notify" % url in refused.output
    assert "CERTIFICATE_VERIFY_FAILED" in refused.output
    assert trusted.rc == 0, trusted
    assert "7 total, 5 updated, 1 deferred, 1 rejected" in trusted.output


PLAY = """
- hosts: localhost
  connection: local
  gather_facts: false
  module_defaults:
    group/agentfleet.rollout.manager:
      manager_url: "{{ url }}"
      poll_interval: 0.2
  tasks:
    - name: no current deployment
      agentfleet.rollout.manager_status:
      register: none_yet
    - name: notify without waiting
      agentfleet.rollout.manager_notify:
        agent_image: ghcr.io/cirisai/ciris-agent:2.0.0
        strategy: immediate
        update_message: the message
      register: notified
    - name: the current deployment
      agentfleet.rollout.manager_status:
      register: current
    - name: wait for it by id
      agentfleet.rollout.manager_status:
        deployment_id: "{{ notified.deployment_id }}"
        wait: true
        wait_timeout: 30
      register: done
    - name: an unknown deployment
      agentfleet.rollout.manager_status:
        deployment_id: deploy-unknown
      register: unknown
      ignore_errors: true
    - ansible.builtin.copy:
        dest: "{{ out }}"
        content: "{{ {'none_yet': none_yet, 'notified': notified, 'current': current, 'done': done,
                      'unknown': unknown} | to_json }}"
"""


def test_modules_in_a_play_of_your_own(tmp_path):
    play = tmp_path / "play.yml"
    play.write_text(PLAY)
    out = tmp_path / "out.json"
    with ManagerSim(tokens=(TOKEN,), phase_seconds=0.5) as sim:
        res = run_playbook(str(play), tmp_path, extra_vars={"url": sim.url, "out": str(out)},
                           env=ansible_env(tmp_path, CIRIS_DEPLOY_TOKEN=TOKEN))
    assert res.rc == 0, res
    assert TOKEN not in res.output
    got = json.loads(out.read_text())
    assert got["none_yet"]["found"] is False and got["none_yet"]["changed"] is False
    assert got["notified"]["changed"] is True and got["notified"]["status"] == "in_progress"
    assert got["notified"]["deployment"]["canary_phase"] is None
    assert got["current"]["deployment_id"] == got["notified"]["deployment_id"]
    assert got["done"]["succeeded"] is True and got["done"]["waited"] is True and got["done"]["polls"] >= 1
    assert got["done"]["deployment"]["counts"] == {"agents_total": 7, "agents_updated": 5, "agents_deferred": 1,
                                                   "agents_rejected": 1}
    assert got["unknown"]["failed"] and "knows no deployment deploy-unknown" in got["unknown"]["msg"]
    assert got["unknown"]["found"] is False and got["unknown"]["status"] is None
    assert sim.posts()[0][3]["message"] == "the message"


FAILING_PLAY = """
- hosts: localhost
  connection: local
  gather_facts: false
  module_defaults:
    group/agentfleet.rollout.manager:
      manager_url: "{{ url }}"
      poll_interval: 0.2
      wait_timeout: 30
  tasks:
    - name: notify and wait for a deployment that fails
      agentfleet.rollout.manager_notify:
        agent_image: ghcr.io/cirisai/ciris-agent:2.0.0
        update_message: an explorer fails
        wait: true
      register: notified
      ignore_errors: true
    - name: wait for it again by id
      agentfleet.rollout.manager_status:
        deployment_id: "{{ notified.deployment_id }}"
        wait: true
      register: followed
      ignore_errors: true
    - name: read it without waiting
      agentfleet.rollout.manager_status:
        deployment_id: "{{ notified.deployment_id }}"
      register: read
    - name: tolerate the failed deployment with failed_when
      agentfleet.rollout.manager_status:
        deployment_id: "{{ notified.deployment_id }}"
        wait: true
      register: tolerated
      failed_when: tolerated.failed and tolerated.status != 'failed'
    - ansible.builtin.copy:
        dest: "{{ out }}"
        content: "{{ {'notified': notified, 'followed': followed, 'read': read, 'tolerated': tolerated} | to_json }}"
"""


def test_waiting_for_a_deployment_that_failed_fails_the_task(tmp_path):
    play = tmp_path / "play.yml"
    play.write_text(FAILING_PLAY)
    out = tmp_path / "out.json"
    agents = [{"agent_id": "datum", "group": "explorers", "outcome": "fail"},
              {"agent_id": "sage", "group": "general", "outcome": "accept"}]
    with ManagerSim(tokens=(TOKEN,), agents=agents, phase_seconds=0.3) as sim:
        res = run_playbook(str(play), tmp_path, extra_vars={"url": sim.url, "out": str(out)},
                           env=ansible_env(tmp_path, CIRIS_DEPLOY_TOKEN=TOKEN))
        assert sim.posts()[0][3]["message"] == "an explorer fails"
    assert res.rc == 0, res
    assert TOKEN not in res.output
    got = json.loads(out.read_text())
    keys = {"deployment", "deployment_id", "status", "finished", "succeeded", "waited", "polls", "elapsed", "summary"}
    for name in ("notified", "followed"):
        result = got[name]
        assert result["failed"] is True, result
        assert keys <= set(result) and result["status"] == "failed" and result["finished"] is True
        assert result["succeeded"] is False and result["waited"] is True
        assert result["deployment"]["canary_phase"] == "explorers"
        assert "ended failed, not completed" in result["msg"] and "Explorer phase failed" in result["msg"]
    assert got["notified"]["changed"] is True and got["notified"]["request"]["body"]["message"] == "an explorer fails"
    assert got["read"].get("failed") is not True and got["read"]["status"] == "failed" and got["read"]["waited"] is False
    assert got["tolerated"]["failed"] is False and got["tolerated"]["status"] == "failed"


@pytest.mark.parametrize("extra, message", [
    ({"manager_url": ""}, "manager_url is required"),
    ({"manager_agent_image": ""}, "manager_agent_image or manager_gui_image is required"),
    ({"manager_strategy": "rolling"}, "manager_strategy must be canary, immediate or manual"),
])
def test_bad_variables_fail_before_any_call(tmp_path, extra, message):
    with ManagerSim(tokens=(TOKEN,)) as sim:
        res = deploy(sim, tmp_path, **extra)
        assert sim.requests == []
    assert res.rc == 2 and message in res.output, res
