"""fleetsim's blue-green candidates: started beside the primary, promoted or discarded (real HTTP)."""

from __future__ import annotations

import urllib.error

import pytest

from fleetsim.testing import FleetSim, FleetSimError, http
from helpers import wait_for

CONFIG = {"agents": [{"count": 3, "name_prefix": "a-", "overrides": {"a-002": {"unhealthy_after_update": True}}}]}


def health(url):
    try:
        return http("GET", url + "/v1/system/health", timeout=3)
    except (urllib.error.URLError, ConnectionError, OSError) as exc:
        return None, str(exc)


def test_a_candidate_serves_beside_its_primary_until_promoted(tmp_path):
    with FleetSim(config=CONFIG, workdir=tmp_path) as sim:
        out = sim.candidates("start", ["a-000", "a-002"], version="2.0.0")["candidates"]
        cand = out["a-000"]["agent_url"]
        assert cand != sim.url("a-000")
        status, body = health(cand)
        assert status == 200 and body["data"]["version"] == "2.0.0" and body["data"]["status"] == "healthy"
        # the candidate behaves as an updated agent; the primary still serves the old version
        assert health(out["a-002"]["agent_url"])[1]["data"]["status"] == "degraded"
        assert health(sim.url("a-000"))[1]["data"]["version"] == "1.0.0"
        assert sorted(c["name"] for c in sim.candidates()) == ["a-000", "a-002"]
        # the primary retires (accepts and stops), then the candidate is promoted to its address
        sim.shutdown("a-000", {"reason": "retire", "confirm": True, "deployment_id": "d-1"})
        assert wait_for(lambda: sim.phase("a-000") == "down", 10.0, "a-000 down")
        sim.candidates("promote", ["a-000"])
        assert health(sim.url("a-000"))[1]["data"]["version"] == "2.0.0"
        assert health(cand)[0] is None  # the candidate's own address is closed
        assert sim.occurrence("a-000")["version"] == "2.0.0"
        sim.candidates("discard", ["a-002"])
        assert sim.candidates() == []
        assert health(sim.url("a-002"))[1]["data"]["version"] == "1.0.0"
        assert sim.violations()["count"] == 0
        events = [e["event"] for e in sim.log(occurrence="a-000") if e["path"] is None]
        assert events.index("candidate_started") < events.index("drain_started") < events.index("candidate_promoted")
        assert [e["occurrence"] for e in sim.log(event="candidate_discarded")] == ["a-002"]


def test_promoting_over_a_running_primary_is_a_violation(tmp_path):
    with FleetSim(config=CONFIG, workdir=tmp_path) as sim:
        sim.candidates("start", ["a-001"], version="2.0.0")
        sim.candidates("promote", ["a-001"])
        v = sim.violations()
        assert v["count"] == 1 and v["violations"][0]["via"] == "promotion"


def test_candidate_errors(tmp_path):
    with FleetSim(config=CONFIG, workdir=tmp_path) as sim:
        with pytest.raises(FleetSimError, match="409"):
            sim.candidates("promote", ["a-000"])  # no candidate yet
        with pytest.raises(FleetSimError, match="404"):
            sim.candidates("start", ["nobody"], version="2.0.0")
    with FleetSim(config=CONFIG, workdir=tmp_path / "paths", layout="paths") as sim:
        with pytest.raises(FleetSimError, match="400"):
            sim.candidates("start", ["a-000"], version="2.0.0")
