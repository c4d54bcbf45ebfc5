"""The scenario matrix's pairwise generator (tests/pairwise.py): every valid pair covered, every case valid."""

from __future__ import annotations

from itertools import product

import pytest

from pairwise import all_pairs, covered, pairwise

PARAMS = {"a": [1, 2, 3], "b": ["x", "y"], "c": [True, False], "d": ["p", "q", "r", "s"]}


def no_3_with_s(case):
    return not (case.get("a") == 3 and case.get("d") == "s")


@pytest.mark.parametrize("valid", [lambda case: True, no_3_with_s])
def test_every_valid_pair_in_a_valid_case_and_fewer_cases_than_the_product(valid):
    cases = pairwise(PARAMS, valid)
    names = list(PARAMS)
    assert all(valid(c) and set(c) == set(names) for c in cases)
    got = set().union(*(covered(c, names) for c in cases))
    assert all_pairs(PARAMS, valid) <= got
    assert len(cases) < len(list(product(*PARAMS.values())))
    assert len(cases) >= 3 * 4 - (1 if valid is no_3_with_s else 0)  # a x d alone needs that many
    assert pairwise(PARAMS, valid) == cases  # deterministic


def test_an_excluded_pair_never_appears():
    cases = pairwise(PARAMS, no_3_with_s)
    assert not any(c["a"] == 3 and c["d"] == "s" for c in cases)


def test_impossible_constraints_are_an_error():
    with pytest.raises(ValueError):
        pairwise({"a": [1], "b": [1], "c": [1]}, lambda case: len(case) < 3)
