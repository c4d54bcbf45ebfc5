# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""``python -m agentfleet_cli``: the deployment command line (docs/lifecycle.md).

A launcher only: it makes the installed collection importable (Ansible's collection loader, over
ANSIBLE_COLLECTIONS_PATH / ansible.cfg like ansible-playbook) and runs its engine's
``plugins/module_utils/_cli.py``.
"""

from __future__ import annotations
