"""Registering an organization, logging in and out, and one's own profile."""

import secrets

from django.contrib.auth.hashers import check_password, make_password
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.text import slugify

from accounts import tokens
from accounts.models import (
    ActorType,
    AuthSession,
    Organization,
    Role,
    User,
)
from accounts.services.audit import audit_record
from accounts.services.passwords import password_check
from accounts.services.sessions import session_end, session_start, sessions_end_all
from logfleet.errors import Conflict, InvalidCredentials

# Hashing a password against this when the email is unknown keeps both answers equally slow.
_DUMMY_PASSWORD_HASH = make_password(secrets.token_urlsafe(16))


def _unique_slug(name: str) -> str:
    base = slugify(name)[:140] or "org"
    slug = base
    while Organization.objects.filter(slug=slug).exists():
        slug = f"{base}-{secrets.token_hex(3)}"
    return slug


def _organization_create(*, name: str) -> Organization:
    """A new organization with a slug of its own. Two registrations of one name at once can pick the
    same free slug; the one the unique index refuses looks again (and now sees the other's)."""
    for _retry in range(2):
        try:
            with transaction.atomic():
                return Organization.objects.create(name=name, slug=_unique_slug(name))
        except IntegrityError:
            pass
    return Organization.objects.create(name=name, slug=_unique_slug(name))


def email_taken(email: str, *, exclude: User | None = None) -> bool:
    qs = User.objects.filter(email=email.lower())
    if exclude is not None:
        qs = qs.exclude(pk=exclude.pk)
    return qs.exists()


@transaction.atomic
def organization_register(
    *, organization_name: str, email: str, password: str, name: str, ip_address: str | None
) -> tuple[User, tokens.TokenPair]:
    password_check(password, User(email=email, name=name), field="password")
    if email_taken(email):
        raise Conflict("An account with this email already exists", details={"email": "already registered"})
    organization = _organization_create(name=organization_name)
    try:
        with transaction.atomic():
            user = User.objects.create_user(
                email=email, password=password, name=name, organization=organization, role=Role.ADMIN
            )
    except IntegrityError:  # a concurrent registration took the email
        raise Conflict("An account with this email already exists", details={"email": "already registered"}) from None
    user.last_login = timezone.now()
    user.save(update_fields=["last_login"])
    audit_record(
        organization=organization,
        action="auth.login",
        actor=user,
        ip_address=ip_address,
        target_type="user",
        target_id=user.pk,
        metadata={"registration": True},
    )
    return user, session_start(user=user)


def user_login(*, email: str, password: str, ip_address: str | None) -> tuple[User, tokens.TokenPair]:
    user = User.objects.select_related("organization").filter(email=email.lower()).first()
    if user is None:
        check_password(password, _DUMMY_PASSWORD_HASH)
        raise InvalidCredentials()
    if not user.check_password(password) or not user.is_active or user.organization_id is None:
        audit_record(
            organization=user.organization,
            action="auth.login_failed",
            actor_type=ActorType.USER,
            actor_id=user.pk,
            actor_email=user.email,
            target_type="user",
            target_id=user.pk,
            ip_address=ip_address,
        )
        if user.organization_id is None and user.is_active and user.check_password(password):
            # Told only to someone who knows the password: an operator account (createsuperuser) is
            # for the Django admin, not for the API or the dashboard.
            raise InvalidCredentials(
                "This is an operator account for the Django admin (/admin/): it belongs to no organization, so "
                "it cannot use the API. Register an organization, or ask its admin for an invitation."
            )
        raise InvalidCredentials()
    user.last_login = timezone.now()
    user.save(update_fields=["last_login"])
    audit_record(
        organization=user.organization,
        action="auth.login",
        actor=user,
        ip_address=ip_address,
        target_type="user",
        target_id=user.pk,
    )
    return user, session_start(user=user)


def user_logout(*, user: User, session: AuthSession, ip_address: str | None) -> None:
    session_end(session=session, reason="logout")
    audit_record(
        organization=user.organization,
        action="auth.logout",
        actor=user,
        ip_address=ip_address,
        target_type="user",
        target_id=user.pk,
    )


def user_logout_everywhere(*, user: User, ip_address: str | None) -> int:
    """End every session of the user (every browser, every API client); how many were open."""
    ended = sessions_end_all(user=user, reason="logout")
    audit_record(
        organization=user.organization,
        action="auth.logout",
        actor=user,
        ip_address=ip_address,
        target_type="user",
        target_id=user.pk,
        metadata={"everywhere": True, "sessions": ended},
    )
    return ended


def user_update_profile(*, user: User, name: str) -> User:
    user.name = name
    user.save(update_fields=["name"])
    return user
