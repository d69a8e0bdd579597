import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from logfleet import clock


class APIKeyStatus(models.TextChoices):
    ACTIVE = "active"
    EXPIRED = "expired"
    REVOKED = "revoked"


class APIKeyQuerySet(models.QuerySet):
    def with_status(self, status: str, now=None):
        now = now or timezone.now()
        if status == APIKeyStatus.REVOKED:
            return self.filter(revoked_at__isnull=False)
        if status == APIKeyStatus.EXPIRED:
            return self.filter(revoked_at__isnull=True, expires_at__lte=now)
        return self.filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now), revoked_at__isnull=True)


class APIKey(models.Model):
    """A credential for edge agents (and Prometheus). The secret itself is never stored."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=128)
    key_prefix = models.CharField(max_length=24, db_index=True)
    key_hash = models.CharField(max_length=64)
    permissions = models.JSONField(default=list)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    replaces = models.ForeignKey("self", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    created_at = models.DateTimeField(default=clock.now, editable=False)

    objects = APIKeyQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "API key"
        indexes = [models.Index(fields=["organization", "-created_at"])]

    def __str__(self):
        return f"{self.name} ({self.key_prefix}…)"

    def status_at(self, now) -> str:
        if self.revoked_at is not None:
            return APIKeyStatus.REVOKED
        if self.expires_at is not None and self.expires_at <= now:
            return APIKeyStatus.EXPIRED
        return APIKeyStatus.ACTIVE

    @property
    def status(self) -> str:
        return self.status_at(timezone.now())

    @property
    def phase(self) -> str:
        """The status as the dashboard shows it: `rotating` for an active key that a newer key
        replaces (it works until its grace period ends). Needs the `rotated` annotation of
        apikeys.selectors.api_key_list."""
        status = self.status
        return "rotating" if status == APIKeyStatus.ACTIVE and self.rotated else status
