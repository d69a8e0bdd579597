"""`GET /dashboard/summary` and the overview page: counts across the apps, each section from its
owner, and the agents that need attention.

Apps above this one (streaming) register their section at start-up; this app never imports them.
"""

from collections.abc import Callable

from django.db.models import Case, Count, Q, Value, When
from django.utils import timezone

from agents.models import Agent, AgentStatus, ConfigStatus
from apikeys.models import APIKey, APIKeyStatus
from logfleet import clock
from metrics.models import Sample, Series

_sections: dict[str, Callable[[object], dict]] = {}


def register_section(name: str, section: Callable[[object], dict]) -> None:
    _sections[name] = section


def summary(*, organization_id) -> dict:
    agents = (
        Agent.objects.filter(organization_id=organization_id)
        .with_status()
        .aggregate(
            total=Count("id"),
            online=Count("id", filter=Q(status="online")),
            offline=Count("id", filter=Q(status="offline")),
            error=Count("id", filter=Q(status="error")),
        )
    )
    configs = (
        Agent.objects.filter(organization_id=organization_id)
        .with_config_status()
        .aggregate(**{state: Count("id", filter=Q(config_state=state)) for state in ConfigStatus.values})
    )
    series = Series.objects.filter(organization_id=organization_id)
    hour_ago_ms = int((clock.unix() - 3600) * 1000)
    body = {
        "agents": agents,
        # Each agent's config_status: in_sync, pending (not yet applied), failed, unknown (never reported).
        "configs": configs,
        # The streaming app registers the real count; without it there can be no sessions.
        "streams": {"active": 0},
        "metrics": {
            "series": series.count(),
            "samples_last_hour": Sample.objects.filter(series__in=series.values("id"), ts__gte=hour_ago_ms).count(),
        },
        "api_keys": {
            "active": APIKey.objects.filter(organization_id=organization_id)
            .with_status(APIKeyStatus.ACTIVE, now=timezone.now())
            .count()
        },
    }
    for name, section in _sections.items():
        body[name] = section(organization_id)
    return body


def needs_attention(*, organization_id, limit: int = 10) -> tuple[list[Agent], int]:
    """The agents that are offline, in error or whose config failed to apply (errors first, then
    failed configs, then offline; by name), at most `limit` of them, and how many there are."""
    queryset = (
        Agent.objects.filter(organization_id=organization_id)
        .with_status()
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
