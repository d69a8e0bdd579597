import factory
from django.utils import timezone

from accounts.tests.factories import OrganizationFactory
from agents import services
from agents.models import Agent, AgentStatus


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
