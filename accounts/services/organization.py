"""The organization and its members (invitations, roles, the last-admin rule) and what it may hold."""

import logging

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction

from accounts.models import (
    Organization,
    PasswordTokenPurpose,
    Role,
    User,
    UserStatus,
)
from accounts.services.audit import audit_record
from accounts.services.passwords import _duration, _password_link, _password_token_create
from accounts.services.registration import email_taken
from accounts.services.sessions import sessions_end_all
from logfleet.errors import Conflict, Unavailable

logger = logging.getLogger("logfleet.accounts")


def organization_quota_check(*, organization_id, queryset, limit: int, what: str) -> None:
    """409 when the organization already holds `limit` of `queryset` (its objects of one kind).

    Inside the creating transaction; the organization's row is locked so that concurrent creates
    are counted one after the other and cannot pass the limit together."""
    Organization.objects.select_for_update().filter(pk=organization_id).values_list("pk", flat=True).first()
    if queryset.count() >= limit:
        raise Conflict(f"An organization may have at most {limit} {what}", details={"limit": limit})


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
        raise Unavailable("The invitation email could not be sent; try again later") from None
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
