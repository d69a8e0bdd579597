"""The audit log: who did what to which object, as it was."""

from accounts.models import (
    ActorType,
    AuditEvent,
    Organization,
    User,
)


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
