# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The checks of a playbook's inputs that look at the controller's files (``_validate``'s helpers).

A report or audit path this user can write (or create), a state file that is an SQLite
database or does not exist yet, a task file (the tasks driver's, a hook's) that exists and
holds a list of tasks. Each returns an error text naming the variable, or None; nothing is
written.
"""

from __future__ import annotations

import os
from typing import Any, List, Mapping, Optional

SQLITE_MAGIC = b"SQLite format 3\x00"


def _nearest_dir(path: str) -> str:
    parent = os.path.dirname(path) or "."
    while parent and not os.path.exists(parent):
        up = os.path.dirname(parent)
        if up == parent:
            break
        parent = up
    return parent


def check_writable_file(name: str, path: object, base_dir: Optional[str] = None) -> Optional[str]:
    """An error text, or None: ``path`` must name a file this user can write (or create)."""
    if not isinstance(path, str) or not path:
        return None
    full = os.path.expanduser(path)
    if not os.path.isabs(full) and base_dir:
        full = os.path.join(base_dir, full)
    if os.path.isdir(full):
        return "%s: %s is a directory, not a file" % (name, path)
    if os.path.exists(full):
        if not os.access(full, os.W_OK):
            return "%s: %s is not writable" % (name, path)
        return None
    parent = _nearest_dir(full)
    if not os.path.isdir(parent):
        return "%s: %s cannot be created: %s is not a directory" % (name, path, parent)
    if not os.access(parent, os.W_OK | os.X_OK):
        return "%s: %s cannot be created: %s is not writable" % (name, path, parent)
    return None


def check_state_path(name: str, path: object, base_dir: Optional[str] = None) -> Optional[str]:
    """An error text, or None: a writable path that is a SQLite state file or does not exist yet."""
    if not isinstance(path, str) or not path:
        return "%s: must be a path to the state file" % name
    if "://" in path:
        # a shared backend (s3://...): its own module checks it
        return None
    error = check_writable_file(name, path, base_dir)
    if error:
        return error
    full = os.path.expanduser(path)
    if not os.path.isabs(full) and base_dir:
        full = os.path.join(base_dir, full)
    if os.path.isfile(full) and os.path.getsize(full) > 0:
        try:
            with open(full, "rb") as fh:
                head = fh.read(len(SQLITE_MAGIC))
        except OSError as exc:
            return "%s: %s cannot be read: %s" % (name, path, exc.strerror)
        if head != SQLITE_MAGIC:
            return "%s: %s is not a rollout state file (not an SQLite database)" % (name, path)
    return None


def check_task_file(name: str, path: object, base_dir: Optional[str] = None) -> Optional[str]:
    """An error text, or None: ``path`` must be an existing YAML file holding a list of tasks."""
    if not isinstance(path, str) or not path:
        return "%s: the tasks driver needs a task file (e.g. -e %s=update.yml)" % (name, name)
    full = os.path.expanduser(path)
    if not os.path.isabs(full) and base_dir:
        full = os.path.join(base_dir, full)
    if not os.path.isfile(full):
        return "%s: no such file: %s" % (name, path)
    try:
        import yaml  # type: ignore[import-untyped]  # no PyYAML stubs in the venv (types-PyYAML)
    except ImportError:  # pragma: no cover - PyYAML comes with ansible-core
        return None
    try:
        with open(full) as fh:
            data = yaml.safe_load(fh)
    except (OSError, yaml.YAMLError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return "%s: %s is not valid YAML: %s" % (name, path, first)
    if data is not None and not isinstance(data, list):
        return "%s: %s must hold a list of tasks, not a %s" % (name, path, type(data).__name__)
    return None


HOOK_POINTS = ("before_wave", "after_wave", "on_success", "on_failure", "on_pause")


def check_hooks(value: Mapping[Any, Any], errors: List[str], base_dir: Optional[str] = None) -> None:
    """rollout_hooks: a mapping of hook points to task files that exist."""
    unknown = sorted(str(k) for k in value if k not in HOOK_POINTS)
    if unknown:
        errors.append("rollout_hooks: unknown hook point%s %s (one of %s)" % (
            "s" if len(unknown) > 1 else "", ", ".join(unknown), ", ".join(HOOK_POINTS)))
    for point in HOOK_POINTS:
        path = value.get(point)
        if path in (None, ""):
            continue
        error = check_task_file("rollout_hooks.%s" % point, path, base_dir)
        if error:
            errors.append(error)
