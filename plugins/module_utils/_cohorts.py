# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Cohorts and waves: split a fleet's members into ordered rollout waves.

Presets:

* ``ciris``: explorers 10 % / early_adopters 30 % / pragmatists 40 % /
  conservatives 20 % (CIRISManager's canary groups).
* ``occurrences``: explorer 1 / early_adopter 30 % (at least 1) / general the
  rest (the multi-occurrence FSD's rule).
* ``all``: one wave with everyone (immediate rollouts).

Methods:

* ``sorted``: the FSD's rule: members sorted by id (``default`` first), cut in
  cohort order.
* ``stable``: weighted rendezvous hashing of member id + salt: each member
  lands in the cohort with the highest weighted score, so a member joining
  or leaving changes no other member's cohort (except in the one corner
  where the first wave would be empty and a member is lifted into it).

Percentages are cut with the largest-remainder rule, so cohort sizes always
add up to the fleet; a cohort marked ``floor`` keeps ``floor(percent x n)``
instead (the FSD's ``max(1, int(n * 0.3))`` early adopters).

A member pinned with ``canary_group`` (a cohort name) goes to that cohort
whatever the method says.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any
from typing import Dict
from typing import Iterable
from typing import List
from typing import Optional
from typing import Sequence
from typing import Tuple
from typing import TypedDict
from typing import Union

# a member of the fleet (a dict with at least ``name``) and a planned wave (``index``, ``name``, ``size``, ``members``)
Member = Dict[str, Any]
Wave = Dict[str, Any]


class _CohortName(TypedDict):
    name: str


class Cohort(_CohortName, total=False):
    """A validated cohort definition (:func:`resolve_cohorts`): its name and exactly one of percent, count or rest."""

    percent: float
    count: int
    rest: bool
    min: int
    floor: bool


PRESETS: Dict[str, List[Cohort]] = {
    "ciris": [
        {"name": "explorers", "percent": 10},
        {"name": "early_adopters", "percent": 30},
        {"name": "pragmatists", "percent": 40},
        {"name": "conservatives", "percent": 20},
    ],
    "occurrences": [
        {"name": "explorer", "count": 1},
        {"name": "early_adopter", "percent": 30, "min": 1, "floor": True},
        {"name": "general", "rest": True},
    ],
    "all": [{"name": "all", "rest": True}],
}
METHODS = ("sorted", "stable")


class CohortError(ValueError):
    """Bad cohort definition or members."""


def normalize_members(members: Optional[Iterable[object]]) -> List[Member]:
    """Members as dicts with at least ``name``; strings become ``{"name": s}``.

    Duplicate names are an error.
    """
    out: List[Member] = []
    seen = set()
    dupes = []
    for given in members or []:
        if isinstance(given, str):
            member: Member = {"name": given}
        elif isinstance(given, dict):
            if not given.get("name"):
                raise CohortError("every member needs a name: %r" % (given,))
            member = dict(given)
            member["name"] = str(member["name"])
        else:
            raise CohortError("a member must be a name or a dict, got %r" % (given,))
        if member["name"] in seen:
            dupes.append(member["name"])
        seen.add(member["name"])
        out.append(member)
    if dupes:
        raise CohortError("duplicate members: %s" % ", ".join(sorted(set(dupes))))
    return out


def resolve_cohorts(cohorts: object) -> List[Cohort]:
    """Validate a preset name or a list of cohort dicts; return cohort dicts."""
    if cohorts is None or cohorts == "":
        cohorts = "ciris"
    if isinstance(cohorts, str):
        if cohorts not in PRESETS:
            raise CohortError("unknown cohort preset %r (known: %s)" % (cohorts, ", ".join(sorted(PRESETS))))
        return [c.copy() for c in PRESETS[cohorts]]
    if not isinstance(cohorts, list) or not cohorts:
        raise CohortError("cohorts must be a preset name or a non-empty list")
    out: List[Cohort] = []
    names = set()
    rest = 0
    for idx, cohort in enumerate(cohorts):
        if not isinstance(cohort, dict) or not cohort.get("name"):
            raise CohortError("cohort %d needs a name" % (idx + 1))
        name = str(cohort["name"])
        if name in names:
            raise CohortError("duplicate cohort name %r" % name)
        names.add(name)
        kinds = [k for k in ("percent", "count", "rest") if cohort.get(k) is not None and cohort.get(k) is not False]
        if len(kinds) != 1:
            raise CohortError("cohort %r needs exactly one of percent, count or rest" % name)
        unknown = set(cohort) - {"name", "percent", "count", "rest", "min", "floor"}
        if unknown:
            raise CohortError("cohort %r has unknown keys: %s" % (name, ", ".join(sorted(unknown))))
        item: Cohort = {"name": name}
        if "percent" in kinds:
            try:
                pct = float(cohort["percent"])
            except (TypeError, ValueError):
                raise CohortError("cohort %r: percent must be a number" % name)
            if pct <= 0 or pct > 100:
                raise CohortError("cohort %r: percent must be in (0, 100]" % name)
            item["percent"] = pct
        elif "count" in kinds:
            try:
                count = int(cohort["count"])
            except (TypeError, ValueError):
                raise CohortError("cohort %r: count must be an integer" % name)
            if count < 1 or str(cohort["count"]).strip() != str(count):
                raise CohortError("cohort %r: count must be a whole number >= 1" % name)
            item["count"] = count
        else:
            item["rest"] = True
            rest += 1
        if cohort.get("min") is not None:
            item["min"] = int(cohort["min"])
        if cohort.get("floor"):
            item["floor"] = True
        out.append(item)
    if rest > 1:
        raise CohortError("at most one cohort may take the rest")
    pct_total = sum(c.get("percent", 0) for c in out)
    if pct_total > 100 + 1e-9:
        raise CohortError("cohort percentages sum to %g, more than 100" % pct_total)
    if all("percent" in c for c in out) and abs(pct_total - 100) > 1e-9:
        raise CohortError("cohort percentages must sum to 100, they sum to %g" % pct_total)
    return out


def cohort_sizes(cohorts: Sequence[Cohort], total: int) -> List[int]:
    """How many members each cohort gets out of ``total`` (sums to total).

    Counts are served first, then percentages of the total with the
    largest-remainder rule, then ``rest`` (or, with no rest cohort, the last
    cohort) takes what is left. The first cohort of a non-empty fleet gets at
    least one member.
    """
    n = len(cohorts)
    sizes = [0] * n
    if total <= 0:
        return sizes
    left = total
    for i, c in enumerate(cohorts):
        if "count" in c:
            sizes[i] = min(c["count"], left)
            left -= sizes[i]
    pct_idx = [i for i, c in enumerate(cohorts) if "percent" in c]
    if pct_idx:
        exact = {i: total * cohorts[i]["percent"] / 100.0 for i in pct_idx}
        want = {i: int(math.floor(exact[i] + 1e-9)) for i in pct_idx}
        # "floor" cohorts keep floor(percent x total), as the FSD's int(total * 0.3);
        # the others share the rounding remainder (largest remainder first)
        rounded = [i for i in pct_idx if not cohorts[i].get("floor")]
        budget = min(left, sum(want[i] for i in pct_idx if cohorts[i].get("floor"))
                     + int(round(sum(exact[i] for i in rounded))))
        short = budget - sum(want.values())
        order = sorted(rounded, key=lambda i: (-(exact[i] - want[i]), i))
        for i in order:
            if short <= 0:
                break
            want[i] += 1
            short -= 1
        for i in pct_idx:
            want[i] = max(want[i], cohorts[i].get("min", 0))
        for i in pct_idx:
            sizes[i] = min(want[i], left)
            left -= sizes[i]
    rest_idx = [i for i, c in enumerate(cohorts) if c.get("rest")]
    target = rest_idx[0] if rest_idx else n - 1
    sizes[target] += left
    if sizes[0] == 0:
        donor = max(range(1, n), key=lambda i: (sizes[i], -i)) if n > 1 else None
        if donor is not None and sizes[donor] > 0:
            sizes[donor] -= 1
            sizes[0] += 1
    return sizes


def _sort_key(name: str) -> Tuple[int, str]:
    return (0 if name == "default" else 1, name)


def _score(salt: str, member: str, cohort: str, weight: float) -> float:
    digest = hashlib.sha256(("%s\x00%s\x00%s" % (salt, member, cohort)).encode("utf-8")).digest()
    h = (int.from_bytes(digest[:8], "big") + 1) / float(2 ** 64 + 2)
    return -weight / math.log(h)


def assign(members: List[Member], cohorts: Sequence[Cohort], method: str = "sorted", salt: str = "",
           id_key: str = "name") -> Dict[str, List[Member]]:
    """Assign each member to a cohort. Returns ``{cohort_name: [member, ...]}``.

    ``id_key`` names the member field used for ordering/hashing
    (``occurrence_id`` for occurrences). Pins (``canary_group``) win.
    """
    if method not in METHODS:
        raise CohortError("unknown method %r (known: %s)" % (method, ", ".join(METHODS)))
    names = [c["name"] for c in cohorts]
    groups: Dict[str, List[Member]] = {name: [] for name in names}
    free: List[Member] = []
    for m in members:
        pin = m.get("canary_group")
        if pin not in (None, ""):
            if pin not in groups:
                raise CohortError("member %s is pinned to unknown cohort %r (cohorts: %s)" % (m["name"], pin, ", ".join(names)))
            groups[pin].append(m)
        else:
            free.append(m)

    def ident(m: Member) -> str:
        return str(m.get(id_key) or m["name"])

    total = len(members)
    sizes = cohort_sizes(cohorts, total)
    if method == "sorted":
        ordered = sorted(free, key=lambda m: (_sort_key(ident(m)), m["name"]))
        pos = 0
        for i, name in enumerate(names):
            room = max(0, sizes[i] - len(groups[name]))
            groups[name].extend(ordered[pos:pos + room])
            pos += room
        groups[names[-1]].extend(ordered[pos:])
    else:
        weights = [max(s, 0) / float(total) if total else 0 for s in sizes]
        # cohorts sized zero for this fleet still get a tiny weight so that
        # assignment does not depend on the fleet size (stability)
        base = [(c.get("percent") or (100.0 * c.get("count", 0) / max(total, 1)) or 100.0 * weights[i]) for i, c in enumerate(cohorts)]
        base = [b if b > 0 else 1.0 for b in base]
        for m in free:
            member_id = ident(m)
            best = max(range(len(names)), key=lambda i: (_score(salt, member_id, names[i], base[i]), -i))
            groups[names[best]].append(m)
        first = names[0]
        if total and not groups[first] and free:
            lifted = max(free, key=lambda m: (_score(salt, ident(m), first, base[0]), m["name"]))
            for name in names[1:]:
                if lifted in groups[name]:
                    groups[name].remove(lifted)
            groups[first].append(lifted)
        for name in names:
            groups[name].sort(key=lambda m: (_sort_key(ident(m)), m["name"]))
    return groups


def split_waves(members: Optional[Iterable[object]], cohorts: object = "ciris", method: str = "sorted", salt: str = "",
                id_key: str = "name", max_parallel: int = 0) -> List[Wave]:
    """Members + cohorts -> ordered list of non-empty waves.

    Each wave: ``{"index": 1.., "name": cohort, "size": n, "members": [...]}``
    where every member dict carries its ``cohort`` and ``wave`` index. With
    ``max_parallel`` > 0 the cohort that takes the rest is cut into batches of
    at most that many members (waves ``batch-1``, ``batch-2``, ...; the rolling
    strategy); the other cohorts (a canary count) stay whole.
    """
    normalized = normalize_members(members)
    cohort_defs = resolve_cohorts(cohorts)
    groups = assign(normalized, cohort_defs, method=method, salt=salt, id_key=id_key)
    waves: List[Wave] = []
    for cohort in cohort_defs:
        group = groups[cohort["name"]]
        if not group:
            continue
        if max_parallel and cohort.get("rest"):
            chunks = [group[i:i + max_parallel] for i in range(0, len(group), max_parallel)]
            names = ["%s-%d" % (cohort["name"], n + 1) for n in range(len(chunks))]
        else:
            chunks, names = [group], [cohort["name"]]
        for name, chunk in zip(names, chunks):
            index = len(waves) + 1
            wave_members = []
            for m in chunk:
                m = dict(m)
                m["cohort"] = cohort["name"]
                m["wave"] = index
                wave_members.append(m)
            waves.append({"index": index, "name": name, "size": len(wave_members), "members": wave_members})
    return waves


# strategies that plan their own waves from the update policy (rollout_canary, rollout_max_parallel)
STRATEGIES = ("canary", "rolling", "blue_green", "immediate")


def parse_canary(canary: object) -> Union[None, int, List[Cohort]]:
    """``rollout_canary``: ``None`` (not given), a count (int >= 0), or cohorts (a preset name or a list)."""
    if canary is None or canary == "":
        return None
    if isinstance(canary, bool):
        raise CohortError("canary must be a count (a whole number >= 0) or cohorts, got %r" % (canary,))
    if isinstance(canary, int):
        count = canary
    elif isinstance(canary, float) and canary.is_integer():
        count = int(canary)
    elif isinstance(canary, str) and canary.strip().lstrip("-").isdigit():
        count = int(canary.strip())
    elif isinstance(canary, (str, list)):
        return resolve_cohorts(canary)
    else:
        raise CohortError("canary must be a count (a whole number >= 0) or cohorts, got %r" % (canary,))
    if count < 0:
        raise CohortError("canary must be a count >= 0, got %d" % count)
    return count


def strategy_cohorts(strategy: str, canary: object = None, cohorts: object = "ciris") -> Tuple[List[Cohort], int, Optional[str]]:
    """The cohorts a strategy plans with, and whether its first wave is a canary wave.

    * ``immediate``: one wave ``all``.
    * ``canary``: ``canary`` as cohorts (default: ``cohorts``), or a count N: a ``canary``
      wave of N agents, then the rest in one wave.
    * ``rolling`` and ``blue_green``: a count N (default 0): a ``canary`` wave of N agents
      when N > 0, then the rest (``batch``, cut into ``max_parallel`` batches).

    Returns ``(cohort definitions, canary_wave, canary_kind)`` with ``canary_wave`` 1 when the first
    wave is a canary wave (0 otherwise) and ``canary_kind`` ``count``, ``cohorts`` or ``None``.
    """
    if strategy not in STRATEGIES:
        raise CohortError("unknown strategy %r (known: %s)" % (strategy, ", ".join(STRATEGIES)))
    parsed = parse_canary(canary)
    if strategy == "immediate":
        return resolve_cohorts("all"), 0, None
    if strategy == "canary":
        if parsed is None:
            return resolve_cohorts(cohorts), 1, "cohorts"
        if isinstance(parsed, list):
            return parsed, 1, "cohorts"
        if parsed == 0:
            raise CohortError("canary: the canary strategy needs a canary count >= 1 (or cohorts), got 0")
        return [{"name": "canary", "count": parsed}, {"name": "rest", "rest": True}], 1, "count"
    if isinstance(parsed, list):
        raise CohortError("canary: the %s strategy takes a canary count (a whole number >= 0), not cohorts"
                          % strategy.replace("_", "-"))
    if not parsed:
        return [{"name": "batch", "rest": True}], 0, None
    return [{"name": "canary", "count": parsed}, {"name": "batch", "rest": True}], 1, "count"


def effective_auto_promote(auto_promote: object, canary_kind: Optional[str]) -> bool:
    """``auto_promote`` as given, else the default: false for a canary count (the update block's
    default, as Nomad's and MirrorNeuron's), true for cohorts (which roll on, as CIRISManager's do)."""
    if auto_promote is None or auto_promote == "":
        return canary_kind != "count"
    if isinstance(auto_promote, bool):
        return auto_promote
    text = str(auto_promote).strip().lower()
    if text in ("true", "yes", "on", "1"):
        return True
    if text in ("false", "no", "off", "0"):
        return False
    raise CohortError("auto_promote must be a boolean, got %r" % (auto_promote,))


WAVE_SPLIT_SPEC: Dict[str, Dict[str, Any]] = dict(
    members=dict(type="list", elements="raw"),
    group=dict(type="str"),
    hosts=dict(type="list", elements="str"),
    cohorts=dict(type="raw", default="ciris"),
    method=dict(type="str", default="sorted", choices=list(METHODS)),
    salt=dict(type="str", default=""),
    id_key=dict(type="str", default="name", choices=["name", "occurrence_id", "agent_id"]),
    strategy=dict(type="str", choices=list(STRATEGIES)),
    canary=dict(type="raw"),
    max_parallel=dict(type="int", default=0),
    auto_promote=dict(type="raw"),
)
# said once for wave_split's main() and its action plugin
WAVE_SPLIT_REQUIRED_ONE_OF = [["members", "group", "hosts"]]
WAVE_SPLIT_MUTUALLY_EXCLUSIVE = [["members", "group"], ["members", "hosts"]]
WAVE_SPLIT_ERRORS = (CohortError, ValueError)


def wave_plan(params: Dict[str, Any]) -> Dict[str, Any]:
    """Engine entry of the ``wave_split`` module: validated params -> result dict.

    Without ``strategy`` the waves are the ``cohorts`` (as before); with it the strategy plans
    from ``canary``, ``cohorts`` and ``max_parallel`` (:func:`strategy_cohorts`), and the result
    says whether the rollout stops after its canary wave (``auto_promote`` false).
    """
    strategy = params.get("strategy")
    max_parallel = params.get("max_parallel") or 0
    if max_parallel < 0:
        raise CohortError("max_parallel must be >= 0 (0: no cap), got %d" % max_parallel)
    if strategy:
        cohorts, canary_wave, canary_kind = strategy_cohorts(strategy, params.get("canary"), params.get("cohorts"))
        if strategy not in ("rolling", "blue_green"):
            max_parallel = 0
        elif not max_parallel:
            raise CohortError("max_parallel: the %s strategy needs max_parallel >= 1" % strategy.replace("_", "-"))
    else:
        cohorts, canary_wave, canary_kind = resolve_cohorts(params.get("cohorts")), 0, None
    waves = split_waves(params["members"] or [], cohorts, params.get("method") or "sorted",
                        params.get("salt") or "", params.get("id_key") or "name", max_parallel=max_parallel)
    sizes = {c["name"]: 0 for c in cohorts}
    for w in waves:
        sizes[w["members"][0]["cohort"]] = sizes.get(w["members"][0]["cohort"], 0) + w["size"]
    auto_promote = effective_auto_promote(params.get("auto_promote"), canary_kind)
    if len(waves) < 2:
        canary_wave = 0
    return {
        "changed": False,
        "waves": waves,
        "cohort_sizes": sizes,
        "total": sum(w["size"] for w in waves),
        "plan": ["wave %d %s: %d" % (w["index"], w["name"], w["size"]) for w in waves],
        "canary_wave": canary_wave,
        "auto_promote": auto_promote,
        # the wave after which the rollout stops, awaiting promotion (0: it does not stop)
        "promote_after": canary_wave if canary_wave and not auto_promote else 0,
    }
