import uuid
from datetime import timedelta

from django.conf import settings
from django.db import models
from django.db.models import Q
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


def idle_cutoff(now=None):
    """A session nobody has watched since before this is idle (STREAM_IDLE_SECONDS)."""
    return (now or timezone.now()) - timedelta(seconds=settings.STREAM_IDLE_SECONDS)


class StreamSessionQuerySet(models.QuerySet):
    def open(self, now=None):
        """Pending or active, not past their timeout and not idle (whether or not that was written down yet)."""
        now = now or timezone.now()
        return self.filter(status__in=OPEN_STATUSES, expires_at__gt=now).exclude(self._idle(now))

    def due_to_expire(self, now=None):
        return self.filter(status__in=OPEN_STATUSES, expires_at__lte=now or timezone.now())

    def due_to_idle(self, now=None):
        now = now or timezone.now()
        return self.filter(status__in=OPEN_STATUSES, expires_at__gt=now).filter(self._idle(now))

    @staticmethod
    def _idle(now) -> Q:
        cutoff = idle_cutoff(now)
        return Q(viewers_seen_at__lte=cutoff) | Q(viewers_seen_at__isnull=True, started_at__lte=cutoff)


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

    def effective_status(self, now=None) -> str:
        now = now or timezone.now()
        if self.status in OPEN_STATUSES and self.expires_at <= now:
            return SessionStatus.EXPIRED
        if self.status in OPEN_STATUSES and self.idle_since <= idle_cutoff(now):
            return SessionStatus.STOPPED  # nobody watching: end_reason idle once written down
        return self.status

    @property
    def idle_since(self):
        """When the last viewer was known to be connected, or the start when none ever came."""
        return self.viewers_seen_at or self.started_at
