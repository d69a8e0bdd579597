"""Sending: claim due deliveries, send them (signed webhooks, email), record every attempt.

A sender claims a batch in one short transaction (`SELECT ... FOR UPDATE SKIP LOCKED` on
PostgreSQL): each delivery gets the sender's lease token and its `next_attempt_at` moves to the
lease's end, so no other sender takes it meanwhile. The sends run outside any transaction, on a
pool of threads (a slow receiver holds up one thread, not the others); their outcomes are recorded
in one transaction, each only while the sender still holds its lease. A sender that dies loses its
lease when it runs out and another sender tries again: the receiver may then get an event twice
(the event `id` is the idempotency key), never an event that did not happen.

Retries: a failed attempt is tried again after 30 s, 1 min, 2 min, ... at most 1 h apart, for 24 h
after the delivery was created; then it is `failed`.
"""

import json
import logging
import time
import uuid
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone

from agents.models import (
    ChannelKind,
    DeliveryStatus,
    EventType,
    NotificationAttempt,
    NotificationDelivery,
)
from agents.notifications import events, secrets, webhooks

logger = logging.getLogger("logfleet.notifications")

RETRY_FOR = timedelta(hours=24)
FIRST_RETRY_SECONDS = 30
MAX_RETRY_SECONDS = 3600
DEFAULT_WORKERS = 8
# Deliveries claimed at once: 4 per sender thread, and at least 100 (each claim and each record is a
# transaction of its own).
MIN_BATCH = 100
ROUNDS_PER_BATCH = 4


def retry_delay(attempts: int) -> int:
    """Seconds before the next attempt after `attempts` failed ones: 30, 60, 120, ... at most 3600."""
    return min(FIRST_RETRY_SECONDS * 2 ** max(attempts - 1, 0), MAX_RETRY_SECONDS)


@dataclass(frozen=True)
class Outcome:
    delivered: bool
    status: int | None = None
    body: str = ""
    error: str = ""
    final: bool = False  # no point in trying again
    duration_ms: int = 0


@dataclass
class DeliveryResult:
    sent: int = 0
    delivered: int = 0
    retrying: int = 0
    failed: int = 0
    seconds: float = 0.0
    lost_leases: int = 0

    def add(self, other: "DeliveryResult") -> None:
        for name in ("sent", "delivered", "retrying", "failed", "lost_leases"):
            setattr(self, name, getattr(self, name) + getattr(other, name))


def batch_size(workers: int) -> int:
    return max(MIN_BATCH, workers * ROUNDS_PER_BATCH)


def _lease_seconds(limit: int, workers: int) -> int:
    # Every round of a batch may take a whole timeout, plus time to resolve and to record.
    rounds = -(-limit // workers)
    return rounds * (settings.WEBHOOK_TIMEOUT + 5) + 60


def claim(*, limit: int, workers: int) -> tuple[list[NotificationDelivery], uuid.UUID]:
    """Take up to `limit` due deliveries (oldest due first) under a new lease, long enough for
    `workers` threads to send them all."""
    token = uuid.uuid4()
    with transaction.atomic():
        now = timezone.now()
        due = list(
            NotificationDelivery.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("channel", "event")
            .filter(status=DeliveryStatus.PENDING, next_attempt_at__lte=now)
            .order_by("next_attempt_at", "id")[:limit]
        )
        if due:
            NotificationDelivery.objects.filter(pk__in=[delivery.pk for delivery in due]).update(
                lease_token=token, next_attempt_at=now + timedelta(seconds=_lease_seconds(limit, workers))
            )
    return due, token


@dataclass(frozen=True)
class _Job:
    """Everything one send needs, read before the threads start (they never touch the database)."""

    kind: str
    target: str
    body: bytes = b""
    secret: str | None = None
    event_type: str = ""
    event_id: str = ""
    subject: str = ""
    message: str = ""
    refused: str = ""  # why it is not sent at all


def _email_message(payload: dict) -> tuple[str, str]:
    subject = f"[LogFleet] {events.subject(payload)}"
    lines = [events.subject(payload) + ".", ""]
    agent, key = payload.get("agent"), payload.get("api_key")
    if agent:
        lines += [
            f"Agent: {agent['name']}",
            f"Status: {agent['status']}",
            f"Last heartbeat: {agent['last_heartbeat_at'] or 'never'}",
            f"Labels: {', '.join(f'{k}={v}' for k, v in sorted(agent['labels'].items())) or 'none'}",
        ]
        errors = payload.get("data", {}).get("errors") or []
        lines += [f"Error: {error.get('message', '')}" for error in errors[:5] if isinstance(error, dict)]
        lines += ["", f"Open the agent: {settings.PUBLIC_URL}/agents/{agent['id']}"]
    elif key:
        lines += [f"Key: {key['name']} ({key['prefix']}…)", f"Expires at: {key['expires_at']}"]
        lines += ["", f"Rotate it before then: {settings.PUBLIC_URL}/keys"]
    else:
        lines += [payload.get("data", {}).get("message", ""), "", f"Channels: {settings.PUBLIC_URL}/notifications"]
    lines += ["", f"Event {payload['id']} at {payload['occurred_at']}."]
    return subject, "\n".join(lines) + "\n"


def _prepare(delivery: NotificationDelivery, secrets_read: dict) -> _Job:
    channel, event = delivery.channel, delivery.event
    if not channel.enabled and event.type != EventType.TEST:
        return _Job(kind=channel.kind, target="", refused="the channel was disabled before the event was sent")
    if channel.kind == ChannelKind.EMAIL:
        subject, message = _email_message(event.payload)
        return _Job(kind=ChannelKind.EMAIL, target=channel.email, subject=subject, message=message)
    if channel.pk not in secrets_read:  # once per channel and batch
        secrets_read[channel.pk] = secrets.decrypt(channel.secret_encrypted)
    secret = secrets_read[channel.pk]
    if secret is None:
        return _Job(
            kind=channel.kind, target="", refused="the signing secret cannot be read (WEBHOOK_SECRET_KEY changed)"
        )
    return _Job(
        kind=ChannelKind.WEBHOOK,
        target=channel.url,
        body=json.dumps(event.payload, separators=(",", ":"), ensure_ascii=False).encode(),
        secret=secret,
        event_type=event.type,
        event_id=str(event.pk),
    )


def _send(job: _Job) -> Outcome:
    if job.refused:
        return Outcome(delivered=False, error=job.refused, final=True)
    started = time.monotonic()
    if job.kind == ChannelKind.EMAIL:
        try:
            send_mail(job.subject, job.message, settings.DEFAULT_FROM_EMAIL, [job.target], fail_silently=False)
            outcome = Outcome(delivered=True)
        except Exception as exc:  # whatever the mail backend raises is this attempt's failure
            outcome = Outcome(
                delivered=False, error=webhooks.storable(f"{type(exc).__name__}: {exc}", webhooks.ERROR_MAX)
            )
    else:
        timestamp = int(time.time())
        answer = webhooks.post(
            job.target,
            body=job.body,
            headers=webhooks.headers(
                secret=job.secret, event_type=job.event_type, event_id=job.event_id, body=job.body, timestamp=timestamp
            ),
            timeout=settings.WEBHOOK_TIMEOUT,
        )
        error = answer.error or ("" if answer.ok else f"answered HTTP {answer.status}")
        outcome = Outcome(delivered=answer.ok, status=answer.status, body=answer.body, error=error)
    return Outcome(**{**outcome.__dict__, "duration_ms": int((time.monotonic() - started) * 1000)})


def _record(deliveries: list[NotificationDelivery], token: uuid.UUID, outcomes: list[Outcome]) -> DeliveryResult:
    """Write each outcome and its attempt, for the deliveries this sender still holds the lease of;
    the deliveries with the same outcome in one UPDATE (a batch that went well is one statement)."""
    result = DeliveryResult()
    with transaction.atomic():
        now = timezone.now()
        # Locked until the commit: a lease cannot run out and be taken between this check and the writes.
        held = set(
            NotificationDelivery.objects.select_for_update()
            .filter(pk__in=[delivery.pk for delivery in deliveries], lease_token=token)
            .values_list("pk", flat=True)
        )
        groups: dict[tuple, list] = defaultdict(list)
        attempts = []
        for delivery, outcome in zip(deliveries, outcomes, strict=True):
            if delivery.pk not in held:  # the lease ran out and another sender took it: it records its own
                result.lost_leases += 1
                continue
            number = delivery.attempts + 1
            if outcome.delivered:
                status, next_attempt_at, delivered_at = DeliveryStatus.DELIVERED, None, now
            elif outcome.final or now - delivery.created_at >= RETRY_FOR:
                status, next_attempt_at, delivered_at = DeliveryStatus.FAILED, None, None
            else:
                status, next_attempt_at = DeliveryStatus.PENDING, now + timedelta(seconds=retry_delay(number))
                delivered_at = None
            key = (status, number, next_attempt_at, delivered_at, outcome.status, outcome.error, outcome.body)
            groups[key].append(delivery.pk)
            attempts.append(
                NotificationAttempt(
                    delivery_id=delivery.pk,
                    number=number,
                    attempted_at=now,
                    duration_ms=outcome.duration_ms,
                    response_status=outcome.status,
                    error=outcome.error,
                    response_body=outcome.body,
                )
            )
            result.sent += 1
            result.delivered += status == DeliveryStatus.DELIVERED
            result.failed += status == DeliveryStatus.FAILED
            result.retrying += status == DeliveryStatus.PENDING
            if not outcome.delivered:
                logger.warning(
                    "notification %s to channel %s: attempt %d failed (%s)%s",
                    delivery.event_id,
                    delivery.channel_id,
                    number,
                    outcome.error,
                    "; giving up" if status == DeliveryStatus.FAILED else "",
                )
        for (status, number, next_attempt_at, delivered_at, response_status, error, body), ids in groups.items():
            NotificationDelivery.objects.filter(pk__in=ids).update(
                status=status,
                attempts=number,
                next_attempt_at=next_attempt_at,
                lease_token=None,
                last_attempt_at=now,
                response_status=response_status,
                error=error,
                response_body=body,
                delivered_at=delivered_at,
            )
        NotificationAttempt.objects.bulk_create(attempts, batch_size=500)
    return result


def deliver_due(*, workers: int = DEFAULT_WORKERS) -> DeliveryResult:
    """Send every delivery that is due, batch after batch, until none is left."""
    total = DeliveryResult()
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sendalerts") as pool:
        while True:
            deliveries, token = claim(limit=batch_size(workers), workers=workers)
            if not deliveries:
                break
            secrets_read = {}
            jobs = [_prepare(delivery, secrets_read) for delivery in deliveries]
            outcomes = list(pool.map(_send, jobs))
            total.add(_record(deliveries, token, outcomes))
    total.seconds = time.monotonic() - started
    return total
