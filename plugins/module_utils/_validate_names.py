# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unknown variables: a ``rollout_*``, ``shutdown_*`` or ``wakeup_*`` name the collection does not know.

The names the collection knows are read from its own files (:func:`variable_names`, by the
rollout_validate action plugin); a play's or a host's variable with one of the prefixes that is
not among them is a typo, unless the user lists it in ``rollout_extra_vars``. The checks of the
values themselves are ``_validate``'s.
"""

from __future__ import annotations

import difflib
import fnmatch
import re
from typing import Any, Collection, Dict, Iterable, List, Mapping, Optional, Sequence, Set, Tuple

from ansible_collections.agentfleet.rollout.plugins.module_utils._validate import shown

# the prefixes of the collection's variables: one of them that the collection does not know is a typo (or a
# variable of the user's own, listed in rollout_extra_vars)
PREFIXES = ("rollout_", "shutdown_", "wakeup_")
EXTRA_VARS = "rollout_extra_vars"
# a name with one of the prefixes in a file of the collection: not part of a longer name (_rollout_plan), an
# attribute or a module name (result.rollout_state, agentfleet.rollout.rollout_wave) nor a YAML anchor or alias
VARIABLE_RE = re.compile(r"(?<![\w.&*])((?:rollout|shutdown|wakeup)_[A-Za-z0-9_]+)")


def variable_names(text: str) -> Set[str]:
    """The ``rollout_*``, ``shutdown_*`` and ``wakeup_*`` names a YAML file of the collection mentions outside
    comments: the variables its roles declare (argument specs, defaults), set (vars, set_fact, register) or read
    (``| default(...)``), and those its argument specs document (what the tasks driver passes to a task file)."""
    names: Set[str] = set()
    for line in text.splitlines():
        if not line.lstrip().startswith("#"):
            names.update(VARIABLE_RE.findall(line))
    return names


def extra_names(value: Any) -> Tuple[List[str], Optional[str]]:
    """``rollout_extra_vars`` as a list of names (or shell patterns): ``(names, error)``."""
    if value is None or value == "":
        return [], None
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        return [], "%s: must be a list of variable names, got %s" % (EXTRA_VARS, shown(EXTRA_VARS, value))
    return list(value), None


def unknown_variables(names: Iterable[str], known: Collection[str], extra: Iterable[str] = ()) -> List[str]:
    """The names with one of :data:`PREFIXES` that are neither ``known`` nor listed in ``extra`` (names or shell
    patterns such as ``rollout_my_*``), sorted."""
    return sorted(n for n in set(names)
                  if n.startswith(PREFIXES) and n not in known and not any(fnmatch.fnmatchcase(n, e) for e in extra))


def unknown_error(name: str, known: Iterable[str], hosts: Optional[Iterable[str]] = None) -> str:
    """``NAME: unknown variable (did you mean CLOSEST?)``, naming the hosts when it is a variable of some hosts
    only."""
    where = " of host %s" % _names(sorted(hosts)) if hosts else ""
    close = closest_name(name, known)
    hint = "did you mean %s?" % close if close else "no variable of agentfleet.rollout is like it: docs/variables.md"
    return "%s: unknown variable%s (%s)" % (name, where, hint)


def closest_name(name: str, known: Iterable[str]) -> Optional[str]:
    """The known name closest to ``name`` (difflib), or None. The prefixes alone make any two names look alike
    (rollout_analysis and rollout_canary), so the parts after them must be alike too."""
    def rest(n: str) -> str:
        return n.split("_", 1)[1] if "_" in n else n

    for candidate in difflib.get_close_matches(name, sorted(known), n=5, cutoff=0.6):
        if difflib.SequenceMatcher(None, rest(name), rest(candidate)).ratio() >= 0.6:
            return candidate
    return None


def check_unknown(play_names: Collection[str], known: Collection[str], extra: Iterable[str] = (),
                  host_names: Optional[Mapping[str, Iterable[str]]] = None) -> List[str]:
    """Errors for the unknown variables (:func:`unknown_variables`) among ``play_names`` (the play's variables)
    and ``host_names`` (``{host: names}``, each agent's own; a name also in the play's is reported once), with
    the escape hatch as the last words; an empty list when all are known."""
    errors = [unknown_error(n, known) for n in unknown_variables(play_names, known, extra)]
    by_name: Dict[str, List[str]] = {}
    for host, names in sorted((host_names or {}).items()):
        for name in unknown_variables(set(names) - set(play_names), known, extra):
            by_name.setdefault(name, []).append(host)
    errors.extend(unknown_error(n, known, hosts) for n, hosts in sorted(by_name.items()))
    if errors:
        errors[-1] += "; list your own variables with %s in %s" % (
            "this prefix" if len(errors) == 1 else "these prefixes", EXTRA_VARS)
    return errors


def _names(names: Sequence[str]) -> str:
    return ", ".join(names[:10]) + (" and %d more" % (len(names) - 10) if len(names) > 10 else "")
