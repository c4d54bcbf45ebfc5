"""Integration: the rollout state in S3 (moto server over real HTTP), as AWX jobs and CI runners use it.

Every "controller" below is its own ansible-playbook process with its own working directory and HOME
(nothing on disk is shared between them, like two AWX jobs): only the s3:// state is. The agents are
fleetsim's, which counts who was asked what.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ansible_env, run_playbook
from fleetsim.testing import FleetSim, tasks_driver_vars
from helpers import wait_for
from motoserver import ACCESS_KEY, SECRET_KEY, MotoServer

SHUTDOWN = "/v1/system/shutdown"
_buckets = itertools.count()


@pytest.fixture(scope="module")
def moto(tmp_path_factory):
    with MotoServer(tmp_path_factory.mktemp("moto")) as server:
        yield server


@pytest.fixture
def bucket(moto):
    return moto.bucket("rollout-state-%d-%d" % (os.getpid(), next(_buckets)))


def fleet(count, **defaults):
    cfg = {"agents": [{"count": count, "name_prefix": "agent-"}]}
    if defaults:
        cfg["defaults"] = defaults
    return cfg


def controller(tmp_path, moto, name):
    """A fresh working directory and HOME, the AWS settings in the environment (as CI secrets give them)."""
    workdir = tmp_path / name
    workdir.mkdir()
    home = workdir / "home"
    home.mkdir()
    env = ansible_env(workdir, HOME=str(home), **moto.env())
    return workdir, env


def rollout_vars(bucket, workdir, ttl=None, **extra):
    v = {
        "rollout_target_version": "2.0.0",
        **tasks_driver_vars(),
        "rollout_min_healthy_time": 0,
        "rollout_poll_interval": 0.1,
        "rollout_healthy_deadline": 60,
        "rollout_state_path": "s3://%s/agentfleet/prod" % bucket,
        "rollout_report_path": str(workdir / "report.json"),
        "rollout_audit_path": "s3://%s/agentfleet/prod/audit.jsonl" % bucket,
    }
    if ttl is not None:
        v["rollout_lock_ttl"] = ttl
    v.update(extra)
    return v


def run(sim, workdir, env, bucket, playbook="agentfleet.rollout.canary", **extra):
    return run_playbook(playbook, workdir, inventory=sim.inventory_path, extra_vars=rollout_vars(bucket, workdir, **extra),
                        env=env, report_path=workdir / "report.json", timeout=240)


def start(sim, workdir, env, bucket, **extra):
    varfile = workdir / "bg-vars.json"
    varfile.write_text(json.dumps(rollout_vars(bucket, workdir, **extra)))
    cmd = [str(Path(sys.executable).parent / "ansible-playbook"), "agentfleet.rollout.canary", "-i",
           str(sim.inventory_path), "-e", "@" + str(varfile)]
    out = open(workdir / "bg-output.txt", "w")
    proc = subprocess.Popen(cmd, cwd=str(workdir), env=env, stdout=out, stderr=subprocess.STDOUT,
                            start_new_session=True)
    out.close()
    return proc


def asked(sim):
    return [e["occurrence"] for e in sim.log(path=SHUTDOWN, method="POST")]


def lock(moto, bucket, fleet_key="agents"):
    try:
        body = moto.client().get_object(Bucket=bucket, Key="agentfleet/prod/locks/%s.json" % fleet_key)["Body"]
    except moto.client().exceptions.NoSuchKey:
        return None
    return json.loads(body.read())


def audit(moto, bucket):
    body = moto.client().get_object(Bucket=bucket, Key="agentfleet/prod/audit.jsonl")["Body"].read().decode()
    return [json.loads(line) for line in body.splitlines()]


def no_secrets(*texts):
    for text in texts:
        assert SECRET_KEY not in text and ACCESS_KEY not in text


def test_two_concurrent_rollouts_on_one_key_exactly_one_runs(tmp_path, moto, bucket):
    with FleetSim(config=fleet(4, boot_seconds=1), workdir=tmp_path / "sim") as sim:
        procs = []
        for name, version in (("ctl-a", "2.0.0"), ("ctl-b", "3.0.0")):
            workdir, env = controller(tmp_path, moto, name)
            procs.append((workdir, start(sim, workdir, env, bucket, rollout_target_version=version)))
        for dummy, proc in procs:
            proc.wait(timeout=240)
        outputs = [(w / "bg-output.txt").read_text() for w, dummy in procs]
        codes = [p.returncode for dummy, p in procs]
        assert sorted(codes)[0] == 0 and sorted(codes)[1] != 0, outputs
        loser = outputs[codes.index(max(codes))]
        assert "another rollout is active for fleet 'agents'" in loser
        winner_version = ("2.0.0", "3.0.0")[codes.index(0)]
        # every agent asked once, all by the winner; nobody by the loser
        sent = sim.log(path=SHUTDOWN, method="POST")
        assert sorted(e["occurrence"] for e in sent) == ["agent-000", "agent-001", "agent-002", "agent-003"]
        assert {e["body"]["deployment_id"] for e in sent} == {"deploy-agents-%s" % winner_version}
        assert lock(moto, bucket) is None  # the finished rollout released it
        no_secrets(*outputs)


def test_killed_holder_lock_expires_after_the_ttl_then_the_next_run_resumes(tmp_path, moto, bucket):
    # long enough that the second controller surely reaches the lock before it runs out, on a loaded machine
    ttl = 30
    # wave 2's agents boot slowly, so the controller is killed while it gates them
    cfg = fleet(10, boot_seconds=4)
    cfg["agents"][0]["overrides"] = {"agent-000": {"boot_seconds": 0}}
    with FleetSim(config=cfg, workdir=tmp_path / "sim") as sim:
        workdir, env = controller(tmp_path, moto, "ctl-a")
        proc = start(sim, workdir, env, bucket, ttl=ttl)
        wait_for(lambda: len(asked(sim)) >= 4, 120, "the explorers done and wave 2 asked", interval=0.1)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        killed_at = time.time()
        asked_before = sorted(asked(sim))
        assert len(asked_before) == 4
        held = lock(moto, bucket)
        # taken with rollout_lock_ttl by the plan, renewed with it by the waves
        assert held["deployment_id"] == "deploy-agents-2.0.0" and held["ttl"] == ttl
        assert held["renewed_at"] > held["acquired_at"]

        # another controller (another AWX job) right away: the lease has not run out
        workdir_b, env_b = controller(tmp_path, moto, "ctl-b")
        early = run(sim, workdir_b, env_b, bucket, ttl=ttl)
        assert early.rc != 0
        assert "another rollout is active for fleet 'agents'" in early.output
        assert "expires in" in early.output
        assert sorted(asked(sim)) == asked_before

        # after the TTL the lock is taken over and the deployment resumes where it stopped
        assert lock(moto, bucket) == held  # nobody renewed it since the kill
        wait_for(lambda: time.time() > held["expires_at"] + 0.5, ttl * 2, "the lock expired", interval=0.1)
        assert time.time() - killed_at <= ttl + 1.5
        workdir_c, env_c = controller(tmp_path, moto, "ctl-c")
        res = run(sim, workdir_c, env_c, bucket, ttl=ttl)
        assert res.rc == 0, res.output
        assert "resumed" in res.output
        report = res.report()
        assert report["status"] == "completed"
        assert all(a["result"] == "updated" for a in report["agents"]), report["agents"]
        hosts = asked(sim)
        assert sorted(hosts) == sorted(set(hosts)), "an agent was asked twice"
        assert len(hosts) == 10
        starts = [n for e in sim.log(event="sim_start") for n in e["body"]["occurrences"]]
        assert sorted(starts) == sorted(set(starts))
        assert lock(moto, bucket) is None
        events = [e["event"] for e in audit(moto, bucket)]
        assert events.count("decision") == 10 and "deployment_resumed" in events
        no_secrets(early.output, res.output)


def test_manual_in_one_controller_promote_in_another(tmp_path, moto, bucket):
    with FleetSim(config=fleet(6), workdir=tmp_path / "sim") as sim:
        workdir, env = controller(tmp_path, moto, "ctl-stage")
        staged = run(sim, workdir, env, bucket, playbook="agentfleet.rollout.manual")
        assert staged.rc == 0, staged.output
        assert "is staged: nobody was asked" in staged.output
        assert asked(sim) == []
        assert lock(moto, bucket) is None

        workdir_p, env_p = controller(tmp_path, moto, "ctl-promote")
        extra = rollout_vars(bucket, workdir_p)
        del extra["rollout_target_version"]
        extra["rollout_report_path"] = "s3://%s/agentfleet/prod/reports/latest.json" % bucket
        prom = run_playbook("agentfleet.rollout.promote", workdir_p, inventory=sim.inventory_path, extra_vars=extra,
                            env=env_p, timeout=240)
        assert prom.rc == 0, prom.output
        report = json.loads(moto.client().get_object(Bucket=bucket, Key="agentfleet/prod/reports/latest.json")
                            ["Body"].read())
        assert report["status"] == "completed" and report["target_version"] == "2.0.0"
        assert sorted(asked(sim)) == ["agent-%03d" % i for i in range(6)]
        # neither controller left a state file behind: the state is in S3 only
        for home in (workdir / "home", workdir_p / "home"):
            assert not (home / ".agentfleet" / "state.db").exists()
        no_secrets(staged.output, prom.output)
