"""Passwords: changing one, and the single-use tokens of resets and invitations."""

import hashlib
import secrets
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from django.utils import timezone

from accounts import tokens
from accounts.models import (
    PasswordToken,
    PasswordTokenPurpose,
    User,
    UserStatus,
)
from accounts.services.audit import audit_record
from accounts.services.sessions import session_start
from logfleet import mailer
from logfleet.errors import Invalid


def password_check(password: str, user: User, *, field: str) -> None:
    """The one rule for a new password (Django's validators, AUTH_PASSWORD_VALIDATORS): Invalid
    naming `field` with every reason it is refused."""
    try:
        validate_password(password, user)
    except DjangoValidationError as exc:
        raise Invalid(details={field: " ".join(exc.messages)}) from None


@transaction.atomic
def password_change(
    *, user: User, current_password: str, new_password: str, ip_address: str | None
) -> tokens.TokenPair:
    if not user.check_password(current_password):
        raise Invalid(details={"current_password": "The current password is not correct"})
    password_check(new_password, user, field="new_password")
    user.set_password(new_password)
    user.save(update_fields=["password"])  # ends every session of the user (accounts.signals)
    audit_record(
        organization=user.organization,
        action="auth.password_changed",
        actor=user,
        ip_address=ip_address,
        target_type="user",
        target_id=user.pk,
    )
    return session_start(user=user)


def _hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def _password_token_create(*, user: User, purpose: str, ttl_seconds: int) -> str:
    raw = secrets.token_urlsafe(32)
    PasswordToken.objects.create(
        user=user,
        purpose=purpose,
        token_hash=_hash_token(raw),
        expires_at=timezone.now() + timedelta(seconds=ttl_seconds),
    )
    return raw


def _password_link(raw_token: str) -> str:
    return f"{settings.PUBLIC_URL}/reset-password?token={raw_token}"


def _duration(seconds: int) -> str:
    """A TTL as people say it: 45 seconds, 5 minutes, 2 hours, 7 days."""
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} second{'s' if seconds != 1 else ''}"


def password_reset_request(*, email: str, ip_address: str | None) -> None:
    """Email a reset link to a known active user; silently nothing otherwise (same answer either way)."""
    user = User.objects.select_related("organization").filter(email=email.lower()).first()
    if user is None or not user.is_active or user.organization_id is None:
        return
    raw = _password_token_create(user=user, purpose=PasswordTokenPurpose.RESET, ttl_seconds=settings.PASSWORD_RESET_TTL)
    # Off the request's time: the answer must not reveal, by its duration, that the email is known.
    mailer.send_later(
        subject="Reset your LogFleet password",
        message=(
            f"Hello {user.name},\n\nSomeone asked to reset the password of your LogFleet account.\n"
            f"To choose a new password, open this link within {_duration(settings.PASSWORD_RESET_TTL)}:\n\n"
            f"{_password_link(raw)}\n\nIf it was not you, ignore this email; nothing changes.\n"
        ),
        from_email=None,
        recipient_list=[user.email],
    )


def password_token_email(*, token: str) -> str | None:
    """The email of the user a password token was issued to, also when it is used or expired
    (the per-account rate limit of reset-password); None for a token never issued."""
    return PasswordToken.objects.filter(token_hash=_hash_token(token)).values_list("user__email", flat=True).first()


def password_token_purpose(*, token: str) -> str | None:
    """What an unused, unexpired password token is for (reset or invite); None otherwise."""
    if not token:
        return None
    return (
        PasswordToken.objects.filter(token_hash=_hash_token(token), used_at__isnull=True, expires_at__gt=timezone.now())
        .values_list("purpose", flat=True)
        .first()
    )


@transaction.atomic
def password_reset_confirm(*, token: str, new_password: str, ip_address: str | None) -> User:
    invalid = Invalid(details={"token": "The link is invalid, expired or already used"})
    now = timezone.now()
    record = (
        PasswordToken.objects.select_for_update(of=("self",))
        .select_related("user", "user__organization")
        .filter(token_hash=_hash_token(token), used_at__isnull=True, expires_at__gt=now)
        .first()
    )
    if record is None:
        raise invalid
    user = record.user
    if user.status == UserStatus.DEACTIVATED:
        raise invalid
    password_check(new_password, user, field="new_password")
    # Single use, even against a concurrent confirm of the same token.
    if not PasswordToken.objects.filter(pk=record.pk, used_at__isnull=True).update(used_at=now):
        raise invalid
    PasswordToken.objects.filter(user=user, used_at__isnull=True).update(used_at=now)
    was_invited = user.status == UserStatus.INVITED
    user.set_password(new_password)
    user.password_change_reason = "password_reset"
    user.status = UserStatus.ACTIVE
    user.save(update_fields=["password", "status"])  # ends every session of the user
    audit_record(
        organization=user.organization,
        action="auth.password_reset",
        actor=user,
        ip_address=ip_address,
        target_type="user",
        target_id=user.pk,
        metadata={"invitation": was_invited},
    )
    return user
