"""What an event says (the webhook body of API.md section 11, kept in NotificationEvent.payload) and
which channels get it."""

import uuid
from datetime import UTC, datetime

from agents.models import EventType, NotificationChannel

AGENT_EVENTS = frozenset(
    {EventType.AGENT_OFFLINE, EventType.AGENT_ONLINE, EventType.AGENT_ERROR, EventType.AGENT_CONFIG_FAILED}
)
# How much of an agent's config-apply errors an event carries.
MAX_CONFIG_ERRORS = 20


def iso(moment: datetime | None) -> str | None:
    """ISO 8601 in UTC with a `Z`, as the API writes timestamps."""
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def agent_part(agent, status: str) -> dict:
    return {
        "id": str(agent.pk),
        "name": agent.name,
        "labels": dict(agent.labels or {}),
        "status": status,
        "last_heartbeat_at": iso(agent.last_heartbeat_at),
    }


def key_part(key) -> dict:
    return {"id": str(key.pk), "name": key.name, "prefix": key.key_prefix, "expires_at": iso(key.expires_at)}


def payload(
    *,
    event_id: uuid.UUID,
    event_type: str,
    occurred_at: datetime,
    organization_id,
    agent: dict | None = None,
    api_key: dict | None = None,
    data: dict | None = None,
) -> dict:
    body = {
        "id": str(event_id),
        "type": event_type,
        "occurred_at": iso(occurred_at),
        "organization_id": str(organization_id),
    }
    if agent is not None:
        body["agent"] = agent
    if api_key is not None:
        body["api_key"] = api_key
    body["data"] = data or {}
    return body


def wants(channel: NotificationChannel, event_type: str, labels: dict | None = None) -> bool:
    """Whether an enabled channel gets an event: it subscribed to the type, and for an agent's event
    the agent has every label of the channel's selector."""
    if not channel.enabled or event_type not in channel.events:
        return False
    if event_type not in AGENT_EVENTS:
        return True
    labels = labels or {}
    return all(labels.get(key) == value for key, value in (channel.agent_selector or {}).items())


def subject(body: dict) -> str:
    """One line for a person (an email's subject)."""
    event_type = body["type"]
    agent = body.get("agent") or {}
    key = body.get("api_key") or {}
    return {
        EventType.AGENT_OFFLINE: f"Agent {agent.get('name')} is offline",
        EventType.AGENT_ONLINE: f"Agent {agent.get('name')} is back online",
        EventType.AGENT_ERROR: f"Agent {agent.get('name')} reports an error",
        EventType.AGENT_CONFIG_FAILED: f"Agent {agent.get('name')} failed to apply its configuration",
        EventType.API_KEY_EXPIRING: f"API key {key.get('name')} ({key.get('prefix')}…) expires soon",
        EventType.TEST: "Test notification",
    }.get(event_type, event_type)
