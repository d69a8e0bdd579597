from datetime import timedelta

import factory
from django.utils import timezone

from accounts.models import (
    ActorType,
    AuditEvent,
    Organization,
    PasswordToken,
    PasswordTokenPurpose,
    Role,
    User,
    UserStatus,
)

PASSWORD = "Sturdy-test-passw0rd"


class OrganizationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Organization

    name = factory.Sequence(lambda n: f"Organization {n}")
    slug = factory.Sequence(lambda n: f"organization-{n}")


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"user{n}@example.com")
    name = factory.Sequence(lambda n: f"User {n}")
    organization = factory.SubFactory(OrganizationFactory)
    role = Role.ADMIN
    status = UserStatus.ACTIVE

    @factory.post_generation
    def password(self, create, extracted, **kwargs):
        self.set_password(extracted or PASSWORD)
        if create:
            self.save(update_fields=["password"])


class OperatorFactory(UserFactory):
    """An operator account for the Django admin, as `createsuperuser` makes it: no organization."""

    email = factory.Sequence(lambda n: f"ops{n}@example.com")
    organization = None
    role = Role.MEMBER
    is_staff = True
    is_superuser = True


class AuditEventFactory(factory.django.DjangoModelFactory):
    """A row of the audit log as it was written (services write theirs with accounts.services.audit_record)."""

    class Meta:
        model = AuditEvent

    organization = factory.SubFactory(OrganizationFactory)
    action = "test.event"
    actor_type = ActorType.SYSTEM


class PasswordTokenFactory(factory.django.DjangoModelFactory):
    """A stored token (its hash only: the raw token is what accounts.services mails)."""

    class Meta:
        model = PasswordToken

    user = factory.SubFactory(UserFactory)
    purpose = PasswordTokenPurpose.RESET
    token_hash = factory.Sequence(lambda n: f"{n:064x}")
    expires_at = factory.LazyFunction(lambda: timezone.now() + timedelta(hours=1))
