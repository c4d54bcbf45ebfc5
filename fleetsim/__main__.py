"""Command line: ``python -m fleetsim serve ...``."""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import sys

from .config import ConfigError, build_fleet, check_backlog, fleet_options, load_file
from .server import FleetSim


def _raise_nofile():
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError):
        pass


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m fleetsim", description="Simulated fleet of AI agents.")
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve", help="serve a simulated fleet until SIGTERM/SIGINT")
    s.add_argument("--config", help="fleet config file (YAML or JSON)")
    s.add_argument("--count", type=int, help="N single-occurrence agents (with --agents: N occurrences in total)")
    s.add_argument("--agents", type=int, help="number of agents the --count occurrences are spread over")
    s.add_argument("--layout", choices=("ports", "paths"), default="ports")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--base-port", type=int, default=20001, help="first occurrence port (0: pick free ports)")
    s.add_argument("--control-port", type=int, default=None, help="default base-port - 1 (0 or base-port 0: free port)")
    s.add_argument("--path-prefix", default="/api", help="paths layout: URL prefix before the occurrence name")
    s.add_argument("--token", default=None, help="bearer token for shutdown (default: $FLEETSIM_TOKEN)")
    s.add_argument("--inventory", help="write an Ansible YAML inventory here")
    s.add_argument("--log", help="append the request log here as JSON lines")
    s.add_argument("--state-dir", help="directory for the per-agent SQLite databases (default: a temp dir)")
    s.add_argument("--ready-file", help="write JSON here once every listener is up")
    s.add_argument("--version", default=None, help="default agent version (default 1.0.0)")
    s.add_argument("--consent", choices=("explicit", "ciris"), default=None,
                   help="default consent behaviour of every occurrence (default explicit; the config can override)")
    s.add_argument("--backlog", type=int, default=None,
                   help="listen backlog of the agent listener(s) (default: config 'backlog', else 256)")
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    token = args.token if args.token is not None else os.environ.get("FLEETSIM_TOKEN") or None
    try:
        config = load_file(args.config) if args.config else None
        count = args.count
        if config is None and count is None and args.agents is None:
            count = 1
        specs = build_fleet(config, count=count, agents=args.agents, version=args.version, consent=args.consent)
        backlog = fleet_options(config)["backlog"]
        if args.backlog is not None:
            backlog = check_backlog(args.backlog, "--backlog")
        if not specs:
            raise ConfigError("the fleet is empty: give --count or agents in --config")
        _raise_nofile()
        sim = FleetSim(specs, layout=args.layout, host=args.host, base_port=args.base_port,
                       control_port=args.control_port, token=token, log_path=args.log,
                       state_dir=args.state_dir, inventory=args.inventory, ready_file=args.ready_file,
                       path_prefix=args.path_prefix, backlog=backlog)
    except (ConfigError, OSError, ValueError) as exc:
        print(f"fleetsim: error: {exc}", file=sys.stderr)
        return 2
    try:
        asyncio.run(sim.run())
    except OSError as exc:
        print(f"fleetsim: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
