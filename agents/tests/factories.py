import factory

from accounts.tests.factories import OrganizationFactory
from agents import services
from agents.models import Agent


class AgentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Agent
        skip_postgeneration_save = True

    organization = factory.SubFactory(OrganizationFactory)
    name = factory.Sequence(lambda n: f"agent-{n:03d}")

    @factory.post_generation
    def config_hash(self, create, extracted, **kwargs):
        # As agent_create does: the hash of what the agent should run.
        if create:
            services.agent_refresh_config_hash(agent=self)
