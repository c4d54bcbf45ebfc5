"""The CIRISManager client: request building, status parsing, masking, 409s, waiting, and the client
against the loopback stand-in (tests/managersim.py)."""

from __future__ import annotations

import json

import pytest

from ansible_collections.agentfleet.rollout.plugins.module_utils import _manager as m
from ansible_collections.agentfleet.rollout.plugins.module_utils import _manager_module as mm
from ansible_collections.agentfleet.rollout.plugins.modules import manager_notify, manager_status
from helpers import Clock, patch_module_args
from managersim import ManagerSim

TOKEN = "deploy-token-0123456789abcdef"


def params(url="https://agents.example.org", **extra):
    p = dict(manager_url=url, token=TOKEN, validate_certs=True, ca_path=None, connect_timeout=2.0, read_timeout=5.0,
             wait=False, wait_timeout=30.0, poll_interval=0.05, agent_image=None, gui_image=None, strategy="canary",
             source=None, commit_sha=None, update_message=None, metadata=None, deployment_id=None)
    p.update(extra)
    return p


# ---------------------------------------------------------------- request building

def test_body_has_exactly_the_documented_fields():
    body = m.build_notify_body(params(agent_image="ghcr.io/cirisai/ciris-agent:2.0.0",
                                      gui_image="ghcr.io/cirisai/ciris-gui:2.0.0", source="github-actions",
                                      commit_sha="abc123", update_message="Faster", metadata={"version": "2.0.0", "pr_number": 123}))
    assert body == {"agent_image": "ghcr.io/cirisai/ciris-agent:2.0.0", "gui_image": "ghcr.io/cirisai/ciris-gui:2.0.0",
                    "strategy": "canary", "source": "github-actions", "commit_sha": "abc123", "message": "Faster",
                    "metadata": {"version": "2.0.0", "pr_number": 123}}
    assert set(body) == set(m.BODY_FIELDS)


def run_module(module, args, capsys):
    """Run a module's main() with ``args``; its JSON result."""
    with patch_module_args(args):
        with pytest.raises(SystemExit):
            module.main()
    return json.loads(capsys.readouterr().out)


def test_update_message_is_sent_as_the_body_field_message(capsys):
    args = {"manager_url": "https://agents.example.org", "token": TOKEN, "agent_image": "a:2", "_ansible_check_mode": True,
            "update_message": "Faster memory consolidation"}
    result = run_module(manager_notify, args, capsys)
    assert not result.get("failed"), result
    assert result["request"]["body"] == {"agent_image": "a:2", "strategy": "canary",
                                         "message": "Faster memory consolidation"}


def test_no_option_uses_a_name_ansible_test_reserves():
    """validate-modules (invalid-argument-name) refuses "message" and "syslog_facility" as an option or an alias."""
    for spec in (mm.CONNECTION_SPEC, mm.NOTIFY_SPEC, mm.STATUS_SPEC):
        for name, option in spec.items():
            assert not {name, *option.get("aliases", ())} & {"message", "syslog_facility"}, name


def test_unset_fields_are_not_sent():
    assert m.build_notify_body(params(agent_image="a:1", strategy="immediate", metadata={})) == {
        "agent_image": "a:1", "strategy": "immediate"}


@pytest.mark.parametrize("extra, field", [
    (dict(), "agent_image or gui_image"),
    (dict(agent_image="a:1", strategy="rolling"), "strategy"),
    (dict(agent_image="a:1", metadata=["x"]), "metadata"),
])
def test_bad_body_names_the_field(extra, field):
    with pytest.raises(ValueError, match=field):
        m.build_notify_body(params(**extra))


@pytest.mark.parametrize("url, ok", [
    ("https://agents.example.org/", "https://agents.example.org"),
    ("https://agents.example.org/proxy", "https://agents.example.org/proxy"),
    ("ftp://agents.example.org", None),
    ("https://agents.example.org/manager/v1/updates/notify", None),
    ("https://agents.example.org?x=1", None),
    ("", None),
])
def test_base_url(url, ok):
    if ok:
        assert m.normalize_base_url(url) == ok
    else:
        with pytest.raises(ValueError, match="manager_url"):
            m.normalize_base_url(url)


def test_token_is_stripped_and_required():
    assert m.clean_token(" %s\n" % TOKEN) == TOKEN
    with pytest.raises(ValueError, match="CIRIS_DEPLOY_TOKEN"):
        m.clean_token("  ")
    with pytest.raises(ValueError) as err:
        m.clean_token("abc def")
    assert "abc" not in str(err.value)
    # the agents' token validator, one for every token: a control character or a non-latin-1 one is refused by name
    for bad in ("abc\x00def", "tok\u20acen"):
        with pytest.raises(ValueError, match="CIRIS_DEPLOY_TOKEN") as err:
            m.clean_token(bad)
        assert bad not in str(err.value)


# ---------------------------------------------------------------- parsing and masking

SEED_STATUS = {"deployment_id": "deploy-20250801-123456", "status": "in_progress", "agents_total": 10,
               "agents_updated": 0, "agents_deferred": 0, "agents_rejected": 0, "started_at": "2025-08-01T12:00:00Z",
               "canary_phase": "explorers", "message": "Deployment started"}


def test_parse_the_seed_status():
    status = m.parse_status(SEED_STATUS)
    assert {k: status[k] for k in SEED_STATUS} == SEED_STATUS
    assert status["counts"] == {"agents_total": 10, "agents_updated": 0, "agents_deferred": 0, "agents_rejected": 0}


def test_parse_keeps_extra_fields_and_fills_missing_ones():
    status = m.parse_status({"deployment_id": "d1", "status": "STAGED", "agents_affected": 3, "agents_failed": 1})
    assert status["status"] == "staged" and status["agents_affected"] == 3 and status["canary_phase"] is None
    assert status["counts"] == {"agents_failed": 1}
    assert m.parse_status(None) is None
    with pytest.raises(m.ManagerError, match="not a deployment status"):
        m.parse_status({"detail": "x"})


@pytest.mark.parametrize("status, verdict", [
    ("completed", "succeeded"), ("failed", "failed"), ("cancelled", "failed"), ("rejected", "failed"),
    ("rolled_back", "failed"), ("in_progress", None), ("staged", None), ("pending", None), ("rolling_back", None),
])
def test_outcome(status, verdict):
    assert m.outcome(status) == verdict


def test_mask_walks_nested_values():
    data = {"detail": "bad Bearer %s" % TOKEN, "list": ["x%sy" % TOKEN, 3], TOKEN: None}
    masked = m.mask(data, [TOKEN])
    assert TOKEN not in repr(masked)
    assert masked["detail"] == "bad Bearer ********" and masked["list"] == ["x********y", 3]


@pytest.mark.parametrize("body, expected", [
    ({"detail": "Deployment deploy-20250801-101500 already in progress"}, "deploy-20250801-101500"),
    ({"detail": "Deployment abc. is already in progress"}, "abc"),
    ({"deployment_id": "d-7", "detail": "busy"}, "d-7"),
    ({"detail": {"current_deployment": "d-8"}}, "d-8"),
    ("Deployment d-9 already in progress", "d-9"),
    ({"detail": "Deployment already in progress"}, None),
    (None, None),
])
def test_running_deployment_from_409(body, expected):
    assert m.running_deployment_id(body) == expected


def test_error_detail_of_a_validation_error():
    body = {"detail": [{"loc": ["body", "colour"], "msg": "Extra inputs are not permitted"}]}
    assert m.error_detail(body) == "colour: Extra inputs are not permitted"


def test_retry_is_for_connect_errors_only():
    retry = m.connect_retry()
    assert retry.connect == m.CONNECT_RETRIES
    assert retry.read == 0 and retry.status == 0 and retry.other == 0 and retry.redirect == 0


# ---------------------------------------------------------------- waiting (injected clock)

def st(status, **kw):
    return m.parse_status(dict(SEED_STATUS, status=status, **kw))


def test_wait_polls_until_final_and_tolerates_a_failed_poll():
    answers = [m.ManagerError("HTTP 502"), st("in_progress"), st("completed", agents_updated=10)]
    clock = Clock()

    def fetch(deployment_id):
        assert deployment_id == "deploy-20250801-123456"
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    status, polls = m.wait_for_deployment(fetch, "deploy-20250801-123456", 100, 10, first=st("in_progress"),
                                          clock=clock, sleep=clock.sleep)
    assert status["status"] == "completed" and polls == 3 and clock.sleeps == [10, 10, 10]


def test_wait_times_out_with_the_last_status():
    clock = Clock()
    with pytest.raises(m.ManagerError) as err:
        m.wait_for_deployment(lambda d: st("in_progress", canary_phase="early_adopters"), "d", 25, 10,
                              clock=clock, sleep=clock.sleep)
    assert "did not finish within 25 s" in err.value.msg and "phase early_adopters" in err.value.msg
    assert err.value.result["timed_out"] and err.value.result["deployment"]["status"] == "in_progress"
    assert clock.now == 25


def test_wait_stops_on_a_refused_token():
    def fetch(deployment_id):
        raise m.ManagerAuthError("refused")

    with pytest.raises(m.ManagerAuthError):
        m.wait_for_deployment(fetch, "d", 100, 1, first=st("in_progress"), clock=Clock(), sleep=lambda s: None)


def test_wait_fails_when_the_deployment_vanishes():
    with pytest.raises(m.ManagerError, match="knows no deployment d"):
        m.wait_for_deployment(lambda d: None, "d", 100, 1, clock=Clock(), sleep=lambda s: None)


# ---------------------------------------------------------------- the client against the stand-in

@pytest.fixture
def sim():
    with ManagerSim(tokens=(TOKEN,), phase_seconds=0.2) as server:
        yield server


def test_check_mode_sends_nothing(sim):
    result = mm.run_notify(params(sim.url, agent_image="a:2"), check_mode=True)
    assert result["changed"] and result["deployment"] is None
    assert result["request"] == {"method": "POST", "url": sim.url + m.NOTIFY_PATH,
                                 "body": {"agent_image": "a:2", "strategy": "canary"}}
    assert sim.requests == []


def test_notify_and_wait(sim):
    result = mm.run_notify(params(sim.url, agent_image="a:2", update_message="m", metadata={"version": "2.0.0"}, wait=True))
    assert result["succeeded"] and result["finished"] and result["status"] == "completed"
    assert result["deployment"]["counts"] == {"agents_total": 7, "agents_updated": 5, "agents_deferred": 1,
                                              "agents_rejected": 1}
    posts = sim.posts()
    assert len(posts) == 1 and posts[0][3] == {"agent_image": "a:2", "strategy": "canary", "message": "m",
                                               "metadata": {"version": "2.0.0"}}
    gets = [r for r in sim.requests if r[0] == "GET"]
    assert gets and all(r[2] == {"deployment_id": [result["deployment_id"]]} for r in gets)


def test_conflict_names_the_running_deployment_and_is_not_retried(sim):
    running = sim.start_deployment({"agent_image": "a:1"})
    sim.phase_seconds = 60
    with pytest.raises(m.ManagerError) as err:
        mm.run_notify(params(sim.url, agent_image="a:2"))
    assert err.value.result["running_deployment_id"] == running and running in err.value.msg
    assert err.value.result["http_status"] == 409
    assert len(sim.posts()) == 1


def test_wrong_token_is_masked_even_when_echoed():
    secret = "wrong-token-very-secret-42"
    with ManagerSim(tokens=(TOKEN,), echo_auth=True) as server:
        with pytest.raises(m.ManagerAuthError) as err:
            mm.run_status(params(server.url, token=secret))
    text = err.value.msg + repr(err.value.result) + str(err.value)
    assert "HTTP 401" in text and "Invalid deployment token" in text
    assert secret not in text and "********" in text


def test_echoed_token_in_a_status_message_is_masked():
    with ManagerSim(tokens=(TOKEN,), echo_auth=True) as server:
        result = mm.run_notify(params(server.url, agent_image="a:2"))
    assert TOKEN not in repr(result) and "********" in result["deployment"]["message"]


def test_status_of_unknown_and_of_no_current_deployment(sim):
    result = mm.run_status(params(sim.url))
    assert result["found"] is False and result["deployment"] is None
    with pytest.raises(m.ManagerError, match="knows no deployment nope"):
        mm.run_status(params(sim.url, deployment_id="nope"))


def test_a_slow_notify_is_not_sent_twice():
    with ManagerSim(tokens=(TOKEN,), notify_delay=1.0) as server:
        with pytest.raises(m.ManagerError) as err:
            mm.run_notify(params(server.url, agent_image="a:2", read_timeout=0.2))
        assert "may have been received" in err.value.msg and err.value.result["maybe_sent"]
        assert len(server.posts()) == 1


def test_refused_connection_is_a_clear_error():
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    with pytest.raises(m.ManagerError, match="could not (connect to|reach) the manager"):
        mm.run_status(params("http://127.0.0.1:%d" % port, connect_timeout=0.5))


def test_plain_http_to_a_remote_host_warns():
    assert mm._warnings(params("http://agents.example.org"))
    assert not mm._warnings(params("http://127.0.0.1:8888"))
    assert not mm._warnings(params("https://agents.example.org"))


# ---------------------------------------------------------------- a deployment waited for that did not complete

# the keys every outcome of a module returns (RETURN: "returned: always"), a failure as well as a success
NOTIFY_KEYS = {"deployment", "deployment_id", "status", "finished", "succeeded", "waited", "polls", "elapsed", "summary",
               "changed", "request"}
STATUS_KEYS = NOTIFY_KEYS - {"request"} | {"found"}


class FakeClient:
    """A manager that accepts the notify with ``first`` and then answers the status requests with ``answers``."""

    def __init__(self, first, answers):
        self.first, self.answers, self.asked = first, list(answers), []

    def __call__(self, params):
        return self

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None

    def notify(self, body):
        return self.first

    def status(self, deployment_id=None):
        self.asked.append(deployment_id)
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


@pytest.mark.parametrize("final", m.FAILED)
def test_notify_wait_fails_the_task_when_the_deployment_did_not_complete(final):
    clock = Clock()
    client = FakeClient(st("in_progress"), [st("in_progress"), st(final, canary_phase="early_adopters")])
    with pytest.raises(m.DeploymentFailed) as err:
        mm.run_notify(params(agent_image="a:2", wait=True), client_factory=client, clock=clock, sleep=clock.sleep)
    result = err.value.result
    assert "the CIRISManager deployment ended %s, not completed: deploy-20250801-123456: %s" % (final, final) in err.value.msg
    assert NOTIFY_KEYS <= set(result)
    assert result["status"] == final and result["deployment"]["canary_phase"] == "early_adopters"
    assert result["finished"] and not result["succeeded"] and result["waited"] and result["changed"]
    assert result["polls"] == 2 and result["request"]["body"] == {"agent_image": "a:2", "strategy": "canary"}


@pytest.mark.parametrize("final", m.FAILED)
def test_status_wait_fails_the_task_when_the_deployment_did_not_complete(final):
    clock = Clock()
    client = FakeClient(None, [st("in_progress"), st(final)])
    with pytest.raises(m.DeploymentFailed) as err:
        mm.run_status(params(deployment_id="deploy-20250801-123456", wait=True), client_factory=client, clock=clock,
                      sleep=clock.sleep)
    result = err.value.result
    assert STATUS_KEYS <= set(result)
    assert result["status"] == final and result["finished"] and not result["succeeded"] and result["found"]
    assert result["polls"] == 2 and not result["changed"]


def test_a_deployment_that_failed_before_the_wait_fails_it_at_once():
    """The notify's answer is final already (the manager refused the images): nothing to poll, still a failure."""
    client = FakeClient(st("rejected"), [st("rejected")])
    with pytest.raises(m.DeploymentFailed) as err:
        mm.run_notify(params(agent_image="a:2", wait=True), client_factory=client, clock=Clock(), sleep=None)
    assert err.value.result["polls"] == 0 and err.value.result["status"] == "rejected" and client.asked == []


@pytest.mark.parametrize("status", ("in_progress", "completed") + m.FAILED)
def test_without_wait_the_status_is_reported_not_judged(status):
    """Without wait (or in check mode, which skips the wait) the task reports the status it read and stays ok."""
    client = FakeClient(st(status), [st(status)])
    notified = mm.run_notify(params(agent_image="a:2"), client_factory=client, clock=Clock(), sleep=None)
    read = mm.run_status(params(deployment_id="d"), client_factory=client, clock=Clock(), sleep=None)
    checked = mm.run_status(params(deployment_id="d", wait=True), check_mode=True, client_factory=client,
                            clock=Clock(), sleep=None)
    for result in (notified, read, checked):
        assert result["status"] == status and not result["waited"]
    assert NOTIFY_KEYS <= set(notified) and STATUS_KEYS <= set(read)


def test_a_timeout_returns_the_keys_of_a_success():
    clock = Clock()
    client = FakeClient(st("in_progress"), [st("in_progress")])
    with pytest.raises(m.ManagerError) as err:
        mm.run_status(params(deployment_id="d", wait=True, wait_timeout=25, poll_interval=10), client_factory=client,
                      clock=clock, sleep=clock.sleep)
    result = err.value.result
    assert not isinstance(err.value, m.DeploymentFailed)
    assert STATUS_KEYS <= set(result) and result["timed_out"] and result["polls"] == 4
    assert result["status"] == "in_progress" and not result["finished"] and result["waited"] and result["elapsed"] == 25


def test_a_failure_before_any_status_returns_the_keys_of_a_success(sim):
    sim.phase_seconds = 60
    sim.start_deployment({"agent_image": "a:1"})
    with pytest.raises(m.ManagerError) as err:
        mm.run_notify(params(sim.url, agent_image="a:2", wait=True))
    result = err.value.result
    assert NOTIFY_KEYS <= set(result) and result["http_status"] == 409
    assert result["deployment"] is None and result["status"] is None and not result["changed"]
    with pytest.raises(m.ManagerError) as err:
        mm.run_status(params(sim.url, deployment_id="nope"))
    assert STATUS_KEYS <= set(err.value.result) and err.value.result["found"] is False


@pytest.mark.parametrize("end, final", [("cancel", "cancelled"), ("reject", "rejected")])
def test_wait_stops_on_a_cancelled_or_rejected_deployment_and_fails(sim, end, final):
    sim.phase_seconds = 120
    deployment_id = sim.start_deployment({"agent_image": "a:2"})
    getattr(sim, end)(deployment_id)
    with pytest.raises(m.DeploymentFailed) as err:
        mm.run_status(params(sim.url, deployment_id=deployment_id, wait=True))
    result = err.value.result
    assert result["finished"] and not result["succeeded"] and result["status"] == final
    assert result["deployment"]["message"] == "Deployment %s by an admin" % final


def test_the_modules_fail_a_failed_deployment_with_the_keys_of_a_success(capsys):
    agents = [{"agent_id": "datum", "group": "explorers", "outcome": "fail"},
              {"agent_id": "sage", "group": "general", "outcome": "accept"}]
    with ManagerSim(tokens=(TOKEN,), agents=agents, phase_seconds=0.1) as server:
        base = {"manager_url": server.url, "token": TOKEN, "wait": True, "poll_interval": 0.05, "wait_timeout": 30}
        notified = run_module(manager_notify, dict(base, agent_image="a:2"), capsys)
        followed = run_module(manager_status, dict(base, deployment_id=notified["deployment_id"]), capsys)
        done = run_module(manager_status, dict(base, deployment_id=notified["deployment_id"], wait=False), capsys)
    for result, keys in ((notified, NOTIFY_KEYS), (followed, STATUS_KEYS)):
        assert result["failed"] is True, result
        assert keys <= set(result) and result["status"] == "failed" and result["finished"] and not result["succeeded"]
        assert result["deployment"]["canary_phase"] == "explorers"
        assert result["msg"].startswith("the CIRISManager deployment ended failed, not completed: deploy-")
        assert "Explorer phase failed - no agents reached stable WORK state" in result["msg"]
        assert TOKEN not in json.dumps(result)
    assert notified["changed"] is True and followed["changed"] is False
    assert not done.get("failed") and done["status"] == "failed" and not done["waited"]


def test_a_wrong_base_url_says_so(sim):
    with pytest.raises(m.ManagerError, match="HTTP 404 .*is manager_url the manager's base URL"):
        mm.run_notify(params(sim.url + "/elsewhere", agent_image="a:2"))
    with pytest.raises(m.ManagerError, match="HTTP 404 .*is manager_url the manager's base URL"):
        mm.run_status(params(sim.url + "/elsewhere"))


@pytest.mark.parametrize("key", ["connect_timeout", "read_timeout", "wait_timeout", "poll_interval"])
def test_an_explicit_null_timeout_is_one_error_naming_the_option(key):
    params = {"manager_url": "https://manager.example", "token": "t0k3n", "connect_timeout": 5.0, "read_timeout": 30.0,
              "wait_timeout": 600.0, "poll_interval": 5.0}
    params[key] = None
    with pytest.raises(ValueError, match="%s must be a number of seconds, got null" % key):
        mm.validate_connection(params)
