"""Reads of stream sessions: the list (per agent, by status), one session, the open ones, and the
instructions an agent's heartbeat carries. A session's status is derived as of now (over once its
timeout passed or nobody watched it), so that no read ever has to write an end down.

Plain keyword arguments in, querysets or plain data out: the API's views, the sockets and the
dashboard's pages call the same ones.
"""

from datetime import datetime, timedelta

from django.core.exceptions import ValidationError
from django.db.models import Q, QuerySet
from django.utils import timezone

from logfleet import shared_cache
from logfleet.errors import NotFound
from streaming.models import OPEN_STATUSES, StreamSession

RECENTLY_ENDED = timedelta(minutes=5)
INSTRUCTIONS_TTL = 10  # seconds the heartbeat's stream instructions may be served from the cache
# ... when there are none: nothing but a write (a start, which drops the cached list) can change an
# empty list, while a listed session can end by itself (timeout, idle) and a stop ages out.
NO_INSTRUCTIONS_TTL = 600
SESSION_NOT_FOUND = "No such stream session"


def session_list(
    *, organization_id, agent_id=None, status: str | None = None, now: datetime | None = None
) -> QuerySet[StreamSession]:
    """The organization's sessions, newest first; of one agent, and of one effective status."""
    queryset = StreamSession.objects.filter(organization_id=organization_id).order_by("-started_at", "-id")
    if agent_id is not None:
        queryset = queryset.filter(agent_ref=agent_id)
    if status:
        queryset = queryset.with_effective_status(status, now)
    return queryset


def session_get(*, organization_id, session_id) -> StreamSession:
    """One session of the organization; NotFound otherwise (also for an id that is not one)."""
    try:
        session = StreamSession.objects.filter(pk=session_id, organization_id=organization_id).first()
    except (ValueError, ValidationError):
        session = None
    if session is None:
        raise NotFound(SESSION_NOT_FOUND)
    return session


def sessions_open(*, organization_id, agent_id=None, now: datetime | None = None) -> QuerySet[StreamSession]:
    """Pending or active sessions that are neither past their timeout nor idle."""
    queryset = StreamSession.objects.open(now).filter(organization_id=organization_id)
    if agent_id is not None:
        queryset = queryset.filter(agent_ref=agent_id)
    return queryset


# --- the heartbeat's instructions ----------------------------------------------------------


def instruction(session: StreamSession, action: str) -> dict:
    return {
        "session_id": str(session.id),
        "action": action,
        "filters": session.filters,
        "filter_query": session.filter_query,
        "expires_at": session.expires_at.isoformat().replace("+00:00", "Z"),
    }


def instructions_key(agent_id) -> str:
    return f"stream-instructions:{agent_id}"


def agent_instructions(agent_id) -> list[dict]:
    """`start` for every open session of the agent, `stop` for those that ended in the last 5 minutes.

    Cached in the shared cache (heartbeats are the hot path): briefly, or longer when empty; every
    change to the agent's sessions drops the cached list (streaming.services).
    """
    return shared_cache.read_through(instructions_key(agent_id), lambda: instructions_load(agent_id), instructions_ttl)


def instructions_load(agent_id) -> list[dict]:
    """The agent's instructions from the database, as of now."""
    return _instructions(agent_id, timezone.now())


def instructions_ttl(instructions: list[dict]) -> int:
    return INSTRUCTIONS_TTL if instructions else NO_INSTRUCTIONS_TTL


def _instructions(agent_id, now: datetime) -> list[dict]:
    sessions = (
        StreamSession.objects.filter(agent_ref=agent_id)
        .filter(Q(status__in=OPEN_STATUSES) | Q(stopped_at__gte=now - RECENTLY_ENDED))
        .order_by("started_at", "id")
    )
    result = []
    for session in sessions:
        if session.effective_status(now) in OPEN_STATUSES:
            result.append(instruction(session, "start"))
        elif (session.stopped_at or session.expires_at) >= now - RECENTLY_ENDED:
            result.append(instruction(session, "stop"))
    return result
