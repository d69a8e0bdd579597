"""Reads of agents: the list (status, labels, search, order), one agent, its configuration as
shown, the status and config-status counts of the dashboard summary, and the agents that need
attention; every agent with its derived status.

Plain keyword arguments in, querysets or plain data out: the API's views and the dashboard's
pages call the same ones.
"""

from datetime import datetime

from django.core.exceptions import ValidationError
from django.db.models import Case, Count, F, Q, QuerySet, Value, When
from django.db.models.fields.json import KeyTransform

from agents import config as agent_config
from agents.models import Agent, AgentStatus, ConfigStatus
from logfleet.errors import NotFound
from logfleet.labels import LabelFilters

# Every order ends with the id, so that pages never repeat or skip an agent.
ORDERINGS = {
    "name": [F("name").asc(), "id"],
    "-name": [F("name").desc(), "id"],
    "created_at": [F("created_at").asc(), "id"],
    "-created_at": [F("created_at").desc(), "id"],
    "last_heartbeat_at": [F("last_heartbeat_at").asc(nulls_last=True), "id"],
    "-last_heartbeat_at": [F("last_heartbeat_at").desc(nulls_last=True), "id"],
}
DEFAULT_ORDERING = "name"


def agents_with_status(*, organization_id, now: datetime | None = None) -> QuerySet[Agent]:
    """The organization's agents, each annotated with its `status` as of `now`."""
    return Agent.objects.filter(organization_id=organization_id).with_status(now)


def agent_list(
    *,
    organization_id,
    status: str | None = None,
    labels: LabelFilters = (),
    search: str | None = None,
    ordering: str = DEFAULT_ORDERING,
) -> QuerySet[Agent]:
    """The agents with every one of `labels`, of `status` (derived), whose name or hostname holds
    `search` (case-insensitive), in `ordering` (a key of ORDERINGS)."""
    queryset = agents_with_status(organization_id=organization_id)
    if status:
        queryset = queryset.filter(status=status)
    for index, (key, value) in enumerate(labels):
        alias = f"label_{index}"
        queryset = queryset.alias(**{alias: KeyTransform(key, "labels")}).filter(**{alias: value})
    if search:
        queryset = queryset.filter(Q(name__icontains=search) | Q(hostname__icontains=search))
    return queryset.order_by(*ORDERINGS[ordering])


def agent_get(*, organization_id, agent_id) -> Agent:
    """One agent of the organization, with its status; NotFound otherwise (also for an id that is
    not one)."""
    try:
        agent = (
            agents_with_status(organization_id=organization_id)
            .select_related("organization")
            .filter(pk=agent_id)
            .first()
        )
    except (ValueError, ValidationError):
        agent = None
    if agent is None:
        raise NotFound()
    return agent


def agent_config_get(*, agent: Agent) -> dict:
    """The agent's configuration as shown: defaults filled in, its version, hash and last change."""
    config = agent_config.normalize(agent.config)
    return {
        "version": agent.config_version,
        "hash": agent_config.content_hash(config),
        "config": config,
        "updated_at": agent.config_updated_at,
    }


def agent_status_counts(*, organization_id) -> dict[str, int]:
    """{"total", "online", "offline", "error"} of the organization's agents, by derived status."""
    return agents_with_status(organization_id=organization_id).aggregate(
        total=Count("id"),
        **{status: Count("id", filter=Q(status=status)) for status in AgentStatus.values},
    )


def agent_config_status_counts(*, organization_id) -> dict[str, int]:
    """{"in_sync", "pending", "failed", "unknown"}: the organization's agents by config_status."""
    return (
        Agent.objects.filter(organization_id=organization_id)
        .with_config_status()
        .aggregate(**{state: Count("id", filter=Q(config_state=state)) for state in ConfigStatus.values})
    )


def agents_needing_attention(*, organization_id, limit: int) -> tuple[list[Agent], int]:
    """The agents offline, in error or whose config failed to apply (errors first, then failed
    configs, then offline; by name): at most `limit` of them, and how many there are."""
    queryset = (
        agents_with_status(organization_id=organization_id)
        .with_config_status()
        .filter(Q(status__in=(AgentStatus.OFFLINE, AgentStatus.ERROR)) | Q(config_state=ConfigStatus.FAILED))
    )
    urgency = Case(
        When(status=AgentStatus.ERROR, then=Value(0)),
        When(config_state=ConfigStatus.FAILED, then=Value(1)),
        default=Value(2),
    )
    agents = list(queryset.alias(urgency=urgency).order_by("urgency", "name", "id")[:limit])
    total = len(agents) if len(agents) < limit else queryset.count()
    return agents, total
