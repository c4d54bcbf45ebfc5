# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit: an unknown rollout_*, shutdown_* or wakeup_* variable is one error naming it and the closest known name
(issue 23); the known names are read from the collection's roles and playbooks."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from ansible_collections.agentfleet.rollout.plugins.action.rollout_validate import known_variables
from ansible_collections.agentfleet.rollout.plugins.module_utils._validate_names import check_unknown
from ansible_collections.agentfleet.rollout.plugins.module_utils._validate_names import closest_name
from ansible_collections.agentfleet.rollout.plugins.module_utils._validate_names import extra_names
from ansible_collections.agentfleet.rollout.plugins.module_utils._validate_names import unknown_variables
from ansible_collections.agentfleet.rollout.plugins.module_utils._validate_names import variable_names

REPO = Path(__file__).resolve().parents[5]
HINT = "list your own variables with this prefix in rollout_extra_vars"


@pytest.fixture(scope="module")
def known():
    return known_variables()


def test_every_role_option_and_default_is_known(known):
    declared = set()
    for path in REPO.glob("roles/*/meta/argument_specs.yml"):
        for entry in yaml.safe_load(path.read_text())["argument_specs"].values():
            declared.update(entry.get("options") or {})
    for path in REPO.glob("roles/*/defaults/main.yml"):
        declared.update(yaml.safe_load(path.read_text()) or {})
    declared = set(n for n in declared if n.startswith(("rollout_", "shutdown_", "wakeup_")))
    assert len(declared) > 40
    assert declared <= known, sorted(declared - known)


def test_the_variables_the_playbooks_set_themselves_are_known(known):
    # set by the playbooks for the tasks driver's task files, the strategy, the deployment's identity
    for name in ("rollout_strategy", "rollout_update_version", "rollout_update_purpose", "rollout_previous_version",
                 "rollout_agent_host", "rollout_deployment_id", "rollout_candidate_url", "rollout_extra_vars"):
        assert name in known, name


def test_every_documented_variable_is_known(known):
    documented = set()
    for doc in ("variables.md", "drivers.md", "shutdown.md", "strategies.md"):
        documented.update(re.findall(r"`((?:rollout|shutdown|wakeup)_[a-z0-9_]+)`", (REPO / "docs" / doc).read_text()))
    assert len(documented) > 40
    assert documented <= known, sorted(documented - known)


def test_no_private_name_module_name_or_anchor_is_known(known):
    assert not [n for n in known if not re.match(r"^(rollout|shutdown|wakeup)_[a-z0-9_]+$", n)]
    # set_fact names with a leading underscore, the modules (agentfleet.rollout.rollout_wave), YAML anchors
    assert "rollout_plan" not in known and "rollout_wave" not in known and "shutdown_wave" not in known


def test_names_in_comments_do_not_count():
    text = "# rollout_in_a_comment: 1\nrollout_real: 2  # rollout_trailing\n_rollout_private: 3\n" \
           "x: \"{{ hostvars[h].rollout_attr }}\"\ny: agentfleet.rollout.rollout_module\nz: &rollout_anchor 1\n"
    assert variable_names(text) == {"rollout_real", "rollout_trailing"}


def test_a_typo_is_one_error_naming_it_and_the_closest_name(known):
    errors = check_unknown(["rollout_sucess_threshold", "rollout_token", "ansible_user"], known)
    assert errors == ["rollout_sucess_threshold: unknown variable (did you mean rollout_success_threshold?); " + HINT]


@pytest.mark.parametrize("name, closest", [
    ("rollout_target_verison", "rollout_target_version"),
    ("rollout_maxparallel", "rollout_max_parallel"),
    ("shutdown_reasons", "shutdown_reason"),
    ("wakeup_timeout", "wakeup_wave_timeout"),
    ("shutdown_validate_certs", "rollout_validate_certs"),
    # nothing alike: the prefix alone does not make rollout_blast_radius "rollout_canary"
    ("rollout_blast_radius", None),
])
def test_the_closest_name(known, name, closest):
    assert closest_name(name, known) == closest


def test_a_name_without_a_close_one_points_to_the_docs(known):
    (error,) = check_unknown(["rollout_blast_radius"], known)
    assert error.startswith("rollout_blast_radius: unknown variable (no variable of agentfleet.rollout is like it")
    assert "docs/variables.md" in error and error.endswith(HINT)


def test_the_collections_own_variables_pass(known):
    assert check_unknown(sorted(known), known) == []
    assert check_unknown(["ansible_host", "agent_url", "my_rollout_thing", "fleetsim_control_url"], known) == []


def test_your_own_variables_listed_in_rollout_extra_vars_pass(known):
    names = ["rollout_ticket", "rollout_my_a", "rollout_my_b", "shutdown_pager"]
    assert check_unknown(names, known, ["rollout_ticket", "rollout_my_*", "shutdown_pager"]) == []
    errors = check_unknown(names, known, ["rollout_ticket", "shutdown_pager"])
    assert [e.split(":")[0] for e in errors] == ["rollout_my_a", "rollout_my_b"]
    assert unknown_variables(names, known, ["rollout_ticket", "shutdown_pager"]) == ["rollout_my_a", "rollout_my_b"]


def test_several_unknown_names_are_one_message_with_one_hint(known):
    errors = check_unknown(["rollout_tokn", "wakeup_wave_timout"], known)
    assert errors == ["rollout_tokn: unknown variable (did you mean rollout_token?)",
                      "wakeup_wave_timout: unknown variable (did you mean wakeup_wave_timeout?); "
                      "list your own variables with these prefixes in rollout_extra_vars"]


def test_a_hosts_own_variable_names_the_hosts(known):
    errors = check_unknown(["rollout_token"], known,
                           host_names={"agent-2": ["rollout_tokn"], "agent-1": ["rollout_tokn", "rollout_token"],
                                       "agent-3": ["rollout_token"]})
    assert errors == ["rollout_tokn: unknown variable of host agent-1, agent-2 (did you mean rollout_token?); " + HINT]
    # a name both the play and a host have is reported once, as the play's
    errors = check_unknown(["rollout_tokn"], known, host_names={"agent-1": ["rollout_tokn"]})
    assert errors == ["rollout_tokn: unknown variable (did you mean rollout_token?); " + HINT]


@pytest.mark.parametrize("value, names, error", [
    (None, [], None),
    ([], [], None),
    (["rollout_a", "rollout_b_*"], ["rollout_a", "rollout_b_*"], None),
    ("rollout_a, rollout_b", ["rollout_a", "rollout_b"], None),
    ({"rollout_a": 1}, [], "rollout_extra_vars: must be a list of variable names, got {'rollout_a': 1}"),
    ([1], [], "rollout_extra_vars: must be a list of variable names, got [1]"),
])
def test_rollout_extra_vars(value, names, error):
    assert extra_names(value) == (names, error)
