# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read agent members from the inventory on the controller, once per rollout."""

from __future__ import annotations

MEMBER_VARS = ("agent_url", "agent_id", "occurrence_id", "canary_group")


def members_from_group(task_vars, group):
    """Member dicts (name + agent vars) for every host of ``group``.

    Hosts are read through ``hostvars`` so group_vars/host_vars files count.
    A host without ``agent_url`` is an error naming the hosts.
    """
    groups = task_vars.get("groups") or {}
    if group not in groups:
        raise ValueError("inventory group %r does not exist (groups: %s)" % (group, ", ".join(sorted(groups)[:20])))
    hostvars = task_vars.get("hostvars")
    members = []
    missing = []
    for host in groups[group]:
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
        raise ValueError("hosts without agent_url in group %r: %s" % (group, shown))
    return members
