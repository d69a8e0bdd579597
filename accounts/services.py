"""Everything in accounts that writes or has side effects."""

import hashlib
import logging
import secrets
import uuid
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.hashers import check_password, make_password
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.text import slugify
from rest_framework.exceptions import AuthenticationFailed, ValidationError
from rest_framework_simplejwt.exceptions import ExpiredTokenError, TokenError

from accounts import tokens
from accounts.models import (
    ActorType,
    AuditEvent,
    AuthSession,
    Organization,
    PasswordToken,
    PasswordTokenPurpose,
    Role,
    User,
    UserStatus,
)
from logfleet import mailer, realtime
from logfleet.api.exceptions import Conflict, InvalidCredentials, InvalidToken, ServiceUnavailable

logger = logging.getLogger("logfleet.accounts")

# Hashing a password against this when the email is unknown keeps both answers equally slow.
_DUMMY_PASSWORD_HASH = make_password(secrets.token_urlsafe(16))


# --- audit ---------------------------------------------------------------------------------


def audit_record(
    *,
    organization: Organization | None,
    action: str,
    actor: User | None = None,
    actor_type: str | None = None,
    actor_id=None,
    actor_email: str = "",
    target_type: str = "",
    target_id="",
    metadata: dict | None = None,
    ip_address: str | None = None,
) -> AuditEvent | None:
    """Record one audit event. The one way every app writes the audit log."""
    if organization is None:
        return None
    if actor is not None:
        actor_type = actor_type or ActorType.USER
        actor_id = actor.pk
        actor_email = actor.email
    return AuditEvent.objects.create(
        organization=organization,
        action=action,
        actor_type=actor_type or ActorType.SYSTEM,
        actor_id=actor_id,
        actor_email=actor_email or "",
        target_type=target_type,
        target_id=str(target_id or ""),
        metadata=metadata or {},
        ip_address=ip_address,
    )


# --- sessions and tokens -------------------------------------------------------------------


def organization_quota_check(*, organization_id, queryset, limit: int, what: str) -> None:
    """409 when the organization already holds `limit` of `queryset` (its objects of one kind).

    Inside the creating transaction; the organization's row is locked so that concurrent creates
    are counted one after the other and cannot pass the limit together."""
    Organization.objects.select_for_update().filter(pk=organization_id).values_list("pk", flat=True).first()
    if queryset.count() >= limit:
        raise Conflict(f"An organization may have at most {limit} {what}", details={"limit": limit})


def session_start(*, user: User) -> tokens.TokenPair:
    session_id = uuid.uuid4()
    pair = tokens.issue_pair(user_id=user.pk, session_id=session_id)
    AuthSession.objects.create(id=session_id, user=user, refresh_jti=pair.refresh_jti)
    return pair


def _decode_access(raw_token: str):
    """The claims and session id of a well-formed, unexpired access token; TokenError or ValueError otherwise."""
    token = tokens.decode_access(raw_token)
    return token, uuid.UUID(str(token.get("sid")))


def session_authenticate(raw_token: str) -> tuple[User, AuthSession]:
    """The user and session of a valid access token whose session is open and whose user is active.

    One query; role and status come fresh from the database on every request.
    """
    try:
        token, session_id = _decode_access(raw_token)
    except (TokenError, ValueError):
        raise AuthenticationFailed("Invalid or expired token") from None
    session = (
        AuthSession.objects.select_related("user", "user__organization")
        .filter(id=session_id, ended_at__isnull=True)
        .first()
    )
    if session is None or str(session.user_id) != str(token.get("user_id")):
        raise AuthenticationFailed("The session has ended; log in again")
    user = session.user
    if not user.is_active or user.organization_id is None:
        raise AuthenticationFailed("The account is not active")
    return user, session


# Why a session ended (AuthSession.end_reason), as a WebSocket's close reason says it.
SESSION_ENDED = {
    "logout": "Logged out",
    "password_changed": "The password was changed; log in again",
    "password_reset": "The password was reset; log in again",
    "deactivated": "The account was deactivated",
    "refresh_token_reused": "The session's refresh token was used twice (a copy was taken); log in again",
}


def session_standing(raw_token: str, *, organization_id=None) -> realtime.Standing:
    """Whether an access token still authenticates as on an HTTP request (session open, user active and in
    an organization) and, with `organization_id`, still in that one; why not, or when the token expires.

    For the WebSockets that hold a token open (streaming.consumers): they ask at their start and again
    whenever they may have missed the end of the session.
    """
    try:
        token, session_id = _decode_access(raw_token)
    except ExpiredTokenError:
        return realtime.Standing(ended="The token has expired; log in again")
    except (TokenError, ValueError):
        return realtime.Standing(ended="The token is not valid")
    try:
        user, _session = session_authenticate(raw_token)
    except AuthenticationFailed as exc:
        end_reason = AuthSession.objects.filter(id=session_id).values_list("end_reason", flat=True).first()
        return realtime.Standing(ended=SESSION_ENDED.get(end_reason) or str(exc.detail))
    if organization_id is not None and str(user.organization_id) != str(organization_id):
        return realtime.Standing(ended="The account no longer belongs to this organization")
    return realtime.Standing(expires_at=float(token["exp"]))


def session_refresh(*, refresh_token: str) -> tokens.TokenPair:
    """Rotate: the presented refresh token must be the session's newest; it is dead afterwards."""
    try:
        token = tokens.decode_refresh(refresh_token)
        session_id = uuid.UUID(str(token.get("sid")))
    except (TokenError, ValueError):
        raise InvalidToken("Invalid or expired refresh token") from None
    pair = tokens.issue_pair(user_id=token.get("user_id"), session_id=session_id)
    # One conditional UPDATE: of two concurrent refreshes with the same token only one wins.
    rotated = AuthSession.objects.filter(
        id=session_id,
        refresh_jti=token.get("jti"),
        ended_at__isnull=True,
        user__status=UserStatus.ACTIVE,
    ).update(refresh_jti=pair.refresh_jti, refreshed_at=timezone.now())
    if not rotated:
        # A genuine but already used refresh token: someone kept a copy. Treat it as theft (as
        # OAuth's refresh-token rotation does) and end the session for both holders.
        session_end(session=AuthSession(pk=session_id), reason="refresh_token_reused")
        raise InvalidToken("Refresh token already used or session ended")
    return pair


def session_end(*, session: AuthSession, reason: str) -> None:
    AuthSession.objects.filter(id=session.pk, ended_at__isnull=True).update(ended_at=timezone.now(), end_reason=reason)
    realtime.credential_ended(realtime.auth_session_group(session.pk), SESSION_ENDED[reason])


def sessions_end_all(*, user: User, reason: str) -> int:
    ended = AuthSession.objects.filter(user=user, ended_at__isnull=True).update(
        ended_at=timezone.now(), end_reason=reason
    )
    # Sent even when nothing was open: a socket that missed an earlier end closes now.
    realtime.credential_ended(realtime.user_group(user.pk), SESSION_ENDED[reason])
    return ended


# --- registration and login ----------------------------------------------------------------


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


def user_update_profile(*, user: User, name: str) -> User:
    user.name = name
    user.save(update_fields=["name"])
    return user


# --- passwords -----------------------------------------------------------------------------


def _validate_new_password(password: str, user: User, field: str) -> None:
    try:
        validate_password(password, user)
    except DjangoValidationError as exc:
        raise ValidationError({field: exc.messages}) from None


@transaction.atomic
def password_change(
    *, user: User, current_password: str, new_password: str, ip_address: str | None
) -> tokens.TokenPair:
    if not user.check_password(current_password):
        raise ValidationError({"current_password": "The current password is not correct"})
    _validate_new_password(new_password, user, "new_password")
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


@transaction.atomic
def password_reset_confirm(*, token: str, new_password: str, ip_address: str | None) -> User:
    invalid = ValidationError({"token": "The link is invalid, expired or already used"})
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
    _validate_new_password(new_password, user, "new_password")
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


# --- organization and members --------------------------------------------------------------


def organization_update(*, organization: Organization, actor: User, name: str, ip_address: str | None):
    organization.name = name
    organization.save(update_fields=["name"])
    audit_record(
        organization=organization,
        action="organization.updated",
        actor=actor,
        ip_address=ip_address,
        target_type="organization",
        target_id=organization.pk,
        metadata={"name": name},
    )
    return organization


@transaction.atomic
def member_invite(
    *, organization: Organization, actor: User, email: str, name: str, role: str, ip_address: str | None
) -> User:
    if email_taken(email):
        raise Conflict("An account with this email already exists", details={"email": "already registered"})
    try:
        with transaction.atomic():
            organization_quota_check(
                organization_id=organization.pk,
                queryset=User.objects.filter(organization=organization),
                limit=settings.MAX_MEMBERS_PER_ORG,
                what="members",
            )
            user = User.objects.create_user(
                email=email,
                password=None,
                name=name,
                organization=organization,
                role=role,
                status=UserStatus.INVITED,
            )
    except IntegrityError:
        raise Conflict("An account with this email already exists", details={"email": "already registered"}) from None
    raw = _password_token_create(user=user, purpose=PasswordTokenPurpose.INVITE, ttl_seconds=settings.INVITE_TTL)
    try:
        send_mail(
            subject=f"You are invited to {organization.name} on LogFleet",
            message=(
                f"Hello {name},\n\n{actor.name} ({actor.email}) invited you to the organization "
                f"{organization.name} on LogFleet as {role}.\nTo accept, choose your password here "
                f"within {_duration(settings.INVITE_TTL)}:\n\n{_password_link(raw)}\n"
            ),
            from_email=None,
            recipient_list=[user.email],
        )
    except Exception:
        logger.exception("could not send the invitation email")
        raise ServiceUnavailable("The invitation email could not be sent; try again later") from None
    audit_record(
        organization=organization,
        action="member.invited",
        actor=actor,
        ip_address=ip_address,
        target_type="user",
        target_id=user.pk,
        metadata={"email": user.email, "role": role},
    )
    return user


def _lock_organization(organization: Organization) -> None:
    # Serialises changes to the organization's admins so two concurrent demotions cannot both pass.
    Organization.objects.select_for_update().filter(pk=organization.pk).first()


def _is_last_active_admin(member: User) -> bool:
    if member.role != Role.ADMIN or member.status != UserStatus.ACTIVE:
        return False
    return not (
        User.objects.filter(organization_id=member.organization_id, role=Role.ADMIN, status=UserStatus.ACTIVE)
        .exclude(pk=member.pk)
        .exists()
    )


@transaction.atomic
def member_update(*, member: User, actor: User, role: str | None, status: str | None, ip_address: str | None) -> User:
    _lock_organization(member.organization)
    member.refresh_from_db()
    changes = {}
    if role is not None and role != member.role:
        changes["role"] = [member.role, role]
    if status is not None and status != member.status:
        if member.status == UserStatus.INVITED and status == UserStatus.ACTIVE:
            raise Conflict(
                "An invited member becomes active by accepting the invitation",
                details={"status": "the member has not accepted the invitation yet"},
            )
        changes["status"] = [member.status, status]
    if not changes:
        return member
    loses_admin = ("role" in changes and role != Role.ADMIN) or ("status" in changes and status != UserStatus.ACTIVE)
    if loses_admin and _is_last_active_admin(member):
        raise Conflict(
            "The organization needs at least one active admin", details={"id": "this member is the last active admin"}
        )
    if role is not None:
        member.role = role
    if status is not None:
        member.status = status
    member.save(update_fields=["role", "status"])
    if member.status == UserStatus.DEACTIVATED:
        sessions_end_all(user=member, reason="deactivated")
    audit_record(
        organization=member.organization,
        action="member.updated",
        actor=actor,
        ip_address=ip_address,
        target_type="user",
        target_id=member.pk,
        metadata={"email": member.email, "changes": changes},
    )
    return member


@transaction.atomic
def member_delete(*, member: User, actor: User, ip_address: str | None) -> None:
    _lock_organization(member.organization)
    if _is_last_active_admin(member):
        raise Conflict(
            "The organization needs at least one active admin", details={"id": "this member is the last active admin"}
        )
    audit_record(
        organization=member.organization,
        action="member.deleted",
        actor=actor,
        ip_address=ip_address,
        target_type="user",
        target_id=member.pk,
        metadata={"email": member.email, "role": member.role},
    )
    member.delete()
