"""`GET /dashboard/summary`: counts across the apps, each section from its owner.

Apps above this one (streaming) register their section at start-up; this app never imports them.
"""

from collections.abc import Callable

from agents import selectors as agent_selectors
from apikeys import selectors as apikey_selectors
from apikeys.models import APIKeyStatus
from logfleet import clock
from metrics.models import Sample, Series

_sections: dict[str, Callable[[object], dict]] = {}


def register_section(name: str, section: Callable[[object], dict]) -> None:
    _sections[name] = section


def summary(*, organization_id) -> dict:
    series = Series.objects.filter(organization_id=organization_id)
    hour_ago_ms = int((clock.unix() - 3600) * 1000)
    body = {
        "agents": agent_selectors.agent_status_counts(organization_id=organization_id),
        # Each agent's config_status: in_sync, pending (not yet applied), failed, unknown (never reported).
        "configs": agent_selectors.agent_config_status_counts(organization_id=organization_id),
        # The streaming app registers the real count; without it there can be no sessions.
        "streams": {"active": 0},
        "metrics": {
            "series": series.count(),
            "samples_last_hour": Sample.objects.filter(series__in=series.values("id"), ts__gte=hour_ago_ms).count(),
        },
        "api_keys": {
            "active": apikey_selectors.api_key_list(organization_id=organization_id, status=APIKeyStatus.ACTIVE).count()
        },
    }
    for name, section in _sections.items():
        body[name] = section(organization_id)
    return body
