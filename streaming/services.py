"""Stream sessions: start, stop, expiry, the agent's pushes, and the fan-out to viewers.

Viewers of a session listen on the channel-layer group `stream.<session id>`; an agent's
WebSocket listens on `agent.<agent id>`. With Redis as the channel layer, any process can serve
any viewer or agent: a line pushed to one process reaches viewers on every other.
"""

import itertools
import json
import logging
import time
import uuid
from datetime import timedelta

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from accounts.services import audit_record
from agents.models import Agent, AgentStatus
from logfleet import shared_cache
from logfleet.errors import Conflict, Gone, Invalid, NotFound, Unavailable
from streaming.models import OPEN_STATUSES, EndReason, SessionStatus, StreamSession
from streaming.selectors import instruction, instructions_key, instructions_load, instructions_ttl

logger = logging.getLogger("logfleet.streaming")

MAX_LINES_PER_PUSH = 1000
MAX_MESSAGE_BYTES = 65_536
# A line's metadata is cut to these bounds (and the line marked `metadata_truncated`), as its message
# is cut to MAX_MESSAGE_BYTES: one odd line must not cost every viewer, nor fail the agent's push.
MAX_METADATA_KEYS = 32  # keys of each object, items of each list
MAX_METADATA_DEPTH = 4  # levels of objects and lists, the metadata object being the first
MAX_METADATA_BYTES = 8192  # as compact JSON


def session_group(session_id) -> str:
    return f"stream.{session_id}"


def agent_group(agent_id) -> str:
    return f"agent.{agent_id}"


def _group_send(group: str, message: dict, *, required: bool = False) -> None:
    """Send to a channel-layer group. A notification is best effort; with `required` (lines that
    would otherwise be lost) an unreachable layer is a 503, so the sender retries."""
    try:
        async_to_sync(get_channel_layer().group_send)(group, message)
    except Exception:
        logger.warning("could not send %s to %s", message.get("type"), group, exc_info=True)
        if required:
            raise Unavailable("Live streaming is unavailable right now; retry shortly") from None


def _require_channel_layer() -> None:
    """Refuse to start a session that could not deliver anything (Redis down)."""
    _group_send("logfleet.health", {"type": "health.check"}, required=True)


def _sessions_changed(agent_id) -> None:
    # Written after the commit (not only dropped), so that a heartbeat that read the sessions before
    # the commit cannot put its stale list back for the long life of an empty one.
    shared_cache.refresh_after_commit(instructions_key(agent_id), lambda: instructions_load(agent_id), instructions_ttl)


# --- lifecycle -----------------------------------------------------------------------------


def _end(session: StreamSession, *, status: str, reason: str, at, actor=None, ip_address=None) -> bool:
    """End an open session once (a conditional UPDATE), record it, and tell its viewers and agent.

    True when this call ended it; False when it had already ended.
    """
    ended = StreamSession.objects.filter(pk=session.pk, status__in=OPEN_STATUSES).update(
        status=status, end_reason=reason, stopped_at=at
    )
    if not ended:
        return False
    session.refresh_from_db()
    audit_record(
        organization=session.organization,
        action="stream.ended",
        actor=actor,
        actor_type=None if actor else "system",
        ip_address=ip_address,
        target_type="stream_session",
        target_id=session.pk,
        metadata={
            "agent_id": str(session.agent_ref),
            "reason": reason,
            "duration_seconds": round((at - session.started_at).total_seconds(), 3),
            "lines_sent": session.lines_sent,
            "lines_dropped": session.lines_dropped,
            "bytes_sent": session.bytes_sent,
            "filters": session.filters,
        },
    )
    _sessions_changed(session.agent_ref)
    session_id, agent_id = session.pk, session.agent_ref
    transaction.on_commit(lambda: _announce_end(session_id, agent_id, reason))
    return True


def _announce_end(session_id, agent_id, reason: str) -> None:
    _group_send(session_group(session_id), {"type": "session.ended", "reason": reason})
    _group_send(agent_group(agent_id), {"type": "agent.stream_stop", "session_id": str(session_id)})


def sessions_expire_due(*, organization_id=None, agent_id=None) -> int:
    """Write down the sessions that are over but still stored as open: their timeout passed, or nobody
    watched them for STREAM_IDLE_SECONDS (idempotent; the agent and any viewer are told). Called by
    the write paths (start, stop, push) and the sockets' timers, never by a read."""
    now = timezone.now()
    due = StreamSession.objects.over_unwritten(now)
    if organization_id is not None:
        due = due.filter(organization_id=organization_id)
    if agent_id is not None:
        due = due.filter(agent_ref=agent_id)
    count = 0
    for session in due.select_related("organization"):
        status, reason, at = session.effective(now)
        with transaction.atomic():
            count += _end(session, status=status, reason=reason, at=at)
    return count


def session_watched(*, session_id) -> None:
    """A viewer is connected to the session (called on connecting, then regularly), or just left.

    When the last one leaves, the session ends as idle STREAM_IDLE_SECONDS later, unless a viewer
    comes (the ones still there keep refreshing this): the leaving viewer's process looks then
    (streaming.consumers). A session no viewer ever came to ends at the agent's next push, the
    next start or its next heartbeat's instructions."""
    StreamSession.objects.filter(pk=session_id, status__in=OPEN_STATUSES).update(viewers_seen_at=timezone.now())


@transaction.atomic
def stream_start(
    *, agent: Agent, user, timeout_seconds: int, filters: dict, filter_query: str | None, ip_address: str | None
) -> StreamSession:
    _require_channel_layer()
    status = Agent.objects.with_status().values_list("status", flat=True).get(pk=agent.pk)
    if status == AgentStatus.OFFLINE:
        raise Conflict("The agent is offline; it cannot stream until it is back", details={"agent_status": status})
    # Serialise starts per organization so that the caps hold against concurrent starts.
    type(agent.organization).objects.select_for_update().filter(pk=agent.organization_id).first()
    sessions_expire_due(organization_id=agent.organization_id)
    open_sessions = StreamSession.objects.open().filter(organization_id=agent.organization_id)
    if open_sessions.filter(agent_ref=agent.pk).count() >= settings.STREAM_MAX_ACTIVE_PER_AGENT:
        raise Conflict(
            "This agent already has the maximum number of open stream sessions",
            details={"limit": settings.STREAM_MAX_ACTIVE_PER_AGENT},
        )
    if open_sessions.count() >= settings.STREAM_MAX_ACTIVE_PER_ORG:
        raise Conflict(
            "The organization already has the maximum number of open stream sessions",
            details={"limit": settings.STREAM_MAX_ACTIVE_PER_ORG},
        )
    now = timezone.now()
    session = StreamSession.objects.create(
        organization_id=agent.organization_id,
        agent=agent,
        agent_ref=agent.pk,
        filters=filters,
        filter_query=filter_query,
        timeout_seconds=timeout_seconds,
        started_at=now,
        expires_at=now + timedelta(seconds=timeout_seconds),
        created_by=user,
        created_by_ref=user.pk,
    )
    audit_record(
        organization=agent.organization,
        action="stream.started",
        actor=user,
        ip_address=ip_address,
        target_type="stream_session",
        target_id=session.pk,
        metadata={
            "agent_id": str(agent.pk),
            "filters": filters,
            "filter_query": filter_query,
            "timeout_seconds": timeout_seconds,
        },
    )
    _sessions_changed(agent.pk)
    start = instruction(session, "start")
    transaction.on_commit(lambda: _group_send(agent_group(agent.pk), {"type": "agent.stream_start", **start}))
    return session


@transaction.atomic
def stream_stop(*, session: StreamSession, user, ip_address: str | None) -> StreamSession:
    """Idempotent: stopping a session that is over changes nothing."""
    if session.status in OPEN_STATUSES and session.effective_status() not in OPEN_STATUSES:
        sessions_expire_due(agent_id=session.agent_ref)  # over already (timeout or idle): written as such
    else:
        _end(
            session,
            status=SessionStatus.STOPPED,
            reason=EndReason.STOPPED,
            at=timezone.now(),
            actor=user,
            ip_address=ip_address,
        )
    session.refresh_from_db()
    return session


def sessions_end_for_deleted_agent(*, agent: Agent) -> None:
    """The agent is being deleted: its open sessions end with reason agent_deleted and stay in the history."""
    now = timezone.now()
    for session in StreamSession.objects.filter(agent_ref=agent.pk, status__in=OPEN_STATUSES).select_related(
        "organization"
    ):
        _end(session, status=SessionStatus.STOPPED, reason=EndReason.AGENT_DELETED, at=now)


def session_activate(*, session_id: uuid.UUID, agent_id) -> None:
    """The agent acknowledged or sent its first line: pending → active (only a session of that agent)."""
    StreamSession.objects.filter(pk=session_id, agent_ref=agent_id, status=SessionStatus.PENDING).update(
        status=SessionStatus.ACTIVE
    )


# --- the agent's lines ---------------------------------------------------------------------


def _truncate(message: str) -> tuple[str, bool]:
    encoded = message.encode("utf-8")
    if len(encoded) <= MAX_MESSAGE_BYTES:
        return message, False
    return encoded[:MAX_MESSAGE_BYTES].decode("utf-8", errors="ignore"), True


_TOO_DEEP = object()


def _within_shape(value, depth: int):
    """`value` with at most MAX_METADATA_KEYS entries per container and no container below
    MAX_METADATA_DEPTH (_TOO_DEEP for such a container itself), and whether anything was cut."""
    if not isinstance(value, dict | list):
        return value, False
    if depth > MAX_METADATA_DEPTH:
        return _TOO_DEEP, True
    entries = value.items() if isinstance(value, dict) else enumerate(value)
    cut = len(value) > MAX_METADATA_KEYS
    kept = []
    for key, child in itertools.islice(entries, MAX_METADATA_KEYS):
        child, child_cut = _within_shape(child, depth + 1)
        cut = cut or child_cut
        if child is not _TOO_DEEP:
            kept.append((key, child))
    return (dict(kept) if isinstance(value, dict) else [child for _key, child in kept]), cut


def _compact_size(value) -> int:
    return len(json.dumps(value, separators=(",", ":")))


def bound_metadata(metadata: dict) -> tuple[dict, bool]:
    """The metadata within its bounds (keys, depth, then bytes: the first top-level keys that fit),
    and whether anything was cut."""
    shaped, cut = _within_shape(metadata, 1)
    if _compact_size(shaped) <= MAX_METADATA_BYTES:
        return shaped, cut
    kept, size = {}, 2  # the braces
    for key, value in shaped.items():
        entry = _compact_size(key) + 1 + _compact_size(value) + (1 if kept else 0)
        if size + entry > MAX_METADATA_BYTES:
            break
        kept[key] = value
        size += entry
    return kept, True


def matches_filters(filters: dict, line: dict) -> bool:
    """level: case-insensitive, one of; source: exact; pattern: plain substring of the message."""
    levels = filters.get("level") or []
    if levels and str(line.get("level") or "").lower() not in {level.lower() for level in levels}:
        return False
    source = filters.get("source")
    if source and line.get("source") != source:
        return False
    pattern = filters.get("pattern")
    return not (pattern and pattern not in line.get("message", ""))


def _reserve(key: str, amount: int, limit: int) -> int:
    """Take up to `amount` of this second's `limit` from a counter every process shares; how much was taken."""
    cache.add(key, 0, 5)
    used = cache.incr(key, amount)
    return max(0, min(amount, limit - (used - amount)))


def _give_back(key: str, amount: int) -> None:
    if amount:
        try:
            cache.decr(key, amount)
        except Exception:  # gone with its second: nothing to give back to
            logger.debug("could not give back %s to %s", amount, key)


def _budget(session_id, lines: list[dict], encode) -> list[str]:
    """The frames (`encode(offset, line)`) of the first `lines` that fit in this second's budgets of the
    session: STREAM_MAX_LINES_PER_SECOND lines and STREAM_MAX_BYTES_PER_SECOND bytes of frames, on
    counters every process shares. The rest are dropped."""
    second = int(time.time())
    lines_key, bytes_key = f"stream-budget:{session_id}:{second}", f"stream-bytes:{session_id}:{second}"
    try:
        allowed = _reserve(lines_key, len(lines), settings.STREAM_MAX_LINES_PER_SECOND)
        frames = [encode(offset, line) for offset, line in enumerate(lines[:allowed])]
        sizes = [len(frame) for frame in frames]
        granted = _reserve(bytes_key, sum(sizes), settings.STREAM_MAX_BYTES_PER_SECOND)
    except Exception:
        logger.warning("stream budget counter unavailable; allowing the lines", exc_info=True)
        return [encode(offset, line) for offset, line in enumerate(lines)]
    fit = total = 0
    for size in sizes:
        if total + size > granted:
            break
        total += size
        fit += 1
    # What the byte budget cut is not sent, so it is not spent either.
    _give_back(bytes_key, sum(sizes) - total)
    _give_back(lines_key, allowed - fit)
    return frames[:fit]


def stream_push(*, session_id, agent_id, organization_id, lines: list[dict]) -> dict:
    """Accept validated lines for a session of this agent: filter, budget, count, fan out in order.

    Raises NotFound for an unknown session or another agent's, Gone once it is over.
    """
    with transaction.atomic():
        session = (
            StreamSession.objects.select_for_update()
            .filter(pk=session_id, organization_id=organization_id, agent_ref=agent_id)
            .first()
        )
        if session is None:
            raise NotFound("No such stream session for this agent")
        status = session.effective_status()
        if status in OPEN_STATUSES:
            result = _forward(session, lines)
    if status not in OPEN_STATUSES:
        if session.status in OPEN_STATUSES:
            # Over but not written down yet (its timeout passed, or nobody watches): write it now.
            sessions_expire_due(agent_id=agent_id)
        raise Gone("The stream session is over; stop streaming", details={"session_status": status})
    if session.status == SessionStatus.PENDING:
        _sessions_changed(agent_id)
    return result


def _forward(session: StreamSession, lines: list[dict]) -> dict:
    """stream_push's work on the locked row of an open session."""
    kept = [line for line in lines if matches_filters(session.filters, line)]
    first_seq = session.lines_sent + 1
    # Encoded once here, not once per viewer: the channel layer carries the frames as they go out,
    # and the byte budget counts them so.
    frames = _budget(
        session.pk, kept, lambda offset, line: json.dumps({"type": "log", "seq": first_seq + offset, **line})
    )
    forwarded, dropped = kept[: len(frames)], len(kept) - len(frames)
    size = sum(len(line["message"].encode("utf-8")) for line in forwarded)
    updates = {
        "lines_sent": F("lines_sent") + len(forwarded),
        "lines_dropped": F("lines_dropped") + dropped,
        "bytes_sent": F("bytes_sent") + size,
    }
    if session.status == SessionStatus.PENDING:
        updates["status"] = SessionStatus.ACTIVE
    StreamSession.objects.filter(pk=session.pk).update(**updates)
    # Sent while the row is locked, so that concurrent pushes reach viewers in seq order.
    if frames or dropped:
        _group_send(
            session_group(session.pk), {"type": "log.lines", "frames": frames, "dropped": dropped}, required=True
        )
    return {
        "accepted": len(forwarded),
        "filtered": len(lines) - len(kept),
        "dropped": dropped,
        "session_status": SessionStatus.ACTIVE,
    }


def clean_lines(raw) -> list[dict]:
    """Validate an agent's lines (≤ 1000); messages over 64 KiB are cut and flagged `truncated`, metadata
    over its bounds (MAX_METADATA_*) cut and flagged `metadata_truncated`. Raises Invalid (`logs`)."""
    if not isinstance(raw, list):
        raise Invalid(details={"logs": "logs must be a list"})
    if len(raw) > MAX_LINES_PER_PUSH:
        raise Invalid(details={"logs": f"at most {MAX_LINES_PER_PUSH} lines per push"})
    lines = []
    for index, item in enumerate(raw):
        if not isinstance(item, dict) or not isinstance(item.get("message"), str):
            raise Invalid(details={"logs": f"logs.{index}: each line needs a string message"})
        message, truncated = _truncate(item["message"])
        metadata = item.get("metadata") or {}
        if not isinstance(metadata, dict):
            raise Invalid(details={"logs": f"logs.{index}.metadata must be an object"})
        metadata, metadata_cut = bound_metadata(metadata)
        line = {
            "timestamp": str(item.get("timestamp") or timezone.now().isoformat().replace("+00:00", "Z"))[:64],
            "level": str(item.get("level") or "")[:32],
            "message": message,
            "source": str(item.get("source") or "")[:64],
            "metadata": metadata,
        }
        if truncated:
            line["truncated"] = True
        if metadata_cut:
            line["metadata_truncated"] = True
        lines.append(line)
    return lines
