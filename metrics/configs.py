"""Metric configs: what each agent runs, and the hash that tells it something changed."""

from agents import bundle
from agents import config as agent_config
from metrics.models import MetricConfig


def config_hash(*, name, description, log_source, enabled, agent_selector, metrics, version) -> str:
    return agent_config.content_hash(
        {
            "name": name,
            "description": description,
            "log_source": log_source,
            "enabled": enabled,
            "agent_selector": agent_selector,
            "metrics": metrics,
            "version": version,
        }
    )


def configs_for_agent(agent, memo: dict | None = None) -> list[MetricConfig]:
    """The enabled configs of the agent's organization whose selector matches its labels, by name."""
    memo = {} if memo is None else memo
    key = ("metric_configs", agent.organization_id)
    if key not in memo:
        memo[key] = list(
            MetricConfig.objects.filter(organization_id=agent.organization_id, enabled=True).order_by("name", "id")
        )
    return [config for config in memo[key] if config.selects(agent.labels or {})]


def _contribute(agent, memo) -> list[dict]:
    return [{"id": str(config.id), "hash": config.hash} for config in configs_for_agent(agent, memo)]


def register() -> None:
    bundle.register_contributor("metric_configs", _contribute)
