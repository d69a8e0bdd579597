"""What an agent should run as a whole, and its hash (the agent's `config_hash`).

The bundle is the agent's own config plus whatever higher apps contribute (the metrics app
adds the metric configs whose selector matches the agent). Higher apps register a
contributor at start-up; this app never imports them (ARCHITECTURE.md: imports flow one way).
"""

from collections.abc import Callable

from agents import config as agent_config

# name → function(agent, memo) returning the JSON-serialisable part of the bundle it owns; `memo`
# is a dict shared by one refresh of many agents, for what they have in common.
_contributors: dict[str, Callable] = {}


def register_contributor(name: str, contributor: Callable) -> None:
    _contributors[name] = contributor


def build(agent, memo: dict | None = None) -> dict:
    memo = {} if memo is None else memo
    bundle = {"agent_config": agent_config.normalize(agent.config)}
    for name, contributor in sorted(_contributors.items()):
        bundle[name] = contributor(agent, memo)
    return bundle


def bundle_hash(agent, memo: dict | None = None) -> str:
    return agent_config.content_hash(build(agent, memo))
