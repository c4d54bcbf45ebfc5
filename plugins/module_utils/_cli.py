# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The command line for people: ``python -m agentfleet_cli`` (docs/lifecycle.md).

``list``, ``status KEY``, ``history KEY``, ``pause KEY``, ``resume KEY``, ``promote KEY``, ``fail KEY`` and
``rollback KEY --version N`` over the same engine as the modules (:mod:`._lifecycle`, :mod:`._state`'s
``open_store``). Actions that run waves (resume after the rollout stopped, promote, rollback) run the
collection's playbook with ``--inventory``; without it they print the command to run and change nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from typing import IO
from typing import Any
from typing import Iterable
from typing import List
from typing import Mapping
from typing import Optional
from typing import Sequence

from ansible_collections.agentfleet.rollout.plugins.module_utils import _lifecycle as lifecycle
from ansible_collections.agentfleet.rollout.plugins.module_utils._state import StateError
from ansible_collections.agentfleet.rollout.plugins.module_utils._state_backend import open_store

DEFAULT_STATE = "~/.agentfleet/state.db"
DEFAULT_AUDIT = "~/.agentfleet/audit.jsonl"
STATE_ENV = "AGENTFLEET_STATE"
# exit codes: 0 done, 1 refused (an error naming what), 3 nothing changed (a playbook run is needed)
EXIT_ERROR = 1
EXIT_NEEDS_RUN = 3


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="agentfleet", description="Deployments of agentfleet.rollout: status, history, "
                                "pause, resume, promote, fail, rollback (docs/lifecycle.md).")
    p.add_argument("--state", default=os.environ.get(STATE_ENV, DEFAULT_STATE),
                   help="the rollout state (default $%s or %s; the playbooks' rollout_state_path)" % (STATE_ENV, DEFAULT_STATE))
    p.add_argument("--audit", default=DEFAULT_AUDIT, help="the audit log (default %s)" % DEFAULT_AUDIT)
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="every deployment key with its newest version")
    for name, text in (("status", "the newest version of KEY (or --version N)"), ("history", "every version of KEY")):
        s = sub.add_parser(name, help=text)
        s.add_argument("key")
        if name == "status":
            s.add_argument("--version", type=int)
    for name, text in (("pause", "stop KEY's running rollout at its next gate wait or wave"),
                       ("resume", "continue KEY's paused deployment"),
                       ("promote", "continue KEY's canary waiting for promotion, or its staged deployment"),
                       ("fail", "mark KEY's deployment failed"),
                       ("rollback", "a new deployment of KEY back to version N")):
        s = sub.add_parser(name, help=text)
        s.add_argument("key")
        s.add_argument("--reason", help="why (in the audit log with who and when)")
        if name in ("resume", "promote", "rollback"):
            s.add_argument("-i", "--inventory", help="run the playbook over this inventory (else print the command)")
            s.add_argument("-e", "--extra-vars", action="append", default=[],
                           help="more variables for the playbook (as ansible-playbook -e)")
        if name == "rollback":
            s.add_argument("--version", type=int, required=True, help="the completed version to go back to")
            s.add_argument("--skip-canary", action="store_true", help="ask every agent in one wave")
    return p


def _say(text: object, stream: Optional[IO[str]] = None) -> None:
    """One line (or block) of the command's output; a command line tool, not a module (no AnsibleModule here)."""
    (stream or sys.stdout).write("%s\n" % text)


def _print(args: argparse.Namespace, data: object, lines: Iterable[str]) -> None:
    if args.json:
        _say(json.dumps(data, indent=2, sort_keys=True, default=str))
    else:
        _say("\n".join(lines))


def _playbook(args: argparse.Namespace, name: str, extra: Mapping[str, Any]) -> List[str]:
    cmd = ["ansible-playbook", "agentfleet.rollout." + name, "-i", args.inventory or "INVENTORY",
           "-e", "rollout_deployment_key=%s" % args.key, "-e", "rollout_state_path=%s" % args.state,
           "-e", "rollout_audit_path=%s" % args.audit]
    if args.reason:
        cmd += ["-e", json.dumps({"rollout_reason": args.reason})]
    for k, v in extra.items():
        cmd += ["-e", "%s=%s" % (k, v)]
    for e in args.extra_vars:
        cmd += ["-e", e]
    return cmd


def _run_or_show(args: argparse.Namespace, name: str, extra: Optional[Mapping[str, Any]] = None) -> int:
    cmd = _playbook(args, name, extra or {})
    if not args.inventory:
        _say("nothing changed: this runs waves over the agents; run\n  %s" % " ".join(
            "'%s'" % c if " " in c or "{" in c else c for c in cmd))
        return EXIT_NEEDS_RUN
    cmd[0] = shutil.which("ansible-playbook") or os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
    return subprocess.call(cmd)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parser().parse_args(argv)
    try:
        return _main(args)
    except (lifecycle.LifecycleError, StateError, ValueError) as exc:
        _say("agentfleet: %s" % exc, sys.stderr)
        return EXIT_ERROR


def _main(args: argparse.Namespace) -> int:
    if args.command in ("list", "status", "history") and not os.path.exists(os.path.expanduser(args.state)):
        raise lifecycle.LifecycleError("no state at %s (--state)" % args.state)
    who = lifecycle.actor()
    with open_store(args.state) as store:
        if args.command == "list":
            recs = lifecycle.keys(store)
            _print(args, recs, lifecycle.keys_lines(recs))
            return 0
        if args.command == "status":
            rec = lifecycle.status(store, args.key, version=args.version)
            _print(args, rec, lifecycle.status_lines(rec))
            return 0
        if args.command == "history":
            recs = lifecycle.history(store, args.key)
            _print(args, recs, lifecycle.history_lines(recs))
            return 0
        dep = lifecycle.resolve(store, args.key)
        if args.command == "pause":
            changed, dep = lifecycle.pause(store, dep, args.reason, who, args.audit)
            _say("%s version %s (%s): paused%s" % (args.key, dep["version"], dep["deployment_id"],
                                                   "" if changed else " already"))
            if changed and store.lease_live(dep):
                _say("its rollout (pid %s) stops at its next health-gate wait or before its next wave"
                     % dep.get("owner_pid"))
            return 0
        if args.command == "fail":
            # the agents it updated stay on the target: agentfleet.rollout.rollback (the rollback command) puts
            # them back through the update driver, as a deployment of its own
            out = lifecycle.fail(store, dep, args.reason, who, args.audit)
            _say("%s version %s (%s): %s" % (args.key, dep["version"], dep["deployment_id"], out["status"]))
            return 0
        if args.command == "resume":
            if dep["status"] == "paused":
                lifted, dep = lifecycle.lift_pause(store, dep, args.reason, who, args.audit)
                if lifted:
                    _say("%s version %s (%s): resumed; its rollout (pid %s) goes on"
                         % (args.key, dep["version"], dep["deployment_id"], dep.get("owner_pid")))
                    return 0
            elif dep["status"] != "interrupted":
                raise lifecycle.LifecycleError("%s version %s is %s: nothing to resume" % (args.key, dep["version"],
                                                                                           dep["status"]))
            return _run_or_show(args, "resume")
        if args.command == "promote":
            if dep["status"] not in ("staged", "paused"):
                raise lifecycle.LifecycleError("%s version %s is %s: nothing to promote" % (args.key, dep["version"],
                                                                                            dep["status"]))
            return _run_or_show(args, "promote")
        # rollback: check the version before anything runs
        source = lifecycle.rollback_source(store, args.key, args.version)
        _say("rollback of %s to version %s (%s)" % (args.key, source["version"], source["target_version"]))
        extra = {"rollout_rollback_to": source["version"]}
        if args.skip_canary:
            extra["rollout_rollback_skip_canary"] = "true"
        return _run_or_show(args, "rollback", extra)
