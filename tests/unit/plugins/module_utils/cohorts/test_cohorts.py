from __future__ import annotations

import pytest

from ansible_collections.agentfleet.rollout.plugins.module_utils._cohorts import (
    CohortError, cohort_sizes, resolve_cohorts, split_waves,
)


def names(n, prefix="agent-"):
    return ["%s%03d" % (prefix, i) for i in range(n)]


@pytest.mark.parametrize("total,expected", [
    (1, [1, 0, 0, 0]),
    (2, [1, 0, 1, 0]),
    (3, [1, 0, 1, 1]),
    (5, [1, 1, 2, 1]),
    (10, [1, 3, 4, 2]),
    (11, [1, 3, 5, 2]),
    (20, [2, 6, 8, 4]),
    (1000, [100, 300, 400, 200]),
])
def test_ciris_sizes(total, expected):
    sizes = cohort_sizes(resolve_cohorts("ciris"), total)
    assert sum(sizes) == total
    assert sizes == expected


@pytest.mark.parametrize("total,expected", [
    (1, [1, 0, 0]),
    (2, [1, 1, 0]),
    (3, [1, 1, 1]),
    (9, [1, 2, 6]),   # max(1, int(9 * 0.3)) = 2, as the FSD's code
    (10, [1, 3, 6]),
    (20, [1, 6, 13]),
])
def test_occurrences_preset_follows_the_fsd(total, expected):
    assert cohort_sizes(resolve_cohorts("occurrences"), total) == expected


def test_fsd_sorted_rule_puts_default_first():
    waves = split_waves(["occ-2", "occ-1", "default", "occ-3"], "occurrences")
    assert [w["name"] for w in waves] == ["explorer", "early_adopter", "general"]
    assert [m["name"] for m in waves[0]["members"]] == ["default"]
    assert [m["name"] for m in waves[1]["members"]] == ["occ-1"]
    assert [m["name"] for m in waves[2]["members"]] == ["occ-2", "occ-3"]


@pytest.mark.parametrize("n", [1, 2, 3, 7, 50, 333])
@pytest.mark.parametrize("method", ["sorted", "stable"])
def test_every_member_once_and_a_nonempty_first_wave(n, method):
    waves = split_waves(names(n), "ciris", method=method, salt="s")
    members = [m["name"] for w in waves for m in w["members"]]
    assert sorted(members) == names(n)
    assert waves[0]["index"] == 1 and waves[0]["size"] >= 1
    assert all(w["size"] > 0 for w in waves)
    assert [w["index"] for w in waves] == list(range(1, len(waves) + 1))


def assignment(members, salt="x"):
    return {m["name"]: w["name"] for w in split_waves(members, "ciris", method="stable", salt=salt) for m in w["members"]}


def test_stable_method_moves_only_the_member_that_joins_or_leaves():
    base = names(200)
    before = assignment(base)
    joined = assignment(base + ["newcomer"])
    assert {k: v for k, v in joined.items() if k != "newcomer"} == before
    left = assignment([n for n in base if n != "agent-042"])
    assert left == {k: v for k, v in before.items() if k != "agent-042"}


def test_stable_method_roughly_follows_the_percentages_and_the_salt_matters():
    a = assignment(names(2000))
    counts = {c: list(a.values()).count(c) for c in set(a.values())}
    assert 120 <= counts["explorers"] <= 280
    assert 700 <= counts["pragmatists"] <= 900
    assert assignment(names(200), salt="other") != assignment(names(200))


def test_pins_win():
    members = [{"name": n} for n in names(10)]
    members[9]["canary_group"] = "explorers"
    waves = split_waves(members, "ciris")
    assert "agent-009" in [m["name"] for m in waves[0]["members"]]
    assert sum(w["size"] for w in waves) == 10


@pytest.mark.parametrize("cohorts,message", [
    ("nope", "unknown cohort preset"),
    ([{"name": "a", "percent": 50}, {"name": "b", "percent": 40}], "must sum to 100"),
    ([{"name": "a", "percent": 70}, {"name": "b", "percent": 40}, {"name": "c", "rest": True}], "more than 100"),
    ([{"name": "a", "rest": True}, {"name": "b", "rest": True}], "at most one cohort"),
    ([{"name": "a", "percent": 50, "count": 2}], "exactly one of"),
    ([{"name": "a", "count": 0}, {"name": "b", "rest": True}], "whole number"),
    ([{"name": "a", "percent": 100}, {"name": "a", "rest": True}], "duplicate cohort"),
    ([], "non-empty list"),
])
def test_bad_cohorts_are_clear_errors(cohorts, message):
    with pytest.raises(CohortError, match=message):
        split_waves(names(4), cohorts)


def test_duplicate_members_and_unknown_pin_are_errors():
    with pytest.raises(CohortError, match="duplicate members: a"):
        split_waves(["a", "b", "a"])
    with pytest.raises(CohortError, match="unknown cohort"):
        split_waves([{"name": "a", "canary_group": "vips"}])


def test_counts_then_percent_then_rest():
    cohorts = [{"name": "canary", "count": 2}, {"name": "half", "percent": 50}, {"name": "rest", "rest": True}]
    assert cohort_sizes(resolve_cohorts(cohorts), 10) == [2, 5, 3]
    assert [w["size"] for w in split_waves(names(1), cohorts)] == [1]
