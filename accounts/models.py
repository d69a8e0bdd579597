import uuid

from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.auth.models import PermissionsMixin
from django.db import models

from logfleet import clock


class Organization(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=150)
    slug = models.SlugField(max_length=160, unique=True)
    created_at = models.DateTimeField(default=clock.now, editable=False)

    class Meta:
        ordering = ["name", "id"]

    def __str__(self):
        return self.name


class Role(models.TextChoices):
    ADMIN = "admin"
    MEMBER = "member"
    VIEWER = "viewer"


class UserStatus(models.TextChoices):
    ACTIVE = "active"
    INVITED = "invited"
    DEACTIVATED = "deactivated"


class UserManager(BaseUserManager):
    use_in_migrations = True

    def get_by_natural_key(self, username):
        return self.get(email=username.lower())

    def create_user(self, email, password=None, **extra):
        user = self.model(email=self.normalize_email(email).lower(), **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_superuser(self, email, password=None, **extra):
        """An operator account for the Django admin (it belongs to no organization)."""
        extra.setdefault("is_staff", True)
        extra.setdefault("is_superuser", True)
        extra.setdefault("name", email.split("@")[0])
        return self.create_user(email, password, **extra)


class User(AbstractBaseUser, PermissionsMixin):
    """A person. Logs in with email; belongs to one organization with one role.

    Operators created with `createsuperuser` have no organization: they use the Django admin,
    not the API.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    email = models.EmailField(max_length=254, unique=True, help_text="Stored lower-case: logins are case-insensitive.")
    name = models.CharField(max_length=150)
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="users", null=True, blank=True
    )
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MEMBER)
    status = models.CharField(max_length=16, choices=UserStatus.choices, default=UserStatus.ACTIVE)
    is_staff = models.BooleanField(default=False, help_text="May log into the Django admin.")
    created_at = models.DateTimeField(default=clock.now, editable=False)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self):
        return self.email

    @property
    def is_active(self) -> bool:
        return self.status == UserStatus.ACTIVE

    def save(self, *args, **kwargs):
        self.email = self.email.lower()
        super().save(*args, **kwargs)


class AuthSession(models.Model):
    """The tokens of one login (or registration) and its refreshes.

    Every access and refresh token carries the session id (`sid`); a token is only good while
    its session is open, so logout and password changes end tokens at once. Only the newest
    refresh token (`refresh_jti`) of a session is accepted, which makes refresh tokens rotate.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="auth_sessions")
    refresh_jti = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=clock.now)
    refreshed_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    end_reason = models.CharField(max_length=32, blank=True)

    class Meta:
        ordering = ["-created_at", "id"]
        indexes = [models.Index(fields=["user", "ended_at"])]

    def __str__(self):
        return f"session {self.id} of {self.user_id}"


class PasswordTokenPurpose(models.TextChoices):
    RESET = "reset"
    INVITE = "invite"


class PasswordToken(models.Model):
    """A single-use token that lets its holder set a password (reset or invitation).

    Only the SHA-256 of the token is stored.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="password_tokens")
    purpose = models.CharField(max_length=16, choices=PasswordTokenPurpose.choices)
    token_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=clock.now)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "id"]

    def __str__(self):
        return f"{self.purpose} token for {self.user_id}"


class ActorType(models.TextChoices):
    USER = "user"
    API_KEY = "api_key"
    CLI = "cli"
    SYSTEM = "system"


# The actions the audit log records (API.md section 9), for the dashboard's filter; a test keeps it
# in step with every `audit_record(action=...)` of the code.
AUDIT_ACTIONS = (
    "auth.login",
    "auth.login_failed",
    "auth.logout",
    "auth.password_changed",
    "auth.password_reset",
    "organization.updated",
    "member.invited",
    "member.updated",
    "member.deleted",
    "api_key.created",
    "api_key.rotated",
    "api_key.revoked",
    "agent.created",
    "agent.registered",
    "agent.updated",
    "agent.deleted",
    "agent_config.updated",
    "metric_config.created",
    "metric_config.updated",
    "metric_config.deleted",
    "stream.started",
    "stream.ended",
    "notification_channel.created",
    "notification_channel.updated",
    "notification_channel.deleted",
)


class AuditEvent(models.Model):
    """Who did what to which object. Keeps the actor's id and email as they were (no foreign key)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="audit_events")
    action = models.CharField(max_length=64)
    actor_type = models.CharField(max_length=16, choices=ActorType.choices)
    actor_id = models.UUIDField(null=True, blank=True)
    actor_email = models.CharField(max_length=254, blank=True)
    target_type = models.CharField(max_length=64, blank=True)
    target_id = models.CharField(max_length=64, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    created_at = models.DateTimeField(default=clock.now, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["organization", "-created_at"]),
            models.Index(fields=["organization", "action", "-created_at"]),
        ]

    def __str__(self):
        return f"{self.action} by {self.actor_email or self.actor_type}"
