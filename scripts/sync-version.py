# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Write plugins/module_utils/_version.py from galaxy.yml's version (`make version`; `make build` runs it).

The version lives in galaxy.yml only. Modules reach the controller's or a target's Python through AnsiballZ,
which carries module_utils but no MANIFEST.json, so the user agents and reports read it from this generated
module; tests/unit/plugins/module_utils/test_version.py fails when it differs from galaxy.yml. `--check` only compares.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET = ROOT / "plugins" / "module_utils" / "_version.py"
TEMPLATE = '''# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The collection's version, generated from galaxy.yml by scripts/sync-version.py (`make version`): do not edit."""

from __future__ import annotations

COLLECTION_VERSION = "{version}"
USER_AGENT = "agentfleet.rollout/" + COLLECTION_VERSION
'''


def galaxy_version() -> str:
    match = re.search(r"^version:\s*['\"]?([0-9A-Za-z.+-]+)['\"]?\s*$", (ROOT / "galaxy.yml").read_text(), re.M)
    if not match:
        raise SystemExit("galaxy.yml: no version")
    return match.group(1)


def main(argv: list[str]) -> int:
    wanted = TEMPLATE.format(version=galaxy_version())
    current = TARGET.read_text() if TARGET.exists() else ""
    if current == wanted:
        return 0
    if "--check" in argv:
        print("%s differs from galaxy.yml's version: run make version" % TARGET.relative_to(ROOT), file=sys.stderr)
        return 1
    TARGET.write_text(wanted)
    print("wrote %s" % TARGET.relative_to(ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
