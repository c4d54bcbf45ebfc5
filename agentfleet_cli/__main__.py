# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""``python -m agentfleet_cli list|status|history|pause|resume|promote|fail|rollback`` (docs/lifecycle.md)."""

from __future__ import annotations

import sys


def _load_collection():
    try:
        import ansible_collections.agentfleet.rollout  # noqa: F401  (already importable, e.g. in the tests)
        return
    except ImportError:
        pass
    from ansible import constants as C
    from ansible.utils.collection_loader._collection_finder import _AnsibleCollectionFinder

    # the same collection paths as ansible-playbook (ANSIBLE_COLLECTIONS_PATH, ansible.cfg)
    _AnsibleCollectionFinder(paths=C.COLLECTIONS_PATHS)._install()


def main():
    _load_collection()
    from ansible_collections.agentfleet.rollout.plugins.module_utils._cli import main as cli_main

    return cli_main()


if __name__ == "__main__":
    sys.exit(main())
