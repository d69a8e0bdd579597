"""Tests build their data with factories (STYLE.md): every model has one in its app's
tests/factories.py, or is made the way the product makes it, through the service named here."""

import pytest
from django.apps import apps

from accounts.models import AuditEvent, AuthSession, Organization, PasswordToken, User
from accounts.tests.factories import (
    AuditEventFactory,
    OperatorFactory,
    OrganizationFactory,
    PasswordTokenFactory,
    UserFactory,
)
from agents.models import (
    Agent,
    AgentAnnouncement,
    AgentStatus,
    KeyAnnouncement,
    NotificationAttempt,
    NotificationChannel,
    NotificationDelivery,
    NotificationEvent,
)
from agents.tests.factories import (
    AgentFactory,
    NotificationChannelFactory,
    NotificationDeliveryFactory,
    NotificationEventFactory,
)
from apikeys.models import APIKey
from logfleet.tests.test_house import PRODUCT_APPS
from metrics.models import MetricBatch, MetricConfig, Rollup, Sample, Series
from metrics.tests.factories import MetricConfigFactory, SeriesFactory
from streaming.models import SessionStatus, StreamSession
from streaming.tests.factories import StreamSessionFactory

FACTORIES = {
    Organization: OrganizationFactory,
    User: UserFactory,
    PasswordToken: PasswordTokenFactory,
    AuditEvent: AuditEventFactory,
    Agent: AgentFactory,
    MetricConfig: MetricConfigFactory,
    Series: SeriesFactory,
    StreamSession: StreamSessionFactory,
    NotificationChannel: NotificationChannelFactory,
    NotificationEvent: NotificationEventFactory,
    NotificationDelivery: NotificationDeliveryFactory,
}
# Made only the way the product makes them: what a factory would build by hand could drift from it.
MADE_BY_SERVICES = {
    AuthSession: "accounts.services.session_start (conftest.client_for)",
    APIKey: "apikeys.services.api_key_create (apikeys.tests.factories.make_key)",
    Sample: "an agent's push (metrics.ingest)",
    Rollup: "an agent's push (metrics.ingest)",
    MetricBatch: "an agent's push (metrics.ingest)",
    AgentAnnouncement: "manage.py sendalerts (agents.notifications.sweep)",
    KeyAnnouncement: "manage.py sendalerts (agents.notifications.sweep)",
    NotificationAttempt: "manage.py sendalerts (agents.notifications.delivery)",
}


def test_every_model_has_a_factory_or_names_the_service_that_makes_it():
    ours = {model for model in apps.get_models() if model._meta.app_label in PRODUCT_APPS}
    assert ours == set(FACTORIES) | set(MADE_BY_SERVICES)


@pytest.mark.django_db
@pytest.mark.parametrize("model", FACTORIES, ids=lambda model: model.__name__)
def test_each_factory_makes_a_valid_row_every_time(model):
    first, second = FACTORIES[model](), FACTORIES[model]()
    for made in (first, second):
        # A series without labels is stored with {} (as ingestion stores it), which full_clean calls blank.
        made.full_clean(exclude=["labels"] if model is Series else None)
    assert model.objects.filter(pk__in=[first.pk, second.pk]).count() == 2


@pytest.mark.django_db
def test_factories_make_what_the_product_would():
    operator = OperatorFactory()
    assert operator.is_superuser and operator.organization is None
    online = Agent.objects.with_status().get(pk=AgentFactory(online=True).pk)
    assert online.status == AgentStatus.ONLINE and online.config_hash
    session = StreamSessionFactory()
    assert session.organization_id == session.agent.organization_id and session.agent_ref == session.agent.pk
    assert session.effective_status() == SessionStatus.PENDING
    series = SeriesFactory(labels={"method": "GET"})
    assert series.organization_id == series.agent.organization_id
    # A config's agents are told, as metric_config_create tells them: their hash covers it.
    agent = AgentFactory()
    before = agent.config_hash
    MetricConfigFactory(organization=agent.organization)
    agent.refresh_from_db()
    assert agent.config_hash != before
