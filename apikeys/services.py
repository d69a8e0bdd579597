"""API keys: creation (the raw key is returned once), rotation, revocation and authentication.

What a key may be called and when it may expire are checked here (`api_key_check`), whoever asks:
the API, the admin, `manage.py create_api_key`, `manage.py demo`.

Authentication reads the key's record from the shared cache (Redis in production) and falls
back to one indexed query by prefix; revocation and rotation refresh that record after they
commit (logfleet.shared_cache), so a revoked key fails on the very next request on every process.
"""

import contextvars
import logging
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts.models import ActorType, Organization, User
from accounts.services import audit_record, organization_quota_check
from apikeys import keys
from apikeys.models import APIKey, APIKeyStatus
from logfleet import realtime, shared_cache
from logfleet.errors import Conflict, Invalid

logger = logging.getLogger("logfleet.apikeys")

RECORD_TTL = 300  # seconds a key's record may be served from the cache
LAST_USED_EVERY = 60  # seconds between writes of last_used_at for one key
DEFAULT_GRACE_SECONDS = 86400
MAX_GRACE_SECONDS = 604800
NAME_MAX_LENGTH = APIKey._meta.get_field("name").max_length
NAME_RULE = f"must be 1 to {NAME_MAX_LENGTH} characters"
GRACE_RULE = f"must be between 0 and {MAX_GRACE_SECONDS} seconds"


@dataclass(frozen=True)
class KeyPrincipal:
    """What a request authenticated with an API key knows about its key (`request.auth`)."""

    id: str
    organization_id: str
    name: str
    permissions: frozenset[str]
    expires_at: float | None = None  # Unix time

    @property
    def rate_key(self) -> str:
        return f"apikey:{self.id}"

    def has(self, permission: str) -> bool:
        return permission in self.permissions


@dataclass(frozen=True)
class Actor:
    """Who performs a key operation: a user through the API, or an operator through manage.py."""

    user: User | None = None
    ip_address: str | None = None

    def audit(self) -> dict:
        if self.user is not None:
            return {"actor": self.user, "ip_address": self.ip_address}
        return {"actor_type": ActorType.CLI, "actor_email": "manage.py"}


def _cache_key(prefix: str) -> str:
    return f"apikey:{prefix}"


def _records(prefix: str) -> list[dict]:
    return [
        {
            "id": str(key.id),
            "organization_id": str(key.organization_id),
            "name": key.name,
            "hash": key.key_hash,
            "permissions": list(key.permissions),
            "expires_at": key.expires_at.timestamp() if key.expires_at else None,
            "revoked": key.revoked_at is not None,
        }
        for key in APIKey.objects.filter(key_prefix=prefix)
    ]


def record_cache_key(raw_key: str) -> str | None:
    """The shared-cache key of the records `authenticate(raw_key)` reads (None for a malformed key)."""
    prefix = keys.parse_prefix(raw_key)
    return _cache_key(prefix) if prefix is not None else None


def key_records_changed(prefix: str) -> None:
    """The keys of `prefix` changed: every process reads their records anew after the commit."""
    _publish_on_commit(prefix)


def _publish_on_commit(prefix: str) -> None:
    shared_cache.refresh_after_commit(_cache_key(prefix), lambda: _records(prefix), RECORD_TTL)


def authenticate(raw_key: str) -> KeyPrincipal | None:
    """The principal of a valid, active key; None for malformed, unknown, expired or revoked keys."""
    prefix = keys.parse_prefix(raw_key)
    if prefix is None:
        return None  # refused before any I/O
    records = shared_cache.read_through(
        _cache_key(prefix), lambda: _records(prefix), RECORD_TTL, written_by_commands=True
    )
    for record in records:
        if not keys.matches(raw_key, record["hash"]):
            continue
        if record["revoked"]:
            return None
        if record["expires_at"] is not None and record["expires_at"] <= timezone.now().timestamp():
            return None
        _touch(record["id"])
        return KeyPrincipal(
            id=record["id"],
            organization_id=record["organization_id"],
            name=record["name"],
            permissions=frozenset(record["permissions"]),
            expires_at=record["expires_at"],
        )
    return None


def key_standing(*, key_id) -> realtime.Standing:
    """Whether a key still holds, read from the database; why not, or when it expires.

    For the agent WebSockets that hold a key open (streaming.consumers): they ask at their start and
    again whenever they may have missed the key's revocation.
    """
    row = APIKey.objects.filter(pk=key_id).values_list("revoked_at", "expires_at").first()
    if row is None:
        return realtime.Standing(ended="The API key was deleted")
    revoked_at, expires_at = row
    if revoked_at is not None:
        return realtime.Standing(ended="The API key was revoked")
    if expires_at is not None and expires_at <= timezone.now():
        if APIKey.objects.filter(replaces_id=key_id).exists():
            return realtime.Standing(ended="The API key was rotated and its grace period is over")
        return realtime.Standing(ended="The API key has expired")
    return realtime.Standing(expires_at=expires_at.timestamp() if expires_at else None)


# key id → monotonic time this process last asked the shared cache whether a write is due
_touched_here: dict[str, float] = {}
_deferred: contextvars.ContextVar[set | None] = contextvars.ContextVar("apikeys_deferred_touches", default=None)


@contextmanager
def touches_deferred():
    """Inside the block, the keys that authenticate have last_used_at written together at its end, in one
    UPDATE whose condition (not written in the last minute) is what decides across processes: for a
    batch of frames of many keys (the agent sockets' heartbeats), instead of a cache ADD and an UPDATE
    per key."""
    due: set = set()
    token = _deferred.set(due)
    try:
        yield
    finally:
        _deferred.reset(token)
        if due:
            now = timezone.now()
            stale = Q(last_used_at__isnull=True) | Q(last_used_at__lt=now - timedelta(seconds=LAST_USED_EVERY))
            APIKey.objects.filter(stale, id__in=due).update(last_used_at=now)


def _touch(key_id: str) -> None:
    """last_used_at, written at most once a minute per key.

    One atomic cache ADD across all processes decides who writes; a process that asked less
    than a minute ago does not even ask, so steady traffic costs no cache call here.
    """
    now = time.monotonic()
    if now - _touched_here.get(key_id, -LAST_USED_EVERY) < LAST_USED_EVERY:
        return
    _touched_here[key_id] = now
    deferred = _deferred.get()
    if deferred is not None:
        deferred.add(key_id)
        return
    try:
        due = cache.add(f"apikey-used:{key_id}", 1, LAST_USED_EVERY)
    except Exception:
        due = False
    if due:
        APIKey.objects.filter(id=key_id).update(last_used_at=timezone.now())


def _name_problem(name) -> str | None:
    if not isinstance(name, str):
        return "must be a string"
    if not 1 <= len(name) <= NAME_MAX_LENGTH:
        return NAME_RULE
    if "\x00" in name:
        return "Null characters are not allowed."
    return None


def api_key_check(
    *, name, expires_at: datetime | None = None, permissions: list[str] | None = None
) -> tuple[str, datetime | None]:
    """The one rule for what a key may be called, hold and when it may expire: (name as stored,
    expires_at), or Invalid naming each field that breaks it. A name is trimmed, then 1 to 128
    characters; an expiry is in the future; permissions (when given) are known ones, at least one."""
    name = name.strip() if isinstance(name, str) else name
    errors = {}
    problem = _name_problem(name)
    if problem is not None:
        errors["name"] = problem
    if permissions is not None and (not permissions or not set(permissions) <= set(keys.PERMISSIONS)):
        errors["permissions"] = f"must be one or more of {', '.join(keys.PERMISSIONS)}"
    if expires_at is not None and expires_at <= timezone.now():
        errors["expires_at"] = "must be in the future"
    if errors:
        raise Invalid(details=errors)
    return name, expires_at


def api_key_quota_check(*, organization: Organization) -> None:
    """409 when the organization already has MAX_API_KEYS_PER_ORG active keys (inside the creating
    transaction: the organization stays locked until it commits)."""
    organization_quota_check(
        organization_id=organization.pk,
        queryset=APIKey.objects.filter(organization=organization).with_status(APIKeyStatus.ACTIVE),
        limit=settings.MAX_API_KEYS_PER_ORG,
        what="active API keys",
    )


@transaction.atomic
def api_key_create(
    *,
    organization: Organization,
    name: str,
    permissions: list[str],
    expires_at: datetime | None = None,
    actor: Actor,
    replaces: APIKey | None = None,
) -> tuple[APIKey, str]:
    """A new key and its raw value, which is shown this once and never stored."""
    name, expires_at = api_key_check(name=name, expires_at=expires_at, permissions=permissions)
    return _api_key_create(
        organization=organization,
        name=name,
        permissions=permissions,
        expires_at=expires_at,
        actor=actor,
        replaces=replaces,
    )


def _api_key_create(*, organization, name, permissions, expires_at, actor, replaces) -> tuple[APIKey, str]:
    api_key_quota_check(organization=organization)
    raw = keys.generate()
    key = APIKey.objects.create(
        organization=organization,
        name=name,
        key_prefix=keys.parse_prefix(raw),
        key_hash=keys.hash_key(raw),
        permissions=sorted(set(permissions)),
        expires_at=expires_at,
        created_by=actor.user,
        replaces=replaces,
    )
    _publish_on_commit(key.key_prefix)
    if replaces is None:
        audit_record(
            organization=organization,
            action="api_key.created",
            target_type="api_key",
            target_id=key.pk,
            metadata={"name": name, "key_prefix": key.key_prefix, "permissions": key.permissions},
            **actor.audit(),
        )
    return key, raw


@transaction.atomic
def api_key_rename(*, key: APIKey, name: str) -> APIKey:
    """A key's new name, by the same rule as a new key's; every process reads the key anew."""
    name, _ = api_key_check(name=name)
    APIKey.objects.filter(pk=key.pk).update(name=name)
    key.name = name
    _publish_on_commit(key.key_prefix)
    return key


@transaction.atomic
def api_key_revoke(*, key: APIKey, actor: Actor) -> APIKey:
    """Idempotent: revoking a revoked key changes nothing and records nothing."""
    now = timezone.now()
    if APIKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(revoked_at=now):
        audit_record(
            organization=key.organization,
            action="api_key.revoked",
            target_type="api_key",
            target_id=key.pk,
            metadata={"name": key.name, "key_prefix": key.key_prefix},
            **actor.audit(),
        )
    _publish_on_commit(key.key_prefix)
    realtime.credential_ended(realtime.api_key_group(key.pk), "The API key was revoked")
    key.refresh_from_db()
    return key


@transaction.atomic
def api_key_rotate(*, key: APIKey, grace_seconds: int = DEFAULT_GRACE_SECONDS, actor: Actor) -> tuple[APIKey, str]:
    """A new key with the same name and permissions; the old one works until the grace ends."""
    if type(grace_seconds) is not int or not 0 <= grace_seconds <= MAX_GRACE_SECONDS:
        raise Invalid(details={"grace_seconds": GRACE_RULE})
    key = APIKey.objects.select_for_update().get(pk=key.pk)
    now = timezone.now()
    status = key.status_at(now)
    if status != APIKeyStatus.ACTIVE:
        raise Conflict(f"Only an active key can be rotated; this one is {status}", details={"status": status})
    grace_end = now + timedelta(seconds=grace_seconds)
    original_expiry = key.expires_at  # the new key keeps the expiry the old one had
    key.expires_at = grace_end if key.expires_at is None else min(key.expires_at, grace_end)
    key.save(update_fields=["expires_at"])
    _publish_on_commit(key.key_prefix)
    realtime.credential_expires(realtime.api_key_group(key.pk), key.expires_at.timestamp())
    # The new key keeps a name and an expiry that were checked when the old one was made (and that
    # expiry is still ahead: the key is active).
    new_key, raw = _api_key_create(
        organization=key.organization,
        name=key.name,
        permissions=key.permissions,
        expires_at=original_expiry,
        actor=actor,
        replaces=key,
    )
    audit_record(
        organization=key.organization,
        action="api_key.rotated",
        target_type="api_key",
        target_id=new_key.pk,
        metadata={
            "name": key.name,
            "previous_id": str(key.pk),
            "previous_expires_at": key.expires_at.isoformat(),
            "key_prefix": new_key.key_prefix,
        },
        **actor.audit(),
    )
    return new_key, raw
