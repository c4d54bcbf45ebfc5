"""Deployment evaluation (pure), the poll loop, and the rollout engine driven by botocore's Stubber."""

from __future__ import annotations

import boto3
import pytest
from botocore.stub import ANY, Stubber

from ansible_collections.agentfleet.rollout.plugins.module_utils._ecs import EcsError
from ansible_collections.agentfleet.rollout.plugins.module_utils._ecs import service as s
from ansible_collections.agentfleet.rollout.plugins.module_utils._ecs import waiter
from helpers import Clock

ARN = "arn:aws:ecs:us-east-2:123456789012:task-definition/par:%d"
OLD, NEW = ARN % 6, ARN % 7


def deployment(td=NEW, status="PRIMARY", state="IN_PROGRESS", running=0, desired=2, failed=0, reason=None, dep_id="ecs-svc/1"):
    d = {"id": dep_id, "status": status, "taskDefinition": td, "desiredCount": desired, "pendingCount": desired - running,
         "runningCount": running, "failedTasks": failed}
    if state is not None:
        d["rolloutState"] = state
    if reason:
        d["rolloutStateReason"] = reason
    return d


def svc(*deployments, td=NEW, events=()):
    return {"serviceName": "par", "status": "ACTIVE", "taskDefinition": td, "desiredCount": 2,
            "deploymentConfiguration": {"minimumHealthyPercent": 100, "maximumPercent": 200},
            "deployments": list(deployments), "events": [{"message": m} for m in events]}


# -------------------------------------------------------------- evaluation
@pytest.mark.parametrize("service, max_failed, state, text", [
    (svc(deployment(state="COMPLETED", running=2)), 0, "COMPLETED", "COMPLETED"),
    (svc(deployment(state="COMPLETED", running=1)), 0, "IN_PROGRESS", "running 1/2"),
    (svc(deployment(state="IN_PROGRESS", running=1), deployment(td=OLD, status="ACTIVE", state="COMPLETED", running=1)),
     0, "IN_PROGRESS", "IN_PROGRESS"),
    (svc(deployment(state="FAILED", reason="ECS deployment circuit breaker: tasks failed to start.")), 0, "FAILED",
     "circuit breaker: tasks failed"),
    (svc(deployment(failed=1)), 0, "FAILED", "1 task(s) failed to start"),
    (svc(deployment(failed=1)), 2, "IN_PROGRESS", "failed 1"),
    # circuit breaker with ECS rollback: the old revision is PRIMARY again, ours FAILED
    (svc(deployment(td=OLD, dep_id="ecs-svc/2"), deployment(status="ACTIVE", state="FAILED", reason="breaker")), 0,
     "FAILED", "FAILED: breaker; primary is now par:6"),
    (svc(deployment(td=OLD, state="COMPLETED", running=2)), 0, "FAILED", "runs par:6, not par:7"),
    # moto echoes family:revision: same revision as the ARN
    (svc(deployment(td="par:7", state="COMPLETED", running=2)), 0, "COMPLETED", "COMPLETED"),
    # no rolloutState (CODE_DEPLOY/EXTERNAL): steady when a single deployment runs all tasks
    (svc(deployment(state=None, running=2)), 0, "COMPLETED", "steady"),
    (svc(deployment(state=None, running=2), deployment(td=OLD, status="ACTIVE", state=None, running=2)), 0,
     "IN_PROGRESS", "older deployment"),
    (svc(), 0, "IN_PROGRESS", "no PRIMARY"),
    (dict(svc(), status="DRAINING"), 0, "FAILED", "DRAINING"),
    (None, 0, "FAILED", "not found"),
])
def test_evaluate_deployment(service, max_failed, state, text):
    got_state, message = s.evaluate_deployment(service, NEW, max_failed)
    assert got_state == state
    assert text in message


@pytest.mark.parametrize("value, ref", [(NEW, "par:7"), ("par:7", "par:7"), ("par", "par"), (None, None)])
def test_td_ref(value, ref):
    assert s.td_ref(value) == ref


@pytest.mark.parametrize("options, current, changes", [
    (None, {}, []),
    ({"minimum_healthy_percent": 100, "maximum_percent": 200}, {"minimumHealthyPercent": 100, "maximumPercent": 200}, []),
    ({"minimum_healthy_percent": 50}, {"minimumHealthyPercent": 100}, ["deploymentConfiguration.minimumHealthyPercent"]),
    ({"deployment_circuit_breaker": {"enable": True, "rollback": True}},
     {"deploymentCircuitBreaker": {"enable": True, "rollback": False}}, ["deploymentConfiguration.deploymentCircuitBreaker"]),
    ({"deployment_circuit_breaker": {"enable": True, "rollback": True}}, None,
     ["deploymentConfiguration.deploymentCircuitBreaker"]),
])
def test_deployment_configuration_changes(options, current, changes):
    assert s.deployment_configuration_changes(s.deployment_configuration_request(options), current) == changes


@pytest.mark.parametrize("urls, addresses, expected", [
    (["http://{address}:8080/health"], ["10.0.0.1", "10.0.0.2"], ["http://10.0.0.1:8080/health", "http://10.0.0.2:8080/health"]),
    (["https://alb.example.com/health"], [], ["https://alb.example.com/health"]),
    (["http://{address}/health"], [], []),
    (None, ["10.0.0.1"], []),
])
def test_expand_health_urls(urls, addresses, expected):
    assert s.expand_health_urls(urls, addresses) == expected


@pytest.mark.parametrize("results, state", [
    ([{"url": "u", "status": 200}], "COMPLETED"),
    ([{"url": "u", "status": 200}, {"url": "v", "status": 503}], "IN_PROGRESS"),
    ([{"url": "u", "status": "URLError: refused"}], "IN_PROGRESS"),
    ([], "FAILED"),
])
def test_evaluate_health(results, state):
    assert s.evaluate_health(results)[0] == state


# ------------------------------------------------------------------ waiter
def test_poll_returns_final_state_and_sleeps_with_delay():
    clock = Clock()
    values = iter(["IN_PROGRESS", "IN_PROGRESS", "COMPLETED"])
    state, message, value = waiter.poll(lambda: next(values), lambda v: (v, v.lower()), 100, 10, clock, clock.sleep)
    assert (state, value) == ("COMPLETED", "COMPLETED")
    assert clock.sleeps == [10, 10]


def test_poll_times_out_with_the_last_evaluation():
    clock = Clock()
    state, message, dummy = waiter.poll(lambda: 1, lambda v: ("IN_PROGRESS", "running 1/2"), 25, 10, clock, clock.sleep)
    assert state == "TIMEOUT" and message == "running 1/2"
    assert clock.sleeps == [10, 10, 5]


# ------------------------------------------------------- engine + Stubber
def td_response(arn):
    family, rev = arn.rsplit("/", 1)[1].split(":")
    return {"taskDefinition": {"taskDefinitionArn": arn, "family": family, "revision": int(rev), "status": "ACTIVE",
                               "containerDefinitions": [{"name": "agent-runtime", "image": "repo/par:%s" % rev}]}}


def params(**over):
    p = dict(cluster="c1", service="par", task_definition="par:7", deployment_configuration=None,
             force_new_deployment=False, wait=True, timeout=60, delay=10, max_failed_tasks=0, rollback=True,
             health_urls=None, health_timeout=5, container_name="agent-runtime", validate_certs=True)
    p.update(over)
    return p


@pytest.fixture
def ecs():
    client = boto3.client("ecs", region_name="us-east-2", aws_access_key_id="AKIDTEST", aws_secret_access_key="fake")
    with Stubber(client) as stub:
        yield client, stub
        stub.assert_no_pending_responses()


def expect_start(stub, current_td=OLD, target=NEW, service=None):
    stub.add_response("describe_services", {"services": [service or svc(deployment(td=current_td, state="COMPLETED", running=2), td=current_td)]},
                      {"cluster": "c1", "services": ["par"]})
    stub.add_response("describe_task_definition", td_response(target), {"taskDefinition": ANY})
    stub.add_response("describe_task_definition", td_response(current_td), {"taskDefinition": current_td})


def expect_update(stub, td, service=None):
    stub.add_response("update_service", {"service": service or svc(deployment(td=td), td=td)},
                      {"cluster": "c1", "service": "par", "taskDefinition": td})


def expect_describe(stub, *services):
    for service in services:
        stub.add_response("describe_services", {"services": [service]}, {"cluster": "c1", "services": ["par"]})


def rollout(client, clock, check_mode=False, http_get=None, **over):
    return s.ServiceRollout(client, params(**over), check_mode=check_mode, clock=clock, sleep=clock.sleep,
                            http_get=http_get).run()


def test_in_progress_then_completed(ecs):
    client, stub = ecs
    clock = Clock()
    expect_start(stub)
    expect_update(stub, NEW)
    expect_describe(stub,
                    svc(deployment(state="IN_PROGRESS", running=0), deployment(td=OLD, status="ACTIVE", state="COMPLETED", running=2)),
                    svc(deployment(state="IN_PROGRESS", running=2), deployment(td=OLD, status="ACTIVE", state="COMPLETED", running=1)),
                    svc(deployment(state="COMPLETED", running=2)))
    result = rollout(client, clock)
    assert result["result"] == "succeeded" and result["changed"] is True
    assert result["previous_task_definition"] == OLD and result["task_definition"] == NEW
    assert result["rollout_state"] == "COMPLETED"
    assert clock.sleeps == [10, 10]
    assert result["differences"] == ["taskDefinition"]


def test_circuit_breaker_failed_rolls_back_to_previous(ecs):
    client, stub = ecs
    clock = Clock()
    expect_start(stub)
    expect_update(stub, NEW)
    expect_describe(stub,
                    svc(deployment(state="IN_PROGRESS", running=0, failed=0)),
                    svc(deployment(state="FAILED", reason="ECS deployment circuit breaker: tasks failed to start.", failed=3)))
    expect_update(stub, OLD)
    expect_describe(stub,
                    svc(deployment(td=OLD, dep_id="ecs-svc/3", state="IN_PROGRESS", running=1), td=OLD),
                    svc(deployment(td=OLD, dep_id="ecs-svc/3", state="COMPLETED", running=2), td=OLD))
    roll = s.ServiceRollout(client, params(), clock=clock, sleep=clock.sleep)
    with pytest.raises(EcsError) as info:
        roll.run()
    result = info.value.result
    assert result["result"] == "rolled_back" and result["rolled_back"] is True
    assert result["rollout_state"] == "FAILED", "the state of the deployment we tried; result says rolled back"
    assert "circuit breaker" in info.value.msg and "rolled back to par:6" in info.value.msg
    names = [e["event"] for e in roll.events]
    assert names[0] == "service_updated"
    assert names.index("deployment_failed") < names.index("rollback_started") < names.index("rollback_completed")


def test_failure_without_rollback_fails(ecs):
    client, stub = ecs
    clock = Clock()
    expect_start(stub)
    expect_update(stub, NEW)
    expect_describe(stub, svc(deployment(failed=1)))
    with pytest.raises(EcsError) as info:
        rollout(client, clock, rollback=False)
    assert info.value.result["result"] == "failed"
    assert "1 task(s) failed to start" in info.value.msg


def test_deadline_reports_what_the_service_said_and_rolls_back(ecs):
    client, stub = ecs
    clock = Clock()
    expect_start(stub)
    expect_update(stub, NEW)
    stuck = svc(deployment(state="IN_PROGRESS", running=1), events=["(service par) is unable to place a task"])
    expect_describe(stub, stuck, stuck, stuck, stuck)  # t=0, 10, 20, 30 -> deadline 30
    expect_update(stub, OLD)
    expect_describe(stub, svc(deployment(td=OLD, state="COMPLETED", running=2), td=OLD))
    with pytest.raises(EcsError) as info:
        rollout(client, clock, timeout=30)
    msg = info.value.msg
    assert "timed out after 30s" in msg and "running 1/2" in msg and "unable to place a task" in msg
    assert info.value.result["result"] == "rolled_back"


def test_deadline_without_rollback(ecs):
    client, stub = ecs
    clock = Clock()
    expect_start(stub)
    expect_update(stub, NEW)
    stuck = svc(deployment(state="IN_PROGRESS", running=1))
    expect_describe(stub, stuck, stuck)
    with pytest.raises(EcsError) as info:
        rollout(client, clock, timeout=10, rollback=False)
    assert info.value.result["rollout_state"] == "TIMEOUT" and info.value.result["result"] == "failed"


def test_rollback_that_fails_too(ecs):
    client, stub = ecs
    clock = Clock()
    expect_start(stub)
    expect_update(stub, NEW)
    expect_describe(stub, svc(deployment(state="FAILED")))
    expect_update(stub, OLD)
    expect_describe(stub, svc(deployment(td=OLD, state="FAILED"), td=OLD))
    with pytest.raises(EcsError) as info:
        rollout(client, clock)
    assert info.value.result["result"] == "failed" and "rollback to par:6 did not complete" in info.value.msg


def test_wait_false_returns_after_update(ecs):
    client, stub = ecs
    clock = Clock()
    expect_start(stub)
    expect_update(stub, NEW)
    result = rollout(client, clock, wait=False)
    assert result["result"] == "started" and result["rollout_state"] == "IN_PROGRESS" and clock.sleeps == []


def test_check_mode_describes_only(ecs):
    client, stub = ecs
    clock = Clock()
    expect_start(stub)  # no update_service stubbed: calling it would fail the test
    result = rollout(client, clock, check_mode=True)
    assert result["changed"] is True and result["differences"] == ["taskDefinition"]


def test_unchanged_service_is_not_updated_but_verified(ecs):
    client, stub = ecs
    clock = Clock()
    current = svc(deployment(state="COMPLETED", running=2))
    expect_start(stub, current_td=NEW, service=current)
    expect_describe(stub, current)
    result = rollout(client, clock)
    assert result["changed"] is False and result["result"] == "succeeded"


def test_deployment_configuration_sent_with_update(ecs):
    client, stub = ecs
    clock = Clock()
    expect_start(stub, current_td=NEW, service=svc(deployment(state="COMPLETED", running=2)))
    stub.add_response("update_service", {"service": svc(deployment())}, {
        "cluster": "c1", "service": "par", "taskDefinition": NEW,
        "deploymentConfiguration": {"minimumHealthyPercent": 50, "maximumPercent": 200,
                                    "deploymentCircuitBreaker": {"enable": True, "rollback": True}}})
    result = rollout(client, clock, wait=False, deployment_configuration={
        "minimum_healthy_percent": 50, "maximum_percent": 200,
        "deployment_circuit_breaker": {"enable": True, "rollback": True}})
    assert result["differences"] == ["deploymentConfiguration.deploymentCircuitBreaker",
                                     "deploymentConfiguration.minimumHealthyPercent"]


def test_health_check_on_task_addresses(ecs):
    client, stub = ecs
    clock = Clock()
    expect_start(stub)
    expect_update(stub, NEW)
    expect_describe(stub, svc(deployment(state="COMPLETED", running=2)))
    stub.add_response("list_tasks", {"taskArns": ["t1", "t2"]}, {"cluster": "c1", "serviceName": "par", "desiredStatus": "RUNNING"})
    stub.add_response("describe_tasks", {"tasks": [
        {"taskArn": "t1", "taskDefinitionArn": NEW, "containers": [{"networkInterfaces": [{"privateIpv4Address": "10.0.0.1"}]}]},
        {"taskArn": "t2", "taskDefinitionArn": OLD, "containers": [{"networkInterfaces": [{"privateIpv4Address": "10.0.0.9"}]}]},
    ]}, {"cluster": "c1", "tasks": ["t1", "t2"]})
    answers = iter([503, 200])
    calls = []

    def http_get(url, timeout):
        calls.append(url)
        return next(answers)

    result = rollout(client, clock, http_get=http_get, health_urls=["http://{address}:8080/health"])
    assert calls == ["http://10.0.0.1:8080/health"] * 2
    assert result["health"] == [{"url": "http://10.0.0.1:8080/health", "status": 200}]
    assert result["result"] == "succeeded"


def test_health_check_failure_rolls_back(ecs):
    client, stub = ecs
    clock = Clock()
    expect_start(stub)
    expect_update(stub, NEW)
    expect_describe(stub, svc(deployment(state="COMPLETED", running=2)))
    expect_update(stub, OLD)
    expect_describe(stub, svc(deployment(td=OLD, state="COMPLETED", running=2), td=OLD))
    with pytest.raises(EcsError) as info:
        rollout(client, clock, timeout=20, http_get=lambda url, timeout: 503, health_urls=["https://alb/health"])
    assert info.value.result["result"] == "rolled_back" and "health check timed out" in info.value.msg


def test_missing_service(ecs):
    client, stub = ecs
    stub.add_response("describe_services", {"services": [], "failures": [{"arn": "par", "reason": "MISSING"}]},
                      {"cluster": "c1", "services": ["par"]})
    with pytest.raises(EcsError, match="service par not found in cluster c1 .par: MISSING"):
        rollout(client, Clock())


def test_api_error_becomes_ecs_error(ecs):
    client, stub = ecs
    stub.add_client_error("describe_services", "AccessDeniedException", "not allowed")
    with pytest.raises(EcsError, match="describe_services failed: AccessDeniedException: not allowed"):
        rollout(client, Clock())


def test_run_writes_report_and_audit(ecs, tmp_path):
    client, stub = ecs
    clock = Clock()
    expect_start(stub)
    expect_update(stub, NEW)
    expect_describe(stub, svc(deployment(state="FAILED")))
    expect_update(stub, OLD)
    expect_describe(stub, svc(deployment(td=OLD, state="COMPLETED", running=2), td=OLD))
    p = params(deployment_id="deploy-1", report_path=str(tmp_path / "r.json"), audit_path=str(tmp_path / "a.jsonl"),
               report_extra={"mode": "update_only", "events": [{"event": "earlier"}]}, secret_key="fake-secret")
    with pytest.raises(EcsError):
        s.run(lambda: client, p, clock=clock, sleep=clock.sleep)
    import json
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["result"] == "rolled_back" and report["strategy"] == "ecs" and report["mode"] == "update_only"
    assert report["target"] == {"family": "par", "revision": 7, "image": "repo/par:7"}
    assert report["previous_task_definition"] == OLD and report["task_definition"] == NEW
    assert report["events"][0]["event"] == "earlier"
    lines = [json.loads(x) for x in (tmp_path / "a.jsonl").read_text().splitlines()]
    assert all(line["deployment_id"] == "deploy-1" for line in lines)
    assert "rollback_completed" in [line["event"] for line in lines]


def test_default_http_get_against_a_local_server():
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if self.path == "/health" else 503)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        get = s.default_http_get()
        base = "http://127.0.0.1:%d" % server.server_address[1]
        assert get(base + "/health", 5) == 200
        assert get(base + "/other", 5) == 503
    finally:
        server.shutdown()
        server.server_close()
    assert isinstance(get(base + "/health", 1), str)


def test_timeout_is_one_deadline_for_wait_and_health_and_rollback_has_its_own(ecs):
    client, stub = ecs
    clock = Clock()
    expect_start(stub)
    expect_update(stub, NEW)
    rolling = svc(deployment(state="IN_PROGRESS", running=1))
    expect_describe(stub, rolling, rolling, svc(deployment(state="COMPLETED", running=2)))  # t=0, 10, 20
    expect_update(stub, OLD)
    back = svc(deployment(td=OLD, dep_id="ecs-svc/3", state="IN_PROGRESS", running=1), td=OLD)
    # the rollback needs 40 s: more than timeout=30, within rollback_timeout=100
    expect_describe(stub, back, back, back, back, svc(deployment(td=OLD, dep_id="ecs-svc/3", state="COMPLETED", running=2), td=OLD))
    calls = []

    def http_get(url, timeout):
        calls.append(clock.now)
        return 503

    with pytest.raises(EcsError) as info:
        rollout(client, clock, timeout=30, rollback_timeout=100, http_get=http_get, health_urls=["https://alb/health"])
    assert calls == [20, 30], "the health check only gets what the deployment left of the 30 s"
    assert "health check timed out" in info.value.msg
    assert info.value.result["result"] == "rolled_back"
    assert clock.now == 70


def test_rollback_timeout_deadline(ecs):
    client, stub = ecs
    clock = Clock()
    expect_start(stub)
    expect_update(stub, NEW)
    expect_describe(stub, svc(deployment(state="FAILED")))
    expect_update(stub, OLD)
    back = svc(deployment(td=OLD, state="IN_PROGRESS", running=1), td=OLD)
    expect_describe(stub, back, back)  # t=0, 10 -> rollback deadline 10
    with pytest.raises(EcsError) as info:
        rollout(client, clock, timeout=600, rollback_timeout=10)
    assert info.value.result["result"] == "failed"
    assert "did not complete (timed out after 10s waiting for par:6" in info.value.msg


def test_check_mode_run_writes_no_report_or_audit(ecs, tmp_path):
    client, stub = ecs
    expect_start(stub)
    p = params(report_path=str(tmp_path / "r.json"), audit_path=str(tmp_path / "a.jsonl"))
    result = s.run(lambda: client, p, check_mode=True, clock=Clock(), sleep=Clock().sleep)
    assert result["changed"] is True and "report_path" not in result and "audit_path" not in result
    assert list(tmp_path.iterdir()) == []
