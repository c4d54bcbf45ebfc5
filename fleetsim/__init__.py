"""fleetsim: a simulated fleet of AI agent occurrences speaking the agent control protocol.

Run ``python -m fleetsim serve --help`` from the repository root; see docs/fleetsim.md.
"""

__version__ = "0.1.0"
