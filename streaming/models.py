import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.db import models
from django.db.models import DateTimeField, ExpressionWrapper, F, Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from logfleet import clock


class SessionStatus(models.TextChoices):
    PENDING = "pending"
    ACTIVE = "active"
    STOPPED = "stopped"
    EXPIRED = "expired"


class EndReason(models.TextChoices):
    STOPPED = "stopped"
    TIMEOUT = "timeout"
    AGENT_DELETED = "agent_deleted"
    IDLE = "idle"


OPEN_STATUSES = (SessionStatus.PENDING, SessionStatus.ACTIVE)


def idle_time() -> timedelta:
    return timedelta(seconds=settings.STREAM_IDLE_SECONDS)


class StreamSessionQuerySet(models.QuerySet):
    """The session's state as of `now`, derived in the query like `StreamSession.effective()`: a
    session stored as open is over once its timeout passed (expired) or nobody watched it for
    STREAM_IDLE_SECONDS (stopped, idle), whichever came first, whether or not that was written down."""

    def _ends(self, now):
        idle_at = ExpressionWrapper(Coalesce("viewers_seen_at", "started_at") + idle_time(), DateTimeField())
        return (
            self.annotate(_idle_at=idle_at).filter(status__in=OPEN_STATUSES),
            Q(expires_at__lte=now),
            Q(_idle_at__lte=now),
        )

    def open(self, now=None):
        """Pending or active, and neither past its timeout nor idle."""
        queryset, expired, idle = self._ends(now or timezone.now())
        return queryset.exclude(expired | idle)

    def over_unwritten(self, now=None):
        """Stored as open but over (to be written down by streaming.services.sessions_expire_due)."""
        queryset, expired, idle = self._ends(now or timezone.now())
        return queryset.filter(expired | idle)

    def with_effective_status(self, status: str, now=None):
        """Sessions whose effective status is `status` (a stored or a derived one)."""
        now = now or timezone.now()
        if status in OPEN_STATUSES:
            return self.open(now).filter(status=status)
        queryset, expired, idle = self._ends(now)
        first_expired = expired & (~idle | Q(expires_at__lte=F("_idle_at")))
        first_idle = idle & (~expired | Q(_idle_at__lt=F("expires_at")))
        derived = queryset.filter(first_expired if status == SessionStatus.EXPIRED else first_idle)
        if status not in (SessionStatus.EXPIRED, SessionStatus.STOPPED):
            derived = queryset.none()
        return self.filter(Q(status=status) | Q(pk__in=derived.values("pk")))


class StreamSession(models.Model):
    """Someone watching an agent's live log lines. Kept after it ends (the history is the record)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="+")
    # The agent may be deleted; its sessions stay in the history with the agent's id.
    agent = models.ForeignKey("agents.Agent", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    agent_ref = models.UUIDField(db_index=True)
    status = models.CharField(max_length=16, choices=SessionStatus.choices, default=SessionStatus.PENDING)
    filters = models.JSONField(default=dict, blank=True)
    filter_query = models.TextField(null=True, blank=True, max_length=4096)  # noqa: DJ001 (null: not given)
    timeout_seconds = models.PositiveIntegerField()
    started_at = models.DateTimeField(default=clock.now)
    expires_at = models.DateTimeField()
    stopped_at = models.DateTimeField(null=True, blank=True)
    end_reason = models.CharField(max_length=16, choices=EndReason.choices, null=True, blank=True)  # noqa: DJ001
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_by_ref = models.UUIDField(null=True, blank=True)
    lines_sent = models.BigIntegerField(default=0)
    lines_dropped = models.BigIntegerField(default=0)
    bytes_sent = models.BigIntegerField(default=0)
    # Refreshed by every connected viewer (streaming.consumers) and when one leaves; a session with
    # none for STREAM_IDLE_SECONDS ends with end_reason "idle".
    viewers_seen_at = models.DateTimeField(null=True, blank=True)

    objects = StreamSessionQuerySet.as_manager()

    class Meta:
        ordering = ["-started_at", "-id"]
        indexes = [
            models.Index(fields=["organization", "-started_at"]),
            models.Index(fields=["agent_ref", "status"]),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(timeout_seconds__gte=1, timeout_seconds__lte=3600), name="streaming_timeout_bounds"
            ),
        ]

    def __str__(self):
        return f"stream {self.id} ({self.status})"

    def effective(self, now=None) -> tuple[str, str | None, datetime | None]:
        """(status, end_reason, stopped_at) as of `now`: a session stored as open is over once its
        timeout passed or nobody watched it for STREAM_IDLE_SECONDS, whichever came first."""
        if self.status in OPEN_STATUSES:
            now = now or timezone.now()
            idle_at = self.idle_since + idle_time()
            ends = [
                (self.expires_at, SessionStatus.EXPIRED, EndReason.TIMEOUT),
                (idle_at, SessionStatus.STOPPED, EndReason.IDLE),
            ]
            passed = [end for end in ends if end[0] <= now]
            if passed:
                at, status, reason = min(passed)
                return status, reason, at
        return self.status, self.end_reason, self.stopped_at

    def effective_status(self, now=None) -> str:
        return self.effective(now)[0]

    @property
    def idle_since(self):
        """When the last viewer was known to be connected, or the start when none ever came."""
        return self.viewers_seen_at or self.started_at
