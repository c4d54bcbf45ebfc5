"""A small deterministic pairwise (all-pairs) case generator for the scenario matrix (tests/integration/test_matrix.py).

``pairwise(params, valid)`` returns a list of cases (dicts, one value per parameter) such that every pair of values
of two parameters that ``valid`` accepts appears in at least one case, and every case is accepted by ``valid``.
``valid`` gets partial cases (only some keys) and must reject a partial case only if no completion can be valid.
Greedy (in the spirit of AETG): each case starts from the first uncovered pair, then every other parameter takes
the valid value that covers most uncovered pairs with the values already chosen. Same input, same cases.
"""

from __future__ import annotations

from itertools import combinations


def all_pairs(params: dict, valid=lambda case: True) -> set:
    names = list(params)
    pairs = set()
    for i, j in combinations(range(len(names)), 2):
        for a in params[names[i]]:
            for b in params[names[j]]:
                if valid({names[i]: a, names[j]: b}):
                    pairs.add(((names[i], a), (names[j], b)))
    return pairs


def covered(case: dict, names: list) -> set:
    return {((names[i], case[names[i]]), (names[j], case[names[j]])) for i, j in combinations(range(len(names)), 2)}


def pairwise(params: dict, valid=lambda case: True) -> list:
    names = list(params)
    order = {n: k for k, n in enumerate(names)}
    uncovered = all_pairs(params, valid)
    cases = []
    while uncovered:
        seeds = sorted(uncovered, key=lambda p: (order[p[0][0]], params[p[0][0]].index(p[0][1]),
                                                 order[p[1][0]], params[p[1][0]].index(p[1][1])))
        case = None
        for (n1, v1), (n2, v2) in seeds:
            case = {n1: v1, n2: v2}
            for name in names:
                if name in case:
                    continue
                best, gain = None, -1
                for value in params[name]:
                    trial = dict(case, **{name: value})
                    if not valid(trial):
                        continue
                    g = sum(1 for other, ov in case.items()
                            if tuple(sorted(((name, value), (other, ov)), key=lambda p: order[p[0]])) in uncovered)
                    if g > gain:
                        best, gain = value, g
                if best is None:
                    case = None
                    break
                case[name] = best
            if case is not None:
                break
        if case is None:
            raise ValueError("no valid case covers the pairs left: %s" % sorted(uncovered)[:5])
        case = {n: case[n] for n in names}
        uncovered -= covered(case, names)
        cases.append(case)
    return cases
