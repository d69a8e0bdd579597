import uuid
from datetime import timedelta

from django.conf import settings
from django.db import models
from django.db.models import Case, F, Q, Value, When
from django.utils import timezone

from agents import config as agent_config
from logfleet import clock


class AgentStatus(models.TextChoices):
    ONLINE = "online"
    OFFLINE = "offline"
    ERROR = "error"


class ConfigState(models.TextChoices):
    APPLIED = "applied"
    FAILED = "failed"


# What the agent says of each log source in its heartbeat.
SOURCE_STATES = ("reading", "missing", "permission_denied", "error")


class ConfigStatus(models.TextChoices):
    IN_SYNC = "in_sync"
    PENDING = "pending"
    FAILED = "failed"
    UNKNOWN = "unknown"


class AgentQuerySet(models.QuerySet):
    def with_status(self, now=None):
        """Annotate `status`, derived in the query from the last heartbeat and the reported status.

        Never stored, so it is never stale and `?status=` filters and counts are exact.
        """
        cutoff = (now or timezone.now()) - timedelta(seconds=settings.AGENT_OFFLINE_AFTER)
        recent = Q(last_heartbeat_at__gte=cutoff)
        return self.annotate(
            status=Case(
                When(recent & Q(reported_status=AgentStatus.ONLINE), then=Value(AgentStatus.ONLINE.value)),
                When(recent & Q(reported_status=AgentStatus.ERROR), then=Value(AgentStatus.ERROR.value)),
                default=Value(AgentStatus.OFFLINE.value),
                output_field=models.CharField(),
            )
        )

    def with_config_status(self):
        """Alias `config_state`: Agent.config_status computed in the query, for counts and filters
        (`.filter(config_state="failed")`) over a whole fleet. The two must say the same."""
        return self.alias(
            config_state=Case(
                When(config_report_state="", then=Value(ConfigStatus.UNKNOWN.value)),
                When(
                    Q(applied_config_hash=F("config_hash")) & ~Q(applied_config_hash=""),
                    then=Value(ConfigStatus.IN_SYNC.value),
                ),
                When(
                    config_report_state=ConfigState.FAILED,
                    config_report_hash=F("config_hash"),
                    then=Value(ConfigStatus.FAILED.value),
                ),
                default=Value(ConfigStatus.PENDING.value),
                output_field=models.CharField(),
            )
        )


class Agent(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="agents")
    name = models.CharField(max_length=128)
    description = models.TextField(blank=True, default="", max_length=1024)
    labels = models.JSONField(default=dict, blank=True)

    # What the agent reports about itself (registration and heartbeats).
    # null until the agent first reports (the API shows null, not an empty string)
    reported_status = models.CharField(max_length=16, choices=AgentStatus.choices, null=True, blank=True)  # noqa: DJ001
    version = models.CharField(max_length=64, blank=True, default="")
    hostname = models.CharField(max_length=255, blank=True, default="")
    os = models.CharField(max_length=128, blank=True, default="")
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    system_metrics = models.JSONField(default=dict, blank=True)
    last_heartbeat_at = models.DateTimeField(null=True, blank=True)
    registered_at = models.DateTimeField(null=True, blank=True)
    registered_by_key = models.ForeignKey(
        "apikeys.APIKey", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    # Its configuration (versioned, optimistic locking) and what it should run as a whole.
    config = models.JSONField(default=agent_config.default_config)
    config_version = models.PositiveIntegerField(default=1)
    config_updated_at = models.DateTimeField(default=clock.now)
    config_hash = models.CharField(max_length=64, blank=True, default="")

    # The agent's last report about applying its configuration.
    applied_config_hash = models.CharField(max_length=64, null=True, blank=True)  # noqa: DJ001
    config_report_hash = models.CharField(max_length=64, blank=True, default="")
    config_report_state = models.CharField(max_length=16, choices=ConfigState.choices, blank=True, default="")
    config_errors = models.JSONField(default=list, blank=True)
    # Each log source as the agent last reported it: {name, path, state, lines, bytes, error?}.
    source_states = models.JSONField(default=list, blank=True)

    created_at = models.DateTimeField(default=clock.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    objects = AgentQuerySet.as_manager()

    class Meta:
        ordering = ["name", "id"]
        constraints = [models.UniqueConstraint(fields=["organization", "name"], name="agents_agent_unique_name")]
        indexes = [
            models.Index(fields=["organization", "last_heartbeat_at"]),
            models.Index(fields=["organization", "created_at"]),
        ]

    def __str__(self):
        return self.name

    @property
    def config_status(self) -> str:
        if not self.config_report_state:
            return ConfigStatus.UNKNOWN
        if self.applied_config_hash and self.applied_config_hash == self.config_hash:
            return ConfigStatus.IN_SYNC
        if self.config_report_state == ConfigState.FAILED and self.config_report_hash == self.config_hash:
            return ConfigStatus.FAILED
        return ConfigStatus.PENDING


# --- notifications (API.md section 11) -------------------------------------------------------


class ChannelKind(models.TextChoices):
    WEBHOOK = "webhook"
    EMAIL = "email"


class EventType(models.TextChoices):
    AGENT_OFFLINE = "agent.offline"
    AGENT_ONLINE = "agent.online"
    AGENT_ERROR = "agent.error"
    AGENT_CONFIG_FAILED = "agent.config_failed"
    API_KEY_EXPIRING = "api_key.expiring"
    TEST = "test"


# What a channel may subscribe to (a `test` event is sent on request, to one channel).
SUBSCRIBABLE_EVENTS = [choice for choice in EventType.values if choice != EventType.TEST]


class DeliveryStatus(models.TextChoices):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


class NotificationChannel(models.Model):
    """Where an organization hears about its agents: a webhook (signed) or an email address.

    The webhook's signing secret is kept encrypted (agents.notifications.secrets): it has to be
    read again to sign each delivery, so it cannot be only a hash."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(
        "accounts.Organization", on_delete=models.CASCADE, related_name="notification_channels"
    )
    name = models.CharField(max_length=128)
    kind = models.CharField(max_length=16, choices=ChannelKind.choices)
    url = models.CharField(max_length=2048, blank=True, default="")
    email = models.CharField(max_length=254, blank=True, default="")
    events = models.JSONField(default=list)
    agent_selector = models.JSONField(default=dict, blank=True)
    enabled = models.BooleanField(default=True)
    secret_encrypted = models.TextField(blank=True, default="", editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=clock.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "id"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "name"], name="agents_notificationchannel_unique_name")
        ]

    def __str__(self):
        return self.name


class NotificationEvent(models.Model):
    """One transition (or a test), announced once; `id` is the webhook's idempotency key and `payload`
    the webhook body, the same on every attempt."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="+")
    type = models.CharField(max_length=32, choices=EventType.choices)
    occurred_at = models.DateTimeField(default=clock.now)
    agent = models.ForeignKey(Agent, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    api_key = models.ForeignKey("apikeys.APIKey", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    payload = models.JSONField(default=dict)

    class Meta:
        ordering = ["-occurred_at", "-id"]
        indexes = [models.Index(fields=["organization", "-occurred_at"])]

    def __str__(self):
        return f"{self.type} {self.id}"


class NotificationDelivery(models.Model):
    """One event to one channel: pending until an attempt succeeds, or `failed` once retries end.

    A sender claims a due delivery by taking a lease (`lease_token`, with `next_attempt_at` moved to
    the lease's end) in a short transaction; it records the attempt only while it still holds that
    lease, so two senders never both record one, and a sender that died is replaced when its lease
    runs out."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    channel = models.ForeignKey(NotificationChannel, on_delete=models.CASCADE, related_name="deliveries")
    event = models.ForeignKey(NotificationEvent, on_delete=models.CASCADE, related_name="deliveries")
    status = models.CharField(max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True, default=clock.now)
    lease_token = models.UUIDField(null=True, blank=True, editable=False)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    response_status = models.PositiveIntegerField(null=True, blank=True)
    error = models.CharField(max_length=1024, blank=True, default="")
    response_body = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(default=clock.now, editable=False)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "notification deliveries"
        constraints = [models.UniqueConstraint(fields=["channel", "event"], name="agents_delivery_once_per_channel")]
        indexes = [
            models.Index(fields=["channel", "-created_at"]),
            models.Index(fields=["next_attempt_at"], condition=Q(status="pending"), name="agents_delivery_due"),
            models.Index(fields=["created_at"]),
        ]

    def __str__(self):
        return f"{self.event_id} → {self.channel_id}"


class NotificationAttempt(models.Model):
    """Every attempt of a delivery, as it went: the answer's status and (truncated) body, or the error."""

    delivery = models.ForeignKey(NotificationDelivery, on_delete=models.CASCADE, related_name="attempt_log")
    number = models.PositiveIntegerField()
    attempted_at = models.DateTimeField(default=clock.now)
    duration_ms = models.PositiveIntegerField(default=0)
    response_status = models.PositiveIntegerField(null=True, blank=True)
    error = models.CharField(max_length=1024, blank=True, default="")
    response_body = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["delivery", "number"]

    def __str__(self):
        return f"{self.delivery_id} #{self.number}"


class AnnouncedStatus(models.TextChoices):
    """What was last announced of an agent: its status, or `unseen` before its first heartbeat."""

    UNSEEN = "unseen"
    ONLINE = "online"
    OFFLINE = "offline"
    ERROR = "error"


class AgentAnnouncement(models.Model):
    """The state last announced for an agent, which the sender compares with its derived status.

    Written only by `manage.py sendalerts` (agents.notifications.sweep), never by a heartbeat; the
    sender locks the row (SKIP LOCKED) while it announces a change, so a change is announced once
    whatever the number of senders."""

    agent = models.OneToOneField(Agent, on_delete=models.CASCADE, primary_key=True, related_name="announcement")
    status = models.CharField(max_length=16, choices=AnnouncedStatus.choices)
    config_failed_hash = models.CharField(max_length=64, blank=True, default="")
    updated_at = models.DateTimeField(default=clock.now)

    def __str__(self):
        return f"{self.agent_id}: {self.status}"


class KeyAnnouncement(models.Model):
    """The expiry last announced for an API key (`api_key.expiring`, once per key and expiry). Kept
    here, not in apikeys, which does not know of notifications."""

    api_key = models.OneToOneField(
        "apikeys.APIKey", on_delete=models.CASCADE, primary_key=True, related_name="expiry_announcement"
    )
    expiring_for = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(default=clock.now)

    def __str__(self):
        return f"{self.api_key_id}: {self.expiring_for}"
