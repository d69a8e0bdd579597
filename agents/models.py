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
