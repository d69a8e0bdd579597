import uuid

import factory
from django.utils import timezone

from accounts.tests.factories import OrganizationFactory
from agents import services
from agents.models import (
    SUBSCRIBABLE_EVENTS,
    Agent,
    AgentStatus,
    ChannelKind,
    EventType,
    NotificationChannel,
    NotificationDelivery,
    NotificationEvent,
)
from agents.notifications import events as notification_events
from agents.notifications import secrets as notification_secrets


class AgentFactory(factory.django.DjangoModelFactory):
    """A pre-provisioned agent (never seen, so offline); `online=True` for one that just sent a
    heartbeat saying it is online."""

    class Meta:
        model = Agent
        skip_postgeneration_save = True

    class Params:
        # timezone.now looked up when called, so that a test's moved clock (conftest.clock) applies.
        online = factory.Trait(
            last_heartbeat_at=factory.LazyFunction(lambda: timezone.now()),
            reported_status=AgentStatus.ONLINE,
        )

    organization = factory.SubFactory(OrganizationFactory)
    name = factory.Sequence(lambda n: f"agent-{n:03d}")

    @factory.post_generation
    def config_hash(self, create, extracted, **kwargs):
        # As agent_create does: the hash of what the agent should run.
        if create:
            services.agent_refresh_config_hash(agent=self)


class NotificationChannelFactory(factory.django.DjangoModelFactory):
    """An enabled webhook channel for every event and agent; its secret is `whsec_factory-secret`
    (`NotificationChannelFactory(secret="whsec_...")` for another)."""

    class Meta:
        model = NotificationChannel
        skip_postgeneration_save = True

    class Params:
        secret = "whsec_factory-secret"

    organization = factory.SubFactory(OrganizationFactory)
    name = factory.Sequence(lambda n: f"channel-{n:03d}")
    kind = ChannelKind.WEBHOOK
    url = "https://hooks.example.com/logfleet"
    events = factory.LazyFunction(lambda: list(SUBSCRIBABLE_EVENTS))
    agent_selector = factory.LazyFunction(dict)
    secret_encrypted = factory.LazyAttribute(lambda channel: notification_secrets.encrypt(channel.secret))


class NotificationEventFactory(factory.django.DjangoModelFactory):
    """A `test` event of an organization, its payload as the service writes it."""

    class Meta:
        model = NotificationEvent

    organization = factory.SubFactory(OrganizationFactory)
    type = EventType.TEST
    occurred_at = factory.LazyFunction(lambda: timezone.now())
    payload = factory.LazyAttribute(
        lambda event: notification_events.payload(
            event_id=event.id,
            event_type=event.type,
            occurred_at=event.occurred_at,
            organization_id=event.organization.pk,
        )
    )
    id = factory.LazyFunction(uuid.uuid4)


class NotificationDeliveryFactory(factory.django.DjangoModelFactory):
    """A pending delivery of an event of the channel's organization, due now."""

    class Meta:
        model = NotificationDelivery

    channel = factory.SubFactory(NotificationChannelFactory)
    event = factory.SubFactory(NotificationEventFactory, organization=factory.SelfAttribute("..channel.organization"))
    created_at = factory.LazyFunction(lambda: timezone.now())
    next_attempt_at = factory.LazyFunction(lambda: timezone.now())
