# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read agent members from the inventory on the controller, once per rollout."""

from __future__ import annotations

MEMBER_VARS = ("agent_url", "agent_id", "occurrence_id", "canary_group")


def members_from_group(task_vars, group, only=None):
    """Member dicts (name + agent vars) for every host of ``group`` (or of ``only``, a list of host names).

    Hosts are read through ``hostvars`` so group_vars/host_vars files count.
    A host without ``agent_url`` is an error naming the hosts. With both
    ``group`` and ``only``, the hosts of ``only`` that are in the group (a play's
    hosts after ``--limit``).
    """
    groups = task_vars.get("groups") or {}
    if group is not None and group not in groups:
        raise ValueError("inventory group %r does not exist (groups: %s)" % (group, ", ".join(sorted(groups)[:20])))
    hostvars = task_vars.get("hostvars")
    if only is None:
        names = list(groups[group])
    elif group is None:
        names = list(only)
    else:
        wanted = set(only)
        names = [h for h in groups[group] if h in wanted]
    members = []
    missing = []
    for host in names:
        hv = hostvars[host]
        member = {"name": host}
        for key in MEMBER_VARS:
            value = hv.get(key) if hasattr(hv, "get") else None
            if value not in (None, ""):
                member[key] = str(value)
        if "agent_url" not in member:
            missing.append(host)
        member.setdefault("agent_id", host)
        members.append(member)
    if missing:
        shown = ", ".join(missing[:10]) + (" and %d more" % (len(missing) - 10) if len(missing) > 10 else "")
        raise ValueError("hosts without agent_url%s: %s" % ((" in group %r" % group) if group else "", shown))
    return members
