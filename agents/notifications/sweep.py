"""Finding transitions: each agent's derived status against the state last announced for it.

Nothing is added to the heartbeat: an agent's status is derived in the query from its last
heartbeat and its reported status (agents.models.AgentQuerySet.with_status), and the sweep compares
it with its AgentAnnouncement row. Per batch of changed agents, ONE transaction locks their
announcement rows (`SELECT ... FOR UPDATE SKIP LOCKED` on PostgreSQL; SQLite's write transactions
are serial), derives their status again under the lock, writes each transition's event and one
delivery per matching enabled channel, and records what it announced. Another sender skips the
rows being announced, and once they commit it sees nothing left to announce: every transition is
announced once, however many senders run and whenever they restart.

What is announced (API.md section 11):
- `agent.offline`: an agent announced `online` or `error` is now offline (silent past
  AGENT_OFFLINE_AFTER, or it said it was going offline);
- `agent.online`: an agent announced `offline` is online again; not on its first heartbeat (an agent
  never seen is `unseen`, and becoming online from there is recorded silently);
- `agent.error`: its reported status became `error` (from any other state);
- `agent.config_failed`: it reported a failed apply of a hash other than the last failed hash
  announced (once per hash);
- `api_key.expiring`: an active key expires within 7 days (once per key and expiry; not for a key
  that a rotation replaced, whose end was chosen by whoever rotated it).

The first sweep that sees an agent (a new agent, or every agent when notifications are first
deployed) records its state without announcing it.
"""

import logging
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Exists, F, OuterRef, Q
from django.utils import timezone

from agents.models import (
    Agent,
    AgentAnnouncement,
    AgentStatus,
    AnnouncedStatus,
    ConfigState,
    EventType,
    KeyAnnouncement,
    NotificationChannel,
    NotificationDelivery,
    NotificationEvent,
)
from agents.notifications import events
from apikeys.models import APIKey
from logfleet.pruning import delete_in_chunks

logger = logging.getLogger("logfleet.notifications")

BATCH_SIZE = 500
EXPIRY_NOTICE = timedelta(days=7)
# Rows pruned at most per sweep (the rest in the next ones), so a sweep stays short.
PRUNE_PER_SWEEP = 10_000


@dataclass
class SweepResult:
    baselined: int = 0  # agents seen for the first time, recorded without an announcement
    transitions: int = 0  # agents whose announced state changed
    events: int = 0
    deliveries: int = 0
    pruned: int = 0

    def add(self, other: "SweepResult") -> None:
        for field in ("baselined", "transitions", "events", "deliveries", "pruned"):
            setattr(self, field, getattr(self, field) + getattr(other, field))


def sweep(*, batch_size: int = BATCH_SIZE) -> SweepResult:
    """One pass: new agents recorded, agent transitions and key expiries announced, old deliveries pruned."""
    result = SweepResult(baselined=_baseline_agents())
    candidates = _agent_candidates()
    for start in range(0, len(candidates), batch_size):
        result.add(_announce_agents(candidates[start : start + batch_size]))
    result.add(_announce_keys())
    result.pruned = prune()
    return result


# --- agents ------------------------------------------------------------------------------------


def _baseline_agents() -> int:
    """Record the state of agents that have no announcement yet, announcing nothing."""
    now = timezone.now()
    rows = (
        Agent.objects.with_status(now)
        .filter(announcement__isnull=True)
        .values_list("pk", "status", "last_heartbeat_at", "config_report_state", "config_report_hash")
    )
    baseline = [
        AgentAnnouncement(
            agent_id=pk,
            status=AnnouncedStatus.UNSEEN if last_heartbeat_at is None else status,
            config_failed_hash=report_hash if report_state == ConfigState.FAILED else "",
            updated_at=now,
        )
        for pk, status, last_heartbeat_at, report_state, report_hash in rows
    ]
    if not baseline:
        return 0
    try:
        # Another sender may record the same agents at the same time: the first one's rows stay.
        AgentAnnouncement.objects.bulk_create(baseline, batch_size=1000, ignore_conflicts=True)
    except IntegrityError:  # an agent deleted meanwhile: the next sweep records the others
        logger.info("an agent was deleted while its state was being recorded; retrying next sweep")
        return 0
    return len(baseline)


def _changed(queryset):
    """Agents (with `status` and their announcement as `announced`, `announced_hash`) whose derived
    state differs from what was announced."""
    return (
        queryset.filter(announcement__isnull=False)
        .annotate(announced=F("announcement__status"), announced_hash=F("announcement__config_failed_hash"))
        .filter(
            (~Q(status=F("announced")) & ~Q(announced=AnnouncedStatus.UNSEEN, status=AgentStatus.OFFLINE))
            | (
                Q(config_report_state=ConfigState.FAILED)
                & ~Q(config_report_hash="")
                & ~Q(config_report_hash=F("announced_hash"))
            )
        )
    )


def _agent_candidates() -> list:
    return list(_changed(Agent.objects.with_status(timezone.now())).order_by().values_list("pk", flat=True))


def transitions(*, announced: str, announced_hash: str, agent: Agent) -> tuple[list[str], str, str]:
    """(event types, state to record, failed hash to record) for an agent whose derived `status`
    is compared with what was announced."""
    status = agent.status
    types = []
    if status != announced:
        if status == AgentStatus.OFFLINE and announced in (AnnouncedStatus.ONLINE, AnnouncedStatus.ERROR):
            types.append(EventType.AGENT_OFFLINE)
        elif status == AgentStatus.ONLINE and announced == AnnouncedStatus.OFFLINE:
            types.append(EventType.AGENT_ONLINE)
        elif status == AgentStatus.ERROR:
            types.append(EventType.AGENT_ERROR)
    record_status = announced if (announced == AnnouncedStatus.UNSEEN and status == AgentStatus.OFFLINE) else status
    record_hash = announced_hash
    failed = agent.config_report_hash if agent.config_report_state == ConfigState.FAILED else ""
    if failed and failed != announced_hash:
        types.append(EventType.AGENT_CONFIG_FAILED)
        record_hash = failed
    return types, record_status, record_hash


def _occurred_at(event_type: str, agent: Agent, now):
    """When the transition happened: the heartbeat that brought it, or when the silence passed the limit."""
    last = agent.last_heartbeat_at
    if last is None:
        return now
    if event_type == EventType.AGENT_OFFLINE and agent.reported_status != AgentStatus.OFFLINE:
        return min(now, last + timedelta(seconds=settings.AGENT_OFFLINE_AFTER))
    return min(now, last)


def _data(event_type: str, announced: str, agent: Agent) -> dict:
    if event_type == EventType.AGENT_CONFIG_FAILED:
        return {
            "hash": agent.config_report_hash,
            "errors": list(agent.config_errors or [])[: events.MAX_CONFIG_ERRORS],
        }
    data = {"previous_status": announced}
    if event_type == EventType.AGENT_OFFLINE:
        data["reason"] = "reported" if agent.reported_status == AgentStatus.OFFLINE else "silent"
        data["offline_after_seconds"] = settings.AGENT_OFFLINE_AFTER
    return data


def _channels_by_organization(organization_ids) -> dict:
    channels = defaultdict(list)
    for channel in NotificationChannel.objects.filter(organization_id__in=organization_ids, enabled=True):
        channels[channel.organization_id].append(channel)
    return channels


class _Writes:
    """The events and deliveries of one transaction, written in bulk."""

    def __init__(self, now):
        self.now = now
        self.events: list[NotificationEvent] = []
        self.deliveries: list[NotificationDelivery] = []

    def add(self, *, channels, event_type: str, organization_id, occurred_at, labels=None, **parts) -> None:
        targets = [channel for channel in channels if events.wants(channel, event_type, labels)]
        if not targets:
            return
        event_id = uuid.uuid4()
        body = events.payload(
            event_id=event_id,
            event_type=event_type,
            occurred_at=occurred_at,
            organization_id=organization_id,
            agent=parts.get("agent_part"),
            api_key=parts.get("key_part"),
            data=parts.get("data"),
        )
        event = NotificationEvent(
            id=event_id,
            organization_id=organization_id,
            type=event_type,
            occurred_at=occurred_at,
            agent=parts.get("agent"),
            api_key=parts.get("api_key"),
            payload=body,
        )
        self.events.append(event)
        self.deliveries.extend(
            NotificationDelivery(channel=channel, event=event, next_attempt_at=self.now, created_at=self.now)
            for channel in targets
        )

    def save(self) -> tuple[int, int]:
        NotificationEvent.objects.bulk_create(self.events, batch_size=1000)
        NotificationDelivery.objects.bulk_create(self.deliveries, batch_size=1000)
        return len(self.events), len(self.deliveries)


@transaction.atomic
def _announce_agents(agent_ids: list) -> SweepResult:
    claimed = list(AgentAnnouncement.objects.select_for_update(skip_locked=True).filter(agent_id__in=agent_ids))
    if not claimed:
        return SweepResult()
    now = timezone.now()  # after the lock: what another sender committed meanwhile is seen
    agents = {agent.pk: agent for agent in Agent.objects.with_status(now).filter(pk__in=[a.agent_id for a in claimed])}
    channels = _channels_by_organization({agent.organization_id for agent in agents.values()})
    writes = _Writes(now)
    changed = []
    for announcement in claimed:
        agent = agents.get(announcement.agent_id)
        if agent is None:  # deleted: its announcement goes with it
            continue
        types, status, failed_hash = transitions(
            announced=announcement.status, announced_hash=announcement.config_failed_hash, agent=agent
        )
        if (status, failed_hash) == (announcement.status, announcement.config_failed_hash):
            continue  # announced by another sender since this one looked
        for event_type in types:
            writes.add(
                channels=channels.get(agent.organization_id, ()),
                event_type=event_type,
                organization_id=agent.organization_id,
                occurred_at=_occurred_at(event_type, agent, now),
                labels=agent.labels,
                agent=agent,
                agent_part=events.agent_part(agent, agent.status),
                data=_data(event_type, announcement.status, agent),
            )
        announcement.status, announcement.config_failed_hash, announcement.updated_at = status, failed_hash, now
        changed.append(announcement)
    # One UPDATE per distinct new state (a few), not Django's bulk_update (a CASE per row).
    by_state = defaultdict(list)
    for announcement in changed:
        by_state[(announcement.status, announcement.config_failed_hash)].append(announcement.agent_id)
    for (status, failed_hash), ids in by_state.items():
        AgentAnnouncement.objects.filter(agent_id__in=ids).update(
            status=status, config_failed_hash=failed_hash, updated_at=now
        )
    written_events, written_deliveries = writes.save()
    return SweepResult(transitions=len(changed), events=written_events, deliveries=written_deliveries)


# --- API keys ----------------------------------------------------------------------------------


def _expiring_keys(now):
    """Active keys that expire within EXPIRY_NOTICE, not replaced by a rotation, whose expiry was not announced."""
    return (
        APIKey.objects.filter(revoked_at__isnull=True, expires_at__gt=now, expires_at__lte=now + EXPIRY_NOTICE)
        .exclude(Exists(APIKey.objects.filter(replaces_id=OuterRef("pk"))))
        .annotate(announced=F("expiry_announcement__expiring_for"))
        .filter(Q(announced__isnull=True) | Q(announced__lt=F("expires_at")) | Q(announced__gt=F("expires_at")))
    )


def _announce_keys() -> SweepResult:
    key_ids = list(_expiring_keys(timezone.now()).order_by().values_list("pk", flat=True))
    if not key_ids:
        return SweepResult()
    try:
        KeyAnnouncement.objects.bulk_create(
            [KeyAnnouncement(api_key_id=pk) for pk in key_ids], batch_size=1000, ignore_conflicts=True
        )
    except IntegrityError:  # a key deleted meanwhile (with its organization): the next sweep goes on
        return SweepResult()
    result = SweepResult()
    for start in range(0, len(key_ids), BATCH_SIZE):
        result.add(_announce_key_batch(key_ids[start : start + BATCH_SIZE]))
    return result


@transaction.atomic
def _announce_key_batch(key_ids: list) -> SweepResult:
    claimed = list(KeyAnnouncement.objects.select_for_update(skip_locked=True).filter(api_key_id__in=key_ids))
    if not claimed:
        return SweepResult()
    now = timezone.now()
    keys = {key.pk: key for key in _expiring_keys(now).filter(pk__in=[a.api_key_id for a in claimed])}
    channels = _channels_by_organization({key.organization_id for key in keys.values()})
    writes = _Writes(now)
    changed = []
    for announcement in claimed:
        key = keys.get(announcement.api_key_id)
        if key is None or announcement.expiring_for == key.expires_at:
            continue
        writes.add(
            channels=channels.get(key.organization_id, ()),
            event_type=EventType.API_KEY_EXPIRING,
            organization_id=key.organization_id,
            occurred_at=now,
            api_key=key,
            key_part=events.key_part(key),
            data={"expires_in_seconds": int((key.expires_at - now).total_seconds())},
        )
        announcement.expiring_for, announcement.updated_at = key.expires_at, now
        changed.append(announcement)
    for announcement in changed:  # each key has its own expiry; keys expire far less often than agents change
        KeyAnnouncement.objects.filter(pk=announcement.pk).update(
            expiring_for=announcement.expiring_for, updated_at=now
        )
    written_events, written_deliveries = writes.save()
    return SweepResult(events=written_events, deliveries=written_deliveries)


# --- retention ---------------------------------------------------------------------------------


def prune(*, limit: int = PRUNE_PER_SWEEP) -> int:
    """Delete deliveries (with their attempts) and events older than NOTIFICATION_RETENTION_DAYS, at most
    `limit` of each per call, in short transactions. How many rows went."""
    cutoff = timezone.now() - timedelta(days=settings.NOTIFICATION_RETENTION_DAYS)
    old_deliveries = NotificationDelivery.objects.filter(created_at__lt=cutoff)
    old_events = NotificationEvent.objects.filter(occurred_at__lt=cutoff).exclude(
        Exists(NotificationDelivery.objects.filter(event_id=OuterRef("pk")))
    )
    deleted = 0
    for queryset in (old_deliveries, old_events):  # deliveries first: then their events have none left
        ids = list(queryset.order_by().values_list("pk", flat=True)[:limit])
        if ids:
            deleted += delete_in_chunks(queryset.model.objects.filter(pk__in=ids), chunk_size=1000)
    return deleted
