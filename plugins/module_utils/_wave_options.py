# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The options of one ``rollout_wave`` call, typed: :class:`WaveOptions`, built once from the module's parameters.

The wave engine (``_wave``, ``_wave_stop``, ``_pipeline``, ``_bluegreen``) reads its options from a
:class:`WaveOptions` (:meth:`WaveOptions.from_params`), never from the parameters dict. An option left out
(or null) has its default of the argument spec (``_argspecs.WAVE_SPEC``, the one source of the defaults);
the functions of other modules that take the parameters dict (the agent client, the health gate, the
analysis, the range checks) get :meth:`WaveOptions.as_params`, the same options as a dict.

Also the types the engine's modules share (:data:`Agent`, :data:`Record`, :class:`Stepped`, the callbacks),
for type checking only.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from dataclasses import fields
from dataclasses import replace
from typing import TYPE_CHECKING
from typing import Any
from typing import Dict
from typing import List
from typing import Mapping
from typing import Optional
from typing import Tuple

from ansible_collections.agentfleet.rollout.plugins.module_utils._argspecs import WAVE_SPEC
from ansible_collections.agentfleet.rollout.plugins.module_utils._common import AGENT_TOKENS
from ansible_collections.agentfleet.rollout.plugins.module_utils._policy import remaining

if TYPE_CHECKING:
    from typing import Callable
    from typing import Protocol
    from typing import Sequence

    from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import AgentClient
    from ansible_collections.agentfleet.rollout.plugins.module_utils._state import StateStore

    class Stepped(Protocol):
        """Where a wave is: a :class:`._run.Run`, or ``_wave``'s stand-in when no run watches it."""

        step: Optional[str]

    # an agent (a wave member) and the other JSON-like records the wave passes around (a wave, a gate, a
    # deployment's row, the call's result)
    Agent = Dict[str, Any]
    Record = Dict[str, Any]
    Progress = Optional[Callable[[str], None]]
    # _wave's finish (record and judge the wave): store, options, deployment, wave, members, the agents handed
    # over, the gate, the reverted hosts, the secrets, the call's result so far
    Finish = Callable[[StateStore, "WaveOptions", Record, Record, List[Agent], List[Agent], Record, List[str],
                       Sequence[str], Record], Record]
    # _wave's verdict before anything is recorded: would the wave pass with this gate?
    Passes = Callable[[StateStore, "WaveOptions", Record, Record, Record], bool]
    # _wave's ask-and-observe (the members that stopped)
    AskAndObserve = Callable[[StateStore, AgentClient, "WaveOptions", Record, Record, List[Agent], Sequence[str],
                              Record], List[Agent]]

# WAVE_SPEC options that the wave engine does not read (left out of WaveOptions and of as_params)
NOT_READ = ("reverted_hosts",)


def _option(params: Mapping[str, Any], name: str) -> Any:
    """``params[name]`` (KeyError for a required option left out); left out or null: its WAVE_SPEC default (a
    copy: no call shares the spec's lists)."""
    if WAVE_SPEC.get(name, {}).get("required"):
        return params[name]
    value = params.get(name)
    if value is None and name in WAVE_SPEC:
        value = copy.deepcopy(WAVE_SPEC[name].get("default"))
    return value


@dataclass(frozen=True)
class ConnectionOptions:
    """How the agents are reached (``_common.CONNECTION_SPEC``) and the per-agent tokens."""

    token: Optional[str]
    connect_timeout: float
    read_timeout: float
    validate_certs: bool
    ca_path: Optional[str]
    client_cert: Optional[str]
    client_key: Optional[str]
    max_workers: int
    allow_insecure_http: bool
    # not a task option: ``{agent_url: token}`` put into the parameters by the action plugin (None: none given)
    agent_tokens: Optional[Dict[str, str]]

    def as_params(self) -> Dict[str, Any]:
        params = dict((f.name, getattr(self, f.name)) for f in fields(self) if f.name != AGENT_TOKENS)
        if self.agent_tokens is not None:
            params[AGENT_TOKENS] = self.agent_tokens
        return params


@dataclass(frozen=True)
class GateOptions:
    """The health gate (``_health.GATE_OPTIONS``), the share of the wave that must pass and whether its agents
    must run the target version."""

    expected_states: List[str]
    min_healthy_time: float
    healthy_deadline: float
    poll_interval: float
    grace: Optional[float]
    health_check: str
    fail_fast_after: float
    blocking_warnings: List[str]
    success_threshold: float
    require_target_version: bool

    def as_params(self) -> Dict[str, Any]:
        return dict((f.name, getattr(self, f.name)) for f in fields(self))


@dataclass(frozen=True)
class WaveOptions:
    """Every option of a ``rollout_wave`` call that the engine reads (see the module's documentation)."""

    state_path: str
    deployment_id: str
    wave: Dict[str, Any]
    wave_count: int
    last: bool
    next_wave: Optional[Dict[str, Any]]
    phase: str
    strategy: str
    release_notes: Optional[str]
    force: bool
    reask_until: Optional[float]
    stop_timeout: float
    audit_path: Optional[str]
    report_path: Optional[str]
    driver: str
    auto_revert: bool
    # what the role passes back between the phases
    round: Dict[str, Any]
    update_hosts: List[str]
    update_failed: Dict[str, str]
    driver_results: Dict[str, Any]
    gate: Optional[Dict[str, Any]]
    candidate_urls: Dict[str, Optional[str]]
    progress_deadline: float
    analysis: List[Dict[str, Any]]
    telemetry_check: bool
    connection: ConnectionOptions
    health: GateOptions

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> WaveOptions:
        """The options of the module's parameters (validated against WAVE_SPEC, or a dict with some left out)."""
        values = dict((f.name, _option(params, f.name)) for f in fields(cls) if f.name not in ("connection", "health"))
        return cls(connection=ConnectionOptions(**dict((f.name, _option(params, f.name)) for f in fields(ConnectionOptions))),
                   health=GateOptions(**dict((f.name, _option(params, f.name)) for f in fields(GateOptions))),
                   **values)

    def as_params(self) -> Dict[str, Any]:
        """The options as the parameters dict that the functions outside the engine take (every option of
        WAVE_SPEC but those of NOT_READ, and ``agent_tokens`` when given)."""
        params = dict((f.name, getattr(self, f.name)) for f in fields(self) if f.name not in ("connection", "health"))
        params.update(self.connection.as_params())
        params.update(self.health.as_params())
        return params

    def with_gate(self, healthy_deadline: float, grace: Optional[float]) -> WaveOptions:
        """These options with the health gate's deadline and grace replaced (cut to the progress deadline)."""
        return replace(self, health=replace(self.health, healthy_deadline=healthy_deadline, grace=grace))

    def gate_cut(self, deadline_at: Optional[float], now: float) -> Tuple[WaveOptions, bool]:
        """The gate's options with its deadline (and grace) cut to the progress deadline ``deadline_at``;
        ``(options, cut)``."""
        deadline, cut = remaining(deadline_at, now, self.health.healthy_deadline)
        if not cut:
            return self, False
        grace = self.health.grace
        return self.with_gate(healthy_deadline=deadline, grace=deadline if grace is None else min(grace, deadline)), True

    def stall_note(self, what: str) -> str:
        """Why a wave made no progress within ``rollout_progress_deadline``: ``what`` was still pending."""
        return "no progress within rollout_progress_deadline (%gs): %s" % (self.progress_deadline, what)
